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
from models.stt.serial import FINAL, PARTIAL, DroppedCallError, SerialRunner
from models.stt.window import FULL_WINDOW_S, WindowDecoder
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
        self._window: WindowDecoder | None = None
        if 0 < config.window_s < FULL_WINDOW_S and config.language and not word_timestamps:
            self._window = WindowDecoder(
                self._model,
                window_s=config.window_s,
                language=config.language,
                beam_size=config.beam_size,
            )
        self.window_fallbacks = 0
        """Utterances decoded again on the full window (the short one's output looked wrong)."""
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

    def transcribe(
        self, pcm: FloatAudio, sample_rate: int = STT_SAMPLE_RATE, *, prompt: str = ""
    ) -> Transcript:
        """Transcribe one utterance; thread-safe (calls are serialized).

        ``prompt`` is the conversation so far (Whisper's ``initial_prompt``: names and
        words it makes likelier). Raises InvalidAudioError at once for empty, non-1-D,
        non-finite, wrong-rate or too long audio, and STTError when the engine fails.
        """
        audio = self.check(pcm, sample_rate)
        return self._serial.call(lambda: self._run(audio, prompt))

    async def atranscribe(
        self,
        pcm: FloatAudio,
        sample_rate: int = STT_SAMPLE_RATE,
        *,
        prompt: str = "",
        partial: bool = False,
    ) -> Transcript:
        """:meth:`transcribe` in a worker thread (validation happens at once).

        A ``partial`` pass (of speech still going on) waits behind every other queued
        utterance. Cancelled while it waits for the recognizer (other sessions'
        utterances), the transcription is dropped and never runs.
        """
        audio = self.check(pcm, sample_rate)
        priority = PARTIAL if partial else FINAL
        return await self._serial.acall(lambda: self._run(audio, prompt), priority)

    def _run(self, audio: FloatAudio, prompt: str) -> Transcript:
        """Transcribe checked audio (holding the recognizer): on the short window when
        the utterance fits and the result looks right, else on Whisper's 30 s (without
        the prompt, when the short window's output looked wrong)."""
        duration = len(audio) / STT_SAMPLE_RATE
        if self._window is not None and self._window.fits(len(audio)):
            try:
                result = self._window.decode(audio, prompt, self._serial.abandoned)
            except Exception as exc:  # CTranslate2 errors are untyped
                raise STTError(f"transcription failed: {exc}") from exc
            if result is None:
                raise DroppedCallError("the caller went away during the transcription")
            if result.plausible:
                return Transcript(
                    text=result.text,
                    words=(),
                    language=str(self._config.language),
                    language_probability=1.0,
                    confidence=math.exp(result.avg_logprob),
                    duration=duration,
                )
            if self._serial.abandoned():
                raise DroppedCallError("the caller went away during the transcription")
            self.window_fallbacks += 1
            log.debug("short-window decode looked wrong (%r); decoding on 30 s", result)
            prompt = ""  # as Whisper's own fallback: the prompt may be what derailed it
        try:
            segments, info = self._model.transcribe(
                audio,
                language=self._config.language,
                beam_size=self._config.beam_size,
                word_timestamps=self._word_timestamps,
                without_timestamps=not self._word_timestamps,
                temperature=0.0,
                initial_prompt=prompt.strip() or None,
                condition_on_previous_text=False,
                vad_filter=False,
            )
            segments = list(segments)  # decoding happens while iterating
        except Exception as exc:  # anything the engine raises becomes a typed error
            raise STTError(f"transcription failed: {exc}") from exc
        return _transcript(segments, info, duration)


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
