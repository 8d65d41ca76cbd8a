"""Common base of the backends that generate in-process on a worker thread."""

from __future__ import annotations

import functools
import threading
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Sequence

from models.config import LlmConfig
from models.llm.messages import prepare_request
from models.llm.worker import GenerationJob, GenerationRunner
from models.types import ChatMessage, GenerationStats


class ThreadedLanguageModel(ABC):
    """A :class:`~models.llm.base.LanguageModel` whose generations run on a worker thread.

    Subclasses implement :meth:`load` (under ``_load_lock``), :meth:`_generate` (runs
    in the worker: one token at a time, returning early once ``job.cancelled``) and
    :meth:`_release`. Generations on one model run one at a time.
    """

    def __init__(self, config: LlmConfig, name: str) -> None:
        self.config = config
        self.name = name
        self._load_lock = threading.Lock()
        self._runner = GenerationRunner(name)

    @property
    def busy(self) -> bool:
        """True while a generation runs or waits for the model."""
        return self._runner.busy

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        stats: GenerationStats | None = None,
        key: str | None = None,
    ) -> AsyncGenerator[str, None]:
        """Check ``messages`` now and stream the reply (see LanguageModel; ``key`` is
        not used: each generation evaluates its whole prompt)."""
        prepared, cap = prepare_request(messages, self.config, max_tokens)
        generate = functools.partial(self._generate, prepared, cap)
        return self._runner.stream(generate, stats if stats is not None else GenerationStats())

    def forget(self, key: str) -> None:  # noqa: B027 - nothing is kept per conversation
        """Nothing is kept per conversation."""

    def warm(  # noqa: B027 - nothing is kept per conversation
        self, messages: Sequence[ChatMessage], *, key: str
    ) -> None:
        """Nothing to do: each generation evaluates its whole prompt."""

    async def aclose(self) -> None:
        """Stop every generation, then free the model."""
        await self._runner.aclose()
        with self._load_lock:
            self._release()

    @abstractmethod
    def load(self) -> None:
        """Load the weights once (idempotent)."""

    @abstractmethod
    def _generate(self, messages: list[ChatMessage], max_tokens: int, job: GenerationJob) -> str:
        """Worker thread: generate the reply, report tokens to ``job``, return the stop reason."""

    @abstractmethod
    def _release(self) -> None:
        """Free the model's memory (called once no generation runs)."""
