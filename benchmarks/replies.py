"""The reply eval: does the avatar answer like a person talking, and correctly?

Usage:
    python -m benchmarks.replies [--config default] [--model NAME ...] [--prompt persona|baseline]
                                 [--set key=value ...] [--show]

Runs every prompt of :data:`benchmarks.reply_checks.PROMPTS` (typed, as over the data
channel) through each model with the profile's persona and few-shot examples, exactly as a
session builds its messages, and checks each reply automatically (speakable, facts
right, in persona) on the raw model text and on the spoken text after the shaping.
Prints per-model scores, the time to the first token and to the first spoken phrase
(the first clause the TTS would get), the machine and the settings.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import arg_parser, machine, models_arg, pct
from benchmarks.reply_checks import PROMPTS, Prompt, check_speakable, facts_right, in_persona
from models.assets import AssetResolver
from models.llm import LanguageModel, build_messages, create_llm
from models.tts.spoken import speakable
from models.types import ChatMessage, GenerationStats
from streaming.config import AppConfig, load_config
from streaming.responder import live_clauses

BASELINE_PROMPT = (
    "You are a friendly assistant having a spoken conversation. Reply in one or two "
    "short, natural sentences. Never use lists, markdown, code or emoji."
)
"""The system prompt before the persona (no name, no examples), for comparison."""


def out(line: str = "") -> None:
    """Print one result line."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


@dataclass
class Reply:
    """One scored reply."""

    prompt: Prompt
    raw: str
    spoken: str
    first_token_s: float
    first_phrase_s: float
    total_s: float
    tokens: int
    cut: bool


async def _answer(
    llm: LanguageModel, messages: list[ChatMessage], max_tokens: int
) -> tuple[str, str, float, float, float, int]:
    """Stream one reply: (raw, spoken, first token s, first phrase s, total s, tokens)."""
    shaper = live_clauses()
    stats = GenerationStats()
    pieces: list[str] = []
    clauses: list[str] = []
    first_token = first_phrase = float("nan")
    t0 = time.perf_counter()
    async for piece in llm.stream(messages, stats=stats):
        if not pieces:
            first_token = time.perf_counter() - t0
        pieces.append(piece)
        new = shaper.push(piece)
        if new and not clauses:
            first_phrase = time.perf_counter() - t0
        clauses += new
    clauses += shaper.flush()
    total = time.perf_counter() - t0
    if first_phrase != first_phrase:  # nan: the only clause came at the end
        first_phrase = total
    return (
        "".join(pieces).strip(),
        " ".join(clauses),
        first_token,
        first_phrase,
        total,
        stats.tokens,
    )


async def run_model(config: AppConfig, system: str, examples: list[ChatMessage]) -> list[Reply]:
    """Every prompt through one model; history turns are answered first, unscored."""
    resolver = AssetResolver(config.assets)
    llm = create_llm(config.llm, resolver)
    t = time.perf_counter()
    llm.load()
    out(f"  load: {time.perf_counter() - t:.2f} s")
    cap = config.llm.max_tokens
    await _answer(llm, build_messages(system, examples, "Hello."), cap)  # warm-up
    replies = []
    for prompt in PROMPTS:
        history: list[ChatMessage] = []
        for said in prompt.history:
            raw, *_ = await _answer(llm, build_messages(system, examples + history, said), cap)
            history += [ChatMessage("user", said), ChatMessage("assistant", speakable(raw))]
        messages = build_messages(system, examples + history, prompt.text)
        raw, spoken, ft, fp, total, tokens = await _answer(llm, messages, cap)
        replies.append(Reply(prompt, raw, spoken, ft, fp, total, tokens, tokens >= cap))
    await llm.aclose()
    return replies


def report(label: str, replies: list[Reply], show: bool) -> None:
    """Per-reply problems (all with ``show``) and the model's scores."""
    n = len(replies)
    raw_ok = spoken_ok = persona_ok = 0
    facts = [r for r in replies if r.prompt.keywords]
    facts_ok = 0
    for r in replies:
        raw_check = check_speakable(r.raw, r.prompt.long_ok)
        spoken_check = check_speakable(r.spoken, r.prompt.long_ok)
        fact = facts_right(r.prompt, r.raw, r.spoken)
        persona = in_persona(r.raw)
        raw_ok += raw_check.ok
        spoken_ok += spoken_check.ok
        persona_ok += persona
        facts_ok += bool(fact)
        bad = not (raw_check.ok and spoken_check.ok and persona) or fact is False
        if show or bad:
            marks = []
            if not raw_check.ok:
                marks.append("raw: " + ", ".join(raw_check.problems))
            if not spoken_check.ok:
                marks.append("spoken: " + ", ".join(spoken_check.problems))
            if fact is False:
                marks.append("WRONG FACT")
            if not persona:
                marks.append("OUT OF PERSONA")
            if r.cut:
                marks.append("cut at token cap")
            out(f"  [{r.prompt.kind}] {r.prompt.text}")
            out(f"      raw:    {r.raw!r}")
            out(f"      spoken: {r.spoken!r}")
            if marks:
                out(f"      -> {'; '.join(marks)}")
    ft = [r.first_token_s for r in replies]
    fp = [r.first_phrase_s for r in replies]
    tps = [
        (r.tokens - 1) / (r.total_s - r.first_token_s)
        for r in replies
        if r.tokens > 1 and r.total_s > r.first_token_s
    ]
    out(f"\n== {label}: {n} prompts")
    out(f"  speakable, spoken text (what the avatar says): {spoken_ok}/{n} = {spoken_ok / n:.0%}")
    out(f"  speakable, raw model text:                     {raw_ok}/{n} = {raw_ok / n:.0%}")
    out(f"  facts right: {facts_ok}/{len(facts)} = {facts_ok / max(1, len(facts)):.0%}")
    out(f"  in persona (no 'As an AI', no maker's name): {persona_ok}/{n}")
    out(f"  replies cut at the token cap: {sum(r.cut for r in replies)}/{n}")
    out(f"  first token s:  p50 {pct(ft, 50):.2f}  p95 {pct(ft, 95):.2f}")
    out(f"  first phrase s: p50 {pct(fp, 50):.2f}  p95 {pct(fp, 95):.2f}")
    out(f"  tokens/s: p50 {pct(tps, 50):.1f}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The arguments, checked: bad ones print one line and exit with code 2."""
    parser = arg_parser(__doc__, __file__)
    parser.add_argument("--config", default="default")
    parser.add_argument("--model", action="append", help="LLM asset or path (repeatable)")
    parser.add_argument(
        "--prompt",
        choices=["persona", "baseline"],
        default="persona",
        help="persona: the profile's persona and examples; baseline: the old prompt alone",
    )
    parser.add_argument("--set", action="append", default=[], help="config override key=value")
    parser.add_argument("--show", action="store_true", help="print every reply")
    args = parser.parse_args(argv)
    args.models = models_arg(parser, args.config, args.set, args.model or [])
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the eval for each model and print the scores."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    models = args.models
    out(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f}")
    for model in models:
        config = load_config(args.config, overrides=[*args.set, f"llm.model={model}"])
        llm = config.llm
        if args.prompt == "persona":
            system, examples = llm.persona(), llm.example_messages()
        else:
            system, examples = BASELINE_PROMPT, []
        out(
            f"\n# {model} ({llm.backend}, threads {llm.threads}, max_tokens {llm.max_tokens}, "
            f"temperature {llm.temperature}, seed {llm.seed}, prompt {args.prompt}, "
            f"{len(examples) // 2} examples)"
        )
        replies = asyncio.run(run_model(config, system, examples))
        report(model, replies, args.show)
    out(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
