"""One call at a time in worker threads, and calls whose caller gave up never run.

A model that is not thread-safe (Whisper) serializes its calls behind a lock that every
session queues on. When an asyncio caller is cancelled while its call is still queued
(a speculative transcription the user talked over), the call is dropped when its turn
comes instead of running the model for nobody.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class DroppedCallError(RuntimeError):
    """A queued call whose caller was cancelled before it could start."""


class SerialRunner:
    """Runs callables one at a time (thread-safe), from threads or from asyncio."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.dropped = 0
        """Calls dropped because their caller had gone."""

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` when no other call runs, blocking the calling thread."""
        with self._lock:
            return fn()

    async def acall(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in a worker thread when no other call runs; cancelled before that,
        ``fn`` never runs (cancelled while it runs, it finishes but nobody waits)."""
        stale = threading.Event()

        def run() -> T:
            with self._lock:
                if stale.is_set():
                    self.dropped += 1
                    raise DroppedCallError("the caller went away before the call could start")
                return fn()

        try:
            return await asyncio.to_thread(run)
        except asyncio.CancelledError:
            stale.set()
            raise
