"""The transformers backend: any Hugging Face causal LM with a chat template (GPU profile)."""

from __future__ import annotations

import copy
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models.assets import AssetResolver
from models.config import LlmConfig
from models.errors import AssetNotFoundError, BackendUnavailableError, LLMError
from models.llm.base import CANCELLED, LENGTH, STOP
from models.llm.messages import fit_to_context
from models.llm.threaded import ThreadedLanguageModel
from models.llm.worker import GenerationJob
from models.types import ChatMessage

log = logging.getLogger(__name__)


def _messages_as_dicts(messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in messages]


def _version(text: str) -> tuple[int, ...]:
    """Leading numeric parts of a version string ("4.56.0.dev0" → (4, 56, 0))."""
    parts: list[int] = []
    for piece in text.split("."):
        if not piece.isdigit():
            break
        parts.append(int(piece))
    return tuple(parts)


def pick_device(device: str, torch: Any) -> str:
    """``auto`` → ``cuda`` when a GPU is usable, else ``cpu``."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailableError("llm.device=cuda but torch sees no CUDA device")
    return device


def pick_dtype(dtype: str, device: str, torch: Any) -> Any:
    """``auto`` → bfloat16 (or float16) on a GPU, float32 on the CPU."""
    if dtype == "auto":
        if device == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return getattr(torch, dtype)


class TransformersLLM(ThreadedLanguageModel):
    """A Hugging Face causal LM (hub id, local folder, asset or .gguf file) run by transformers."""

    def __init__(self, config: LlmConfig, resolver: AssetResolver) -> None:
        super().__init__(config, f"transformers:{config.model}")
        self._resolver = resolver
        self._model: Any = None
        self._tokenizer: Any = None
        self._device = "cpu"
        self._n_ctx = config.context_tokens
        self.load_s: float | None = None

    @property
    def n_ctx(self) -> int:
        """The context size in tokens (the config's, capped by the model's)."""
        return self._n_ctx

    def _source(self) -> tuple[str, dict[str, Any]]:
        """Where from_pretrained loads from, and its extra arguments."""
        model = self.config.model
        if model in self._resolver.names():
            path: Path | None = self._resolver.resolve(model).path
        else:
            candidate = Path(model).expanduser()
            path = candidate if candidate.exists() else None
        if path is not None:
            if path.is_file():
                if path.suffix.lower() != ".gguf":
                    raise AssetNotFoundError(
                        f"llm.model={model!r}: expected a model folder or a .gguf file"
                    )
                return str(path.parent), {"gguf_file": path.name, "local_files_only": True}
            return str(path), {"local_files_only": True}
        offline = not self._resolver.config.allow_download or os.environ.get(
            "HF_HUB_OFFLINE", ""
        ).lower() in {"1", "true", "yes"}
        return model, {"local_files_only": offline}

    def load(self) -> None:
        """Load the tokenizer and the model onto the configured device (idempotent)."""
        with self._load_lock:
            if self._model is not None:
                return
            try:
                import torch
                import transformers
            except ImportError as exc:
                raise BackendUnavailableError(
                    "the transformers backend needs: pip install 'gwm-avatars[transformers]'"
                ) from exc
            source, kwargs = self._source()
            device = pick_device(self.config.device, torch)
            dtype = pick_dtype(self.config.dtype, device, torch)
            # transformers 4.56 renamed torch_dtype to dtype
            dtype_arg = "dtype" if _version(transformers.__version__) >= (4, 56) else "torch_dtype"
            start = time.perf_counter()
            tokenizer: Any
            model: Any
            try:
                tokenizer = transformers.AutoTokenizer.from_pretrained(source, **kwargs)
                model = transformers.AutoModelForCausalLM.from_pretrained(
                    source, **{dtype_arg: dtype}, **kwargs
                )
            except OSError as exc:
                raise AssetNotFoundError(
                    f"transformers could not load llm.model={self.config.model!r} "
                    f"(offline={kwargs.get('local_files_only')}): {exc}"
                ) from exc
            except ImportError as exc:  # e.g. a .gguf without the gguf package
                raise BackendUnavailableError(
                    f"transformers cannot load {self.config.model!r}: {exc}"
                ) from exc
            if not getattr(tokenizer, "chat_template", None):
                raise LLMError(
                    f"{self.config.model!r} has no chat template: use an instruct/chat model"
                )
            model.to(device)
            model.eval()
            limit = getattr(model.config, "max_position_embeddings", None)
            self._n_ctx = min(self.config.context_tokens, limit or self.config.context_tokens)
            self._device = device
            self._tokenizer = tokenizer
            self._model = model
            self.load_s = time.perf_counter() - start
            log.info(
                "loaded %s on %s (%s) in %.2f s", self.config.model, device, dtype, self.load_s
            )

    def _prompt(self, messages: Sequence[ChatMessage]) -> str:
        prompt = self._tokenizer.apply_chat_template(
            _messages_as_dicts(messages), tokenize=False, add_generation_prompt=True
        )
        return str(prompt)

    def _count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        ids = self._tokenizer(self._prompt(messages), add_special_tokens=False)["input_ids"]
        return len(ids)

    def _generation_config(self, max_tokens: int) -> Any:
        cfg = copy.deepcopy(self._model.generation_config)
        cfg.max_new_tokens = max_tokens
        if self.config.temperature > 0:
            cfg.do_sample = True
            cfg.temperature = self.config.temperature
            cfg.top_p = self.config.top_p
        else:
            cfg.do_sample = False
            cfg.temperature = None
            cfg.top_p = None
            cfg.top_k = None
        if cfg.pad_token_id is None:
            cfg.pad_token_id = self._tokenizer.pad_token_id or self._tokenizer.eos_token_id
        return cfg

    def _generate(self, messages: list[ChatMessage], max_tokens: int, job: GenerationJob) -> str:
        """Worker thread: run ``generate()`` with a streamer and a stopping criterion."""
        self.load()
        import torch
        from transformers import StoppingCriteriaList

        from models.llm.hf_stream import JobStopper, JobStreamer

        fitted = fit_to_context(messages, self._count_tokens, self.n_ctx - max_tokens)
        if job.cancelled:
            return CANCELLED
        enc = self._tokenizer(self._prompt(fitted), add_special_tokens=False, return_tensors="pt")
        input_ids = enc["input_ids"].to(self._device)
        prompt_len = int(input_ids.shape[-1])
        if self.config.seed is not None and self.config.temperature > 0:
            torch.manual_seed(self.config.seed)
        with torch.inference_mode():
            out = self._model.generate(
                input_ids=input_ids,
                attention_mask=enc["attention_mask"].to(self._device),
                generation_config=self._generation_config(max_tokens),
                streamer=JobStreamer(self._tokenizer, job),
                stopping_criteria=StoppingCriteriaList([JobStopper(job, prompt_len)]),
            )
        if job.cancelled:
            return CANCELLED
        return LENGTH if int(out.shape[-1]) - prompt_len >= max_tokens else STOP

    def _release(self) -> None:
        self._model = None
        self._tokenizer = None
