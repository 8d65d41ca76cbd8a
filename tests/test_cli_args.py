"""``avatar``'s command line: global options anywhere, and bad arguments in one line.

No model is loaded: every bad argument here is refused before any engine starts.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from gwm_avatars.arguments import (
    UsageError,
    int_in_range,
    non_negative_int,
    number_in_range,
    parse_size,
    positive_float,
    positive_int,
    size_type,
)
from gwm_avatars.cli import chosen_command, main, parse_args
from gwm_avatars.commands.serve import check_cuda, page_url
from streaming.config import cuda_fields, load_config

# A bad argument that were accepted would start a server: fail fast instead of waiting.
pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize(
    ("argv", "config", "overrides", "verbose"),
    [
        (["serve"], "default", [], False),
        (["serve", "--config", "gpu"], "gpu", [], False),
        (["--config", "gpu", "serve"], "gpu", [], False),
        (["--config=gpu", "serve", "--port", "9000"], "gpu", [], False),
        (["serve", "--port", "9000", "--config=gpu"], "gpu", [], False),
        # both places: the later --config wins, every --set applies in order
        (["--config", "gpu", "serve", "--config", "default"], "default", [], False),
        (["--config", "default", "serve"], "default", [], False),
        (
            ["--set", "a.b=1", "serve", "--set", "c.d=2", "--set", "e.f=3"],
            "default",
            ["a.b=1", "c.d=2", "e.f=3"],
            False,
        ),
        (["--set", "a.b=1", "serve"], "default", ["a.b=1"], False),
        (["serve", "--set", "c.d=2"], "default", ["c.d=2"], False),
        (["-v", "models"], "default", [], True),
        (["models", "-v"], "default", [], True),
        (["models", "--verbose", "--config", "gpu"], "gpu", [], True),
        # a global option's value that happens to be a command name is still a value
        (["--config", "models", "serve"], "models", [], False),
    ],
)
def test_global_options_before_or_after_the_command(
    argv: list[str], config: str, overrides: list[str], verbose: bool
) -> None:
    args = parse_args(argv)
    assert args.command in argv
    assert (args.config, args.overrides, args.verbose) == (config, overrides, verbose)
    assert not hasattr(args, "late_overrides")


def test_subcommand_options_still_parse_beside_the_global_ones() -> None:
    args = parse_args(["serve", "--config", "gpu", "--port", "8080", "--host", "127.0.0.1"])
    assert (args.command, args.config, args.port, args.host) == ("serve", "gpu", 8080, "127.0.0.1")
    args = parse_args(["render", "--text", "Hi", "-o", "a.mp4", "--size", "512", "-v"])
    assert (args.size, args.verbose, args.output) == ((512, 512), True, Path("a.mp4"))


def test_chosen_command_skips_option_values() -> None:
    assert chosen_command(["--set", "serve=1", "render"]) == "render"
    assert chosen_command(["--config", "serve"]) is None
    assert chosen_command(["-v", "models", "serve"]) == "models"
    assert chosen_command(["photo.jpg", "prepare"]) is None


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    """``avatar argv``: (exit code, stderr lines); nothing may reach stdout."""
    code = main(argv)
    captured = capsys.readouterr()
    assert not captured.out, captured.out
    return code, captured.err.strip().splitlines()


@pytest.mark.parametrize(
    ("argv", "expect"),
    [
        (["models", "--bogus"], "unrecognized arguments: --bogus"),
        (["smoke", "--text"], "expected one argument"),
        (["prepare"], "required"),
        (["prepare", "p.jpg", "-o", "out", "--size", "0"], "out of range"),
        (["render", "-o", "x.mp4"], "one of the arguments --text --audio is required"),
        (["render", "--text", "Hi", "-o", "x.mp4", "--fps", "0"], "--fps"),
        (["render", "--text", "Hi", "-o", "x.mp4", "--fps", "abc"], "integer in 1..60"),
        (["render", "--text", "Hi", "-o", "x.mp4", "--size", "512x"], "--size"),
        (["render", "--text", "Hi", "-o", "x.mp4", "--size", "513"], "even"),
        (["render", "--text", "Hi", "-o", "x.mp4", "--pad", "-1"], "--pad"),
        (["render", "--text", "Hi", "-o", "x.mp4", "--preset", "warp"], "invalid choice"),
        (["render", "--text", "Hi", "-o", "clip.avi", "--no-progress"], ".mp4"),
        (["serve", "--port", "abc"], "--port"),
        (["serve", "--config", "no-such-profile"], "not found"),
        (["--config", "no-such-profile", "serve"], "not found"),
        (["serve", "--set", "stt.beam_size=0"], "stt.beam_size"),
        (["serve", "--set", "nonsense"], "section.field=value"),
        (["route", "--worker", "ftp://10.0.0.5"], "http://"),
        (["route"], "no workers"),
        (["nope"], "invalid choice"),
        (["--set"], "expected one argument"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    argv: list[str], expect: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _run(argv, capsys)
    assert code == 2
    assert len(err) == 1, err
    assert err[0].startswith("avatar"), err
    assert ": error: " in err[0], err
    assert expect in err[0], err


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_help_after_the_command_lists_the_global_options(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["serve", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--config" in out and "--set" in out and "--port" in out


def test_serve_refuses_cuda_configs_without_cuda() -> None:
    gpu = load_config("gpu", environ={})
    assert cuda_fields(gpu) == ["stt.device", "llm.device", "tts.device", "render.device"]
    assert cuda_fields(load_config("default", environ={})) == []
    with pytest.raises(UsageError, match=r"asks for CUDA \(stt.device, llm.device"):
        check_cuda(gpu, cuda_available=False)
    check_cuda(gpu, cuda_available=True)
    # what a field does not use does not count: the llama.cpp LLM, the CPU renderer
    cpu_llm = load_config(
        "gpu", environ={}, overrides=["llm.backend=llama-cpp", "render.backend=cpu"]
    )
    assert cuda_fields(cpu_llm) == ["stt.device", "tts.device"]
    remote = load_config("gpu", environ={}, overrides=["serving.backend=ray"])
    assert cuda_fields(remote) == ["llm.device"]


def test_avatar_serve_config_gpu_is_a_clear_error_without_cuda(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """README: ``avatar serve [--config gpu]``; on a CPU machine it says why it can't."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the gpu profile is allowed to start")
    code, err = _run(["serve", "--config", "gpu", "--port", "0"], capsys)
    assert code == 2
    assert err == [
        "avatar serve: error: the config asks for CUDA (stt.device, llm.device, tts.device, "
        "render.device), but no CUDA device is visible here (torch.cuda.is_available() is "
        "False); on a CPU machine use --config default"
    ]


