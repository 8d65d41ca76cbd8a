"""``python -m gwm_avatars_pipecat.render``: a WAV through a real pipecat pipeline to an MP4.

    python -m gwm_avatars_pipecat.render --server http://127.0.0.1:8080 --audio in.wav -o out.mp4

Speaks the WAV as TTS audio through ``GWMAvatarVideoService`` (an echo session with the
service) and writes what came back, cut to the speech, as H.264 + AAC
(:mod:`gwm_avatars_pipecat.render_pipeline`). Bad arguments, an unreachable service or
a refused session: one line on stderr, exit code 2; a session lost on the way: 1.
pipecat is imported only once the arguments are checked, after its log is set to
warnings (``-v``: everything).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlparse

from loguru import logger


class _Parser(argparse.ArgumentParser):
    """Errors are one line (no usage block) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _server_url(value: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise argparse.ArgumentTypeError(f"not an http(s) URL: {value!r}")
    return value.rstrip("/")


def build_parser() -> argparse.ArgumentParser:
    """The command's arguments."""
    p = _Parser(
        prog="python -m gwm_avatars_pipecat.render",
        description="Speak a WAV through a pipecat pipeline with the GWM avatar; write an MP4.",
    )
    p.add_argument("--server", required=True, type=_server_url, help="the avatar service URL")
    p.add_argument("--audio", required=True, type=Path, help="16-bit PCM WAV (any rate)")
    p.add_argument("-o", "--output", required=True, type=Path, help="the MP4 to write")
    p.add_argument("--api-key", default=None, help="the service's API key, if it needs one")
    p.add_argument("--avatar", default=None, help="avatar id (default: the service's)")
    p.add_argument("-v", "--verbose", action="store_true", help="pipecat's debug log")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """The command; returns its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.audio.is_file():
        parser.error(f"--audio {args.audio}: no such file")
    if args.output.suffix.lower() != ".mp4":
        parser.error(f"-o {args.output}: the output must be an .mp4 file")
    if not args.output.parent.is_dir():
        parser.error(f"-o {args.output}: folder {args.output.parent} does not exist")
    logger.remove()
    logger.add(sys.stderr, level="DEBUG" if args.verbose else "CRITICAL")
    from gwm_avatars_pipecat.render_pipeline import RenderError, render

    try:
        result = asyncio.run(
            render(args.server, args.audio, args.output, api_key=args.api_key, avatar=args.avatar)
        )
    except RenderError as exc:
        parser.exit(exc.exit_code, f"{parser.prog}: error: {exc}\n")
    sys.stdout.write(
        f"wrote {result.path}: {result.duration_s:.2f} s; the speech came back "
        f"{result.echo_delay_s:.3f} s after it was sent\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
