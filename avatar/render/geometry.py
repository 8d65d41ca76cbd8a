"""Small numeric helpers for building warp fields: thin-plate splines, curves, ramps."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


def smoothstep(x: npt.ArrayLike) -> F64:
    """0 below 0, 1 above 1, a C1 S-curve between."""
    t = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _tps_kernel(r2: F64) -> F64:
    with np.errstate(divide="ignore", invalid="ignore"):
        k = 0.5 * r2 * np.log(r2)
    return np.nan_to_num(k, nan=0.0, posinf=0.0, neginf=0.0)


def tps_field(
    points: npt.ArrayLike,
    values: npt.ArrayLike,
    query: npt.ArrayLike,
    *,
    scale: float,
    smoothing: float = 1e-4,
) -> F64:
    """Thin-plate-spline interpolation of ``values`` (N×D) at ``points`` (N×2), at ``query``.

    Coordinates are divided by ``scale`` (e.g. the face height) for conditioning;
    ``smoothing`` relaxes exact interpolation slightly, which keeps close points with
    different values from producing ripples.
    """
    p = np.asarray(points, np.float64) / scale
    v = np.asarray(values, np.float64)
    q = np.asarray(query, np.float64).reshape(-1, 2) / scale
    n = len(p)
    d2 = ((p[:, None, :] - p[None, :, :]) ** 2).sum(-1)
    a = np.zeros((n + 3, n + 3))
    a[:n, :n] = _tps_kernel(d2) + smoothing * np.eye(n)
    a[:n, n] = 1.0
    a[:n, n + 1 :] = p
    a[n, :n] = 1.0
    a[n + 1 :, :n] = p.T
    rhs = np.zeros((n + 3, v.shape[1]))
    rhs[:n] = v
    coef = np.linalg.lstsq(a, rhs, rcond=None)[0]
    out = np.empty((len(q), v.shape[1]))
    step = 65536
    for s in range(0, len(q), step):
        qq = q[s : s + step]
        k = _tps_kernel(((qq[:, None, :] - p[None, :, :]) ** 2).sum(-1))
        out[s : s + step] = k @ coef[:n] + coef[n] + qq @ coef[n + 1 :]
    return out


def curve_y(contour: npt.ArrayLike, xs: npt.ArrayLike) -> F64:
    """y of a left-to-right contour at columns ``xs``; beyond its ends, the end-to-end line."""
    c = np.asarray(contour, np.float64)
    c = c[np.argsort(c[:, 0], kind="stable")]
    x = np.asarray(xs, np.float64)
    y = np.interp(x, c[:, 0], c[:, 1])
    (xa, ya), (xb, yb) = c[0], c[-1]
    slope = (yb - ya) / max(xb - xa, 1e-6)
    y = np.where(x < xa, ya + (x - xa) * slope, y)
    return np.where(x > xb, yb + (x - xb) * slope, y)


def box_ring(x0: float, y0: float, x1: float, y1: float, step: float) -> F64:
    """Points spaced about ``step`` apart along the border of a box."""
    nx = max(2, int(np.ceil((x1 - x0) / step)) + 1)
    ny = max(2, int(np.ceil((y1 - y0) / step)) + 1)
    xs, ys = np.linspace(x0, x1, nx), np.linspace(y0, y1, ny)
    pts = [np.c_[xs, np.full(nx, y0)], np.c_[xs, np.full(nx, y1)]]
    pts += [np.c_[np.full(ny - 2, x0), ys[1:-1]], np.c_[np.full(ny - 2, x1), ys[1:-1]]]
    return np.vstack(pts)
