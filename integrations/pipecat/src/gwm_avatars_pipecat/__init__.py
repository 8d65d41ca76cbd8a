"""GWM Avatars as the face of a pipecat voice agent.

:class:`GWMAvatarVideoService` is a pipecat frame processor: it takes the pipeline's
TTS audio, sends it to an *echo* session of a GWM Avatars service over WebRTC, and
pushes back what the service returns: the same speech (``SpeechOutputAudioRawFrame``)
and the face animated to it (``OutputImageRawFrame``), on one media timeline.
"""

from gwm_avatars_pipecat.config import SessionOptions
from gwm_avatars_pipecat.service import GWMAvatarVideoService
from gwm_avatars_pipecat.session import AvatarSessionError, EchoSession, SessionLostError

__all__ = [
    "AvatarSessionError",
    "EchoSession",
    "GWMAvatarVideoService",
    "SessionLostError",
    "SessionOptions",
]
