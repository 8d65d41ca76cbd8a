"""``avatar serve``: start the real-time WebRTC service.

On SIGTERM or SIGINT the server drains: readiness turns false, new sessions get 503
``draining``, active sessions may run on for up to ``server.drain_grace_s``, then each
one left hears ``server.goodbye_line`` and is closed within ``server.drain_timeout_s``,
and the process exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from gwm_avatars.arguments import UsageError
from gwm_avatars.commands.listening import (
    add_bind_arguments,
    apply_bind_arguments,
    start_site,
    wait_for_stop_signal,
)
from streaming.config import AppConfig, cuda_fields

if TYPE_CHECKING:
    from streaming.server import ServerState

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``avatar serve``."""
    add_bind_arguments(parser)


def page_url(host: str, port: int) -> str:
    """The demo page's URL on this machine (a wildcard bind is reached on 127.0.0.1)."""
    shown = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


async def _announce_when_loaded(state: ServerState, url: str, started: float) -> None:
    """Log the URL to open once the models are loaded, or why they did not load."""
    if state.loader is not None:
        await asyncio.wait({state.loader})
    if state.engines is not None:
        log.info("ready (models loaded in %.0f s): open %s", time.monotonic() - started, url)
    else:
        log.error(
            "the models did not load (%s); /readyz answers 503 until the service is "
            "restarted with a working config",
            state.load_error,
        )


async def _serve(config: AppConfig) -> None:
    from streaming.drain import drain_sessions, wait_for_sessions_to_end
    from streaming.server import STATE_KEY, create_app

    started = time.monotonic()
    app = create_app(config)
    runner = await start_site(app, config)
    url = page_url(config.server.host, config.server.port)
    log.info("listening on %s (loading the models…)", url)
    state = app[STATE_KEY]
    announce = asyncio.create_task(_announce_when_loaded(state, url, started))
    await wait_for_stop_signal()
    announce.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await announce
    state.draining = True
    log.info("draining: no new sessions; %d active", len(state.sessions))
    await wait_for_sessions_to_end(lambda: state.sessions, config.server.drain_grace_s)
    await drain_sessions(
        list(state.sessions.values()), config.server.goodbye_line, config.server.drain_timeout_s
    )
    log.info("shutting down")
    await runner.cleanup()


def check_cuda(config: AppConfig, cuda_available: bool) -> None:
    """:class:`UsageError` when the config asks for CUDA and this machine has none."""
    wanted = cuda_fields(config)
    if wanted and not cuda_available:
        raise UsageError(
            f"the config asks for CUDA ({', '.join(wanted)}), but no CUDA device is visible "
            "here (torch.cuda.is_available() is False); on a CPU machine use --config default"
        )


def run(args: argparse.Namespace, config: AppConfig) -> int:
    """Serve until SIGINT/SIGTERM."""
    apply_bind_arguments(args, config)
    from streaming.auth import auth_summary, public_bind_refusal

    refusal = public_bind_refusal(config.server)
    if refusal:
        raise UsageError(refusal)
    if cuda_fields(config):
        import torch

        check_cuda(config, torch.cuda.is_available())
    log.info("%s", auth_summary(config.server))
    asyncio.run(_serve(config))
    return 0
