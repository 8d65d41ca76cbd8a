"""The webrtcvad fallback: 30 ms frames, a yes/no decision per frame."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import webrtcvad

from models.audio import to_int16
from models.config import VadConfig
from models.vad.base import VAD_SAMPLE_RATE, WindowedVad

FRAME = VAD_SAMPLE_RATE * 30 // 1000
"""Samples per webrtcvad frame (30 ms at 16 kHz)."""

HANGOVER_FRAMES = {0: 5, 1: 5, 2: 3, 3: 3}
"""Frames webrtcvad keeps saying "speech" after speech ends, per aggressiveness mode
(``kOverHangMax2*`` for 30 ms frames in WebRTC's vad_core.c)."""


class WebRtcVad(WindowedVad):
    """One stream's webrtcvad detector; its probability is 1.0 or 0.0 per frame.

    Light (no model, < 1 ms per frame) but less robust to noise than Silero.
    Aggressiveness comes from ``config.webrtc_aggressiveness`` (0..3). Speech-end
    times are corrected for webrtcvad's hangover.
    """

    def __init__(self, config: VadConfig | None = None) -> None:
        config = config or VadConfig()
        super().__init__(config, FRAME)
        self._vad = webrtcvad.Vad(config.webrtc_aggressiveness)
        self._end_lag = HANGOVER_FRAMES[config.webrtc_aggressiveness] * FRAME

    def _window_probability(self, window: npt.NDArray[np.float32]) -> float:
        speech = self._vad.is_speech(to_int16(window).tobytes(), VAD_SAMPLE_RATE)
        return 1.0 if speech else 0.0

    def _reset_backend(self) -> None:
        self._vad = webrtcvad.Vad(self._config.webrtc_aggressiveness)
