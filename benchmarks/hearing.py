"""The hearing side of a turn: Whisper's window and prompt, and the end of turn, on voices
the service never heard (espeak-ng).

Usage: python -m benchmarks.hearing [--config default] [--part stt|turn ...] [--voice V ...]
       [--limit N] [--paused-only] [--set key=value ...]

``stt``: the reply eval's prompts (benchmarks/reply_checks.py) spoken by each voice,
transcribed by

- ``before``: faster-whisper called as the service did before issue 12 (30 s window,
  timestamp tokens, temperature fallback);
- ``30 s``: the profile's recognizer with ``stt.window_s=0`` (30 s window, no timestamp
  tokens, temperature 0);
- ``window``: the profile's recognizer (``stt.window_s``; decoded again on 30 s when the
  output looks wrong);
- ``window + context``: the same with the previous prompt as Whisper's prompt (what a
  session passes: the conversation so far).

It prints WER, latency and how often the short window fell back to 30 s.

``turn``: sentences with and without a 0.6 s pause mid-sentence ("I would like to go to
… the museum tomorrow.") through a session's listener (Silero VAD, the profile's
Whisper, the end-of-turn policy), fed in real time as 20 ms frames, with two policies:
``fixed 400 ms`` (before: the guess at 200 ms of silence, the end at 400 ms whatever was
said) and the profile's ``end_of_turn``. It prints the silence waited before the end of
turn, the wait for the transcript after it, their sum (the hearing part of
voice-to-voice: last speech sample fed → transcript ready), and false cut-ins (a turn
that ended during a mid-sentence pause).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from faster_whisper.audio import decode_audio

from benchmarks.common import arg_parser, config_arg, machine, pct
from benchmarks.reply_checks import PROMPTS
from gwm_avatars.arguments import positive_int
from models.assets import AssetResolver
from models.stt import SpeechRecognizer
from models.types import FloatAudio
from models.vad import SileroModel, create_vad
from streaming.config import AppConfig, EndOfTurnConfig
from streaming.listener import Listener, UserPaused, Utterance
from streaming.turn_end import WordEndPolicy
from tests.models.wer import word_error_rate

VOICES = ("en-us", "en-gb+f3", "en-gb-scotland", "en-029+m3")
RATE = 16_000
FRAME = 320  # 20 ms
PAUSE_S = 0.6
TAIL_S = 1.3
PAUSED = (
    ("I would like to go to", "the museum tomorrow."),
    ("Can you tell me about", "the history of Rome?"),
    ("My favourite colour is", "dark blue."),
    ("I was thinking that", "we could talk about music."),
    ("What is the best way to", "learn a new language?"),
    ("Tell me a story about", "a brave little dog."),
    ("I have been feeling", "a bit tired lately."),
    ("Do you know the way to", "the train station?"),
    ("Could you tell me", "where the nearest bank is?"),
    ("Do you know", "how tall the Eiffel Tower is?"),
    ("Can you explain", "why the sky is blue?"),
    ("Would you show me", "how to make bread?"),
)
"""Sentences said with a pause after the first part (a user thinking mid-sentence)."""
BEFORE = EndOfTurnConfig(guess_after_ms=200, question_ms=400, statement_ms=400, unfinished_ms=400)
"""The end of turn before issue 12: a guess at 200 ms, the end at 400 ms of silence."""


def out(line: str = "") -> None:
    """Print one result line."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def espeak(text: str, voice: str, folder: Path) -> FloatAudio:
    """``text`` spoken by espeak-ng, 16 kHz float32, without its trailing silence."""
    wav = folder / "clip.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", "160", "-w", str(wav), text], check=True)
    pcm = decode_audio(str(wav), sampling_rate=RATE)
    loud = np.flatnonzero(np.abs(pcm) > 0.01)
    return pcm[: loud[-1] + 1] if loud.size else pcm


def silence(seconds: float) -> FloatAudio:
    """Digital silence."""
    return np.zeros(int(seconds * RATE), np.float32)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The arguments, checked: bad ones print one line and exit with code 2."""
    parser = arg_parser(__doc__, __file__)
    parser.add_argument("--config", default="default")
    parser.add_argument("--set", action="append", default=[], help="config override key=value")
    parser.add_argument(
        "--part", action="append", choices=("stt", "turn"), help="what to measure (repeatable)"
    )
    parser.add_argument("--voice", action="append", help="espeak-ng voice (repeatable)")
    parser.add_argument("--limit", type=positive_int, default=12, help="sentences per voice")
    parser.add_argument(
        "--paused-only",
        action="store_true",
        help="turn: only the sentences with a pause, all of them (the cut-in check)",
    )
    args = parser.parse_args(argv)
    args.app = config_arg(parser, args.config, args.set)
    return args


def recognizer(cfg: AppConfig, **changes: float) -> SpeechRecognizer:
    """The service's live recognizer (no word timings), with ``changes`` to ``stt``."""
    stt = cfg.stt.model_copy(update={"device": "cpu", **changes})
    return SpeechRecognizer(stt, AssetResolver(cfg.assets), word_timestamps=False)


