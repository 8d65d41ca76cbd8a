"""``avatar render``: speech (text or an audio file) to an MP4 of the talking avatar.

``avatar render --text "Hello there." -o hello.mp4`` speaks the text with the
configured TTS; ``avatar render --audio speech.wav -o out.mp4`` animates any speech
recording (the mouth follows the sound itself). The video has ``round(duration *
fps)`` frames and its audio is the speech, so both streams last as long as it.
:func:`render_speech_to_mp4` is the same pipeline as a function.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from avatar.cli import UsageError
from avatar.config import AppConfig, AvatarConfig, RenderConfig
from avatar.media import MediaError, read_audio, write_mp4
from avatar.motion import MouthDrive, WorldModel
from avatar.state import AvatarState, Mode
from models.assets import AssetResolver
from models.audio import resample
from models.errors import InvalidAudioError
from models.types import Speech, Word

log = logging.getLogger(__name__)

DEFAULT_PAD_S = 0.3
"""Silence before and after the speech, so the video starts and ends at rest."""
_SIZE_RE = re.compile(r"^\s*(\d+)\s*(?:[xX×]\s*(\d+))?\s*$")


class FrameRenderer(Protocol):
    """What this command needs from a renderer (``avatar.render``)."""

    def render(self, state: AvatarState) -> npt.NDArray[np.uint8]: ...

    def render_batch(self, states: Sequence[AvatarState]) -> list[npt.NDArray[np.uint8]]: ...


@dataclass
class RenderResult:
    """What :func:`render_speech_to_mp4` produced, and where the time went."""

    path: Path
    frames: int
    fps: int
    duration: float
    """Seconds of audio (speech plus padding) = seconds of video within a frame."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time per stage: ``motion``, ``render``, ``encode``, ``total``."""
    states: list[AvatarState] = field(default_factory=list)

    @property
    def realtime_factor(self) -> float:
        """Seconds of video made per second of wall time."""
        total = self.seconds.get("total", 0.0)
        return self.duration / total if total > 0 else float("inf")


def parse_size(text: str) -> tuple[int, int]:
    """``"512"`` -> (512, 512); ``"1280x720"`` -> (1280, 720). UsageError when invalid."""
    m = _SIZE_RE.match(text)
    if not m:
        raise UsageError(f"--size must look like 512 or 1280x720, got {text!r}")
    w = int(m.group(1))
    h = int(m.group(2)) if m.group(2) else w
    if not (64 <= w <= 3840 and 64 <= h <= 2160):
        raise UsageError(f"--size {w}x{h} is out of range (64..3840 x 64..2160)")
    if w % 2 or h % 2:
        raise UsageError(f"--size {w}x{h}: width and height must be even (H.264)")
    return w, h


def join_speech(chunks: Sequence[Speech]) -> tuple[npt.NDArray[np.float32], int, list[float]]:
    """Concatenate chunks (resampled to the first one's rate): (pcm, rate, start offsets)."""
    if not chunks:
        raise InvalidAudioError("there is no speech to render")
    rate = chunks[0].sample_rate
    parts: list[npt.NDArray[np.float32]] = []
    offsets: list[float] = []
    pos = 0
    for c in chunks:
        pcm = c.pcm if c.sample_rate == rate else resample(c.pcm, c.sample_rate, rate)
        offsets.append(pos / rate)
        parts.append(pcm.astype(np.float32, copy=False))
        pos += len(pcm)
    return np.concatenate(parts), rate, offsets


