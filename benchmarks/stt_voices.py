"""Whisper on voices it has not heard: cheap decoding options, WER and latency.

Usage: python -m benchmarks.stt_voices [--config default] [--voice en-us ...] [--offset N] [--limit N]

Speaks the reply eval's prompts (benchmarks/reply_checks.py) with several espeak-ng
voices (the program, not Piper: voices unlike the avatar's own), transcribes each clip
with the profile's Whisper and each option below, and prints WER and latency per option:

- ``beam 1``: the profile's decoding (greedy);
- ``beam 5``: beam search;
- ``context``: greedy with the conversation so far (the user's previous line, for a
  follow-up its own history) as Whisper's ``initial_prompt``;
- ``hotwords``: greedy with the persona's name as ``hotwords``.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.audio import decode_audio

from benchmarks.common import arg_parser, config_arg, machine, pct
from benchmarks.reply_checks import PROMPTS
from benchmarks.wer import word_error_rate
from gwm_avatars.arguments import non_negative_int
from models.assets import AssetResolver
from streaming.config import load_config

VOICES = ("en-us", "en-gb+f3", "en-gb-scotland", "en-029+m3")
EXTRA = (
    "How many days are there in a leap year?",
    "That's really nice, thank you.",
    "Could you recommend a book for a long flight?",
)


def out(line: str = "") -> None:
    """Print one result line."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def espeak(text: str, voice: str, folder: Path) -> np.ndarray:
    """``text`` spoken by espeak-ng with ``voice``, as 16 kHz float32."""
    wav = folder / "clip.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", "160", "-w", str(wav), text], check=True)
    return decode_audio(str(wav), sampling_rate=16_000)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The arguments, checked: bad ones print one line and exit with code 2."""
    parser = arg_parser(__doc__, __file__)
    parser.add_argument("--config", default="default")
    parser.add_argument("--voice", action="append", help="espeak-ng voice (repeatable)")
    parser.add_argument(
        "--offset", type=non_negative_int, default=0, help="skip the first N sentences"
    )
    parser.add_argument("--limit", type=non_negative_int, default=0, help="only N sentences")
    args = parser.parse_args(argv)
    config_arg(parser, args.config)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Transcribe every clip with every option and print WER and latency."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if shutil.which("espeak-ng") is None:
        out("espeak-ng is not installed (apt-get install -y espeak-ng)")
        return 2
    cfg = load_config(args.config)
    stt = cfg.stt
    model_dir = AssetResolver(cfg.assets).resolve(stt.model).path
    model = WhisperModel(
        str(model_dir), device="cpu", compute_type=stt.compute_type, cpu_threads=stt.cpu_threads
    )
    items: list[tuple[str, str]] = []  # (context, text)
    previous = ""
    for p in PROMPTS:
        items.append((" ".join(p.history) or previous, p.text))
        previous = p.text
    items += [("", t) for t in EXTRA]
    items = items[args.offset :]
    if args.limit:
        items = items[: args.limit]
    name = cfg.llm.persona_name
    options: dict[str, Any] = {
        "beam 1": lambda ctx: {"beam_size": stt.beam_size},
        "beam 5": lambda ctx: {"beam_size": 5},
        "context": lambda ctx: {"beam_size": stt.beam_size, "initial_prompt": ctx or None},
        "hotwords": lambda ctx: {"beam_size": stt.beam_size, "hotwords": name},
    }
    voices = args.voice or list(VOICES)
    out(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f}")
    out(
        f"Whisper {stt.model} {stt.compute_type}, {stt.cpu_threads} threads, language "
        f"{stt.language}; {len(items)} sentences x {len(voices)} espeak-ng voices"
    )
    refs: list[str] = []
    hyps: dict[str, list[str]] = {k: [] for k in options}
    times: dict[str, list[float]] = {k: [] for k in options}
    misheard: dict[str, list[tuple[str, str]]] = {k: [] for k in options}
    with tempfile.TemporaryDirectory() as tmp:
        for voice in voices:
            for ctx, text in items:
                pcm = espeak(text, voice, Path(tmp))
                refs.append(text)
                for label, make in options.items():
                    t = time.perf_counter()
                    segments, _ = model.transcribe(
                        pcm,
                        language=stt.language,
                        condition_on_previous_text=False,
                        vad_filter=False,
                        **make(ctx),
                    )
                    said = " ".join(s.text.strip() for s in segments)
                    times[label].append(time.perf_counter() - t)
                    hyps[label].append(said)
                    if word_error_rate([text], [said]) > 0:
                        misheard[label].append((text, said))
    out(f"\n{'option':10} {'WER':>6} {'latency p50':>12} {'p95':>6}  clips misheard")
    for label in options:
        wer = word_error_rate(refs, hyps[label])
        out(
            f"{label:10} {wer:6.1%} {pct(times[label], 50):12.2f} {pct(times[label], 95):6.2f}"
            f"  {len(misheard[label])}/{len(refs)}"
        )
    for label in ("beam 1",):
        out(f"\nmisheard with {label} (first 12):")
        for text, said in misheard[label][:12]:
            out(f"  {text!r} -> {said!r}")
    out(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
