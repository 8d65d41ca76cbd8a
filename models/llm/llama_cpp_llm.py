"""The llama.cpp backend (llama-cpp-python): a GGUF chat model on the CPU."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models.assets import AssetResolver
from models.config import LlmConfig
from models.errors import AssetNotFoundError, BackendUnavailableError, LLMError
from models.llm.base import CANCELLED, LENGTH
from models.llm.messages import fit_to_context
from models.llm.threaded import ThreadedLanguageModel
from models.llm.worker import GenerationJob
from models.types import ChatMessage

log = logging.getLogger(__name__)

_MESSAGE_OVERHEAD_TOKENS = 8
"""Tokens a chat template adds around a message, used when the GGUF has no template."""


def resolve_gguf(model: str, resolver: AssetResolver) -> Path:
    """The .gguf file for ``model``: a known asset name or a path to a .gguf file."""
    if model in resolver.names():
        return resolver.resolve(model).path
    path = Path(model).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        return path
    if path.exists():
        raise AssetNotFoundError(f"llm.model={model!r} is not a .gguf file")
    raise AssetNotFoundError(
        f"llm.model={model!r} is neither a known asset ({', '.join(resolver.names())}) "
        "nor an existing .gguf file"
    )


def _token_text(llm: Any, token: int) -> str:
    """Text of a special token ("" for none)."""
    if token < 0:
        return ""
    return bytes(llm.detokenize([token], special=True)).decode("utf-8", "replace")


def _messages_as_dicts(messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in messages]


class LlamaCppLLM(ThreadedLanguageModel):
    """A GGUF chat model run by llama.cpp; its chat template comes from the GGUF."""

    def __init__(self, config: LlmConfig, resolver: AssetResolver) -> None:
        super().__init__(config, f"llama-cpp:{config.model}")
        self._resolver = resolver
        self._llm: Any = None
        self._formatter: Any = None
        self.load_s: float | None = None

    @property
    def n_ctx(self) -> int:
        """The context size in tokens."""
        return self.config.context_tokens

    def load(self) -> None:
        """Find the GGUF and load it (idempotent; about a second for the 0.5B model)."""
        with self._load_lock:
            if self._llm is not None:
                return
            try:
                import llama_cpp
                from llama_cpp.llama_chat_format import Jinja2ChatFormatter
            except ImportError as exc:
                raise BackendUnavailableError(
                    "the llama-cpp backend needs llama-cpp-python: pip install llama-cpp-python"
                ) from exc
            path = resolve_gguf(self.config.model, self._resolver)
            threads = self.config.threads or os.cpu_count() or 1
            seed = self.config.seed
            start = time.perf_counter()
            try:
                llm = llama_cpp.Llama(
                    model_path=str(path),
                    n_ctx=self.config.context_tokens,
                    n_threads=threads,
                    n_threads_batch=threads,
                    seed=llama_cpp.LLAMA_DEFAULT_SEED if seed is None else seed,
                    verbose=False,
                )
            except (ValueError, RuntimeError) as exc:
                raise LLMError(f"llama.cpp could not load {path}: {exc}") from exc
            self.load_s = time.perf_counter() - start
            template = llm.metadata.get("tokenizer.chat_template")
            if template:
                self._formatter = Jinja2ChatFormatter(
                    template=template,
                    eos_token=_token_text(llm, llm.token_eos()),
                    bos_token=_token_text(llm, llm.token_bos()),
                )
            else:
                log.warning("%s has no chat template; llama.cpp will guess one", path.name)
            self._llm = llm
            log.info(
                "loaded %s in %.2f s (%d threads, context %d tokens)",
                path.name,
                self.load_s,
                threads,
                self.config.context_tokens,
            )

    def _count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        """Prompt tokens of ``messages`` formatted by the model's chat template."""
        llm = self._llm
        if self._formatter is not None:
            prompt = self._formatter(messages=_messages_as_dicts(messages)).prompt
            return len(llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)) + 1
        return sum(
            len(llm.tokenize(m.content.encode("utf-8"), add_bos=False)) + _MESSAGE_OVERHEAD_TOKENS
            for m in messages
        )

    def _generate(self, messages: list[ChatMessage], max_tokens: int, job: GenerationJob) -> str:
        """Worker thread: stream a chat completion token by token until done or cancelled."""
        self.load()
        fitted = fit_to_context(messages, self._count_tokens, self.n_ctx - max_tokens)
        if job.cancelled:
            return CANCELLED
        chunks = self._llm.create_chat_completion(
            messages=_messages_as_dicts(fitted),
            stream=True,
            max_tokens=max_tokens,
            temperature=self.config.temperature,
            top_p=self.config.top_p,
            seed=self.config.seed,
        )
        reason = LENGTH
        try:
            for chunk in chunks:
                choice = chunk["choices"][0]
                text = choice["delta"].get("content")
                if text is not None:  # the first chunk carries only the role
                    job.token()
                    if job.cancelled:
                        return CANCELLED
                    job.emit(text)
                if choice.get("finish_reason"):
                    reason = choice["finish_reason"]
                if job.cancelled:
                    return CANCELLED
        finally:
            chunks.close()  # stops llama.cpp right here: no more tokens are evaluated
        return reason

    def _release(self) -> None:
        if self._llm is not None:
            self._llm.close()
            self._llm = None
            self._formatter = None