def render_speech_to_mp4(
    chunks: Sequence[Speech],
    out: str | Path,
    renderer: FrameRenderer,
    *,
    avatar_config: AvatarConfig | None = None,
    render_config: RenderConfig | None = None,
    fps: int | None = None,
    seed: int | None = None,
    pad_s: float = DEFAULT_PAD_S,
    words: Sequence[Word] | None = None,
    progress: bool = False,
    keep_states: bool = False,
) -> RenderResult:
    """Animate ``chunks`` of speech (played back to back) and encode an MP4.

    Each chunk drives the mouth from its phoneme timeline, or from its audio when it
    has none (``words``, STT timings relative to the first chunk, refine the
    audio-driven mouth). ``pad_s`` seconds of silence go before and after. Frames
    stream from the world model through ``renderer`` into the encoder; batches of
    ``render_config.max_batch`` frames go to ``render_batch`` at once.
    """
    avatar_config = avatar_config or AvatarConfig()
    render_config = render_config or RenderConfig()
    fps = int(fps or render_config.fps)
    speech_pcm, rate, offsets = join_speech(chunks)
    pad = np.zeros(round(max(0.0, pad_s) * rate), np.float32)
    pcm = np.concatenate([pad, speech_pcm, pad])
    duration = len(pcm) / rate
    n_frames = max(1, round(duration * fps))
    lead_in = len(pad) / rate
    speech_end = lead_in + len(speech_pcm) / rate

    world = WorldModel(avatar_config, fps, seed=avatar_config.seed if seed is None else seed)
    lookahead = avatar_config.lookahead_ms
    for chunk, offset in zip(chunks, offsets, strict=True):
        chunk_words = None
        if words is not None and not chunk.phonemes:
            chunk_words = [
                Word(w.text, w.start - offset, w.end - offset, w.probability) for w in words
            ]
        drive = MouthDrive.from_speech(chunk, lookahead_ms=lookahead, words=chunk_words)
        world.schedule_speech(drive, lead_in + offset)

    result = RenderResult(path=Path(out), frames=0, fps=fps, duration=duration)
    clock = {"motion": 0.0, "render": 0.0}
    batch = max(1, render_config.max_batch if render_config.backend == "torch" else 1)

    def frames() -> Iterator[npt.NDArray[np.uint8]]:
        done = 0
        while done < n_frames:
            t0 = time.perf_counter()
            states = []
            for _ in range(min(batch, n_frames - done)):
                t = world.time
                if t >= lead_in - 0.3 and t < speech_end + 0.3:
                    world.set_mode(Mode.SPEAKING)
                elif t >= speech_end + 0.3:
                    world.set_mode(Mode.IDLE)
                states.append(world.step())
            t1 = time.perf_counter()
            images = (
                [renderer.render(states[0])] if len(states) == 1 else renderer.render_batch(states)
            )
            t2 = time.perf_counter()
            clock["motion"] += t1 - t0
            clock["render"] += t2 - t1
            if keep_states:
                result.states.extend(states)
            done += len(states)
            yield from images

    start = time.perf_counter()
    bar = tqdm(
        frames(),
        total=n_frames,
        unit="frame",
        desc="render",
        file=sys.stderr,
        disable=not progress,
        leave=False,
    )
    try:
        result.frames = write_mp4(result.path, bar, pcm, rate, fps)
    finally:
        bar.close()
    total = time.perf_counter() - start
    result.seconds = {
        "motion": clock["motion"],
        "render": clock["render"],
        "encode": max(0.0, total - clock["motion"] - clock["render"]),
        "total": total,
    }
    log.info(
        "rendered %s: %d frames, %.2f s in %.2f s (%.1fx real time)",
        result.path,
        result.frames,
        duration,
        total,
        result.realtime_factor,
    )
    return result


