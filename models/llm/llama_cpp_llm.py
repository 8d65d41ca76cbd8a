"""The llama.cpp backend (llama-cpp-python): a GGUF chat model on the CPU.

One llama.cpp context holds a KV sequence per conversation (``key``) and a shared
prefix (the persona and few-shot examples, evaluated when the model loads), and
decodes every generation in flight together (:mod:`models.llm.llama_batch`): a turn's
first token costs only its new words, and no turn waits behind another one's reply.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from pathlib import Path
from typing import Any

from models.assets import AssetResolver
from models.config import LlmConfig
from models.errors import AssetNotFoundError, BackendUnavailableError, InvalidTextError, LLMError
from models.llm.llama_batch import SamplingParams, SequenceScheduler
from models.llm.messages import fit_to_context, prepare_request
from models.llm.worker import GenerationEnd, GenerationJob
from models.types import ChatMessage, GenerationStats

log = logging.getLogger(__name__)

CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""The chat format used when the GGUF carries no template."""
WARM_MARK = "\ue000warm\ue001"
"""Put after the text of a warm prompt's last message: the rendered prompt is cut
where it appears, whatever the chat template writes around a message (private-use
characters, which no user text contains)."""
BATCH_TOKENS = 256
"""Tokens one decode may hold (every generation's next piece together)."""
UBATCH_TOKENS = 128
"""Tokens llama.cpp computes at once (bounds the attention scratch memory)."""


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


def _messages_as_dicts(messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in messages]


