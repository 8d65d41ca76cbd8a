"""Small numeric building blocks of the world model: springs, noise, easing curves."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


class SpringBank:
    """A bank of independent damped second-order systems (one per channel).

    Each channel obeys ``x'' = w^2 (target - x) - 2 zeta w x'`` (critically damped at
    ``zeta = 1``: the fastest approach with no overshoot). It is integrated with
    semi-implicit Euler on fixed substeps, which is stable while ``w * h < 2``.
    """

    def __init__(self, omega: npt.ArrayLike, zeta: npt.ArrayLike) -> None:
        self.omega = np.asarray(omega, dtype=np.float64)
        self.zeta = np.broadcast_to(np.asarray(zeta, dtype=np.float64), self.omega.shape).copy()
        self.x = np.zeros_like(self.omega)
        self.v = np.zeros_like(self.omega)
        self._k = self.omega**2
        self._c = 2.0 * self.zeta * self.omega

    def step(self, target: FloatArray, h: float) -> None:
        """Advance every channel by ``h`` seconds towards ``target``."""
        self.v += h * (self._k * (target - self.x) - self._c * self.v)
        self.x += h * self.v

    def kick(self, channel: int, velocity: float) -> None:
        """Add an impulse: a sudden change of one channel's velocity (a nod, a jolt)."""
        self.v[channel] += velocity


class NormalStream:
    """Standard normal draws from a Generator, fetched in blocks (fast, deterministic)."""

    def __init__(self, rng: np.random.Generator, block: int = 1024) -> None:
        self._rng = rng
        self._block = block
        self._buf: list[float] = []
        self._i = 0

    def next(self) -> float:
        """One N(0, 1) draw."""
        if self._i >= len(self._buf):
            self._buf = self._rng.standard_normal(self._block).tolist()
            self._i = 0
        value = self._buf[self._i]
        self._i += 1
        return value


class OrnsteinUhlenbeck:
    """Mean-reverting noise with stationary standard deviation ``sigma`` and time scale ``tau``."""

    def __init__(self, channels: int, tau: npt.ArrayLike) -> None:
        self.x = np.zeros(channels)
        self.tau = np.broadcast_to(np.asarray(tau, dtype=np.float64), (channels,)).copy()

    def step(self, noise: FloatArray, sigma: FloatArray, dt: float) -> FloatArray:
        """Advance by ``dt`` with N(0,1) draws ``noise``; return the new values."""
        a = np.exp(-dt / self.tau)
        self.x = a * self.x + sigma * np.sqrt(1.0 - a * a) * noise
        return self.x


def smoothstep(u: float) -> float:
    """0 at u<=0, 1 at u>=1, smooth (zero slope) at both ends."""
    if u <= 0.0:
        return 0.0
    if u >= 1.0:
        return 1.0
    return u * u * (3.0 - 2.0 * u)


def min_jerk(u: float) -> float:
    """The minimum-jerk profile from 0 to 1 (the shape of a saccade or reach)."""
    if u <= 0.0:
        return 0.0
    if u >= 1.0:
        return 1.0
    return u * u * u * (10.0 - 15.0 * u + 6.0 * u * u)


def decay(dt: float, tau: float) -> float:
    """The factor by which a first-order system forgets in ``dt`` seconds."""
    return math.exp(-dt / tau)