def test_page_url() -> None:
    assert page_url("127.0.0.1", 8080) == "http://127.0.0.1:8080/"
    assert page_url("0.0.0.0", 80) == "http://127.0.0.1:80/"
    assert page_url("::1", 8080) == "http://[::1]:8080/"


def test_value_parsers() -> None:
    assert parse_size("512") == (512, 512)
    assert parse_size(" 1280 x 720 ") == (1280, 720)
    assert parse_size("640×480") == (640, 480)
    for bad in ("", "x", "512x", "0", "4000x100", "100x3000", "65x64", "-512"):
        with pytest.raises(UsageError):
            parse_size(bad)
    with pytest.raises(argparse.ArgumentTypeError, match="looks like 512 or 1280x720"):
        size_type("big")
    assert positive_int("3") == 3
    assert non_negative_int("0") == 0
    assert positive_float("0.5") == 0.5
    assert int_in_range(1, 60)("60") == 60
    assert number_in_range(0, 10)("2.5") == 2.5
    for parse, bad in [
        (positive_int, "0"),
        (positive_int, "1.5"),
        (positive_int, "x"),
        (non_negative_int, "-1"),
        (positive_float, "0"),
        (positive_float, "nan"),
        (positive_float, "inf"),
        (int_in_range(1, 60), "61"),
        (number_in_range(0, 10), "10.5"),
        (number_in_range(0, 10), "nan"),
    ]:
        with pytest.raises(argparse.ArgumentTypeError, match="expected"):
            parse(bad)
