"""What an echo-session client received, put back on one timeline (tests and benchmark).

The client keeps each received frame's arrival time and its pts (the sender's RTP clock,
from an arbitrary start per stream). Within a stream, pts place the frames exactly
(gaps and jitter do not shift them); across the two streams, each stream's median
``arrival - pts`` says when its media time reached the client, so video frame ``n`` is
paired with the audio that arrived with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from avatar.analysis import mouth_opening
from streaming.client import RATE, Received

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Timeline:
    """The received audio as one array and each video frame's place in it."""

    audio: npt.NDArray[np.float32]
    """48 kHz mono; sample ``i`` reached the client at ``audio_t0 + i / RATE``."""
    audio_t0: float
    video_t: F64
    """When each video frame reached the client (monotonic seconds, from its pts)."""

    def at(self, t: float | F64) -> npt.NDArray[np.int64]:
        """Audio sample index that reached the client at ``t``."""
        return np.round((np.asarray(t) - self.audio_t0) * RATE).astype(np.int64)

    def envelope(self, half_s: float = 0.02) -> F64:
        """RMS of the received audio around each video frame (±``half_s``)."""
        out = np.zeros(len(self.video_t))
        half = round(half_s * RATE)
        for n, i in enumerate(self.at(self.video_t).tolist()):
            seg = self.audio[max(0, i - half) : max(0, i + half)].astype(np.float64)
            out[n] = float(np.sqrt(np.mean(seg * seg))) if len(seg) else 0.0
        return out


def timeline(received: Received, around: tuple[float, float] | None = None) -> Timeline:
    """Put what a client received on one timeline (see the module docstring).

    ``around``: take each stream's arrival delay from the frames that arrived in this
    window only (monotonic seconds): on a loaded machine the delays drift over a call.
    """
    a_pts = np.asarray(received.audio_pts)
    a_arr = np.asarray([t for t, _ in received.audio])
    starts = np.round((a_pts - a_pts[0]) * RATE).astype(np.int64)
    total = int(starts[-1]) + len(received.audio[-1][1])
    audio = np.zeros(total, dtype=np.float32)
    for s, (_, pcm) in zip(starts.tolist(), received.audio, strict=True):
        audio[s : s + len(pcm)] = pcm
    v_pts = np.asarray(received.video_pts)
    v_arr = np.asarray([t for t, _ in received.video])
    v_rel = v_pts - v_pts[0]
    a_in = _within(a_arr, around)
    v_in = _within(v_arr, around)
    audio_t0 = float(np.median((a_arr - (a_pts - a_pts[0]))[a_in]))
    video_t = v_rel + float(np.median((v_arr - v_rel)[v_in]))
    return Timeline(audio, audio_t0, video_t)


def _within(times: F64, around: tuple[float, float] | None) -> npt.NDArray[np.bool_]:
    """Which ``times`` are in the window (all of them without one, or if none are)."""
    if around is None:
        return np.ones(len(times), dtype=bool)
    inside = (times >= around[0]) & (times <= around[1])
    return inside if inside.any() else np.ones(len(times), dtype=bool)


def openings(
    received: Received, box: tuple[int, int, int, int], rest: npt.NDArray[np.uint8]
) -> F64:
    """How open the mouth looks in each received video frame (0 for frames not kept)."""
    return np.array(
        [mouth_opening(img, box, rest=rest) if img.size else 0.0 for _, img in received.video]
    )


def loud_span(pcm: npt.NDArray[np.float32], rate: int, level: float = 0.02) -> tuple[int, int]:
    """First and last sample louder than ``level`` (the speech in a clip)."""
    loud = np.flatnonzero(np.abs(pcm) > level)
    if len(loud) == 0:
        return 0, 0
    return int(loud[0]), int(loud[-1])
