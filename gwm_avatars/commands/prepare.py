"""``avatar prepare PHOTO -o BUNDLE``: turn a photo into an inspectable avatar bundle."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from gwm_avatars.arguments import UsageError, size_type
from streaming.config import AppConfig

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``avatar prepare``."""
    parser.add_argument("photo", type=Path, help="a portrait photo (JPEG, PNG, ...)")
    parser.add_argument(
        "-o", "--output", type=Path, required=True, help="bundle folder to write (created)"
    )
    parser.add_argument(
        "--size",
        type=size_type,
        default=None,
        metavar="WxH",
        help="output frame size, e.g. 512x512 or 1280x720 (default: the render config's)",
    )
    parser.add_argument("--name", default=None, help="avatar name stored in rig.json")
    parser.add_argument(
        "--voice",
        default=None,
        help="the voice this avatar speaks with unless a session names one (a voice asset "
        "name, e.g. piper-joe-medium; default: the service's tts.voice)",
    )


def run(args: argparse.Namespace, config: AppConfig) -> int:
    """Detect, frame and rig the photo; write the bundle; print where it is."""
    from avatar.identity import IdentityError, prepare_bundle
    from avatar.identity.quiet import quiet_native_stderr
    from avatar.render import render_size

    size = args.size if args.size else render_size(config.render)
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a folder")
    try:
        with quiet_native_stderr(bool(getattr(args, "verbose", False))):
            bundle = prepare_bundle(args.photo, out, size=size, name=args.name, voice=args.voice)
    except IdentityError as exc:
        raise UsageError(str(exc)) from exc
    sys.stdout.write(f"avatar bundle written to {bundle} (preview: {bundle / 'preview.png'})\n")
    return 0
