"""Whether the remote model serving (Ray Serve) answers, checked in the background.

While the app does not answer, ``/readyz`` is 503 (no new sessions come here); once it
has not answered for ``serving.ray.restart_after_s``, ``/healthz`` is 503 too, so the
orchestrator restarts the process, which connects afresh (Ray Client does not recover
a connection to a Ray cluster that was replaced, e.g. by a KubeRay upgrade).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Protocol

from models.errors import BackendUnavailableError

log = logging.getLogger(__name__)


class Checkable(Protocol):
    """Something that raises BackendUnavailableError when it does not answer."""

    async def acheck(self, timeout_s: float) -> None:
        """Return when healthy; raise BackendUnavailableError otherwise."""
        ...


@dataclass
class ServingHealth:
    """The last check's outcome."""

    error: str | None = None
    down_since: float | None = None
    """``time.monotonic()`` of the first failed check of the current outage."""

    def down_for(self, now: float | None = None) -> float:
        """Seconds the serving has been unreachable (0 while it answers)."""
        if self.down_since is None:
            return 0.0
        return (time.monotonic() if now is None else now) - self.down_since


class ServingMonitor:
    """Checks ``target`` every ``interval_s`` and keeps :attr:`health` current."""

    def __init__(
        self, target: Checkable, interval_s: float, timeout_s: float, restart_after_s: float = 0.0
    ) -> None:
        self.target = target
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.restart_after_s = restart_after_s
        self.health = ServingHealth()
        self._task: asyncio.Task[None] | None = None

    def should_restart(self) -> bool:
        """Whether the outage has lasted past ``restart_after_s`` (0: never)."""
        return 0 < self.restart_after_s < self.health.down_for()

    def start(self) -> None:
        """Begin checking (no-op when the interval is 0)."""
        if self.interval_s > 0 and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="serving-monitor")

    async def stop(self) -> None:
        """Stop checking."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def check(self) -> None:
        """Check once and record the outcome."""
        try:
            await self.target.acheck(self.timeout_s)
        except BackendUnavailableError as exc:
            if self.health.down_since is None:
                log.error("model serving unreachable: %s", exc)
                self.health.down_since = time.monotonic()
            self.health.error = str(exc)
            return
        if self.health.down_since is not None:
            log.info("model serving reachable again after %.0f s", self.health.down_for())
        self.health = ServingHealth()

    async def _run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self.interval_s)
