"""``avatar route``: the session router in front of several ``avatar serve`` workers.

Workers come from ``router.workers`` (URLs) or ``router.dns_name`` (a headless
Service). The router loads no model; each worker still authenticates every call.
It stops on SIGINT/SIGTERM at once: it holds no session state.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal

from avatar.config import AppConfig

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``avatar route``."""
    parser.add_argument("--host", help="bind address (default: server.host)")
    parser.add_argument("--port", type=int, help="port (default: server.port)")
    parser.add_argument(
        "--worker",
        action="append",
        default=[],
        metavar="URL",
        help="a worker's base URL (repeatable; default: router.workers / router.dns_name)",
    )


async def _route(config: AppConfig) -> None:
    from aiohttp import web

    from streaming.router import create_router_app

    runner = web.AppRunner(create_router_app(config), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.server.host, config.server.port)
    await site.start()
    log.info("routing on http://%s:%d/", config.server.host, config.server.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def run(args: argparse.Namespace, config: AppConfig) -> int:
    """Route until SIGINT/SIGTERM."""
    from avatar.cli import UsageError

    if args.host:
        config.server.host = args.host
    if args.port is not None:
        config.server.port = args.port
    if args.worker:
        config.router.workers = list(args.worker)
    bad = [u for u in config.router.workers if not u.startswith(("http://", "https://"))]
    if bad:
        raise UsageError(f"worker URLs must start with http:// or https://: {', '.join(bad)}")
    if not config.router.workers and not config.router.dns_name:
        raise UsageError("no workers: pass --worker URL or set router.dns_name / router.workers")
    asyncio.run(_route(config))
    return 0
