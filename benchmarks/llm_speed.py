"""The LLM's raw speed on this CPU: prompt evaluation and decoding, per token.

Usage:
    python -m benchmarks.llm_speed [--config default] [--model NAME ...] [--threads 1 2]
                                   [--prompt-tokens 24] [--decode-tokens 12] [--repeats 3]
                                   [--set key=value ...]

Loads each GGUF with llama-cpp-python as the service does (its build is printed: which
SIMD kernels llama.cpp was compiled with), evaluates a context of 200 tokens, then times
``--prompt-tokens`` more in one batch (what a turn's new words cost) and
``--decode-tokens`` single-token steps (what each word of the reply costs), median of
``--repeats``. Run it on an idle machine: these are the numbers a live call divides
between its stages (benchmarks/RESULTS.md, "LLM build").
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import arg_parser, config_arg, machine, models_arg
from models.assets import AssetResolver
from models.llm.llama_cpp_llm import resolve_gguf

CONTEXT_TOKENS = 200
TEXT = (
    "You are a friendly assistant who answers in one or two short spoken sentences. "
    "The user asks: what is the capital of France, and what is it known for? "
)


def measure(path: Path, threads: int, prompt: int, decode: int, repeats: int) -> str:
    """One model on ``threads``: ms per prompt token (batch) and per decoded token."""
    from llama_cpp import Llama

    llm = Llama(
        model_path=str(path), n_threads=threads, n_threads_batch=threads, n_ctx=2048,
        n_batch=256, verbose=False,
    )  # fmt: skip
    need = CONTEXT_TOKENS + prompt + decode
    tokens: list[int] = []
    while len(tokens) < need:
        tokens += llm.tokenize(TEXT.encode())
    per_prompt, per_decode = [], []
    for _ in range(repeats):
        llm.reset()
        llm.eval(tokens[:CONTEXT_TOKENS])
        t = time.perf_counter()
        llm.eval(tokens[CONTEXT_TOKENS : CONTEXT_TOKENS + prompt])
        per_prompt.append((time.perf_counter() - t) / prompt)
        start = CONTEXT_TOKENS + prompt
        t = time.perf_counter()
        for token in tokens[start : start + decode]:
            llm.eval([token])
        per_decode.append((time.perf_counter() - t) / decode)
    llm.close()
    return (
        f"{path.name} threads={threads}: prompt {statistics.median(per_prompt) * 1000:.1f} "
        f"ms/token ({prompt} in one batch), decode {statistics.median(per_decode) * 1000:.1f} "
        f"ms/token"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The arguments, checked: bad ones print one line and exit with code 2."""
    parser = arg_parser(__doc__, __file__)
    parser.add_argument("--config", default="default")
    parser.add_argument("--model", action="append", default=[], help="LLM asset or path")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--prompt-tokens", type=int, default=24)
    parser.add_argument("--decode-tokens", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], help="config override key=value")
    args = parser.parse_args(argv)
    if any(n < 1 or n > 64 for n in args.threads):
        parser.error("--threads: each value must be 1..64")
    for name in ("prompt_tokens", "decode_tokens", "repeats"):
        if not 1 <= getattr(args, name) <= 1000:
            parser.error(f"--{name.replace('_', '-')} must be 1..1000")
    args.models = models_arg(parser, args.config, args.set, args.model)
    args.assets = config_arg(parser, args.config, args.set).assets
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """Print one line per model and thread count."""
    args = parse_args(argv)
    import llama_cpp

    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.2f} before")
    print(f"llama.cpp build: {llama_cpp.llama_print_system_info().decode().strip()}")
    resolver = AssetResolver(args.assets)
    for model in args.models:
        path = resolve_gguf(model, resolver)
        for threads in args.threads:
            print(measure(path, threads, args.prompt_tokens, args.decode_tokens, args.repeats))
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
