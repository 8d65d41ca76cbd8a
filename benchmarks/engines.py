"""Engine timings on this machine: STT, LLM (each local backend) and TTS.

Usage: python benchmarks/engines.py [--config default] [--skip-transformers]
Prints STT real-time factor and latency for 2–5 s utterances, LLM load time, time to
first token and tokens/s, and TTS real-time factor and time to first chunk.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import arg_parser, config_arg, machine, summary
from models.assets import AssetResolver
from models.audio import resample
from models.llm import build_messages, create_llm
from models.stt import create_stt
from models.tts import create_tts
from models.types import GenerationStats

log = logging.getLogger("bench")

UTTERANCES = [
    "Hello, how are you today?",
    "What is the capital of France?",
    "Can you tell me a little bit about the weather tomorrow?",
    "I would like to book a table for two people at seven in the evening.",
    "Please remind me to call my sister after lunch on Saturday.",
    "Why is the sky blue during the day and red at sunset?",
]
QUESTIONS = [
    "What is the capital of France?",
    "Give me one tip for sleeping better.",
    "What is two plus two?",
    "Name a famous painter.",
    "How are you today?",
]


def out(line: str = "") -> None:
    """Print one result line."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def bench_tts(tts_cfg, resolver) -> list[tuple[str, np.ndarray, int]]:  # type: ignore[no-untyped-def]
    """TTS: real-time factor per sentence and time to first chunk of a 3-sentence text."""
    t = time.perf_counter()
    tts = create_tts(tts_cfg, resolver)
    out(f"TTS ({tts_cfg.backend}) load: {time.perf_counter() - t:.2f} s")
    rtfs, clips = [], []
    for text in UTTERANCES:
        t = time.perf_counter()
        chunks = list(tts.synthesize(text))
        dt = time.perf_counter() - t
        pcm = np.concatenate([c.pcm for c in chunks])
        rtfs.append(dt / (len(pcm) / tts.sample_rate))
        clips.append((text, pcm, tts.sample_rate))
    out(f"TTS real-time factor per sentence: {summary(rtfs)}")

    async def first_chunk() -> float:
        t0 = time.perf_counter()
        stream = tts.stream(" ".join(UTTERANCES[:3]))
        first = None
        async for _ in stream:
            if first is None:
                first = time.perf_counter() - t0
        return first or float("nan")

    firsts = [asyncio.run(first_chunk()) for _ in range(3)]
    out(f"TTS time to first chunk (3-sentence text), s: {summary(firsts)}")
    return clips


def bench_stt(stt_cfg, resolver, clips) -> None:  # type: ignore[no-untyped-def]
    """STT: latency and real-time factor on the TTS clips (2–5 s)."""
    t = time.perf_counter()
    stt = create_stt(stt_cfg, resolver)
    out(
        f"STT ({stt_cfg.model}, {stt_cfg.device}/{stt_cfg.compute_type}, beam {stt_cfg.beam_size}) load: {time.perf_counter() - t:.2f} s"
    )
    stt.transcribe(resample(clips[0][1], clips[0][2], 16_000))  # warm-up
    lat, rtf = [], []
    for _text, pcm, rate in clips:
        pcm16 = resample(pcm, rate, 16_000)
        t = time.perf_counter()
        stt.transcribe(pcm16)
        dt = time.perf_counter() - t
        lat.append(dt)
        rtf.append(dt / (len(pcm16) / 16_000))
    durs = [len(p) / r for _, p, r in clips]
    out(f"STT utterances {min(durs):.1f}–{max(durs):.1f} s: latency s {summary(lat)}")
    out(f"STT real-time factor: {summary(rtf)}")


async def _generate(llm, question: str, system: str) -> tuple[float, int, float]:  # type: ignore[no-untyped-def]
    stats = GenerationStats()
    t0 = time.perf_counter()
    first = None
    async for _ in llm.stream(build_messages(system, [], question), stats=stats):
        if first is None:
            first = time.perf_counter() - t0
    total = time.perf_counter() - t0
    return first or float("nan"), stats.tokens, total


def bench_llm(llm_cfg, resolver, label: str) -> None:  # type: ignore[no-untyped-def]
    """LLM: load, time to first token, tokens/s."""
    t = time.perf_counter()
    llm = create_llm(llm_cfg, resolver)
    llm.load()
    out(f"LLM {label} load: {time.perf_counter() - t:.2f} s")
    asyncio.run(_generate(llm, "Hi.", llm_cfg.persona()))  # warm-up
    ttft, tps = [], []
    for q in QUESTIONS:
        first, tokens, total = asyncio.run(_generate(llm, q, llm_cfg.persona()))
        ttft.append(first)
        if tokens > 1 and total > first:
            tps.append((tokens - 1) / (total - first))
    out(f"LLM {label} time to first token, s: {summary(ttft)}")
    out(f"LLM {label} tokens/s: {summary(tps)}")
    asyncio.run(llm.aclose())


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The arguments, checked: bad ones print one line and exit with code 2."""
    parser = arg_parser(__doc__, __file__)
    parser.add_argument("--config", default="default")
    parser.add_argument("--skip-transformers", action="store_true")
    args = parser.parse_args(argv)
    args.app_config = config_arg(parser, args.config)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run every benchmark and print the results."""
    args = parse_args(argv)
    cfg = args.app_config
    logging.basicConfig(level=logging.WARNING)
    resolver = AssetResolver(cfg.assets)
    out(f"machine: {machine()}")
    out(f"config: {args.config}")
    clips = bench_tts(cfg.tts, resolver)
    bench_stt(cfg.stt, resolver, clips)
    bench_llm(cfg.llm, resolver, f"{cfg.llm.backend} ({cfg.llm.model})")
    if not args.skip_transformers:
        # The same Qwen2.5 0.5B weights through transformers (dequantized from the GGUF
        # at load: slow to load, then plain torch on the CPU).
        gguf = resolver.resolve("qwen2.5-0.5b-instruct-gguf").path
        tcfg = cfg.llm.model_copy(
            update={
                "backend": "transformers",
                "model": str(gguf),
                "device": "cpu",
                "dtype": "bfloat16",
            }
        )
        bench_llm(tcfg, resolver, "transformers (Qwen2.5 0.5B from the GGUF, bf16)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
