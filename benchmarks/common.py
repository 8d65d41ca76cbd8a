"""Shared bits of the benchmark scripts: arguments, machine description, statistics."""

from __future__ import annotations

import os
import platform
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

from gwm_avatars.arguments import ArgumentParser
from models.assets import AssetResolver
from models.errors import AssetNotFoundError
from models.llm.llama_cpp_llm import resolve_gguf
from streaming.config import AppConfig, ConfigError, load_config


def arg_parser(doc: str | None, file: str) -> ArgumentParser:
    """A benchmark's parser (``file``: its ``__file__``): bad arguments print one line
    and exit with code 2."""
    prog = f"benchmarks/{Path(file).name}"
    return ArgumentParser(prog=prog, description=(doc or "").splitlines()[0])


def config_arg(parser: ArgumentParser, name: str, overrides: Sequence[str] = ()) -> AppConfig:
    """``--config`` (and ``--set``) loaded, or a one-line error (exit 2) if invalid."""
    try:
        return load_config(name, overrides=list(overrides))
    except ConfigError as exc:
        parser.error(f"--config {name}: {exc}")


def models_arg(
    parser: ArgumentParser, name: str, overrides: Sequence[str], models: Sequence[str]
) -> list[str]:
    """The LLMs to run (default: the profile's), each checked to load with the profile and
    its overrides; a bad one is a one-line error (exit 2)."""
    base = config_arg(parser, name, overrides)
    for model in models:
        config = config_arg(parser, name, [*overrides, f"llm.model={model}"])
        if config.llm.backend == "llama-cpp":
            try:
                resolve_gguf(model, AssetResolver(config.assets))
            except AssetNotFoundError as exc:
                parser.error(f"--model: {exc}")
    return list(models) or [base.llm.model]


def machine() -> str:
    """A one-line description of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {sys.version.split()[0]}"


def pct(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of values."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * q / 100.0
    lo, hi = int(k), min(len(xs) - 1, int(k) + 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def summary(values: Sequence[float]) -> str:
    """mean / p50 / p95 of a list of numbers."""
    if not values:
        return "n/a"
    return (
        f"mean {statistics.fmean(values):.3f}  p50 {pct(values, 50):.3f}  "
        f"p95 {pct(values, 95):.3f}  (n={len(values)})"
    )
