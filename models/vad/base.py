"""The streaming voice activity interface and the hysteresis shared by its backends."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from models.audio import as_float_mono
from models.config import VadConfig
from models.types import FloatAudio, VadEvent, VadEventKind

VAD_SAMPLE_RATE = 16000
"""Every VAD backend takes 16 kHz mono PCM."""


@runtime_checkable
class VoiceActivityDetector(Protocol):
    """A per-stream detector: 16 kHz PCM chunks in, speech start/end events out."""

    @property
    def sample_rate(self) -> int:
        """Rate of the PCM that :meth:`process` expects (16000)."""
        ...

    @property
    def speaking(self) -> bool:
        """True between a SPEECH_START event and its SPEECH_END."""
        ...

    @property
    def probability(self) -> float:
        """Speech probability of the last analysed window (0..1)."""
        ...

    @property
    def trailing_silence(self) -> float:
        """Seconds of silence so far at the end of open speech (0 when voiced or idle).

        Lets a caller act on a likely end of turn before SPEECH_END is certain.
        """
        ...

    def process(self, pcm: FloatAudio) -> list[VadEvent]:
        """Feed the next chunk of the stream (any length); return the events it completes."""
        ...

    def flush(self) -> list[VadEvent]:
        """End of stream: close open speech and reset for a new stream."""
        ...

    def reset(self) -> None:
        """Forget the stream: state, buffered samples and the sample clock."""
        ...


def _ms_to_samples(ms: int) -> int:
    return round(ms * VAD_SAMPLE_RATE / 1000)


class WindowedVad(ABC):
    """Buffers a stream into fixed windows and turns window probabilities into events.

    Hysteresis (as silero's ``get_speech_timestamps``): speech begins at the first
    window with probability >= ``threshold`` and is confirmed (SPEECH_START emitted)
    once it has lasted ``min_speech_ms`` without falling below ``neg_threshold``;
    it ends at the first window below ``neg_threshold`` that is followed by
    ``min_silence_ms`` of such windows. Event times are the speech onset minus
    ``speech_pad_ms`` and the silence onset plus ``speech_pad_ms``, computed from
    sample counts, so the emission delay never shifts a timestamp.
    """

    def __init__(self, config: VadConfig, window: int) -> None:
        self._config = config
        self._window = window
        self._threshold = config.threshold
        self._neg_threshold = (
            config.neg_threshold
            if config.neg_threshold is not None
            else max(config.threshold - 0.15, 0.01)
        )
        self._min_speech = _ms_to_samples(config.min_speech_ms)
        self._min_silence = _ms_to_samples(config.min_silence_ms)
        self._pad = _ms_to_samples(config.speech_pad_ms)
        self._buffer: npt.NDArray[np.float32] = np.zeros(0, dtype=np.float32)
        self._clock = 0  # samples analysed so far (multiple of the window)
        self._received = 0  # samples received so far
        self._prob = 0.0
        self._candidate: int | None = None  # onset of unconfirmed speech
        self._speaking = False
        self._silence_start: int | None = None  # onset of the current silence in speech
        self._last_end = 0  # sample of the last SPEECH_END (starts never precede it)
        self._speech_start = 0  # sample of the last SPEECH_START
        self._end_lag = 0  # samples a backend reports speech past its end (hangover)

    # --- the backend ------------------------------------------------------

    @abstractmethod
    def _window_probability(self, window: npt.NDArray[np.float32]) -> float:
        """Speech probability of one window of ``self._window`` samples."""

    @abstractmethod
    def _reset_backend(self) -> None:
        """Forget the backend's own stream state (recurrent state, context)."""

    # --- the interface ----------------------------------------------------

    @property
    def sample_rate(self) -> int:
        """Rate of the PCM that :meth:`process` expects (16000)."""
        return VAD_SAMPLE_RATE

    @property
    def speaking(self) -> bool:
        """True between a SPEECH_START event and its SPEECH_END."""
        return self._speaking

    @property
    def probability(self) -> float:
        """Speech probability of the last analysed window (0..1)."""
        return self._prob

    @property
    def window_samples(self) -> int:
        """Samples per analysed window."""
        return self._window

    def process(self, pcm: FloatAudio) -> list[VadEvent]:
        """Feed the next chunk of the stream (any length); return the events it completes.

        Raises InvalidAudioError for multi-dimensional, non-finite or non-numeric input.
        An empty chunk is accepted and does nothing.
        """
        arr = np.asarray(pcm)
        if arr.ndim == 1 and arr.size == 0:
            return []
        chunk = as_float_mono(arr, name="VAD input")
        self._received += len(chunk)
        buf = np.concatenate([self._buffer, chunk]) if self._buffer.size else chunk
        events: list[VadEvent] = []
        n_windows = len(buf) // self._window
        for i in range(n_windows):
            window = buf[i * self._window : (i + 1) * self._window]
            self._prob = float(self._window_probability(window))
            self._step(self._prob, events)
        self._buffer = np.array(buf[n_windows * self._window :], dtype=np.float32)
        return events

    def flush(self) -> list[VadEvent]:
        """End of stream: close open speech (SPEECH_END) and reset for a new stream.

        Unconfirmed speech (shorter than ``min_speech_ms``) is dropped.
        """
        events: list[VadEvent] = []
        if self._speaking:
            end = (
                self._silence_onset(self._silence_start)
                if self._silence_start is not None
                else self._received
            )
            sample = min(end + self._pad, self._received)
            events.append(self._event(VadEventKind.SPEECH_END, sample))
        self.reset()
        return events

    def reset(self) -> None:
        """Forget the stream: state, buffered samples and the sample clock."""
        self._buffer = np.zeros(0, dtype=np.float32)
        self._clock = 0
        self._received = 0
        self._prob = 0.0
        self._candidate = None
        self._speaking = False
        self._silence_start = None
        self._last_end = 0
        self._speech_start = 0
        self._reset_backend()

    # --- the state machine --------------------------------------------------

    @property
    def trailing_silence(self) -> float:
        """Seconds of silence so far at the end of open speech (0 when voiced or idle)."""
        if not self._speaking or self._silence_start is None:
            return 0.0
        return (self._clock - self._silence_onset(self._silence_start)) / VAD_SAMPLE_RATE

    def _silence_onset(self, silence_start: int) -> int:
        """Where the silence began, correcting for the backend's hangover."""
        return max(silence_start - self._end_lag, self._speech_start)

    def _event(self, kind: VadEventKind, sample: int) -> VadEvent:
        return VadEvent(kind=kind, time=sample / VAD_SAMPLE_RATE, sample=sample)

    def _step(self, prob: float, events: list[VadEvent]) -> None:
        start = self._clock
        self._clock += self._window
        end = self._clock
        if self._speaking:
            if prob >= self._threshold:
                self._silence_start = None
            elif prob < self._neg_threshold:
                if self._silence_start is None:
                    self._silence_start = start
                onset = self._silence_onset(self._silence_start)
                if end - onset >= self._min_silence:
                    sample = min(onset + self._pad, end)
                    events.append(self._event(VadEventKind.SPEECH_END, sample))
                    self._speaking = False
                    self._silence_start = None
                    self._last_end = sample
            return
        if self._candidate is None:
            if prob >= self._threshold:
                self._candidate = start
        elif prob < self._neg_threshold:
            self._candidate = None
        if self._candidate is not None and end - self._candidate >= max(self._min_speech, 1):
            sample = max(self._candidate - self._pad, self._last_end)
            events.append(self._event(VadEventKind.SPEECH_START, sample))
            self._speech_start = sample
            self._speaking = True
            self._candidate = None
            self._silence_start = None
