"""Every benchmark's arguments: sizes like ``512`` are accepted, bad input is one line.

Only ``parse_args`` runs (no benchmark, no model): it checks every argument, the config
profile included, before anything is measured.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = [
    "blas_threads",
    "capacity",
    "conversation",
    "echo",
    "engines",
    "gallery",
    "gpu",
    "llm_turns",
    "llm_speed",
    "browser_hearing",
    "hearing",
    "load",
    "ray_serve",
    "render",
    "replies",
    "stt_voices",
]


def _module(name: str) -> ModuleType:
    return importlib.import_module(f"benchmarks.{name}")


def _refused(name: str, argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The one stderr line with which ``argv`` is refused (exit code 2)."""
    with pytest.raises(SystemExit) as info:
        _module(name).parse_args(argv)
    assert info.value.code == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"benchmarks/{name}.py: error: "), err
    assert not captured.out
    return err[0]


def test_render_sizes_accept_one_number_as_a_square() -> None:
    """``python -m benchmarks.render --sizes 512`` crashed with an IndexError."""
    render = _module("render")
    assert render.parse_args(["--sizes", "512"]).sizes == [(512, 512)]
    assert render.parse_args(["--sizes", "512x512", "1280x720"]).sizes == [(512, 512), (1280, 720)]
    assert render.parse_args([]).sizes == [(512, 512), (1280, 720)]


@pytest.mark.parametrize("name", BENCHMARKS)
def test_defaults_parse(name: str) -> None:
    args = _module(name).parse_args([])
    assert args is not None


@pytest.mark.parametrize(
    ("name", "argv", "expect"),
    [
        ("render", ["--sizes", "512x"], "--sizes"),
        ("gpu", ["--sizes", "512x"], "--sizes"),
        ("gallery", ["--side", "8"], "--side"),
        ("replies", ["--prompt", "rude"], "--prompt"),
        ("replies", ["--config", "no-such-profile"], "not found"),
        ("replies", ["--model", "no-such-model"], "--model"),
        ("llm_turns", ["--model", "no-such-model.gguf"], "--model"),
        ("llm_speed", ["--model", "no-such-model.gguf"], "--model"),
        ("llm_speed", ["--threads", "0"], "--threads"),
        ("llm_speed", ["--repeats", "0"], "--repeats"),
        ("blas_threads", ["--repeats", "0"], "--repeats"),
        ("blas_threads", ["--threads", "-1"], "--threads"),
        ("hearing", ["--paused-only", "x"], "unrecognized arguments"),
        ("stt_voices", ["--limit", "-1"], "--limit"),
        ("hearing", ["--limit", "0"], "--limit"),
        ("hearing", ["--part", "tts"], "--part"),
        ("hearing", ["--set", "end_of_turn.question_ms=5"], "end_of_turn"),
        ("browser_hearing", ["--limit", "-1"], "--limit"),
        ("browser_hearing", ["--rms", "2"], "--rms"),
        ("browser_hearing", ["--config", "no-such-profile"], "not found"),
        ("gallery", ["--text", " "], "--text"),
        ("gpu", ["--batches", "0"], "--batches"),
        ("gpu", ["--llm-shapes", "3b"], "--llm-shapes"),
        ("gpu", ["--tokenizer", "/nonexistent-folder"], "--tokenizer"),
        ("render", ["--sizes", "0"], "out of range"),
        ("render", ["--sizes"], "expected at least one argument"),
        ("render", ["--repeat", "0"], "--repeat"),
        ("render", ["--batches", "8", "x"], "--batches"),
        ("render", ["--torch-threads", "-1"], "--torch-threads"),
        ("render", ["--frames-dir", __file__], "not a folder"),
        ("render", ["--bogus"], "unrecognized arguments"),
        ("capacity", ["--frames", "0"], "--frames"),
        ("capacity", ["--turn-s", "-3"], "--turn-s"),
        ("capacity", ["--fps", "100"], "--fps"),
        ("capacity", ["--config", "no-such-profile"], "not found"),
        ("conversation", ["--turns", "0"], "--turns"),
        ("conversation", ["--sessions", "1", "two"], "--sessions"),
        ("conversation", ["--set", "stt.beam_size=0"], "stt.beam_size"),
        ("conversation", ["--config", "no-such-profile"], "not found"),
        ("conversation", ["--voice", "en-us:999"], "--voice"),
        ("conversation", ["--voice", "piper:120"], "--voice"),
        ("conversation", ["--pause-s", "5"], "--pause-s"),
        ("conversation", ["--paused-every", "-1"], "--paused-every"),
        ("engines", ["--config", "no-such-profile"], "not found"),
        ("engines", ["--skip-transformers=yes"], "ignored explicit argument"),
        ("llm_turns", ["--sessions", "0"], "--sessions"),
        ("llm_turns", ["--turns", "0"], "--turns"),
        ("llm_turns", ["--threads", "1", "x"], "--threads"),
        ("llm_turns", ["--threads-batch", "0"], "--threads-batch"),
        ("llm_turns", ["--listen-s", "-1"], "--listen-s"),
        ("llm_turns", ["--config", "no-such-profile"], "not found"),
        ("load", ["--max-sessions", "0"], "--max-sessions"),
        ("load", ["--turns", "x"], "--turns"),
        ("load", ["--config", "no-such-profile"], "not found"),
        ("echo", ["--clips", "0"], "--clips"),
        ("echo", ["--max-sessions", "x"], "--max-sessions"),
        ("echo", ["--seconds", "-1"], "--seconds"),
        ("echo", ["--min-fps", "0"], "--min-fps"),
        ("echo", ["--config", "no-such-profile"], "not found"),
        ("ray_serve", ["--rounds", "0"], "--rounds"),
        ("ray_serve", ["--frames", "-5"], "--frames"),
        ("ray_serve", ["--replica-cpus", "0"], "--replica-cpus"),
        ("ray_serve", ["--config", "no-such-profile"], "not found"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    name: str, argv: list[str], expect: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert expect in _refused(name, argv, capsys)


def test_every_benchmark_is_covered() -> None:
    helpers = {"__init__", "common", "phases", "reply_checks", "spoken", "wer"}
    scripts = {p.stem for p in (ROOT / "benchmarks").glob("*.py")} - helpers
    assert scripts == set(BENCHMARKS)


def test_as_a_command_the_refusal_is_one_line_without_traceback() -> None:
    """The way RESULTS.md runs it: ``python -m benchmarks.render ...``."""
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.render", "--sizes", "512x"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("benchmarks/render.py: error: argument --sizes: ")
