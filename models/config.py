"""Validated configuration of the engines and the asset resolver."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from models.types import ChatMessage


class _Section(BaseModel):
    """Base for config sections: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


Device = Literal["auto", "cpu", "cuda"]


class AssetsConfig(_Section):
    """Where model weights come from."""

    cache_dir: Path | None = Field(
        default=None, description="Cache folder; default: $XDG_CACHE_HOME/gwm-avatars"
    )
    paths: dict[str, Path] = Field(
        default_factory=dict, description="Explicit path per asset name (file or folder)"
    )
    allow_download: bool = Field(
        default=True, description="Try a hub download when no local source has the asset"
    )
    download_timeout_s: float = Field(default=60.0, gt=0)


class VadConfig(_Section):
    """Voice activity detection."""

    backend: Literal["silero", "webrtc"] = "silero"
    threshold: float = Field(default=0.5, gt=0.0, lt=1.0, description="Speech probability")
    neg_threshold: float | None = Field(
        default=None, gt=0.0, lt=1.0, description="Probability below which speech ends"
    )
    min_speech_ms: int = Field(default=120, ge=0, le=5000)
    min_silence_ms: int = Field(
        default=400,
        ge=20,
        le=10000,
        description="Silence that ends speech (a live session's VAD ends it at the service's "
        "end_of_turn.unfinished_ms instead, and its listener often sooner)",
    )
    speech_pad_ms: int = Field(default=0, ge=0, le=1000)
    webrtc_aggressiveness: int = Field(default=2, ge=0, le=3)
    threads: int = Field(default=1, ge=1, le=16)

    @model_validator(mode="after")
    def _neg_below_threshold(self) -> VadConfig:
        if self.neg_threshold is not None and self.neg_threshold >= self.threshold:
            raise ValueError("neg_threshold must be below threshold")
        return self


class SttConfig(_Section):
    """Speech to text (faster-whisper)."""

    model: str = Field(
        default="whisper-base",
        description="Asset name, a folder with a CTranslate2 model, or a hub size/name",
    )
    device: Device = "auto"
    compute_type: str = "int8"
    beam_size: int = Field(default=1, ge=1, le=10)
    language: str | None = Field(default="en", description="None: detect")
    cpu_threads: int = Field(default=2, ge=0, le=64)
    window_s: float = Field(
        default=10.0,
        ge=0.0,
        le=30.0,
        description="Encoder window for utterances that fit in it (Whisper pads to 30 s, so a "
        "short utterance costs a 30 s encode); its output is checked and decoded again on 30 s "
        "when it looks wrong. 0 or 30: always Whisper's 30 s",
    )
    prompt_chars: int = Field(
        default=200,
        ge=0,
        le=1000,
        description="A live session gives Whisper the last this many characters of the "
        "conversation as its prompt (0: none)",
    )
    max_utterance_s: float = Field(
        default=30.0,
        gt=0.0,
        le=600.0,
        description="Longest utterance: a live turn is cut and answered there; longer audio "
        "is refused",
    )


class OpenAIConfig(_Section):
    """An OpenAI-compatible chat completions server (vLLM, llama.cpp, Ollama, hosted)."""

    base_url: str = "http://127.0.0.1:8000/v1"
    api_key: SecretStr | None = None
    model: str = "default"
    timeout_s: float = Field(default=30.0, gt=0.0)
    connect_timeout_s: float = Field(default=3.0, gt=0.0)


class ChatExample(_Section):
    """One example exchange shown to the model before the conversation (few-shot)."""

    user: str = Field(min_length=1, max_length=2000)
    assistant: str = Field(min_length=1, max_length=2000)


DEFAULT_PERSONA = (
    "You are {name}, a warm and friendly person talking with someone face to face; "
    "everything you write is spoken aloud. Answer in one or two short sentences, as people "
    "do in conversation (a poem or a story may be a little longer). Never use lists, "
    "numbering, markdown, code, links or emoji: say several things in one flowing sentence. "
    "Get simple facts right, and say so when you are not sure. You have your own tastes "
    "and feelings and you share them like a person would; never say that you are an AI, "
    "a language model or a program, nor who made you."
)
DEFAULT_EXAMPLES = (
    ChatExample(user="Hi there!", assistant="Hi! It's lovely to meet you. How is your day going?"),
    ChatExample(
        user="Do you have a favourite food?",
        assistant="I'd pick fresh strawberries, they taste like summer. What about you?",
    ),
    ChatExample(
        user="Give me three tips for staying focused.",
        assistant=(
            "Sure! Put your phone in another room, work in short blocks with little breaks, "
            "and keep a glass of water nearby."
        ),
    ),
    ChatExample(
        user="What is the capital of Australia?",
        assistant="The capital of Australia is Canberra, not Sydney as many people think.",
    ),
    ChatExample(
        user="I'm feeling a bit down today.",
        assistant="I'm sorry to hear that. Do you want to tell me what's on your mind?",
    ),
)


