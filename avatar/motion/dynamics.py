"""Small numeric building blocks of the world model: springs, noise, easing curves."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


class SpringBank:
    """A bank of independent damped second-order systems (one per channel).

    Each channel obeys ``x'' = w^2 (target - x) - 2 zeta w x'`` (critically damped at
    ``zeta = 1``: the fastest approach with no overshoot). Targets are held constant
    over each substep and the update is the exact solution for that (zero-order
    hold), so it is stable for any step; the transition over a whole frame of ``m``
    substeps is precomputed once per (m, h) and applied as one linear map.
    """

    def __init__(self, omega: npt.ArrayLike, zeta: npt.ArrayLike) -> None:
        self.omega = np.asarray(omega, dtype=np.float64)
        self.zeta = np.broadcast_to(np.asarray(zeta, dtype=np.float64), self.omega.shape).copy()
        self.x = np.zeros_like(self.omega)
        self.v = np.zeros_like(self.omega)
        self._cache: dict[tuple[int, float], tuple[FloatArray, FloatArray, FloatArray]] = {}

    def _transition(self, m: int, h: float) -> tuple[FloatArray, FloatArray, FloatArray]:
        key = (m, round(h, 12))
        found = self._cache.get(key)
        if found is not None:
            return found
        c = len(self.omega)
        phi = np.empty((c, 2, 2))
        for i, (w, z) in enumerate(zip(self.omega, self.zeta, strict=True)):
            phi[i] = spring_transition(float(w), float(z), h)
        gamma = np.stack([1.0 - phi[:, 0, 0], -phi[:, 1, 0]], axis=1)  # (c, 2)
        power = np.broadcast_to(np.eye(2), (c, 2, 2)).copy()
        gains = np.empty((c, 2, m))
        for k in range(m - 1, -1, -1):  # gain of input k is phi^(m-1-k) @ gamma
            gains[:, :, k] = np.einsum("cij,cj->ci", power, gamma)
            power = np.einsum("cij,cjk->cik", power, phi)
        found = (power, gains[:, 0, :], gains[:, 1, :])
        self._cache[key] = found
        return found

    def advance(self, targets: FloatArray, h: float) -> None:
        """Advance ``m`` substeps of ``h`` seconds; ``targets`` is (m, channels)."""
        m = targets.shape[0]
        power, gx, gv = self._transition(m, h)
        x, v = self.x, self.v
        drive_x = np.einsum("cm,mc->c", gx, targets)
        drive_v = np.einsum("cm,mc->c", gv, targets)
        self.x = power[:, 0, 0] * x + power[:, 0, 1] * v + drive_x
        self.v = power[:, 1, 0] * x + power[:, 1, 1] * v + drive_v

    def kick(self, channel: int, velocity: float) -> None:
        """Add an impulse: a sudden change of one channel's velocity (a nod, a jolt)."""
        self.v[channel] += velocity


def spring_transition(omega: float, zeta: float, h: float) -> FloatArray:
    """Exact 2×2 map of (x - target, v) over ``h`` seconds for one damped spring."""
    a = zeta * omega
    decay_h = math.exp(-a * h)
    if abs(zeta - 1.0) < 1e-9:
        return decay_h * np.array([[1.0 + omega * h, h], [-omega * omega * h, 1.0 - omega * h]])
    if zeta < 1.0:
        wd = omega * math.sqrt(1.0 - zeta * zeta)
        c, s = math.cos(wd * h), math.sin(wd * h)
    else:
        wd = omega * math.sqrt(zeta * zeta - 1.0)
        c, s = math.cosh(wd * h), math.sinh(wd * h)
    return decay_h * np.array([[c + a / wd * s, s / wd], [-omega * omega / wd * s, c - a / wd * s]])


class NormalStream:
    """Standard normal draws from a Generator, fetched in blocks (fast, deterministic)."""

    def __init__(self, rng: np.random.Generator, block: int = 1024) -> None:
        self._rng = rng
        self._block = block
        self._buf: list[float] = []
        self._i = 0

    def take(self, count: int) -> FloatArray:
        """``count`` N(0, 1) draws as an array."""
        if self._i + count > len(self._buf):
            self._buf = self._buf[self._i :] + self._rng.standard_normal(self._block).tolist()
            self._i = 0
        out = np.array(self._buf[self._i : self._i + count])
        self._i += count
        return out

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
        self._dt = -1.0
        self._a = np.ones(channels)
        self._b = np.zeros(channels)

    def step(self, noise: FloatArray, sigma: FloatArray, dt: float) -> FloatArray:
        """Advance by ``dt`` with N(0,1) draws ``noise``; return the new values."""
        if dt != self._dt:
            self._dt = dt
            self._a = np.exp(-dt / self.tau)
            self._b = np.sqrt(1.0 - self._a * self._a)
        self.x = self._a * self.x + sigma * self._b * noise
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
