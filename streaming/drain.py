"""Graceful shutdown: stop admitting sessions, let each active one say goodbye, close them."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sized

from streaming.session import Session

log = logging.getLogger(__name__)


async def drain_sessions(sessions: Iterable[Session], line: str, timeout_s: float) -> None:
    """Each session says ``line`` and hangs up; all are closed within about ``timeout_s``."""
    active = list(sessions)
    if not active:
        return
    log.info("draining %d session(s) (up to %.1f s)", len(active), timeout_s)
    goodbyes = [asyncio.ensure_future(s.goodbye(line, timeout_s)) for s in active]
    done, pending = await asyncio.wait(goodbyes, timeout=timeout_s + 2.0)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            log.warning("a session's goodbye failed: %s", task.exception())
    await asyncio.gather(*(s.close("server draining") for s in active), return_exceptions=True)


async def wait_for_sessions_to_end(
    active: Callable[[], Sized], grace_s: float, *, poll_s: float = 0.5
) -> None:
    """Wait up to ``grace_s`` for the sessions ``active()`` returns to end by themselves."""
    if grace_s <= 0 or not len(active()):
        return
    log.info("waiting up to %.0f s for %d session(s) to end", grace_s, len(active()))
    deadline = time.monotonic() + grace_s
    # Sessions end from many places (hang-ups, idle, limits): polling the count is simplest.
    while len(active()) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))
