"""The outbound audio track of an echo session: the agent's speech, on its own clock.

The track sends a 20 ms frame every 20 ms from its first ``recv`` on (sample-count
timing, never drifting with the event loop): the speech queued with :meth:`push`, and
silence when there is none, as a microphone would. :meth:`clear` drops what is queued
(the agent was interrupted).
"""

from __future__ import annotations

import asyncio
import fractions
import time
from collections import deque

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from gwm_avatars_pipecat.audio import I16
from gwm_avatars_pipecat.config import FRAME_SAMPLES, RATE

_TIME_BASE = fractions.Fraction(1, RATE)


class SpeechTrack(MediaStreamTrack):
    """Plays queued 48 kHz mono 16-bit speech in real time, else silence."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._queue: deque[I16] = deque()
        self._queued = 0
        self._frames = 0
        self._t0: float | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def queued_samples(self) -> int:
        """Samples of speech still to be sent."""
        return self._queued

    @property
    def idle(self) -> bool:
        """No speech left to send."""
        return self._queued == 0

    def push(self, pcm: I16) -> None:
        """Queue speech (48 kHz mono int16) after what is queued."""
        if pcm.size:
            self._queue.append(np.ascontiguousarray(pcm, dtype=np.int16))
            self._queued += int(pcm.size)
            self._idle.clear()

    def clear(self) -> int:
        """Drop the queued speech; returns how many samples were dropped."""
        dropped = self._queued
        self._queue.clear()
        self._queued = 0
        self._idle.set()
        return dropped

    async def wait_idle(self) -> None:
        """Until the queued speech has been sent (or dropped)."""
        await self._idle.wait()

    def _take(self, n: int) -> I16:
        out = np.zeros(n, dtype=np.int16)
        filled = 0
        while filled < n and self._queue:
            head = self._queue[0]
            take = min(n - filled, len(head))
            out[filled : filled + take] = head[:take]
            filled += take
            if take == len(head):
                self._queue.popleft()
            else:
                self._queue[0] = head[take:]
        self._queued -= filled
        if self._queued == 0:
            self._idle.set()
        return out

    async def recv(self) -> av.AudioFrame:
        """The next 20 ms frame, when it is due."""
        if self.readyState != "live":
            raise MediaStreamError
        if self._t0 is None:
            self._t0 = time.monotonic()
        delay = self._t0 + self._frames * FRAME_SAMPLES / RATE - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        pcm = self._take(FRAME_SAMPLES)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._frames * FRAME_SAMPLES
        frame.time_base = _TIME_BASE
        self._frames += 1
        return frame
