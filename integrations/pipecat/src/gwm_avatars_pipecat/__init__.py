"""GWM Avatars as the face of a pipecat voice agent.

:class:`GWMAvatarVideoService` is a pipecat frame processor: it takes the pipeline's
TTS audio, sends it to an *echo* session of a GWM Avatars service over WebRTC, and
pushes back what the service returns: the same speech (``SpeechOutputAudioRawFrame``)
and the face animated to it (``OutputImageRawFrame``), on one media timeline.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gwm_avatars_pipecat.config import SessionOptions
    from gwm_avatars_pipecat.service import GWMAvatarVideoService
    from gwm_avatars_pipecat.session import AvatarSessionError, EchoSession, SessionLostError

# Imported on first use, so that ``python -m gwm_avatars_pipecat.render`` can set up
# its log before pipecat is imported.
_WHERE = {
    "AvatarSessionError": "session",
    "EchoSession": "session",
    "GWMAvatarVideoService": "service",
    "SessionLostError": "session",
    "SessionOptions": "config",
}

__all__ = [
    "AvatarSessionError",
    "EchoSession",
    "GWMAvatarVideoService",
    "SessionLostError",
    "SessionOptions",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
