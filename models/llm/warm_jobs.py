"""Warm jobs: a conversation's next prompt evaluated into its KV sequence ahead of time.

A warm job is a prompt without a reply: the scheduler evaluates its tokens into the
slot of its conversation a few at a time, in the steps where no generation has a
piece to decode (a reply in flight is never slowed down by work ahead), so that the
generation of the next turn finds them (``common_prefix``) and only evaluates
what the user said last. It is best effort: a newer warm job of the key replaces it, a
generation that needs its slot takes the slot over at the next step, and it is dropped
when it would have to evict another conversation's prompt. This module keeps their
bookkeeping; :class:`~models.llm.llama_batch.SequenceScheduler` runs them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from models.llm.llama_batch import Slot

WARM_CHUNK = 4
"""Prompt tokens a warm job adds to one step. Small on purpose: a generation that is
submitted meanwhile waits at most one such step before it takes the slot over."""


@dataclass(eq=False)
class WarmJob:
    """One prompt to evaluate ahead for conversation ``key``."""

    key: str
    tokenize: Callable[[], list[int]]
    """Runs on the worker thread: the tokens to evaluate (may raise)."""
    slot: Slot | None = None
    pending: list[int] = field(default_factory=list)


class WarmJobs:
    """The warm jobs of one scheduler: per key, at most one waiting and one running.

    Every method runs under the scheduler's lock; only its worker thread changes
    ``running``, so the worker may read it without the lock.
    """

    def __init__(self) -> None:
        self.waiting: dict[str, WarmJob] = {}
        self.running: list[WarmJob] = []
        self.evaluated = 0
        """Prompt tokens evaluated by warm jobs so far (for tests and benchmarks)."""

    def add(self, job: WarmJob) -> None:
        """Queue ``job``; it replaces a waiting job of its key (and, once it starts,
        the running one)."""
        self.waiting[job.key] = job

    def cancel(self, key: str) -> None:
        """Drop the waiting job of ``key`` (a generation or the end of the session
        makes it pointless); a running one is ended by the worker."""
        self.waiting.pop(key, None)

    def active(self, key: str) -> bool:
        """True while a job of ``key`` waits or runs."""
        return key in self.waiting or any(j.key == key for j in self.running)

    def holding(self, slot: Slot) -> WarmJob | None:
        """The running job that holds ``slot`` (None: none)."""
        return next((j for j in self.running if j.slot is slot), None)

    def running_for(self, key: str) -> WarmJob | None:
        """The running job of ``key`` (None: none)."""
        return next((j for j in self.running if j.key == key), None)

    def ready(self, blocked: set[str | None]) -> list[WarmJob]:
        """Waiting jobs that may start now: their key has no generation (``blocked``)
        running or waiting; a job of a busy key waits for that generation to end."""
        return [j for k, j in self.waiting.items() if k not in blocked]

    def pieces(self, room: int) -> list[tuple[WarmJob, list[int]]]:
        """The next piece of every running job, at most ``room`` tokens in all."""
        out: list[tuple[WarmJob, list[int]]] = []
        for job in self.running:
            piece = job.pending[: min(WARM_CHUNK, room)]
            if piece:
                out.append((job, piece))
                room -= len(piece)
        return out


def warm_slot(slots: Sequence[Slot], key: str) -> Slot | None:
    """The slot a warm job of ``key`` may use: the key's own idle slot, else an unused
    one; never another conversation's (None then)."""
    idle = [s for s in slots if not s.busy]
    own = next((s for s in idle if s.key == key), None)
    return own or next((s for s in idle if s.key is None and not s.tokens), None)