def measure_stt(cfg: AppConfig, voices: Sequence[str], limit: int, tmp: Path) -> None:
    """WER and latency of each way to transcribe."""
    live, full = recognizer(cfg), recognizer(cfg, window_s=0.0)
    model = full._model
    texts = [p.text for p in PROMPTS][:limit]

    def before(pcm: FloatAudio, _: str) -> str:
        segments, _info = model.transcribe(
            pcm,
            language=cfg.stt.language,
            beam_size=cfg.stt.beam_size,
            condition_on_previous_text=False,
            vad_filter=False,
        )
        return " ".join(s.text.strip() for s in segments)

    ways = {
        "before": before,
        "30 s": lambda pcm, ctx: full.transcribe(pcm).text,
        "window": lambda pcm, ctx: live.transcribe(pcm).text,
        "window + context": lambda pcm, ctx: live.transcribe(pcm, prompt=ctx).text,
    }
    refs: list[str] = []
    hyps: dict[str, list[str]] = {k: [] for k in ways}
    times: dict[str, list[float]] = {k: [] for k in ways}
    fallbacks = {"window": 0, "window + context": 0}
    for voice in voices:
        previous = ""
        for text in texts:
            pcm = espeak(text, voice, tmp)
            refs.append(text)
            for label, way in ways.items():
                before_fallbacks = live.window_fallbacks
                t = time.perf_counter()
                hyps[label].append(way(pcm, previous))
                times[label].append(time.perf_counter() - t)
                if label in fallbacks:
                    fallbacks[label] += live.window_fallbacks - before_fallbacks
            previous = text
    out(f"\nstt: {len(refs)} clips, load average {os.getloadavg()[0]:.1f} at the end")
    out(f"{'way':18} {'WER':>6} {'p50 s':>7} {'p95 s':>7} {'mean s':>7}  fell back to 30 s")
    for label in ways:
        fell = f"{fallbacks[label]}/{len(refs)}" if label in fallbacks else ""
        out(
            f"{label:18} {word_error_rate(refs, hyps[label]):6.1%} {pct(times[label], 50):7.3f} "
            f"{pct(times[label], 95):7.3f} {float(np.mean(times[label])):7.3f}  {fell}"
        )


@dataclass
class TurnResult:
    """One clip through the listener."""

    paused: bool
    cut_in: bool
    waited_s: float
    transcript_wait_s: float
    hearing_s: float
    text: str
    cut_text: str = ""
    """What the turn that ended inside the pause heard (a cut-in)."""


async def one_turn(listener: Listener, parts: Sequence[FloatAudio], paused: bool) -> TurnResult:
    """Feed ``parts`` (speech, [pause, speech]) and a tail of silence in real time."""
    utterances: list[tuple[Utterance, float]] = []
    done_at: dict[int, float] = {}  # when each guess finished (loop time)
    loop = asyncio.get_running_loop()
    pcm = np.concatenate([*parts, silence(TAIL_S)])
    speech_end = sum(len(p) for p in parts)
    second_part = len(parts[0]) + (int(PAUSE_S * RATE) if paused else 0)
    cut_in = False
    start = loop.time()
    last_speech_at = start
    for i in range(0, len(pcm), FRAME):
        await asyncio.sleep(max(0.0, start + i / RATE - loop.time()))
        if i < speech_end <= i + FRAME:
            last_speech_at = loop.time()
        for event in listener.feed(pcm[i : i + FRAME]):
            if isinstance(event, UserPaused) and event.guess is not None:
                guess = event.guess
                guess.add_done_callback(lambda _, g=guess: done_at.setdefault(id(g), loop.time()))
            if isinstance(event, Utterance):
                utterances.append((event, loop.time()))
                cut_in = cut_in or (paused and i < second_part)
    if not utterances:
        raise RuntimeError("no end of turn: the VAD heard no speech")
    last, ended_at = utterances[-1]
    text = ""
    ready = ended_at
    if last.guess is not None:
        text = (await last.guess).text
        ready = max(ended_at, done_at.get(id(last.guess), loop.time()))
    cut_text = ""
    if cut_in and len(utterances) > 1 and utterances[0][0].guess is not None:
        cut_text = (await utterances[0][0].guess).text
    for u, _ in utterances:
        u.drop_guess()
    return TurnResult(
        paused, cut_in, last.waited_s, ready - ended_at, ready - last_speech_at, text, cut_text
    )


