"""``avatar serve``: start the real-time WebRTC service.

On SIGTERM or SIGINT the server drains: readiness turns false, new sessions get 503
``draining``, active sessions may run on for up to ``server.drain_grace_s``, then each
one left hears ``server.goodbye_line`` and is closed within ``server.drain_timeout_s``,
and the process exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from avatar.commands.listening import (
    add_bind_arguments,
    apply_bind_arguments,
    start_site,
    wait_for_stop_signal,
)
from avatar.config import AppConfig

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``avatar serve``."""
    add_bind_arguments(parser)


async def _serve(config: AppConfig) -> None:
    from streaming.drain import drain_sessions, wait_for_sessions_to_end
    from streaming.server import STATE_KEY, create_app

    app = create_app(config)
    runner = await start_site(app, config)
    log.info("serving on http://%s:%d/ (models loading…)", config.server.host, config.server.port)
    await wait_for_stop_signal()
    state = app[STATE_KEY]
    state.draining = True
    log.info("draining: no new sessions; %d active", len(state.sessions))
    await wait_for_sessions_to_end(lambda: state.sessions, config.server.drain_grace_s)
    await drain_sessions(
        list(state.sessions.values()), config.server.goodbye_line, config.server.drain_timeout_s
    )
    log.info("shutting down")
    await runner.cleanup()


def run(args: argparse.Namespace, config: AppConfig) -> int:
    """Serve until SIGINT/SIGTERM."""
    apply_bind_arguments(args, config)
    from avatar.cli import UsageError
    from streaming.auth import auth_summary, public_bind_refusal

    refusal = public_bind_refusal(config.server)
    if refusal:
        raise UsageError(refusal)
    log.info("%s", auth_summary(config.server))
    asyncio.run(_serve(config))
    return 0
