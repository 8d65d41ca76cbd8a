"""``avatar smoke``: run every engine once on this machine and print what happened."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import numpy as np

from models.assets import AssetResolver
from models.audio import resample
from models.llm import build_messages, create_llm
from models.stt import create_stt
from models.tts import create_tts
from models.types import GenerationStats
from models.vad import create_vad
from streaming.config import AppConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``avatar smoke``."""
    parser.add_argument("--text", default="What is the capital of France?", help="the question")


async def _ask(
    config: AppConfig, resolver: AssetResolver, question: str
) -> tuple[str, float, float]:
    llm = create_llm(config.llm, resolver)
    t = time.perf_counter()
    llm.load()
    load_s = time.perf_counter() - t
    stats = GenerationStats()
    parts = []
    t = time.perf_counter()
    async for piece in llm.stream(
        build_messages(config.llm.persona(), config.llm.example_messages(), question),
        stats=stats,
    ):
        parts.append(piece)
    await llm.aclose()
    return "".join(parts).strip(), load_s, time.perf_counter() - t


def run(args: argparse.Namespace, config: AppConfig) -> int:
    """Speak the question with TTS, find it with VAD, transcribe it, answer it."""
    out = sys.stdout
    resolver = AssetResolver(config.assets)
    t = time.perf_counter()
    tts = create_tts(config.tts, resolver)
    chunks = list(tts.synthesize(args.text))
    pcm = np.concatenate([c.pcm for c in chunks])
    out.write(
        f"tts   {len(pcm) / tts.sample_rate:.2f}s of speech in {time.perf_counter() - t:.2f}s\n"
    )
    pcm16 = resample(pcm, tts.sample_rate, 16_000)
    padded = np.concatenate([np.zeros(8000, np.float32), pcm16, np.zeros(16000, np.float32)])
    vad = create_vad(config.vad, resolver)
    events = vad.process(padded) + vad.flush()
    out.write("vad   " + ", ".join(f"{e.kind.value}@{e.time:.2f}s" for e in events) + "\n")
    stt = create_stt(config.stt, resolver)
    t = time.perf_counter()
    heard = stt.transcribe(pcm16, 16_000)
    out.write(f"stt   {heard.text!r} in {time.perf_counter() - t:.2f}s\n")
    reply, load_s, gen_s = asyncio.run(_ask(config, resolver, heard.text or args.text))
    out.write(f"llm   loaded in {load_s:.2f}s, replied in {gen_s:.2f}s: {reply!r}\n")
    return 0 if heard.text and reply else 1
