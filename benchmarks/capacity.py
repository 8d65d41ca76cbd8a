"""Capacity model: CPU cost of each stage of a session, and sessions per core from them.

Usage: python -m benchmarks.capacity [--config default] [--frames 100] [--turn-s 10]
       [--live [--live-only] [--set key=value ...]]

Measures process CPU time (insensitive to other load on the machine, unlike wall time)
of every per-session stage on this machine, with the real engines:
- video, continuous: the CPU renderer and aiortc's VP8 encoder per frame (512² and
  1280×720), Opus per 20 ms of audio;
- per turn: Whisper on the user's utterance, llama.cpp per reply token, Piper per
  second of reply audio.
With ``--live`` it also runs ``avatar serve`` on 127.0.0.1 with one real aiortc caller
(espeak-ng questions) and splits the server process's CPU by what the session is doing:
idle (connected, nobody talks), listening (the user's speech), thinking (end of speech
→ the reply's first sound), speaking (the reply plays), and with ``--live-only`` skips
the offline stages.

Then a session's load in cores = video + audio + (turn costs / seconds per turn), and
sessions per core for three shapes: everything on the worker's CPU; the LLM on vLLM;
LLM + STT + TTS off the worker (vLLM and Ray Serve/GPU), so the worker only renders
and encodes. The turn is a typical exchange: a 3 s question, a 40-token reply of
about 4 s of speech, one turn every ``--turn-s`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import sys
import time
from collections.abc import Callable, Sequence
from fractions import Fraction

import av
import cv2
import numpy as np

from avatar.identity import load_rig
from avatar.motion import WorldModel
from avatar.render import CpuRenderer
from avatar.render.reuse import frame_reuse
from avatar.state import AvatarState, Mode
from benchmarks.common import arg_parser, config_arg, machine
from benchmarks.conversation import (
    Question,
    _wait_ready,
    free_port,
    load_average,
    start_server,
    stop_server,
)
from benchmarks.phases import PHASES, phase_cpu
from benchmarks.render import talking
from benchmarks.spoken import espeak, parse_voice, speak
from gwm_avatars.arguments import int_in_range, positive_float, positive_int
from models.assets import AssetResolver
from models.audio import resample
from models.llm import build_messages, create_llm
from models.stt import SpeechRecognizer
from models.tts import create_tts
from models.types import GenerationStats
from streaming.config import load_config
from streaming.ice import use_host_addresses

QUESTION = "Could you tell me a little about the weather in Paris in the spring?"
REPLY_TOKENS = 40
QUESTION_S = 3.0
REPLY_S = 4.0
HEADROOM = 0.7  # keep 30 % of every core free so latency does not climb


def out(line: str = "") -> None:
    """Print one result line."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def cpu_seconds(fn: Callable[[], object]) -> float:
    """Process CPU seconds spent by ``fn()`` (every thread of this process)."""
    c = time.process_time()
    fn()
    return time.process_time() - c


def world_states(frames: int, config_name: str, mode: Mode) -> list[AvatarState]:
    """``frames`` states of the world model in ``mode`` (blinks, gaze, breath, head motion)."""
    world = WorldModel(load_config(config_name).avatar, fps=25, seed=0)
    world.set_mode(mode)
    return [world.step() for _ in range(frames)]


def video_costs(
    size: tuple[int, int],
    frames: int,
    states: list[AvatarState] | None = None,
    reuse_below_px: float = 0.0,
) -> tuple[float, float]:
    """CPU ms per frame of (render, VP8 encode) at ``size`` (width, height), of a talking
    head or of ``states``; with ``reuse_below_px`` as the live track does (a frame whose
    state barely moved is the last frame again, encoded all the same)."""
    from aiortc.codecs.vpx import Vp8Encoder

    cv2.setNumThreads(1)
    renderer = CpuRenderer(load_rig(None, size=size))
    states = states or talking(frames)
    renderer.render(states[0])
    reuse = frame_reuse(renderer, reuse_below_px)
    images: list[np.ndarray] = []

    def render() -> None:
        for s in states:
            image = reuse.lookup(s) if reuse is not None else None
            if image is None:
                image = renderer.render(s)
                if reuse is not None:
                    reuse.remember(s, image)
            images.append(image)

    render_s = cpu_seconds(render)
    encoder = Vp8Encoder()

    def encode() -> None:
        for i, img in enumerate(images):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
            frame.pts = i * 3600
            frame.time_base = Fraction(1, 90000)
            encoder.encode(frame, force_keyframe=(i == 0))

    encode_s = cpu_seconds(encode)
    return render_s / len(states) * 1000.0, encode_s / len(states) * 1000.0


