"""Speech to text with faster-whisper (CTranslate2)."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel

from models.assets import AssetResolver
from models.audio import as_float_mono, check_rate
from models.config import SttConfig
from models.errors import AssetNotFoundError, InvalidAudioError, STTError
from models.stt.serial import SerialRunner
from models.types import FloatAudio, Transcript, Word

log = logging.getLogger(__name__)

STT_SAMPLE_RATE = 16000
"""Whisper listens at 16 kHz."""


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when CTranslate2 sees a GPU, else ``cpu``."""
    if device != "auto":
        return device
    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def resolve_compute_type(device: str, compute_type: str) -> str:
    """``compute_type`` when the device supports it, else a supported fallback."""
    if compute_type in ("default", "auto"):
        return compute_type
    supported = ctranslate2.get_supported_compute_types(device)
    if compute_type in supported:
        return compute_type
    fallback = "int8" if "int8" in supported else "default"
    log.warning(
        "compute type %s is not supported on %s (supported: %s); using %s",
        compute_type,
        device,
        ", ".join(sorted(supported)),
        fallback,
    )
    return fallback


def _model_source(model: str, resolver: AssetResolver) -> tuple[str, bool]:
    """(what WhisperModel loads, whether it is a hub name) for ``stt.model``."""
    if model in resolver.registry:
        return str(resolver.resolve(model).path), False
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path), False
    return model, True  # a size ("small") or a hub repo ("Systran/faster-whisper-small")


def check_utterance(pcm: FloatAudio, sample_rate: int, max_utterance_s: float) -> FloatAudio:
    """Validated float32 mono copy of an utterance for Whisper (InvalidAudioError if not)."""
    check_rate(sample_rate, STT_SAMPLE_RATE, name="utterance")
    arr = np.asarray(pcm)
    if arr.ndim == 1 and arr.size > max_utterance_s * STT_SAMPLE_RATE:
        raise InvalidAudioError(
            f"utterance is {arr.size / STT_SAMPLE_RATE:.1f} s long, more than "
            f"stt.max_utterance_s={max_utterance_s:g} s"
        )
    return as_float_mono(arr, name="utterance")


class SpeechRecognizer:
    """faster-whisper behind a lock: one utterance (16 kHz mono) in, a ``Transcript`` out.

    ``stt.model`` is an asset name (default ``whisper-base``), a folder holding a
    CTranslate2 Whisper model, or a hub size/name, downloaded by faster-whisper when
    ``assets.allow_download`` is true.
    """

    def __init__(
        self, config: SttConfig, resolver: AssetResolver, *, word_timestamps: bool = True
    ) -> None:
        self._config = config
        self._word_timestamps = word_timestamps
        self.device = resolve_device(config.device)
        self.compute_type = resolve_compute_type(self.device, config.compute_type)
        source, from_hub = _model_source(config.model, resolver)
        started = time.perf_counter()
        try:
            self._model = WhisperModel(
                source,
                device=self.device,
                compute_type=self.compute_type,
                cpu_threads=config.cpu_threads,
                local_files_only=from_hub and not resolver.config.allow_download,
            )
        except (OSError, ValueError) as exc:
            if from_hub:
                raise AssetNotFoundError(
                    f"Whisper model {config.model!r} is neither an asset ("
                    f"{', '.join(resolver.names())}), nor a folder, nor a hub model that "
                    f"could be loaded (assets.allow_download={resolver.config.allow_download})"
                    f": {exc}"
                ) from exc
            raise STTError(f"cannot load the Whisper model {config.model!r}: {exc}") from exc
        except Exception as exc:  # CTranslate2 errors are untyped
            raise STTError(f"cannot load the Whisper model {config.model!r}: {exc}") from exc
        self._serial = SerialRunner()
        log.info(
            "Whisper %s loaded on %s (%s) in %.2f s",
            config.model,
            self.device,
            self.compute_type,
            time.perf_counter() - started,
        )

    @property
    def sample_rate(self) -> int:
        """Rate of the PCM :meth:`transcribe` expects (16000)."""
        return STT_SAMPLE_RATE

    def check(self, pcm: FloatAudio, sample_rate: int = STT_SAMPLE_RATE) -> FloatAudio:
        """Validated float32 mono copy of ``pcm``; InvalidAudioError when it is unusable."""
        return check_utterance(pcm, sample_rate, self._config.max_utterance_s)

    def transcribe(self, pcm: FloatAudio, sample_rate: int = STT_SAMPLE_RATE) -> Transcript:
        """Transcribe one utterance; thread-safe (calls are serialized).

        Raises InvalidAudioError at once for empty, non-1-D, non-finite, wrong-rate or
        too long audio, and STTError when the engine fails.
        """
        audio = self.check(pcm, sample_rate)
        return self._serial.call(lambda: self._run(audio))

    async def atranscribe(self, pcm: FloatAudio, sample_rate: int = STT_SAMPLE_RATE) -> Transcript:
        """:meth:`transcribe` in a worker thread (validation happens at once).

        Cancelled while it waits for the recognizer (other sessions' utterances), the
        transcription is dropped and never runs.
        """
        audio = self.check(pcm, sample_rate)
        return await self._serial.acall(lambda: self._run(audio))

    def _run(self, audio: FloatAudio) -> Transcript:
        """Transcribe checked audio (holding the recognizer)."""
        try:
            segments, info = self._model.transcribe(
                audio,
                language=self._config.language,
                beam_size=self._config.beam_size,
                word_timestamps=self._word_timestamps,
                condition_on_previous_text=False,
                vad_filter=False,
            )
            segments = list(segments)  # decoding happens while iterating
        except Exception as exc:  # anything the engine raises becomes a typed error
            raise STTError(f"transcription failed: {exc}") from exc
        return _transcript(segments, info, len(audio) / STT_SAMPLE_RATE)


def _transcript(segments: list[Any], info: Any, duration: float) -> Transcript:
    """Build a Transcript: words clipped to the clip and kept in time order."""
    words: list[Word] = []
    last = 0.0
    for seg in segments:
        for w in seg.words or ():
            text = w.word.strip()
            if not text:
                continue
            start = min(max(float(w.start), last), duration)
            end = min(max(float(w.end), start), duration)
            words.append(Word(text=text, start=start, end=end, probability=float(w.probability)))
            last = end
    text = " ".join(seg.text.strip() for seg in segments if seg.text.strip())
    if words:
        confidence = float(np.mean([w.probability for w in words]))
    elif segments:
        confidence = math.exp(float(np.mean([seg.avg_logprob for seg in segments])))
    else:
        confidence = 0.0
    return Transcript(
        text=text,
        words=tuple(words),
        language=str(info.language),
        language_probability=float(info.language_probability),
        confidence=confidence,
        duration=duration,
    )


def create_stt(config: SttConfig, resolver: AssetResolver) -> SpeechRecognizer:
    """The configured speech recognizer, loaded and ready."""
    return SpeechRecognizer(config, resolver)
