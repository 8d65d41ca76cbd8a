"""Build the configured voice activity detector."""

from __future__ import annotations

import logging

from models.assets import AssetResolver
from models.config import VadConfig
from models.errors import AssetError
from models.vad.base import VoiceActivityDetector
from models.vad.silero import SileroModel, SileroVad
from models.vad.webrtc import WebRtcVad

log = logging.getLogger(__name__)


def create_vad(
    config: VadConfig, resolver: AssetResolver, model: SileroModel | None = None
) -> VoiceActivityDetector:
    """A new per-stream detector for ``config.backend``.

    For Silero, pass the process-wide ``model`` to share one ONNX session between
    streams; without it the model is loaded here. When the Silero model cannot be
    found or loaded, this falls back to webrtcvad with a warning.
    """
    if config.backend == "webrtc":
        return WebRtcVad(config)
    if model is None:
        try:
            model = SileroModel.from_resolver(resolver, threads=config.threads)
        except AssetError as exc:
            log.warning("Silero VAD unavailable (%s); falling back to webrtcvad", exc)
            return WebRtcVad(config)
    return SileroVad(model, config)
