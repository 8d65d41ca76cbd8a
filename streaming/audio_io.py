"""Audio format conversion at the edges of the session: WebRTC frames ↔ engine PCM."""

from __future__ import annotations

import av
import numpy as np

from models.audio import resample, to_int16
from models.types import FloatAudio, Speech
from models.vad import VAD_SAMPLE_RATE
from streaming.playout import Int16Audio


class InboundAudioConverter:
    """Turns decoded WebRTC audio frames (any layout/rate) into 16 kHz mono float32.

    Uses libswresample (stateful, so consecutive 20 ms frames join without clicks).
    """

    def __init__(self, rate: int = VAD_SAMPLE_RATE) -> None:
        self.rate = rate
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)

    def convert(self, frame: av.AudioFrame) -> FloatAudio:
        """Resample one frame; may return an empty array while the filter fills."""
        chunks = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)]
        if not chunks:
            return np.zeros(0, dtype=np.float32)
        pcm = np.concatenate(chunks).astype(np.float32) / 32768.0
        return pcm


def silence(seconds: float, rate: int = VAD_SAMPLE_RATE) -> FloatAudio:
    """``seconds`` of silence at ``rate`` (float32, rounded to whole samples)."""
    return np.zeros(round(seconds * rate), dtype=np.float32)


def speech_to_playout(speech: Speech, rate: int) -> Int16Audio:
    """A TTS chunk resampled to the outbound rate as int16."""
    pcm = resample(speech.pcm, speech.sample_rate, rate)
    return to_int16(pcm)
