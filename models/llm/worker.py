"""Blocking token generation on a worker thread, streamed to asyncio and cancellable.

A backend writes a *generate function* that runs in the worker thread, produces
tokens one at a time, reports each with :meth:`GenerationJob.token` and checks
:attr:`GenerationJob.cancelled` between tokens. :class:`GenerationRunner` runs those
functions one at a time per model (a llama.cpp context is not re-entrant), hands
their text to the consumer through an asyncio queue, and, when the consumer is
cancelled or closes the stream, sets the job's stop event and waits briefly for the
worker to stop so the model is free again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass

from models.errors import EngineError, LLMError
from models.llm.base import CANCELLED, ERROR
from models.types import GenerationStats

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationEnd:
    """Sentinel put on the queue when the worker is done."""

    error: BaseException | None = None


class GenerationJob:
    """One generation as the worker thread sees it: a stop flag, a text sink and the stats."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[str | GenerationEnd],
        stats: GenerationStats,
    ) -> None:
        self.stop = threading.Event()
        self.stats = stats
        self.created = time.perf_counter()
        self.first_token_at: float | None = None
        self._loop = loop
        self._queue = queue

    @property
    def cancelled(self) -> bool:
        """True once the consumer has gone: the generate function must return."""
        return self.stop.is_set()

    def token(self, count: int = 1) -> None:
        """Record ``count`` tokens produced by the model (worker thread)."""
        if count <= 0:
            return
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
            self.stats.first_token_s = self.first_token_at - self.created
        self.stats.tokens += count

    def emit(self, text: str) -> None:
        """Hand a piece of text to the consumer (worker thread; thread-safe)."""
        if text and not self.cancelled:
            self._send(text)

    async def texts(self) -> AsyncIterator[str]:
        """The text pieces as the worker emits them (consumer side), until the end;
        the generation's error, if it failed, is raised here."""
        while True:
            item = await self._queue.get()
            if isinstance(item, GenerationEnd):
                if item.error is not None:
                    raise item.error
                return
            yield item

    def finish(self, error: BaseException | None) -> None:
        """Tell the consumer that the generation is over (worker thread)."""
        self._send(GenerationEnd(error))

    def _send(self, item: str | GenerationEnd) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the consumer's event loop is closed: nobody listens
            self.stop.set()


GenerateFn = Callable[[GenerationJob], str]
"""Runs one generation in the worker thread and returns its stop reason."""


class GenerationRunner:
    """Runs generations one at a time on a private thread and streams their text."""

    def __init__(self, name: str, cancel_wait_s: float = 2.0) -> None:
        self.name = name
        self.cancel_wait_s = cancel_wait_s
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"llm-{name}"
        )
        self._jobs: set[GenerationJob] = set()
        self._jobs_lock = threading.Lock()
        self._closed = False

    @property
    def busy(self) -> bool:
        """True while a generation runs or waits for the model."""
        with self._jobs_lock:
            return bool(self._jobs)

    async def stream(
        self, generate: GenerateFn, stats: GenerationStats
    ) -> AsyncGenerator[str, None]:
        """Run ``generate`` on the worker and yield its text; closing this stops it."""
        if self._closed:
            raise LLMError(f"language model {self.name} is closed")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | GenerationEnd] = asyncio.Queue()
        job = GenerationJob(loop, queue, stats)
        with self._jobs_lock:
            self._jobs.add(job)
        future = self._executor.submit(self._run, job, generate)
        try:
            async for piece in job.texts():
                yield piece
        finally:
            job.stop.set()
            await self._settle(job, future)

    async def _settle(self, job: GenerationJob, future: concurrent.futures.Future[None]) -> None:
        """After the consumer stops: drop a queued job, or wait briefly for a running one."""
        if future.cancel():  # it never started
            self._forget(job)
            job.stats.cancelled = True
            job.stats.finished = True
            job.stats.stop_reason = CANCELLED
            return
        if future.done():
            return
        try:
            await asyncio.wait_for(asyncio.wrap_future(future), self.cancel_wait_s)
        except asyncio.TimeoutError:
            log.warning(
                "%s: the generation did not stop within %.1f s of its cancellation",
                self.name,
                self.cancel_wait_s,
            )

    def _forget(self, job: GenerationJob) -> None:
        with self._jobs_lock:
            self._jobs.discard(job)

    def _run(self, job: GenerationJob, generate: GenerateFn) -> None:
        """Worker thread: run one generation and record how it went."""
        stats = job.stats
        start = time.perf_counter()
        stats.extra["queue_s"] = start - job.created
        error: BaseException | None = None
        try:
            reason = CANCELLED if job.cancelled else generate(job)
        except EngineError as exc:
            error, reason = exc, ERROR
        except Exception as exc:  # any engine failure goes to the consumer
            log.exception("%s failed while generating", self.name)
            error = LLMError(f"{self.name} failed while generating: {exc}")
            error.__cause__ = exc
            reason = ERROR
        end = time.perf_counter()
        stats.extra["generate_s"] = end - start
        if job.first_token_at is not None and stats.tokens > 1:
            stats.extra["tokens_per_s"] = (stats.tokens - 1) / max(end - job.first_token_at, 1e-9)
        stats.stop_reason = reason
        stats.cancelled = reason == CANCELLED
        stats.finished = True
        self._forget(job)
        job.finish(error)

    def stop_all(self) -> None:
        """Ask every running or queued generation to stop."""
        with self._jobs_lock:
            jobs = list(self._jobs)
        for job in jobs:
            job.stop.set()

    async def aclose(self) -> None:
        """Stop every generation, wait for the worker thread and refuse new work.

        Queued generations still run, but return at once as cancelled, so their
        consumers see the end of their streams.
        """
        self._closed = True
        self.stop_all()
        await asyncio.to_thread(self._executor.shutdown, True)
