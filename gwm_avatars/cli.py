"""The ``avatar`` command: models, smoke, prepare, render, serve, route.

Each subcommand lives in ``gwm_avatars/commands/<name>.py`` and exposes
``add_arguments(parser)`` and ``run(args, config) -> int``; it is imported only when
used, so ``avatar models`` does not load torch or mediapipe. A :class:`UsageError`
(bad input from the user) prints one line and exits with code 2, as do argument errors.

The global options (``--config``, ``--set``, ``-v``) go before or after the
subcommand (``avatar --config gpu serve`` = ``avatar serve --config gpu``); given in
both places, the later ``--config`` wins and every ``--set`` applies, in order.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Protocol, cast

from gwm_avatars.arguments import ArgumentParser
from gwm_avatars.arguments import UsageError as UsageError  # re-exported for the commands
from models.errors import EngineError
from streaming.config import AppConfig, ConfigError, load_config

log = logging.getLogger("avatar")

COMMANDS: dict[str, str] = {
    "models": "List the model assets and where each resolves",
    "smoke": "Run every engine once on this machine (VAD, STT, LLM, TTS)",
    "prepare": "Prepare an avatar bundle from a photo",
    "render": "Render speech (text or audio) to an MP4 of the talking avatar",
    "serve": "Start the real-time WebRTC service",
    "route": "Route new sessions to workers with capacity (in front of several serve)",
}


class _Command(Protocol):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace, config: AppConfig) -> int: ...


def _load_command(name: str) -> _Command | None:
    try:
        module = importlib.import_module(f"gwm_avatars.commands.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"gwm_avatars.commands.{name}":
            return None
        raise
    return cast(_Command, module)


GLOBAL_VALUE_OPTIONS = ("--config", "--set")
"""Global options that take a value (the next argument, unless written ``--opt=value``)."""


def _add_global_options(parser: argparse.ArgumentParser, *, after_command: bool) -> None:
    """``--config``, ``--set`` and ``-v`` on the main parser or on a subcommand's.

    After the subcommand the defaults are suppressed, so an option left out there keeps
    the value given before it; ``--set`` there collects into ``late_overrides``.
    """

    def default(value: object) -> object:
        return argparse.SUPPRESS if after_command else value

    parser.add_argument(
        "--config",
        default=default("default"),
        help="profile name (default, gpu) or a YAML file",
    )
    parser.add_argument(
        "--set",
        dest="late_overrides" if after_command else "overrides",
        action="append",
        default=default([]),
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set stt.beam_size=5 (repeatable)",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", default=default(False), help="debug logging"
    )


def chosen_command(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (skipping the global options' values), if any."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in GLOBAL_VALUE_OPTIONS:
            skip = True
        elif arg in COMMANDS:
            return arg
        elif arg == "--" or not arg.startswith("-"):
            return None
    return None


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """The argument parser, with the chosen subcommand's own arguments added."""
    return _build_parsers(argv)[0]


def _build_parsers(
    argv: Sequence[str],
) -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The main parser and each subcommand's."""
    parser = ArgumentParser(prog="avatar", description=__doc__.splitlines()[0])
    _add_global_options(parser, after_command=False)
    late = ArgumentParser(add_help=False)
    _add_global_options(late, after_command=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = chosen_command(argv)
    subparsers: dict[str, argparse.ArgumentParser] = {}
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text, parents=[late])
        subparsers[name] = p
        if name == chosen:
            cmd = _load_command(name)
            if cmd is not None:
                cmd.add_arguments(p)
    return parser, subparsers


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse ``argv``; the ``--set`` values from before and after the subcommand, in order."""
    parser, subparsers = _build_parsers(argv)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        where = subparsers.get(args.command or "", parser)
        where.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.overrides = list(args.overrides) + list(getattr(args, "late_overrides", []))
    if hasattr(args, "late_overrides"):
        del args.late_overrides
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``avatar`` command: its exit code (2 for bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # --help (0), or a bad argument, reported in one line (2)
        return exc.code if isinstance(exc.code, int) else 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command is None:
        build_parser(argv).print_help()
        return 2
    cmd = _load_command(args.command)
    if cmd is None:
        sys.stderr.write(f"avatar: error: '{args.command}' is not available in this build\n")
        return 2
    try:
        config = load_config(args.config, overrides=args.overrides)
        return cmd.run(args, config)
    except (ConfigError, UsageError, EngineError) as exc:
        sys.stderr.write(f"avatar {args.command}: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
