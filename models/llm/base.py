"""The interface every language model backend implements."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol, runtime_checkable

from models.types import ChatMessage, GenerationStats

STOP = "stop"
"""Stop reason: the model ended its reply."""
LENGTH = "length"
"""Stop reason: the reply reached the token cap."""
CANCELLED = "cancelled"
"""Stop reason: the consumer cancelled the generation."""
ERROR = "error"
"""Stop reason: the backend failed."""


@runtime_checkable
class LanguageModel(Protocol):
    """Chat messages in, a cancellable async stream of text pieces out.

    ``stream`` checks its input at once (InvalidTextError) and returns an async
    iterator of text pieces as the model writes them. Cancelling the consuming task
    or closing the iterator stops the generation itself. When ``stats`` is given, the
    backend fills it: ``tokens`` produced by the model, ``first_token_s`` (seconds
    from the call to the first token), ``finished`` (the generation is over, for
    whatever reason), ``cancelled``, ``stop_reason`` (stop, length, cancelled, error)
    and timings in ``extra``.

    ``key`` names the conversation a generation belongs to (a session): a backend may
    keep what it evaluated for that conversation until :meth:`forget` (llama.cpp keeps
    a KV sequence per key); others ignore it. A key never changes what is generated.
    """

    name: str

    def load(self) -> None:
        """Load the weights (heavy, idempotent; generation loads lazily otherwise)."""
        ...

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        stats: GenerationStats | None = None,
        key: str | None = None,
    ) -> AsyncIterator[str]:
        """Stream the reply to ``messages`` (capped at ``max_tokens``, default the config's)."""
        ...

    def forget(self, key: str) -> None:
        """Drop what the backend keeps for conversation ``key`` (its session ended)."""
        ...

    def warm(self, messages: Sequence[ChatMessage], *, key: str) -> None:
        """Evaluate the prompt of ``messages`` for conversation ``key`` ahead of its next
        generation. The last message may be an unfinished user turn: the evaluated prompt
        ends right after that message's text (no end-of-turn token, no assistant header).
        Returns at once; best effort: a later warm of the key replaces it, a generation
        submitted for the key preempts it, and it never delays a generation by more than
        one small step. Backends without a kept prompt do nothing."""
        ...

    async def aclose(self) -> None:
        """Stop every generation and free the model."""
        ...
