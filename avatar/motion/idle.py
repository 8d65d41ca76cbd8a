"""Idle life: blinks, gaze saccades and fixations, breathing.

Each process is a small seeded state machine advanced with the frame clock; all
randomness comes from the world model's one ``numpy.random.Generator``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from avatar.motion.dynamics import min_jerk, smoothstep

BLINK_MIN_S = 0.14
BLINK_MAX_S = 0.30
BLINK_REFRACTORY_S = 0.6
DOUBLE_BLINK_P = 0.08
PULL_S = 1.5
"""A blink due this soon may be brought forward to coincide with a gaze shift."""


@dataclass
class _Blink:
    start: float
    duration: float


class BlinkProcess:
    """Blinks as a renewal process with a refractory period.

    Intervals are the refractory period plus an exponential wait, so the mean rate is
    ``rate_per_min`` (scaled per call by the mode). Each blink lasts 140-300 ms: a
    fast close, a short hold, a slower opening. Now and then a second blink follows
    the first closely (a double blink). :meth:`trigger` starts a blink now (the blink
    that often accompanies a large gaze shift) unless one happened just before.
    """

    def __init__(self, rate_per_min: float, rng: np.random.Generator) -> None:
        self.rate_per_min = rate_per_min
        self._rng = rng
        self._current: _Blink | None = None
        self._last_end = -math.inf
        self._next = self._interval(1.0) * float(rng.uniform(0.2, 1.0))

    def _interval(self, rate_factor: float) -> float:
        mean = 60.0 / max(self.rate_per_min * rate_factor, 1e-3)
        wait = max(mean - BLINK_REFRACTORY_S - 0.2, 0.05)
        return BLINK_REFRACTORY_S + float(self._rng.exponential(wait))

    def _duration(self) -> float:
        d = float(self._rng.lognormal(math.log(0.2), 0.25))
        return min(max(d, BLINK_MIN_S), BLINK_MAX_S)

    def _start(self, t: float, rate_factor: float) -> None:
        blink = _Blink(t, self._duration())
        self._current = blink
        end = blink.start + blink.duration
        if float(self._rng.uniform()) < DOUBLE_BLINK_P:
            self._next = end + float(self._rng.uniform(0.08, 0.18))
        else:
            self._next = end + self._interval(rate_factor)

    def trigger(self, t: float, rate_factor: float) -> bool:
        """Bring the next blink forward to ``t`` (e.g. with a large gaze shift).

        Only a blink due within the next ``PULL_S`` seconds moves, and only once the
        refractory period has passed, so the overall rate stays as configured.
        """
        if self._current is not None or t - self._last_end < BLINK_REFRACTORY_S:
            return False
        if self._next - t > PULL_S:
            return False
        self._start(t, rate_factor)
        return True

    def update(self, t: float, rate_factor: float) -> float:
        """The eyelid closure (0 open .. 1 closed) at time ``t``."""
        if self._current is None and t >= self._next:
            self._start(t, rate_factor)
        blink = self._current
        if blink is None:
            return 0.0
        u = (t - blink.start) / blink.duration
        if u >= 1.0:
            self._last_end = blink.start + blink.duration
            self._current = None
            return 0.0
        return blink_profile(u)


def blink_profile(u: float) -> float:
    """Lid closure over one blink, ``u`` in 0..1: close (30%), hold (15%), open (55%)."""
    if u < 0.3:
        return smoothstep(u / 0.3)
    if u < 0.45:
        return 1.0
    return 1.0 - smoothstep((u - 0.45) / 0.55)


@dataclass(frozen=True)
class GazeStyle:
    """How the eyes wander in one mode."""

    center: tuple[float, float]
    spread: float
    fixation_s: float
    glance_p: float
    """Chance that a fixation is a glance away (off the centre by about 0.4)."""


class GazeProcess:
    """Fixations and saccades.

    Fixations last a log-normal time around the mode's mean; a saccade moves the
    eyes to a new target along a minimum-jerk path whose duration grows with its
    amplitude (the saccadic main sequence: ~25 ms + ~45 ms per unit, 1 unit ≈ 20°).
    """

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self.pos = (0.0, 0.0)
        self._from = (0.0, 0.0)
        self._to = (0.0, 0.0)
        self._t_start = 0.0
        self._dur = 0.0
        self._next = float(rng.uniform(0.3, 1.2))
        self.last_amplitude = 0.0

    def redirect(self, t: float, delay: float) -> None:
        """Make the next saccade happen soon (after a mode change)."""
        self._next = min(self._next, t + delay)

    def update(self, t: float, style: GazeStyle) -> tuple[float, float]:
        """Gaze at time ``t``; starts a new saccade when the fixation is over.

        ``last_amplitude`` is the size of a saccade started by this call, else 0.
        """
        self.last_amplitude = 0.0
        if t >= self._next:
            cx, cy = style.center
            spread = style.spread
            if float(self._rng.uniform()) < style.glance_p:
                ang = float(self._rng.uniform(0.0, 2.0 * math.pi))
                cx, cy = cx + 0.4 * math.cos(ang), cy + 0.25 * math.sin(ang)
            tx = cx + spread * float(self._rng.standard_normal())
            ty = cy + 0.6 * spread * float(self._rng.standard_normal())
            tx, ty = max(-1.0, min(1.0, tx)), max(-1.0, min(1.0, ty))
            amp = math.hypot(tx - self.pos[0], ty - self.pos[1])
            self._from, self._to = self.pos, (tx, ty)
            self._t_start = t
            self._dur = 0.025 + 0.045 * amp
            fix = float(self._rng.lognormal(math.log(style.fixation_s), 0.45))
            self._next = t + self._dur + min(max(fix, 0.2), 4.0)
            self.last_amplitude = amp
        u = (t - self._t_start) / self._dur if self._dur > 0 else 1.0
        k = min_jerk(u)
        self.pos = (
            self._from[0] + k * (self._to[0] - self._from[0]),
            self._from[1] + k * (self._to[1] - self._from[1]),
        )
        return self.pos


class Breathing:
    """A breathing cycle: quicker inhale than exhale; the period set per step."""

    def __init__(self, phase: float) -> None:
        self.phase = phase

    def update(self, dt: float, period_s: float) -> float:
        """Advance by ``dt`` and return the chest rise 0..1."""
        self.phase = (self.phase + dt / period_s) % 1.0
        p = self.phase
        if p < 0.4:  # inhale
            return smoothstep(p / 0.4)
        return 1.0 - smoothstep((p - 0.4) / 0.6)