# ---------------------------------------------------------------- the command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``avatar render``."""
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", help="text to speak (with the configured TTS voice)")
    src.add_argument("--audio", type=Path, help="a speech recording to animate (WAV, MP3, ...)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the MP4 to write")
    parser.add_argument(
        "--avatar",
        type=Path,
        default=None,
        help="avatar bundle folder or a photo (default: built-in)",
    )
    parser.add_argument("--fps", type=int, default=None, help="frames per second (default: config)")
    parser.add_argument(
        "--size", default=None, help="frame size, e.g. 512 or 1280x720 (default: config)"
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed of the idle motion")
    parser.add_argument(
        "--pad", type=float, default=DEFAULT_PAD_S, help="seconds of silence before and after"
    )
    parser.add_argument(
        "--stt-words",
        action="store_true",
        help="with --audio: refine the mouth with the speech recognizer's word timings",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _size(args: argparse.Namespace, config: RenderConfig) -> tuple[int, int]:
    if args.size is not None:
        return parse_size(str(args.size))
    return (config.width or config.size, config.size)


def _speech_from_audio(path: Path) -> Speech:
    try:
        pcm, rate = read_audio(path)
    except (MediaError, InvalidAudioError) as exc:
        raise UsageError(str(exc)) from exc
    if len(pcm) < rate // 50:
        raise UsageError(f"{path} is too short to animate ({len(pcm) / rate * 1000:.0f} ms)")
    return Speech(pcm=pcm, sample_rate=rate, text="", phonemes=None)


def _stt_words(speech: Speech, config: AppConfig, resolver: AssetResolver) -> list[Word]:
    from models.stt import STT_SAMPLE_RATE, create_stt

    stt = create_stt(config.stt, resolver)
    pcm16 = resample(speech.pcm, speech.sample_rate, STT_SAMPLE_RATE)
    return list(stt.transcribe(pcm16).words)


def sized_config(config: RenderConfig, size: tuple[int, int], fps: int) -> RenderConfig:
    """``config`` with the output size and frame rate replaced."""
    w, h = size
    return config.model_copy(update={"size": h, "width": None if w == h else w, "fps": fps})


def _load_renderer(avatar: Path | None, config: RenderConfig) -> FrameRenderer:
    from avatar.identity import IdentityError, load_rig
    from avatar.render import create_renderer, render_size

    if avatar is not None and not avatar.exists():
        raise UsageError(f"--avatar {avatar}: no such file or folder")
    try:
        rig = load_rig(avatar, size=render_size(config))
    except IdentityError as exc:
        raise UsageError(f"--avatar {avatar if avatar else '(default)'}: {exc}") from exc
    renderer: FrameRenderer = create_renderer(rig, config)
    return renderer


def run(args: argparse.Namespace, config: AppConfig) -> int:
    """Render the speech to ``--output``; exit 0, or 2 for bad input."""
    fps = int(args.fps) if args.fps is not None else config.render.fps
    if not 1 <= fps <= 60:
        raise UsageError(f"--fps must be between 1 and 60, got {fps}")
    if args.pad < 0 or args.pad > 10:
        raise UsageError(f"--pad must be between 0 and 10 seconds, got {args.pad}")
    size = _size(args, config.render)
    render_config = sized_config(config.render, size, fps)
    if args.output.suffix.lower() != ".mp4":
        raise UsageError(f"--output must be an .mp4 file, got {args.output}")
    resolver = AssetResolver(config.assets)
    words: list[Word] | None = None
    t0 = time.perf_counter()
    if args.audio is not None:
        chunks = [_speech_from_audio(args.audio)]
        if args.stt_words:
            words = _stt_words(chunks[0], config, resolver)
    else:
        from models.tts import create_tts

        chunks = list(create_tts(config.tts, resolver).synthesize(args.text))
        if not chunks:
            raise UsageError("the text gave no speech")
    speech_s = time.perf_counter() - t0
    renderer = _load_renderer(args.avatar, render_config)
    result = render_speech_to_mp4(
        chunks,
        args.output,
        renderer,
        avatar_config=config.avatar,
        render_config=render_config,
        fps=fps,
        seed=args.seed,
        pad_s=args.pad,
        words=words,
        progress=not args.no_progress,
    )
    total = time.perf_counter() - t0
    sys.stdout.write(
        f"{result.path}: {result.frames} frames at {fps} fps, {result.duration:.2f} s, "
        f"{size[0]}x{size[1]}; made in {total:.1f} s "
        f"(speech {speech_s:.1f} s, {result.duration / total:.1f}x real time)\n"
    )
    return 0
