"""The audio-driven mouth of a live stream, computed as the audio arrives.

:meth:`MouthDrive.from_audio` sees a whole clip; a live stream (an echo session: the
caller's audio is the avatar's speech) arrives 20 ms at a time and never ends. This
computes the same targets hop by hop (same features, same mapping from sound to mouth
shape), with the clip-wide statistics (noise floor, peak and reference level, the
voice's centroid range) taken over the stream's recent past instead. The mouth target
at stream time ``t`` uses the features at ``t + shift`` (the springs' lag, as
``from_audio``), so it is known once the audio up to ``t + shift + half a window``
has arrived: :attr:`AudioDriveStream.latency` seconds, never more than the lookahead.

Differences from the clip path: a click shorter than 30 ms is not removed from the
gate (that needs audio beyond the lookahead), and the first syllables of a stream are
scaled by the levels seen so far.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from avatar.motion.audio_features import (
    GATE_HANGOVER_S,
    GATE_HYSTERESIS_DB,
    frame_features,
    gate_threshold,
    reference_level,
)
from avatar.motion.drive import (
    CHANNELS,
    FILTER_LAG,
    HOP,
    LEVEL_ATTACK_S,
    LEVEL_RELEASE_S,
    centroid_scale,
    sound_targets,
    voicing_weight,
)

F32 = npt.NDArray[np.float32]

WINDOW_S = 0.025
"""Analysis window of the features (as ``from_audio``)."""
HISTORY_S = 8.0
"""How much of the stream's past sets the gate and the loudness scale."""
_STATS_EVERY = round(0.1 / HOP)
"""Hops between two updates of the statistics (they change slowly)."""
_ACCENT_RISE_S = 0.03
_ACCENT_MIN_GAP_S = 0.25
_ACCENT_THRESHOLD = 0.25


@dataclass(frozen=True)
class DriveRows:
    """Mouth targets of consecutive hops of the stream: row ``i`` is at stream time
    ``(first + i) * HOP`` seconds."""

    first: int
    targets: F32
    """(n, 5): jaw_open, mouth_wide, lip_press, teeth_show, tongue_show."""
    energy: F32
    """(n,) loudness 0..1."""
    accents: tuple[tuple[float, float], ...]
    """(stream time, strength) of syllable onsets among these rows."""

    @property
    def end(self) -> int:
        """Index of the hop after the last row."""
        return self.first + len(self.targets)


