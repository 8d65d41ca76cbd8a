"""One call at a time in worker threads, finals before partials, and calls whose caller
gave up never run.

A model that is not thread-safe (Whisper) serializes its calls; every session queues on
one :class:`SerialRunner`. When the model frees, the waiting call that matters most goes
next: a *final* (an utterance the turn waits for, or the guess at a pause that becomes
it) before any *partial* (a pass over speech still going on), oldest first within each.
When an asyncio caller is cancelled while its call is still queued (a speculative
transcription the user talked over), the call is dropped when its turn comes instead of
running the model for nobody; a call already running can stop at its next step
(:meth:`SerialRunner.abandoned`).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

FINAL = 0
"""Priority of a call a turn waits for (or will, once the user's pause is long enough)."""
PARTIAL = 1
"""Priority of a pass over speech that is still going on: it yields to every final."""


class DroppedCallError(RuntimeError):
    """A queued call whose caller was cancelled before it could start."""


class SerialRunner:
    """Runs callables one at a time (thread-safe), from threads or from asyncio."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._busy = False
        self._queue: list[tuple[int, int]] = []  # (priority, ticket), a heap
        self._tickets = itertools.count()
        self._running_stale: threading.Event | None = None
        self.dropped = 0
        """Calls dropped because their caller had gone."""

    def call(self, fn: Callable[[], T], priority: int = FINAL) -> T:
        """Run ``fn`` when no other call runs and no more urgent one waits (blocking)."""
        with self._turn(priority):
            return fn()

    async def acall(self, fn: Callable[[], T], priority: int = FINAL) -> T:
        """Run ``fn`` in a worker thread in its turn (see :meth:`call`); cancelled before
        that, ``fn`` never runs (cancelled while it runs, it finishes but nobody waits)."""
        stale = threading.Event()

        def run() -> T:
            with self._turn(priority):
                if stale.is_set():
                    self.dropped += 1
                    raise DroppedCallError("the caller went away before the call could start")
                self._running_stale = stale
                try:
                    return fn()
                finally:
                    self._running_stale = None

        try:
            return await asyncio.to_thread(run)
        except asyncio.CancelledError:
            stale.set()
            raise

    def abandoned(self) -> bool:
        """Whether the caller of the running call went away (the call may stop early:
        a model checks this between its steps); False outside :meth:`acall`."""
        stale = self._running_stale
        return stale is not None and stale.is_set()

    def _turn(self, priority: int) -> _Turn:
        return _Turn(self, (priority, next(self._tickets)))

    def _enter(self, key: tuple[int, int]) -> None:
        with self._cond:
            heapq.heappush(self._queue, key)
            self._cond.wait_for(lambda: not self._busy and self._queue[0] == key)
            heapq.heappop(self._queue)
            self._busy = True

    def _leave(self) -> None:
        with self._cond:
            self._busy = False
            self._cond.notify_all()


class _Turn:
    """Holds the runner from entry to exit (a context manager)."""

    def __init__(self, runner: SerialRunner, key: tuple[int, int]) -> None:
        self._runner, self._key = runner, key

    def __enter__(self) -> None:
        self._runner._enter(self._key)

    def __exit__(self, *exc: object) -> None:
        self._runner._leave()