def opus_cost(seconds: float = 10.0) -> float:
    """CPU ms per 20 ms Opus frame (48 kHz stereo, as the service sends)."""
    from aiortc.codecs.opus import OpusEncoder

    encoder = OpusEncoder()
    rng = np.random.default_rng(0)
    n = int(seconds / 0.02)

    def encode() -> None:
        for i in range(n):
            pcm = (rng.standard_normal((1, 960 * 2)) * 3000).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="stereo")
            frame.sample_rate = 48000
            frame.pts = i * 960
            frame.time_base = Fraction(1, 48000)
            encoder.encode(frame)

    return cpu_seconds(encode) / n * 1000.0


async def _reply(llm, messages, stats: GenerationStats) -> None:  # type: ignore[no-untyped-def]
    async for _ in llm.stream(messages, max_tokens=REPLY_TOKENS, stats=stats):
        pass


def turn_costs(config_name: str) -> dict[str, float]:
    """CPU seconds of one turn's STT, LLM (per token) and TTS (per second of speech)."""
    cfg = load_config(config_name)
    resolver = AssetResolver(cfg.assets)
    tts = create_tts(cfg.tts, resolver)
    chunks = list(tts.synthesize(QUESTION))
    rate = chunks[0].sample_rate
    pcm = np.concatenate([c.pcm for c in chunks])
    tts_s = cpu_seconds(lambda: list(tts.synthesize(QUESTION)))
    speech_s = len(pcm) / rate
    stt = SpeechRecognizer(cfg.stt, resolver, word_timestamps=False)
    pcm16 = resample(pcm, rate, 16_000)
    stt.transcribe(pcm16)  # warm-up
    stt_s = min(cpu_seconds(lambda: stt.transcribe(pcm16)) for _ in range(3))
    llm = create_llm(cfg.llm, resolver)
    llm.load()
    messages = build_messages(cfg.llm.persona(), cfg.llm.example_messages(), QUESTION)
    asyncio.run(_reply(llm, messages, GenerationStats()))  # warm-up
    stats = GenerationStats()
    llm_s = cpu_seconds(lambda: asyncio.run(_reply(llm, messages, stats)))
    asyncio.run(llm.aclose())
    return {
        "stt_per_utterance_s": stt_s * QUESTION_S / speech_s,
        "llm_per_token_s": llm_s / max(1, stats.tokens),
        "tts_per_audio_s": tts_s / speech_s,
        "utterance_s": speech_s,
        "llm_threads": float(cfg.llm.threads or 0),
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The arguments, checked: bad ones print one line and exit with code 2."""
    parser = arg_parser(__doc__, __file__)
    parser.add_argument("--config", default="default")
    parser.add_argument("--frames", type=positive_int, default=100)
    parser.add_argument("--turn-s", type=positive_float, default=10.0, help="seconds between turns")
    parser.add_argument("--fps", type=int_in_range(1, 60), default=25)
    parser.add_argument(
        "--live", action="store_true", help="also split a live session's CPU by phase"
    )
    parser.add_argument("--live-only", action="store_true", help="only the live split")
    parser.add_argument(
        "--video-only", action="store_true", help="only the video costs (no models loaded)"
    )
    parser.add_argument(
        "--live-turns", type=positive_int, default=3, help="questions of the live caller"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        help="config override for the live server",
    )
    args = parser.parse_args(argv)
    args.app_config = config_arg(parser, args.config, args.overrides)
    args.live = args.live or args.live_only
    return args


LIVE_QUESTIONS = (
    "Could you tell me a little about the weather in Paris in the spring?",
    "What is the name of the largest ocean on Earth?",
    "Which animal is the tallest in the world?",
    "How many days are there in a leap year?",
)
LIVE_VOICES = ("en-us:160:50", "en+f3:150:65", "en-gb+m3:175:40")


def live(args: argparse.Namespace) -> None:
    """``avatar serve`` with one caller; print the server's CPU per phase of the call."""
    use_host_addresses(["127.0.0.1"])
    questions = []
    for i in range(args.live_turns):
        text = LIVE_QUESTIONS[i % len(LIVE_QUESTIONS)]
        voice = LIVE_VOICES[i % len(LIVE_VOICES)]
        synth = functools.partial(espeak, voice=parse_voice(voice))
        questions.append(Question(text, voice, *speak(text, synth, 0.5)))
    port = free_port()
    server = start_server(args.config, args.overrides, port, 1)
    url = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(_wait_ready(url))
        out(
            f"\nlive: one caller, {args.live_turns} espeak-ng questions; load average "
            f"{load_average()} before"
        )
        res = asyncio.run(phase_cpu(url, server.pid, questions))
    finally:
        stop_server(server)
    out(f"{'phase':10} {'seconds':>8} {'server cores':>13}")
    for phase in PHASES:
        out(f"{phase:10} {res.wall_s[phase]:8.1f} {res.cores(phase):13.2f}")
    out(f"load average after: {load_average()}")
    if res.errors:
        out(f"errors: {res.errors}")


def video(args: argparse.Namespace, size: tuple[int, int]) -> float:
    """Print the video costs at ``size``: speech, then idle and listening with and
    without frame reuse; returns the cores of speech video."""
    render_ms, vp8_ms = video_costs(size, args.frames)
    video_cores = (render_ms + vp8_ms) * args.fps / 1000.0
    out(
        f"\n{size[0]}x{size[1]}: render {render_ms:.1f} ms + VP8 {vp8_ms:.1f} ms CPU per "
        f"frame = {video_cores:.2f} cores at {args.fps} fps"
    )
    for mode in (Mode.IDLE, Mode.LISTENING):
        still = world_states(args.frames, args.config, mode)
        for reuse_px in (0.0, args.app_config.render.reuse_below_px):
            r_ms, v_ms = video_costs(size, args.frames, still, reuse_px)
            how = f"reusing frames below {reuse_px:g} px" if reuse_px else "every frame rendered"
            out(
                f"  {mode.value}, {how}: render {r_ms:.1f} ms + VP8 {v_ms:.1f} ms CPU per "
                f"frame = {(r_ms + v_ms) * args.fps / 1000.0:.2f} cores"
            )
    return video_cores


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and print the capacity model."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    out(f"machine: {machine()}; load average {load_average()}")
    if args.video_only:
        for size in ((512, 512), (1280, 720)):
            video(args, size)
        out(f"load average after: {load_average()}")
        return 0
    if args.live_only:
        live(args)
        return 0
    out(
        f"config: {args.config}; {args.fps} fps; a turn every {args.turn_s:.0f} s "
        f"({QUESTION_S:.0f} s question, {REPLY_TOKENS}-token reply, {REPLY_S:.0f} s of speech)"
    )
    opus_ms = opus_cost()
    out(f"opus encode: {opus_ms:.2f} ms CPU per 20 ms frame")
    turn = turn_costs(args.config)
    out(
        f"per turn: STT {turn['stt_per_utterance_s']:.2f} CPU-s per {QUESTION_S:.0f} s "
        f"utterance; LLM {turn['llm_per_token_s'] * 1000:.1f} CPU-ms per token; "
        f"TTS {turn['tts_per_audio_s']:.3f} CPU-s per s of speech"
    )
    audio_cores = opus_ms / 20.0
    turn_cores = {
        "stt": turn["stt_per_utterance_s"] / args.turn_s,
        "llm": turn["llm_per_token_s"] * REPLY_TOKENS / args.turn_s,
        "tts": turn["tts_per_audio_s"] * REPLY_S / args.turn_s,
    }
    for size in ((512, 512), (1280, 720)):
        video_cores = video(args, size)
        shapes = {
            "all on the worker CPU": video_cores + audio_cores + sum(turn_cores.values()),
            "LLM on vLLM": video_cores + audio_cores + turn_cores["stt"] + turn_cores["tts"],
            "LLM+STT+TTS off the worker": video_cores + audio_cores,
        }
        out(f"{'shape':30} {'cores/session':>14} {'sessions/core':>14} {'@70% load':>10}")
        for name, cores in shapes.items():
            out(f"{name:30} {cores:14.2f} {1.0 / cores:14.2f} {HEADROOM / cores:10.2f}")
    if args.live:
        live(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
