"""Small typed values that flow between the engines."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

import numpy as np
import numpy.typing as npt

FloatAudio = npt.NDArray[np.float32]
"""Mono PCM as float32 in [-1, 1]."""


@dataclass(frozen=True)
class PhonemeSpan:
    """One phoneme of synthesized speech: its symbol, start and duration in seconds."""

    phoneme: str
    start: float
    duration: float

    @property
    def end(self) -> float:
        """End time in seconds."""
        return self.start + self.duration


@dataclass(frozen=True)
class Speech:
    """A chunk of synthesized speech (usually one sentence or clause).

    ``pcm`` is mono float32 at ``sample_rate``. ``phonemes`` is the phoneme timeline
    relative to the start of this chunk (None when the engine gives no alignment).
    """

    pcm: FloatAudio
    sample_rate: int
    text: str
    phonemes: tuple[PhonemeSpan, ...] | None = None

    @property
    def duration(self) -> float:
        """Length of the audio in seconds."""
        return len(self.pcm) / float(self.sample_rate)


@dataclass(frozen=True)
class Word:
    """A recognized word with its time span (seconds from the utterance start)."""

    text: str
    start: float
    end: float
    probability: float


@dataclass(frozen=True)
class Transcript:
    """What the STT engine heard in one utterance."""

    text: str
    words: tuple[Word, ...]
    language: str
    language_probability: float
    confidence: float
    duration: float


class VadEventKind(str, Enum):
    """Kinds of voice activity events."""

    SPEECH_START = "speech_start"
    SPEECH_END = "speech_end"


@dataclass(frozen=True)
class VadEvent:
    """A speech boundary found by the VAD, at ``time`` seconds of the input stream."""

    kind: VadEventKind
    time: float
    sample: int


Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class ChatMessage:
    """One message of a chat conversation."""

    role: Role
    content: str


@dataclass
class GenerationStats:
    """Counters a language model backend fills while it generates."""

    tokens: int = 0
    first_token_s: float | None = None
    finished: bool = False
    cancelled: bool = False
    stop_reason: str | None = None
    extra: dict[str, float] = field(default_factory=dict)
