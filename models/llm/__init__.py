"""Language models: chat messages in, a cancellable async stream of text pieces out.

Backends: ``llama-cpp`` (CPU default, GGUF), ``transformers`` (GPU, any Hugging Face
causal LM) and ``openai`` (any OpenAI-compatible server). Heavy packages are imported
only when a model loads.
"""

from __future__ import annotations

from collections.abc import Callable

from models.assets import AssetResolver
from models.config import LlmConfig
from models.llm.base import LanguageModel
from models.llm.llama_cpp_llm import LlamaCppLLM
from models.llm.messages import build_messages, conversation_head
from models.llm.openai_llm import OpenAIChatLLM
from models.llm.transformers_llm import TransformersLLM

__all__ = [
    "LanguageModel",
    "LlamaCppLLM",
    "OpenAIChatLLM",
    "TransformersLLM",
    "build_messages",
    "conversation_head",
    "create_llm",
]


def create_llm(
    config: LlmConfig,
    resolver: AssetResolver,
    *,
    spare_cpu: Callable[[], bool] | None = None,
) -> LanguageModel:
    """The backend ``config.backend`` names, not loaded yet (call ``load()``).

    ``spare_cpu``: whether the machine has CPU to spare right now (llama.cpp evaluates a
    reply's new prompt on ``threads_batch`` threads only then; None: always)."""
    if config.backend == "llama-cpp":
        return LlamaCppLLM(config, resolver, spare_cpu=spare_cpu)
    if config.backend == "transformers":
        return TransformersLLM(config, resolver)
    if config.backend == "openai":
        return OpenAIChatLLM(config)
    raise ValueError(f"unknown llm backend {config.backend!r}")
