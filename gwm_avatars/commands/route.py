"""``avatar route``: the session router in front of several ``avatar serve`` workers.

Workers come from ``router.workers`` (URLs) or ``router.dns_name`` (a headless
Service). The router loads no model; each worker still authenticates every call.
It stops on SIGINT/SIGTERM at once: it holds no session state.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from gwm_avatars.commands.listening import (
    add_bind_arguments,
    apply_bind_arguments,
    start_site,
    wait_for_stop_signal,
)
from streaming.config import AppConfig

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``avatar route``."""
    add_bind_arguments(parser)
    parser.add_argument(
        "--worker",
        action="append",
        default=[],
        metavar="URL",
        help="a worker's base URL (repeatable; default: router.workers / router.dns_name)",
    )


async def _route(config: AppConfig) -> None:
    from streaming.router import create_router_app

    runner = await start_site(create_router_app(config), config)
    log.info("routing on http://%s:%d/", config.server.host, config.server.port)
    await wait_for_stop_signal()
    await runner.cleanup()


def run(args: argparse.Namespace, config: AppConfig) -> int:
    """Route until SIGINT/SIGTERM."""
    from gwm_avatars.cli import UsageError

    apply_bind_arguments(args, config)
    if args.worker:
        config.router.workers = list(args.worker)
    bad = [u for u in config.router.workers if not u.startswith(("http://", "https://"))]
    if bad:
        raise UsageError(f"worker URLs must start with http:// or https://: {', '.join(bad)}")
    if not config.router.workers and not config.router.dns_name:
        raise UsageError("no workers: pass --worker URL or set router.dns_name / router.workers")
    asyncio.run(_route(config))
    return 0
