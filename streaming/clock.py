"""One media clock per session: audio samples and video frames on one timeline.

Time zero is when the session's outbound media starts. Audio frame ``k`` (20 ms) holds
samples ``[k*spf, (k+1)*spf)`` and is due at ``k*spf/sample_rate`` seconds; video frame
``n`` is due at ``n/fps`` seconds and shows the avatar for the audio sample
``n*sample_rate/fps``. Every timestamp is derived from these counts, never from sleeps.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

VIDEO_CLOCK_RATE = 90_000


@dataclass
class MediaClock:
    """The session's media timeline, anchored to a monotonic wall clock at start."""

    sample_rate: int = 48_000
    fps: int = 25
    frame_ms: int = 20
    now: Callable[[], float] = field(default=time.monotonic)
    _t0: float | None = None

    @property
    def samples_per_frame(self) -> int:
        """Audio samples in one outbound audio frame."""
        return self.sample_rate * self.frame_ms // 1000

    @property
    def audio_time_base(self) -> Fraction:
        """Time base of audio pts (one sample)."""
        return Fraction(1, self.sample_rate)

    @property
    def video_time_base(self) -> Fraction:
        """Time base of video pts (the RTP video clock, 90 kHz)."""
        return Fraction(1, VIDEO_CLOCK_RATE)

    @property
    def started(self) -> bool:
        """Whether the timeline is anchored."""
        return self._t0 is not None

    def start(self) -> None:
        """Anchor time zero to now (idempotent)."""
        if self._t0 is None:
            self._t0 = self.now()

    def elapsed(self) -> float:
        """Seconds of media time since start (0 before start)."""
        return 0.0 if self._t0 is None else max(0.0, self.now() - self._t0)

    def sample_now(self) -> int:
        """The audio sample position playing now."""
        return int(self.elapsed() * self.sample_rate)

    def audio_frame_time(self, k: int) -> float:
        """Media time at which audio frame ``k`` is due."""
        return k * self.samples_per_frame / self.sample_rate

    def video_frame_time(self, n: int) -> float:
        """Media time at which video frame ``n`` is due."""
        return n / self.fps

    def video_pts(self, n: int) -> int:
        """pts of video frame ``n`` in the 90 kHz video time base."""
        return n * VIDEO_CLOCK_RATE // self.fps

    def video_frame_at(self, t: float) -> int:
        """Index of the video frame shown at media time ``t``."""
        return int(t * self.fps)

    async def wait_until(self, media_time: float) -> float:
        """Sleep until ``media_time``; returns how late we woke (seconds, >= 0)."""
        self.start()
        assert self._t0 is not None
        delay = self._t0 + media_time - self.now()
        if delay > 0:
            await asyncio.sleep(delay)
            return 0.0
        return -delay
