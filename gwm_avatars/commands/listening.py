"""What ``avatar serve`` and ``avatar route`` share: the bind options, the site, the signal."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from typing import TYPE_CHECKING

from streaming.config import AppConfig

if TYPE_CHECKING:
    from aiohttp import web


def add_bind_arguments(parser: argparse.ArgumentParser) -> None:
    """``--host`` and ``--port``."""
    parser.add_argument("--host", help="bind address (default: server.host)")
    parser.add_argument("--port", type=int, help="port (default: server.port)")


def apply_bind_arguments(args: argparse.Namespace, config: AppConfig) -> None:
    """Let ``--host``/``--port`` override ``server.host``/``server.port``."""
    if args.host:
        config.server.host = args.host
    if args.port is not None:
        config.server.port = args.port


async def start_site(app: web.Application, config: AppConfig) -> web.AppRunner:
    """Serve ``app`` on ``server.host:server.port``; the caller cleans the runner up."""
    from aiohttp import web

    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, config.server.host, config.server.port).start()
    return runner


async def wait_for_stop_signal() -> None:
    """Return on the first SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