class LlamaCppLLM:
    """A GGUF chat model run by llama.cpp; its chat template comes from the GGUF.

    ``stream(..., key=...)``: generations with the same key are one conversation; its
    evaluated tokens stay in the context between turns until :meth:`forget`.
    """

    def __init__(
        self,
        config: LlmConfig,
        resolver: AssetResolver,
        *,
        spare_cpu: Callable[[], bool] | None = None,
    ) -> None:
        """``spare_cpu``: whether the machine has CPU to spare now, asked before a reply's
        new prompt tokens are evaluated on ``threads_batch`` threads (None: always)."""
        self.config = config
        self._spare_cpu = spare_cpu
        self.name = f"llama-cpp:{config.model}"
        self._resolver = resolver
        self._load_lock = threading.Lock()
        self._model: Any = None
        self._ctx: Any = None
        self._formatter: Any = None
        self._scheduler: SequenceScheduler | None = None
        self._closed = False
        self.load_s: float | None = None
        self.prefix_s: float | None = None
        """Seconds spent evaluating the shared prefix at load."""

    @property
    def n_ctx(self) -> int:
        """The context size of one conversation, in tokens."""
        return self.config.context_tokens

    @property
    def busy(self) -> bool:
        """True while a generation runs or waits for the model."""
        return self._scheduler is not None and self._scheduler.busy

    def cached_tokens(self, key: str | None) -> int:
        """Tokens of conversation ``key`` kept evaluated in the context (0: none)."""
        return 0 if self._scheduler is None else self._scheduler.cached_tokens(key)

    def load(self) -> None:
        """Load the GGUF and evaluate the shared prompt (idempotent; seconds)."""
        with self._load_lock:
            if self._scheduler is not None:
                return
            if self._closed:
                raise LLMError(f"language model {self.name} is closed")
            try:
                import llama_cpp
                from llama_cpp import _internals
                from llama_cpp._logger import set_verbose
                from llama_cpp.llama_chat_format import Jinja2ChatFormatter
            except ImportError as exc:
                raise BackendUnavailableError(
                    "the llama-cpp backend needs llama-cpp-python: pip install llama-cpp-python"
                ) from exc
            path = resolve_gguf(self.config.model, self._resolver)
            cfg = self.config
            threads = cfg.threads or os.cpu_count() or 1
            threads_batch = cfg.threads_batch or threads
            start = time.perf_counter()
            set_verbose(False)
            llama_cpp.llama_backend_init()
            try:
                model = _internals.LlamaModel(
                    path_model=str(path),
                    params=llama_cpp.llama_model_default_params(),
                    verbose=False,
                )
                params = llama_cpp.llama_context_default_params()
                params.n_ctx = cfg.context_tokens * cfg.sequences
                params.n_batch = BATCH_TOKENS
                params.n_ubatch = UBATCH_TOKENS
                params.n_seq_max = cfg.sequences + 1  # + the shared prefix
                params.kv_unified = True  # sequences share the prefix's cells
                # As llama-cpp-python's Llama: no flash attention on the CPU (no faster
                # here, and the replies stay those the reply eval measured).
                params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
                params.n_threads = threads
                params.n_threads_batch = threads_batch
                ctx = _internals.LlamaContext(model=model, params=params, verbose=False)
            except (ValueError, RuntimeError) as exc:
                raise LLMError(f"llama.cpp could not load {path}: {exc}") from exc
            self.load_s = time.perf_counter() - start
            template = model.metadata().get("tokenizer.chat_template")
            if not template:
                log.warning("%s has no chat template; using ChatML", path.name)
            eos, bos = model.token_eos(), model.token_bos()
            self._formatter = Jinja2ChatFormatter(
                template=template or CHATML_TEMPLATE,
                eos_token=_token_text(model, eos),
                bos_token=_token_text(model, bos),
            )
            self._model, self._ctx = model, ctx
            self._scheduler = SequenceScheduler(
                self.name,
                model,
                ctx,
                slots=cfg.sequences,
                batch_tokens=BATCH_TOKENS,
                threads=(threads, threads_batch),
                spare_cpu=self._spare_cpu,
            )
            start = time.perf_counter()
            # Nothing else runs on the model yet: the shared prompt gets every core (the
            # configured threads are for a machine busy with calls).
            load_threads = max(threads_batch, os.cpu_count() or 1)
            llama_cpp.llama_set_n_threads(ctx.ctx, threads, load_threads)
            try:
                self._scheduler.prefill(self._prompt_tokens(self._shared_prefix()))
            finally:  # the scheduler sets the batch threads per step from now on
                llama_cpp.llama_set_n_threads(ctx.ctx, threads, threads)
            self.prefix_s = time.perf_counter() - start
            log.info(
                "loaded %s in %.2f s (%d/%d threads, %d sequences of %d tokens); "
                "shared prompt evaluated in %.2f s on %d threads",
                path.name,
                self.load_s,
                threads,
                threads_batch,
                cfg.sequences,
                cfg.context_tokens,
                self.prefix_s,
                load_threads,
            )

    def _shared_prefix(self) -> list[ChatMessage]:
        """What every session's prompt starts with: the persona and the examples."""
        persona = self.config.persona().strip()
        head = [ChatMessage("system", persona)] if persona else []
        return head + self.config.example_messages()

    def _prompt_tokens(self, messages: Sequence[ChatMessage]) -> list[int]:
        return self._tokenize(self._formatter(messages=_messages_as_dicts(messages)).prompt)

    def _tokenize(self, prompt: str) -> list[int]:
        return list(self._model.tokenize(prompt.encode("utf-8"), add_bos=True, special=True))

    def _count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        """Prompt tokens of ``messages`` formatted by the model's chat template."""
        return len(self._prompt_tokens(messages))

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        stats: GenerationStats | None = None,
        key: str | None = None,
    ) -> AsyncGenerator[str, None]:
        """Check ``messages`` now and stream the reply (see LanguageModel)."""
        prepared, cap = prepare_request(messages, self.config, max_tokens)
        return self._stream(prepared, cap, stats or GenerationStats(), key)

    async def _stream(
        self, messages: list[ChatMessage], cap: int, stats: GenerationStats, key: str | None
    ) -> AsyncGenerator[str, None]:
        if self._scheduler is None:
            await asyncio.to_thread(self.load)
        scheduler = self._scheduler
        if scheduler is None or self._closed:
            raise LLMError(f"language model {self.name} is closed")

        def tokenize() -> list[int]:  # on the worker thread
            fitted = fit_to_context(messages, self._count_tokens, self.n_ctx - cap)
            return self._prompt_tokens(fitted)

        cfg = self.config
        sampling = SamplingParams(cfg.temperature, cfg.top_p, cfg.seed)
        queue: asyncio.Queue[str | GenerationEnd] = asyncio.Queue()
        job = GenerationJob(asyncio.get_running_loop(), queue, stats)
        done = scheduler.submit(job, tokenize, cap, key, sampling)
        try:
            async for piece in job.texts():
                yield piece
        finally:
            job.stop.set()
            scheduler.wake()
            if not done.done():
                try:
                    await asyncio.wait_for(asyncio.wrap_future(done), scheduler.cancel_wait_s)
                except asyncio.TimeoutError:
                    log.warning("%s: a generation did not stop in time", self.name)

    def forget(self, key: str) -> None:
        """Free what conversation ``key`` holds in the context (its session ended)."""
        if self._scheduler is not None:
            self._scheduler.forget(key)

    def warm(self, messages: Sequence[ChatMessage], *, key: str) -> None:
        """Evaluate the prompt of ``messages`` up to the end of the last message's text
        into the sequence of ``key``, a few tokens per step (see LanguageModel). Does
        nothing before the model is loaded, or when the messages would not be accepted
        by :meth:`stream`."""
        scheduler = self._scheduler
        if scheduler is None or self._closed or not messages:
            return
        last = messages[-1]
        text = last.content if last.content.strip() else ""
        try:  # the checks of stream(); an empty last message stands for any text
            prepared, cap = prepare_request(
                [*messages[:-1], ChatMessage(last.role, text or WARM_MARK)], self.config, None
            )
        except InvalidTextError as exc:
            log.debug("%s: not warming %r: %s", self.name, key, exc)
            return
        prepared[-1] = ChatMessage(last.role, text + WARM_MARK)

        def tokenize() -> list[int]:  # on the worker thread
            fitted = fit_to_context(prepared, self._count_tokens, self.n_ctx - cap)
            prompt = self._formatter(messages=_messages_as_dicts(fitted)).prompt
            cut = prompt.rfind(WARM_MARK)
            if cut < 0:
                raise InvalidTextError("the chat template did not keep the last message's text")
            return self._tokenize(prompt[:cut])

        scheduler.warm(key, tokenize)

    def warming(self, key: str) -> bool:
        """True while the prompt of ``key`` is being warmed (for tests and benchmarks)."""
        return self._scheduler is not None and self._scheduler.warming(key)

    @property
    def warm_tokens(self) -> int:
        """Prompt tokens evaluated ahead of their generations (for tests and benchmarks)."""
        return 0 if self._scheduler is None else self._scheduler.warm_tokens

    async def aclose(self) -> None:
        """Stop every generation, then free the model."""
        with self._load_lock:
            self._closed = True
            scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            await asyncio.to_thread(scheduler.close)
        with self._load_lock:
            if self._ctx is not None:
                self._ctx.close()
                self._model.close()
            self._ctx = self._model = self._formatter = None


def _token_text(model: Any, token: int) -> str:
    """Text of a special token ("" for none)."""
    if token < 0:
        return ""
    return bytes(model.detokenize([token], special=True)).decode("utf-8", "replace")