def measure_turns(
    cfg: AppConfig, voices: Sequence[str], limit: int, tmp: Path, *, paused_only: bool = False
) -> None:
    """End-of-turn wait, transcript wait and false cut-ins, before and now."""
    stt = recognizer(cfg)
    silero = SileroModel.from_resolver(AssetResolver(cfg.assets), threads=cfg.vad.threads)
    plain = [] if paused_only else [(p.text,) for p in PROMPTS[:limit]]
    with_pause = PAUSED if paused_only else PAUSED[: max(1, limit // 2)]
    clips: list[tuple[list[FloatAudio], tuple[str, ...], str]] = []
    for voice in voices:
        for sentence in [*plain, *with_pause]:
            parts = [espeak(s, voice, tmp) for s in sentence]
            if len(parts) == 2:
                parts.insert(1, silence(PAUSE_S))
            clips.append((parts, sentence, voice))
    paused_clips = sum(len(c[1]) == 2 for c in clips)
    out(f"\nturn: {len(clips)} clips ({paused_clips} with a {PAUSE_S} s pause)")
    out(
        f"{'policy':14} {'kind':8} {'n':>3} {'EOT wait p50/p95 ms':>20} "
        f"{'STT after p50/p95 ms':>21} {'hearing p50/p95 ms':>19} {'cut-ins':>8} {'WER':>6}"
    )
    for label, eot in (("fixed 400 ms", BEFORE), ("end_of_turn", cfg.end_of_turn)):
        results: list[tuple[TurnResult, str]] = []
        cut_ins: list[str] = []
        for parts, sentence, voice in clips:
            paused = len(sentence) == 2
            vad = create_vad(
                cfg.vad.model_copy(update={"min_silence_ms": eot.unfinished_ms}),
                AssetResolver(cfg.assets),
                model=silero,
            )
            listener = Listener(
                vad, stt, max_utterance_s=cfg.stt.max_utterance_s, policy=WordEndPolicy(eot)
            )
            result = asyncio.run(one_turn(listener, parts, paused))
            results.append((result, " ".join(sentence)))
            if result.cut_in:
                said = " | ".join(sentence)
                cut_ins.append(f"  cut in: {said!r} ({voice}): the turn heard {result.cut_text!r}")
            listener.close()
        for kind, pick in (("plain", False), ("paused", True), ("all", None)):
            rs = [(r, ref) for r, ref in results if pick is None or r.paused == pick]
            if not rs:
                continue
            w = [r.waited_s * 1000 for r, _ in rs]
            s = [r.transcript_wait_s * 1000 for r, _ in rs]
            h = [r.hearing_s * 1000 for r, _ in rs]
            wer = word_error_rate([ref for _, ref in rs], [r.text for r, _ in rs])
            out(
                f"{label:14} {kind:8} {len(rs):3} {pct(w, 50):9.0f} / {pct(w, 95):6.0f}   "
                f"{pct(s, 50):9.0f} / {pct(s, 95):6.0f}   {pct(h, 50):8.0f} / {pct(h, 95):6.0f}"
                f" {sum(r.cut_in for r, _ in rs):8} {wer:6.1%}"
            )
        if label != "fixed 400 ms":
            for line in cut_ins:
                out(line)
    out(f"load average at the end: {os.getloadavg()[0]:.1f}")


def main(argv: Sequence[str] | None = None) -> int:
    """Measure the parts asked for and print the tables."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if shutil.which("espeak-ng") is None:
        out("espeak-ng is not installed (apt-get install -y espeak-ng)")
        return 2
    cfg: AppConfig = args.app
    voices = args.voice or list(VOICES)
    parts = args.part or ["stt", "turn"]
    out(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f}")
    out(
        f"Whisper {cfg.stt.model} {cfg.stt.compute_type}, {cfg.stt.cpu_threads} threads, "
        f"window {cfg.stt.window_s:g} s; voices {', '.join(voices)}; {args.limit} sentences each"
    )
    with tempfile.TemporaryDirectory() as folder:
        if "stt" in parts:
            measure_stt(cfg, voices, args.limit, Path(folder))
        if "turn" in parts:
            measure_turns(cfg, voices, args.limit, Path(folder), paused_only=args.paused_only)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
