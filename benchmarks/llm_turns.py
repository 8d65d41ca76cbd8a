"""LLM turn latency: first token and first spoken phrase when sessions take turns.

Usage:
    python -m benchmarks.llm_turns [--config default] [--model NAME ...] [--sessions 1 2]
                                   [--turns 4] [--threads 1 ...] [--threads-batch N]
                                   [--listen-s 1.5] [--set key=value ...]

Simulates N sessions talking with the avatar at once against the real model, with the
profile's persona and few-shot examples and each session's own growing history, as a
live session builds its messages: a session asks, streams the reply through the live
clause splitter (the first clause is what the TTS would get first), "plays" the reply
(2.5 words a second), then its user talks for ``--listen-s`` before asking again.
Sessions start ``--listen-s / N`` apart, so their turns alternate and overlap. Each
session passes its own conversation key, so the backend may keep its prompt evaluated.
Prints, per model, thread setting and session count, the load time (with the shared
prompt) and first token / first clause p50 / p95 for the first turn of each session
("first") and the later ones ("later"), with the machine and its load average; and
the CPU time the process spent until then, which other jobs on a shared machine
change much less than the wall-clock figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import arg_parser, machine, models_arg, pct
from models.assets import AssetResolver
from models.llm import LanguageModel, build_messages, create_llm
from models.types import ChatMessage, GenerationStats
from streaming.config import AppConfig, load_config
from streaming.responder import live_clauses

QUESTIONS = (
    "Hi! How are you today?",
    "What is the capital of France?",
    "Do you like music?",
    "How many legs does a spider have?",
    "What should I cook for dinner tonight?",
    "Who wrote Romeo and Juliet?",
    "I just got back from a run.",
    "What's your favourite season?",
    "Can you recommend a good book?",
    "What colour do you get when you mix blue and yellow?",
)
WORDS_PER_S = 2.5
"""How fast the simulated avatar speaks its reply."""


def out(line: str = "") -> None:
    """Print one result line."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


@dataclass
class Turn:
    """One measured turn."""

    session: int
    index: int
    first_token_s: float
    first_clause_s: float
    first_token_cpu_s: float
    first_clause_cpu_s: float
    tokens: int
    cached: float


async def ask(
    llm: LanguageModel, messages: list[ChatMessage], key: str
) -> tuple[str, tuple[float, float, float, float], GenerationStats]:
    """One reply: spoken text; (first token s, first clause s, and the process CPU
    seconds spent until each); stats."""
    shaper = live_clauses()
    stats = GenerationStats()
    clauses: list[str] = []
    first_token = first_clause = cpu_token = cpu_clause = float("nan")
    t0, c0 = time.perf_counter(), time.process_time()
    stream = llm.stream(messages, stats=stats, key=key)
    async with contextlib.aclosing(stream):  # type: ignore[type-var]
        async for piece in stream:
            if first_token != first_token:
                first_token, cpu_token = time.perf_counter() - t0, time.process_time() - c0
            new = shaper.push(piece)
            if new and not clauses:
                first_clause, cpu_clause = time.perf_counter() - t0, time.process_time() - c0
            clauses += new
    clauses += shaper.flush()
    if first_clause != first_clause:  # the only clause came at the end
        first_clause, cpu_clause = time.perf_counter() - t0, time.process_time() - c0
    return " ".join(clauses), (first_token, first_clause, cpu_token, cpu_clause), stats


async def session(
    llm: LanguageModel, config: AppConfig, number: int, turns: int, listen_s: float, delay: float
) -> list[Turn]:
    """One simulated caller: ``turns`` questions, each after the last reply was played."""
    system, examples = config.llm.persona(), config.llm.example_messages()
    history: list[ChatMessage] = []
    key = f"bench-{number}"
    done: list[Turn] = []
    await asyncio.sleep(delay)
    for i in range(turns):
        question = QUESTIONS[(number * 3 + i) % len(QUESTIONS)]
        messages = build_messages(system, examples + history, question)
        spoken, times, stats = await ask(llm, messages, key)
        done.append(Turn(number, i, *times, stats.tokens, stats.extra.get("cached_tokens", -1)))
        history += [ChatMessage("user", question), ChatMessage("assistant", spoken)]
        await asyncio.sleep(len(spoken.split()) / WORDS_PER_S + listen_s)
    forget = getattr(llm, "forget", None)
    if forget is not None:
        forget(key)
    return done


