"""The workers behind the router: who they are, and how much room each has left.

Workers are found from a static URL list or by resolving a DNS name (a Kubernetes
headless Service lists every pod, ready or not). Each one's ``/readyz`` is read every
``poll_interval_s``; it names the worker (``worker_id``) and its free session slots.
Between polls the router counts the sessions it has just sent a worker, so a burst of
new calls spreads over the pool instead of piling onto the emptiest worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
from dataclasses import dataclass

import aiohttp

from streaming.config import RouterConfig

log = logging.getLogger(__name__)

READYZ_TIMEOUT_S = 2.0


@dataclass
class WorkerStatus:
    """What the router last learned about one worker."""

    url: str
    worker_id: str | None = None
    loaded: bool = False
    ready: bool = False
    draining: bool = False
    sessions: int = 0
    capacity_left: int = 0
    reserved: int = 0
    reachable: bool = False
    last_seen: float = 0.0
    error: str | None = None

    @property
    def free(self) -> int:
        """Sessions it can still take, counting those sent since the last poll."""
        if not (self.reachable and self.ready):
            return 0
        return max(0, self.capacity_left - self.reserved)


def _url(host: str, port: int) -> str:
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).version == 6:
            return f"http://[{host}]:{port}"
    return f"http://{host}:{port}"


class WorkerPool:
    """Discovers the workers and keeps their readiness fresh."""

    def __init__(self, config: RouterConfig, http: aiohttp.ClientSession) -> None:
        self.config = config
        self._http = http
        self._workers: dict[str, WorkerStatus] = {}
        self._task: asyncio.Task[None] | None = None
        self._turn = 0

    async def start(self) -> None:
        """Poll once now (so the router is useful at once), then in the background."""
        await self.refresh()
        self._task = asyncio.get_running_loop().create_task(self._poll(), name="worker-pool")

    async def aclose(self) -> None:
        """Stop polling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.config.poll_interval_s)
            try:
                await self.refresh()
            except (OSError, aiohttp.ClientError) as exc:  # keep polling whatever happens
                log.warning("worker poll failed: %s", exc)

    async def discover(self) -> list[str]:
        """Worker base URLs from the config's list or its DNS name."""
        if not self.config.dns_name:
            return [u.rstrip("/") for u in self.config.workers]
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(
                self.config.dns_name, self.config.worker_port, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            log.warning("resolving %s failed: %s", self.config.dns_name, exc)
            return []
        hosts = sorted({str(info[4][0]) for info in infos})
        return [_url(h, self.config.worker_port) for h in hosts]

    async def refresh(self) -> None:
        """Re-discover and read every worker's ``/readyz``."""
        urls = await self.discover()
        for url in urls:
            self._workers.setdefault(url, WorkerStatus(url))
        # A worker gone from discovery stays while it still answers: it may hold sessions.
        await asyncio.gather(*(self._read(w) for w in list(self._workers.values())))
        for url, worker in list(self._workers.items()):
            if url not in urls and not worker.reachable:
                del self._workers[url]

    async def _read(self, worker: WorkerStatus) -> None:
        timeout = aiohttp.ClientTimeout(total=READYZ_TIMEOUT_S)
        try:
            async with self._http.get(f"{worker.url}/readyz", timeout=timeout) as resp:
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            self.mark_unreachable(worker, str(exc) or type(exc).__name__)
            return
        if not isinstance(body, dict):
            self.mark_unreachable(worker, "readyz did not answer a JSON object")
            return
        worker.reachable = True
        worker.error = None
        worker.last_seen = time.monotonic()
        worker.worker_id = body.get("worker_id") or worker.worker_id
        worker.loaded = bool(body.get("loaded", body.get("ready")))
        worker.ready = bool(body.get("ready"))
        worker.draining = bool(body.get("draining"))
        worker.sessions = int(body.get("sessions", 0))
        worker.capacity_left = int(body.get("capacity_left", 0))
        worker.reserved = 0

    def mark_unreachable(self, worker: WorkerStatus, reason: str) -> None:
        """Take a worker out of rotation until it answers a poll again."""
        if worker.reachable or worker.error is None:  # log each outage once
            log.warning("worker %s (%s) unreachable: %s", worker.worker_id, worker.url, reason)
        worker.reachable = False
        worker.ready = False
        worker.error = reason

    def mark_full(self, worker: WorkerStatus) -> None:
        """The worker refused a session for capacity: no more until its next poll."""
        worker.capacity_left = 0

    @property
    def workers(self) -> list[WorkerStatus]:
        """Every known worker."""
        return list(self._workers.values())

    def pick(self, exclude: frozenset[str] | set[str] = frozenset()) -> WorkerStatus | None:
        """The worker with the most free slots (ties taken in turn), or None."""
        candidates = [w for w in self._workers.values() if w.free > 0 and w.url not in exclude]
        if not candidates:
            return None
        most = max(w.free for w in candidates)
        best = sorted((w for w in candidates if w.free == most), key=lambda w: w.url)
        self._turn += 1
        return best[self._turn % len(best)]

    def by_id(self, worker_id: str) -> WorkerStatus | None:
        """The reachable worker called ``worker_id``."""
        return next(
            (w for w in self._workers.values() if w.worker_id == worker_id and w.reachable), None
        )

    def loaded_workers(self) -> list[WorkerStatus]:
        """Reachable workers with their models loaded, best first (for shared routes)."""
        live = [w for w in self._workers.values() if w.reachable and w.loaded]
        live.sort(key=lambda w: (not w.ready, -w.free, w.url))
        return live
