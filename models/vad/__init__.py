"""Voice activity detection: 16 kHz PCM in, speech start/end events out."""

from models.vad.base import VAD_SAMPLE_RATE, VoiceActivityDetector, WindowedVad
from models.vad.factory import create_vad
from models.vad.silero import SileroModel, SileroVad
from models.vad.webrtc import WebRtcVad

__all__ = [
    "VAD_SAMPLE_RATE",
    "SileroModel",
    "SileroVad",
    "VoiceActivityDetector",
    "WebRtcVad",
    "WindowedVad",
    "create_vad",
]