async def run(config: AppConfig, sessions: int, turns: int, listen_s: float) -> list[Turn]:
    """Load the model, then run ``sessions`` callers at once."""
    llm = create_llm(config.llm, AssetResolver(config.assets))
    t = time.perf_counter()
    await asyncio.to_thread(llm.load)
    out(f"    load (with the shared prompt): {time.perf_counter() - t:.2f} s")
    try:
        results = await asyncio.gather(
            *(
                session(llm, config, n, turns, listen_s, n * listen_s / sessions)
                for n in range(sessions)
            )
        )
    finally:
        await llm.aclose()
    return [t for r in results for t in r]


def report(turns: list[Turn]) -> None:
    """First token and first clause, first turns vs later ones."""
    for label, group in (
        ("first", [t for t in turns if t.index == 0]),
        ("later", [t for t in turns if t.index > 0]),
    ):
        if not group:
            continue
        ft = [t.first_token_s * 1000 for t in group]
        fc = [t.first_clause_s * 1000 for t in group]
        ct = [t.first_token_cpu_s * 1000 for t in group]
        cc = [t.first_clause_cpu_s * 1000 for t in group]
        cached = [t.cached for t in group]
        out(
            f"    {label} turns (n={len(group)}): first token p50 {pct(ft, 50):.0f} / "
            f"p95 {pct(ft, 95):.0f} ms; first clause p50 {pct(fc, 50):.0f} / "
            f"p95 {pct(fc, 95):.0f} ms; cached prompt tokens p50 {pct(cached, 50):.0f}"
        )
        out(
            f"      process CPU until then (load-independent): first token p50 "
            f"{pct(ct, 50):.0f} / p95 {pct(ct, 95):.0f} ms; first clause p50 "
            f"{pct(cc, 50):.0f} / p95 {pct(cc, 95):.0f} ms"
        )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The arguments, checked: bad ones print one line and exit with code 2."""
    parser = arg_parser(__doc__, __file__)
    parser.add_argument("--config", default="default")
    parser.add_argument("--model", action="append", help="LLM asset or path (repeatable)")
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--threads", type=int, nargs="+", help="llm.threads values to try")
    parser.add_argument("--threads-batch", type=int, help="llm.threads_batch (prompt evaluation)")
    parser.add_argument("--listen-s", type=float, default=1.5, help="the user's speech per turn")
    parser.add_argument("--set", action="append", default=[], help="config override key=value")
    args = parser.parse_args(argv)
    if any(n < 1 or n > 16 for n in args.sessions):
        parser.error("--sessions: each count must be 1..16")
    if not 1 <= args.turns <= 50:
        parser.error("--turns must be 1..50")
    if any(n < 1 or n > 64 for n in args.threads or []):
        parser.error("--threads: each value must be 1..64")
    if args.threads_batch is not None and not 1 <= args.threads_batch <= 64:
        parser.error("--threads-batch must be 1..64")
    if not 0.0 <= args.listen_s <= 60.0:
        parser.error("--listen-s must be 0..60")
    args.models = models_arg(parser, args.config, args.set, args.model or [])
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run every setting and print its figures."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    base = load_config(args.config, overrides=args.set)
    models = args.models
    threads = args.threads or [base.llm.threads]
    out(f"machine: {machine()}")
    for model in models:
        for n_threads in threads:
            sets = [*args.set, f"llm.model={model}"]
            if n_threads is not None:
                sets.append(f"llm.threads={n_threads}")
            if args.threads_batch is not None:
                sets.append(f"llm.threads_batch={args.threads_batch}")
            config = load_config(args.config, overrides=sets)
            for sessions in args.sessions:
                llm = config.llm
                out(
                    f"\n# {model}: {sessions} session(s) x {args.turns} turns, threads "
                    f"{llm.threads}/{llm.threads_batch or llm.threads}, max_tokens "
                    f"{llm.max_tokens}, load average {os.getloadavg()[0]:.1f}"
                )
                turns = asyncio.run(run(config, sessions, args.turns, args.listen_s))
                report(turns)
    out(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