class LlmConfig(_Section):
    """The language model that writes the avatar's replies."""

    backend: Literal["llama-cpp", "transformers", "openai"] = "llama-cpp"
    model: str = Field(
        default="qwen2.5-0.5b-instruct-gguf",
        description="Asset name, a local path, or (transformers) a hub model id",
    )
    persona_name: str = Field(
        default="Nova",
        min_length=1,
        max_length=64,
        description="The avatar's name: replaces {name} in the system prompt",
    )
    system_prompt: str = Field(
        default=DEFAULT_PERSONA,
        max_length=8000,
        description="The persona; {name} stands for persona_name",
    )
    examples: list[ChatExample] = Field(
        default_factory=lambda: list(DEFAULT_EXAMPLES),
        max_length=16,
        description="Few-shot exchanges put between the system prompt and the conversation",
    )
    max_tokens: int = Field(default=80, ge=1, le=4096, description="Token cap per reply")
    temperature: float = Field(default=0.6, ge=0.0, le=2.0)
    top_p: float = Field(default=0.9, gt=0.0, le=1.0)
    seed: int | None = 0
    context_tokens: int = Field(default=2048, ge=256, le=131072)
    threads: int | None = Field(default=None, ge=1, le=256)
    threads_batch: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description=(
            "llama.cpp threads for a reply's new prompt tokens (the words a turn waits for), "
            "when the live conversations' threads plus these fit the cores; warm-ups ahead "
            "of the turn and decoding use threads. None: the same as threads"
        ),
    )
    threads_batch_min_idle: float = Field(
        default=0.3,
        ge=0.0,
        le=1.0,
        description=(
            "threads_batch is used only while at least this share of the machine's CPU was "
            "idle over the last second (a busy machine's cores are taken: a second thread "
            "waits at its barriers); 0: always"
        ),
    )
    sequences: int = Field(
        default=4,
        ge=1,
        le=64,
        description=(
            "llama.cpp: conversations whose evaluated prompt stays in the context (a KV "
            "sequence of context_tokens each, decoded together); more are evicted least "
            "recently used first. At least server.max_sessions for every session to keep its"
        ),
    )
    device: Device = "auto"
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    max_input_chars: int = Field(default=8000, ge=1)
    openai: OpenAIConfig = Field(default_factory=OpenAIConfig)

    def persona(self, prompt: str | None = None, name: str | None = None) -> str:
        """``prompt`` (default: the system prompt) with ``{name}`` replaced by ``name``
        (default: ``persona_name``)."""
        return persona_prompt(prompt or self.system_prompt, name or self.persona_name)

    def example_messages(self) -> list[ChatMessage]:
        """The few-shot examples as alternating user and assistant messages."""
        return [
            m
            for e in self.examples
            for m in (ChatMessage("user", e.user), ChatMessage("assistant", e.assistant))
        ]


def persona_prompt(prompt: str, name: str) -> str:
    """``prompt`` with every ``{name}`` replaced by ``name`` (other braces are left alone)."""
    return prompt.replace("{name}", name)


class CoquiConfig(_Section):
    """Coqui TTS (the ``TTS`` package): a model by name or by path."""

    model_name: str | None = Field(default=None, description="e.g. tts_models/multilingual/...")
    model_path: Path | None = None
    config_path: Path | None = None
    speaker_wav: Path | None = Field(default=None, description="Reference voice for cloning")
    speaker: str | None = None
    language: str | None = None


class TtsConfig(_Section):
    """Text to speech."""

    backend: Literal["piper", "coqui"] = "piper"
    voice: str = Field(default="piper-joe-medium", description="Asset name or path to .onnx")
    length_scale: float = Field(default=1.0, gt=0.2, lt=5.0)
    speaker_id: int | None = None
    device: Device = "auto"
    threads: int | None = Field(
        default=None, ge=1, le=64, description="Piper's onnxruntime threads (None: its default)"
    )
    max_text_chars: int = Field(default=4000, ge=1)
    coqui: CoquiConfig = Field(default_factory=CoquiConfig)


class CpuConfig(_Section):
    """Process-wide CPU settings of the libraries underneath the engines."""

    blas_threads: int | None = Field(
        default=1,
        ge=1,
        le=256,
        description="Threads of numpy's BLAS (OpenBLAS): its products here are small, and "
        "its idle workers spin ~0.1 s on a core after each threaded one, taking it from "
        "Whisper and llama.cpp. None: the library's default (all cores)",
    )


class ModelsConfig(_Section):
    """Every engine's settings."""

    cpu: CpuConfig = Field(default_factory=CpuConfig)
    assets: AssetsConfig = Field(default_factory=AssetsConfig)
    vad: VadConfig = Field(default_factory=VadConfig)
    stt: SttConfig = Field(default_factory=SttConfig)
    llm: LlmConfig = Field(default_factory=LlmConfig)
    tts: TtsConfig = Field(default_factory=TtsConfig)
