"""The plugin's defaults, in one place, and the WebRTC media constants they derive from."""

from __future__ import annotations

from dataclasses import dataclass

RATE = 48_000
"""Sample rate of the audio on the call, both ways (Opus runs at 48 kHz)."""
FRAME_MS = 20
"""One outbound audio frame."""
FRAME_SAMPLES = RATE * FRAME_MS // 1000


@dataclass(frozen=True)
class SessionOptions:
    """How the plugin talks to the avatar service (every timeout bounds a wait)."""

    connect_timeout_s: float = 10.0
    """POST /v1/sessions, ICE and the data channel together; past it: an ErrorFrame."""
    media_timeout_s: float = 3.0
    """The service sends audio and video all the time (silence too): none for this
    long means the session is lost."""
    end_tail_s: float = 1.0
    """On EndFrame, once the last speech has been sent: how long at least to keep
    receiving, so that its echo (the service's look-ahead plus the network) comes back."""
    end_quiet_s: float = 0.3
    """... and then until what comes back has been quiet this long (the service's delay
    grows when the caller's audio comes late) ..."""
    end_tail_max_s: float = 3.0
    """... but no longer than this after the last speech was sent."""
    quiet_level: int = 300
    """Returned audio under this peak (16-bit) counts as quiet."""
    end_timeout_s: float = 30.0
    """On EndFrame: the longest wait for buffered speech to be sent."""
    hangup_timeout_s: float = 2.0
    """DELETE /v1/sessions/{id} on close (best effort)."""

    def __post_init__(self) -> None:
        for name in (
            "connect_timeout_s",
            "media_timeout_s",
            "end_timeout_s",
            "hangup_timeout_s",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("end_tail_s", "end_quiet_s", "end_tail_max_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.end_tail_max_s < self.end_tail_s:
            raise ValueError("end_tail_max_s must be >= end_tail_s")