class AudioDriveStream:
    """Incremental audio → mouth targets for one stream (see the module docstring)."""

    def __init__(self, sample_rate: int, lookahead_ms: float) -> None:
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        lead = max(0.0, lookahead_ms / 1000.0)
        self.sample_rate = sample_rate
        self._win = max(16, round(WINDOW_S * sample_rate))
        self._half = self._win // 2
        half_window_s = self._half / sample_rate
        self.shift_hops = round(max(0.0, min(FILTER_LAG, lead - half_window_s)) / HOP)
        self.latency = self.shift_hops * HOP + (self._win - self._half) / sample_rate
        """Seconds of audio beyond a hop needed before its target is known."""
        self._hop_n = HOP * sample_rate
        self._buf = np.zeros(self._half, dtype=np.float32)  # zeros before the stream
        self._buf_start = -self._half  # stream sample of _buf[0]
        self._received = 0
        self._next_feature = 0  # next hop whose features are computed
        self._next_row = 0  # next hop whose target is emitted
        keep = round(HISTORY_S / HOP)
        self._db: deque[float] = deque(maxlen=keep)
        self._gated_db: deque[float] = deque(maxlen=keep)
        self._voiced_centroid: deque[float] = deque(maxlen=keep)
        self._feats: deque[tuple[float, float, float, float]] = deque()
        # per hop not yet used by a row: (level, voiced, high_ratio, centroid)
        self._gate_open = False
        self._below = 0
        self._level = 0.0
        self._rise_levels: deque[float] = deque(maxlen=round(_ACCENT_RISE_S / HOP) + 1)
        self._prev_rise = (0.0, 0.0)  # rise of the two hops before the next one
        self._last_accent = -math.inf
        self._mid_scale = (1500.0, 500.0)
        self._open_db: float | None = None
        self._ref_db: float | None = None
        self._stats_at = 0  # the hop at which the statistics were last taken

    @property
    def rows_done(self) -> int:
        """How many hops have their targets emitted."""
        return self._next_row

    def reset(self) -> None:
        """Forget the state of the current sound (after an interruption): the gate
        closes and the loudness follower rests; the level statistics stay."""
        self._gate_open = False
        self._below = 0
        self._level = 0.0

    def feed(self, pcm: npt.ArrayLike) -> DriveRows | None:
        """Add mono float audio; the targets that became known (None: none yet)."""
        audio = np.asarray(pcm, dtype=np.float32).reshape(-1)
        if len(audio) == 0:
            return None
        self._buf = np.concatenate([self._buf, audio])
        self._received += len(audio)
        self._features()
        return self._rows()

    def _features(self) -> None:
        """Compute the features of every hop whose window has fully arrived."""
        centres: list[int] = []
        j = self._next_feature
        while True:
            c = round(j * self._hop_n)
            if c - self._half + self._win > self._received:
                break
            centres.append(c)
            j += 1
        if not centres:
            return
        starts = np.asarray(centres) - self._half - self._buf_start
        frames = self._buf[starts[:, None] + np.arange(self._win)[None, :]]
        db, voicing, centroid, high_ratio = frame_features(frames, self.sample_rate)
        self._db.extend(db.tolist())
        if self._open_db is None or j >= self._stats_at + _STATS_EVERY:
            self._open_db = gate_threshold(np.fromiter(self._db, dtype=np.float32))
        open_db = self._open_db
        close_db = open_db - GATE_HYSTERESIS_DB
        hangover = round(GATE_HANGOVER_S / HOP)
        voiced = voicing_weight(voicing)
        gates = []
        for level_db, v, cen in zip(db.tolist(), voiced.tolist(), centroid.tolist(), strict=True):
            if self._gate_open:
                self._below = self._below + 1 if level_db < close_db else 0
                if self._below > hangover:
                    self._gate_open = False
            elif level_db >= open_db:
                self._gate_open, self._below = True, 0
            gates.append(self._gate_open)
            if self._gate_open:
                self._gated_db.append(level_db)
                if v > 0.5:
                    self._voiced_centroid.append(cen)
        if self._ref_db is None or j >= self._stats_at + _STATS_EVERY:
            self._ref_db = reference_level(np.fromiter(self._gated_db, dtype=np.float32), open_db)
            voiced_centroids = np.fromiter(self._voiced_centroid, dtype=np.float32)
            self._mid_scale = centroid_scale(voiced_centroids)
            self._stats_at = j
        ref_db = self._ref_db
        span = max(ref_db - open_db, 1e-3)
        a_up = 1.0 - math.exp(-HOP / LEVEL_ATTACK_S)
        a_down = 1.0 - math.exp(-HOP / LEVEL_RELEASE_S)
        for i, level_db in enumerate(db.tolist()):
            x = min(1.0, max(0.0, (level_db - open_db + 3.0) / span)) if gates[i] else 0.0
            self._level += (a_up if x > self._level else a_down) * (x - self._level)
            self._feats.append(
                (self._level, float(voiced[i]), float(high_ratio[i]), float(centroid[i]))
            )
        self._next_feature = j
        # keep the samples the next hop's window needs
        drop = round(j * self._hop_n) - self._half - self._buf_start
        if drop > 0:
            self._buf = self._buf[drop:]
            self._buf_start += drop

    def _rows(self) -> DriveRows | None:
        """Emit the targets whose features (``shift_hops`` later) are known."""
        last = self._next_feature - self.shift_hops  # rows [_next_row, last) are known
        n = last - self._next_row
        if n <= 0:
            return None
        # _feats holds the hops from _next_feature - len(_feats) on; row k needs hop
        # k + shift_hops (the hops before the first row's are never needed)
        skip = self._next_row + self.shift_hops - (self._next_feature - len(self._feats))
        for _ in range(skip):
            self._feats.popleft()
        arr = np.asarray([self._feats.popleft() for _ in range(n)], dtype=np.float32)
        level, voiced, high, cen = arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3]
        mid, scale = self._mid_scale
        targets = sound_targets(level, voiced, high, cen, mid, scale)
        first = self._next_row
        accents = self._accents(level, first)
        self._next_row = last
        return DriveRows(first, targets.reshape(n, CHANNELS), level.copy(), accents)

    def _accents(self, level: F32, first: int) -> tuple[tuple[float, float], ...]:
        """Syllable onsets (a loudness rise peaking above a threshold, spaced at least
        ``_ACCENT_MIN_GAP_S``) among rows ``first ..``, as ``from_audio`` finds them
        (found a hop late: a peak needs its next hop)."""
        found: list[tuple[float, float]] = []
        min_gap = round(_ACCENT_MIN_GAP_S / HOP)
        for i, value in enumerate(level.tolist()):
            self._rise_levels.append(value)
            rise = value - self._rise_levels[0] if len(self._rise_levels) > 1 else 0.0
            before, peak = self._prev_rise
            hop = first + i - 1  # the hop whose rise is ``peak``
            onset = peak > _ACCENT_THRESHOLD and peak >= before and peak >= rise
            if onset and hop - self._last_accent >= min_gap:
                found.append((hop * HOP, float(min(1.0, peak / 0.6))))
                self._last_accent = hop
            self._prev_rise = (peak, rise)
        return tuple(found)
