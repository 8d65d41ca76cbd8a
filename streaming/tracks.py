"""Outbound aiortc tracks paced by the session's media clock.

The audio track delivers 20 ms frames of 48 kHz mono: reply speech from the playout,
silence between replies. The video track delivers frames at the configured fps: for
frame ``n`` it steps the world model (the state for media time ``n/fps``), renders it
off the event loop, and releases it at its due time. Both take their timestamps from
frame counts on the one clock, so video frame ``n`` shows the mouth for the audio
sample ``n*48000/fps``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from avatar.motion import WorldModel
from avatar.render import Renderer
from avatar.render.reuse import FrameReuse
from avatar.state import AvatarState
from streaming.clock import MediaClock
from streaming.playout import AudioPlayout

log = logging.getLogger(__name__)

VIDEO_STEPS_AHEAD = 2
"""How many frame periods before its due time the video track may step the world model
for a frame: frame ``n+1`` starts rendering once frame ``n`` is rendered, which can be
as soon as frame ``n-1`` has been released at its due time."""


def speech_lead_s(fps: int, lookahead_ms: float) -> float:
    """How far ahead of the playing sample new speech must be placed so that no frame
    that shows it, or the mouth preparing it (``lookahead_ms`` before its sound), has
    been stepped already: the video track's look-ahead plus the mouth's."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if not 0 <= lookahead_ms <= 1000:
        raise ValueError(f"lookahead_ms must be within 0..1000, got {lookahead_ms}")
    return VIDEO_STEPS_AHEAD / fps + lookahead_ms / 1000.0


@dataclass
class TrackStats:
    """Counters of one outbound track."""

    frames: int = 0
    late_frames: int = 0
    dropped_frames: int = 0
    reused_frames: int = 0
    """Video frames sent as the previous frame again (the state barely moved)."""


@dataclass
class _Pending:
    """A video frame on its way: its index and image (rendering, or reused)."""

    n: int
    image: asyncio.Future[np.ndarray]
    reused: bool = False


class AvatarAudioTrack(MediaStreamTrack):
    """48 kHz mono audio from the playout, one 20 ms frame per clock tick."""

    kind = "audio"

    def __init__(self, clock: MediaClock, playout: AudioPlayout) -> None:
        super().__init__()
        self._clock = clock
        self._playout = playout
        self._k = 0
        self.stats = TrackStats()

    async def recv(self) -> av.AudioFrame:
        """The next audio frame, released at its due time."""
        if self.readyState != "live":
            raise MediaStreamError
        k = self._k
        self._k += 1
        late = await self._clock.wait_until(self._clock.audio_frame_time(k))
        if late > 0.1:
            self.stats.late_frames += 1
        spf = self._clock.samples_per_frame
        pcm = self._playout.pull(k * spf, spf)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self._clock.sample_rate
        frame.pts = k * spf
        frame.time_base = self._clock.audio_time_base
        self.stats.frames += 1
        return frame


class AvatarVideoTrack(MediaStreamTrack):
    """Video of the avatar at the clock's fps, one world-model step per frame.

    Rendering is pipelined one frame ahead: while frame ``n`` is being encoded and
    sent, frame ``n+1`` is already rendering in the executor. The world model is
    stepped when a frame's render starts, up to :data:`VIDEO_STEPS_AHEAD` frame periods
    before it is due, so speech must be scheduled at least that far ahead
    (:func:`speech_lead_s`; the speaker does). With ``reuse``, a frame whose state
    barely moved from the last rendered one (idle, listening) is that frame again, not
    rendered: every frame is still sent, on the same clock.
    """

    kind = "video"

    def __init__(
        self,
        clock: MediaClock,
        world: WorldModel,
        renderer: Renderer,
        executor: Executor | None = None,
        on_state: Callable[[AvatarState], None] | None = None,
        reuse: FrameReuse | None = None,
    ) -> None:
        super().__init__()
        self._clock = clock
        self._world = world
        self._renderer = renderer
        self._executor = executor
        self._on_state = on_state
        self._reuse = reuse
        self._n = 0  # index of the next frame whose render will start
        self._ahead: _Pending | None = None
        self.stats = TrackStats()

    def _start_render(self) -> _Pending:
        # If we fell behind (slow renders), skip frames instead of drifting: the
        # world model still steps through every frame so motion stays on the clock.
        due_now = self._clock.video_frame_at(self._clock.elapsed())
        behind = due_now - self._n
        if behind > 1:
            for _ in range(behind):
                self._world.step()
            self.stats.dropped_frames += behind
            self._n += behind
        n = self._n
        self._n += 1
        state = self._world.step()
        if self._on_state is not None:
            self._on_state(state)
        loop = asyncio.get_running_loop()
        if self._reuse is None:
            return _Pending(n, loop.run_in_executor(self._executor, self._renderer.render, state))
        # the previous frame's render has finished: the reuse cache is not shared
        reused = self._reuse.lookup(state)
        if reused is not None:
            done: asyncio.Future[np.ndarray] = loop.create_future()
            done.set_result(reused)
            return _Pending(n, done, reused=True)
        return _Pending(n, loop.run_in_executor(self._executor, self._render_and_keep, state))

    def _render_and_keep(self, state: AvatarState) -> np.ndarray:
        """Render ``state`` (in the executor) and keep the frame for reuse."""
        image = self._renderer.render(state)
        if self._reuse is not None:
            self._reuse.remember(state, image)
        return image

    async def recv(self) -> av.VideoFrame:
        """The next video frame, released at its due time."""
        if self.readyState != "live":
            raise MediaStreamError
        self._clock.start()
        ahead = self._ahead if self._ahead is not None else self._start_render()
        n, pending = ahead.n, ahead.image
        self._ahead = None
        image = await pending
        self._ahead = self._start_render()
        late = await self._clock.wait_until(self._clock.video_frame_time(n))
        if late > 1.0 / self._clock.fps:
            self.stats.late_frames += 1
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = self._clock.video_pts(n)
        frame.time_base = self._clock.video_time_base
        self.stats.frames += 1
        self.stats.reused_frames += ahead.reused
        return frame

    def stop(self) -> None:
        """Stop the track and drop the frame rendering ahead."""
        if self._ahead is not None:
            self._ahead.image.cancel()
            self._ahead = None
        super().stop()
