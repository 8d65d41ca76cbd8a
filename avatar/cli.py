"""The ``avatar`` command: models, smoke, prepare, render, serve, route.

Each subcommand lives in ``avatar/commands/<name>.py`` and exposes
``add_arguments(parser)`` and ``run(args, config) -> int``; it is imported only when
used, so ``avatar models`` does not load torch or mediapipe. A :class:`UsageError`
(bad input from the user) prints one line and exits with code 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Protocol, cast

from avatar.config import AppConfig, ConfigError, load_config
from models.errors import EngineError

log = logging.getLogger("avatar")

COMMANDS: dict[str, str] = {
    "models": "List the model assets and where each resolves",
    "smoke": "Run every engine once on this machine (VAD, STT, LLM, TTS)",
    "prepare": "Prepare an avatar bundle from a photo",
    "render": "Render speech (text or audio) to an MP4 of the talking avatar",
    "serve": "Start the real-time WebRTC service",
    "route": "Route new sessions to workers with capacity (in front of several serve)",
}


class UsageError(Exception):
    """Bad input from the user: reported in one line, exit code 2."""


class _Command(Protocol):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace, config: AppConfig) -> int: ...


def _load_command(name: str) -> _Command | None:
    try:
        module = importlib.import_module(f"avatar.commands.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"avatar.commands.{name}":
            return None
        raise
    return cast(_Command, module)


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """The argument parser, with the chosen subcommand's own arguments added."""
    parser = argparse.ArgumentParser(prog="avatar", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config", default="default", help="profile name (default, gpu) or a YAML file"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set stt.beam_size=5 (repeatable)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = next((a for a in argv if a in COMMANDS), None)
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            cmd = _load_command(name)
            if cmd is not None:
                cmd.add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``avatar`` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command is None:
        parser.print_help()
        return 2
    cmd = _load_command(args.command)
    if cmd is None:
        parser.error(f"'{args.command}' is not available in this build")
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
