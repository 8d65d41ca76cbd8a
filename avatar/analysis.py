"""Measures on rendered pixels and audio, for tests and benchmarks.

Lip sync is checked on what a viewer sees: how open the mouth looks in each frame
(:func:`mouth_opening`) against how loud the speech is around that frame
(:func:`speech_envelope`), compared with :func:`best_lag_correlation`. Blinks are
found as runs of closed-eye frames (:func:`blink_events`) in a per-frame eye measure
(:func:`eye_openness`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from models.audio import as_float_mono

Box = tuple[int, int, int, int]
"""A pixel box ``(x0, y0, x1, y1)``: columns x0..x1-1, rows y0..y1-1."""
F32 = npt.NDArray[np.float32]


def pad_box(box: Sequence[float], pad: float, shape: tuple[int, ...]) -> Box:
    """``box`` grown by ``pad`` of its size on every side, clipped to an image of ``shape``."""
    x0, y0, x1, y1 = (float(v) for v in box)
    px, py = pad * (x1 - x0), pad * (y1 - y0)
    h, w = int(shape[0]), int(shape[1])
    return (
        max(0, int(np.floor(x0 - px))),
        max(0, int(np.floor(y0 - py))),
        min(w, int(np.ceil(x1 + px))),
        min(h, int(np.ceil(y1 + py))),
    )


def luminance(rgb: npt.NDArray[np.uint8]) -> F32:
    """Rec. 601 luma of an RGB image (H×W×3 uint8) as float32 0..255."""
    a = rgb.astype(np.float32)
    return (0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]).astype(np.float32)


def dark_threshold(
    rest_frame: npt.NDArray[np.uint8], box: Sequence[float], pad: float = 0.2
) -> float:
    """A luma level that separates a mouth's dark interior from lips and skin.

    Taken from the rest (mouth closed) frame: a fraction of the median luma around
    the mouth, so it adapts to the portrait's lighting and skin tone.
    """
    x0, y0, x1, y1 = pad_box(box, pad, rest_frame.shape)
    region = luminance(rest_frame[y0:y1, x0:x1])
    return float(0.55 * np.median(region))


def mouth_opening(
    frame: npt.NDArray[np.uint8],
    box: Sequence[float],
    *,
    threshold: float | None = None,
    rest: npt.NDArray[np.uint8] | None = None,
    pad: float = 0.2,
) -> float:
    """How open the mouth looks: the share of dark pixels in the (padded) mouth box.

    The box is padded by ``pad`` of its size on each side so that a head moving a few
    pixels keeps the mouth inside. Dark means luma below ``threshold`` (by default
    :func:`dark_threshold` of ``rest``, or of ``frame`` itself). With ``rest`` (the
    same face with the mouth closed) the rest frame's dark share is subtracted, so a
    closed mouth measures about 0.
    """
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame must be H×W×3 RGB, got shape {frame.shape}")
    if threshold is None:
        threshold = dark_threshold(rest if rest is not None else frame, box, pad)
    x0, y0, x1, y1 = pad_box(box, pad, frame.shape)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"mouth box {tuple(box)} is outside the frame")
    dark = float(np.mean(luminance(frame[y0:y1, x0:x1]) < threshold))
    if rest is not None:
        rest_dark = float(np.mean(luminance(rest[y0:y1, x0:x1]) < threshold))
        dark = max(0.0, dark - rest_dark)
    return dark


def speech_envelope(pcm: npt.ArrayLike, sample_rate: int, fps: float) -> F32:
    """RMS loudness per video frame, centred on each frame's time.

    Frame ``n`` shows time ``n / fps``; its value is the RMS of the samples within
    half a frame of that time. The length is ``round(duration * fps)``.
    """
    audio = as_float_mono(pcm, name="speech")
    n_frames = round(len(audio) / sample_rate * fps)
    out = np.zeros(n_frames, dtype=np.float32)
    spf = sample_rate / fps
    for n in range(n_frames):
        lo = max(0, round((n - 0.5) * spf))
        hi = min(len(audio), round((n + 0.5) * spf))
        if hi > lo:
            seg = audio[lo:hi].astype(np.float64)
            out[n] = float(np.sqrt(np.mean(seg * seg)))
    return out


def best_lag_correlation(a: npt.ArrayLike, b: npt.ArrayLike, max_lag: int) -> tuple[float, int]:
    """Pearson r of ``a`` and ``b`` at the best shift within ±``max_lag`` samples.

    A positive lag means ``a`` follows ``b`` (``a[i + lag]`` pairs with ``b[i]``).
    Returns ``(r, lag)``; r is 0 where a series is constant.
    """
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    n = min(len(x), len(y))
    x, y = x[:n], y[:n]
    best_r, best_lag = -2.0, 0
    for lag in range(-max_lag, max_lag + 1):
        if lag >= 0:
            xs, ys = x[lag:], y[: n - lag]
        else:
            xs, ys = x[: n + lag], y[-lag:]
        if len(xs) < 3 or xs.std() == 0.0 or ys.std() == 0.0:
            r = 0.0
        else:
            r = float(np.corrcoef(xs, ys)[0, 1])
        if r > best_r or (r == best_r and abs(lag) < abs(best_lag)):
            best_r, best_lag = r, lag
    return best_r, best_lag


def eye_openness(frame: npt.NDArray[np.uint8], box: Sequence[float], *, pad: float = 0.15) -> float:
    """How open an eye looks: the luma spread (standard deviation) in the eye box.

    An open eye shows bright sclera beside a dark iris and lashes; a closed lid is
    smooth skin. Compare against the value of an open-eye rest frame.
    """
    x0, y0, x1, y1 = pad_box(box, pad, frame.shape)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"eye box {tuple(box)} is outside the frame")
    return float(np.std(luminance(frame[y0:y1, x0:x1])))


@dataclass(frozen=True)
class BlinkEvent:
    """One blink found in a per-frame closure signal."""

    start_frame: int
    frames: int
    fps: float

    @property
    def duration_s(self) -> float:
        """How long the eye counted as closed, in seconds."""
        return self.frames / self.fps

    @property
    def start_s(self) -> float:
        """When the blink started, in seconds."""
        return self.start_frame / self.fps


def blink_events(closure: npt.ArrayLike, fps: float, threshold: float = 0.35) -> list[BlinkEvent]:
    """Runs of frames where ``closure`` (0 open .. 1 closed) exceeds ``threshold``.

    ``closure`` can come from pixels (e.g. ``1 - eye_openness / open_value``,
    normalized) or from states (``blink_left``).
    """
    c = np.asarray(closure, dtype=np.float64) > threshold
    edges = np.flatnonzero(np.diff(np.concatenate([[0], c.astype(np.int8), [0]])))
    return [
        BlinkEvent(start_frame=int(s), frames=int(e - s), fps=float(fps))
        for s, e in zip(edges[::2], edges[1::2], strict=True)
    ]


def mask_boxes(mask: npt.ArrayLike, *, min_pixels: int = 4) -> list[Box]:
    """Bounding boxes of the separate regions of a mask (e.g. the two eyes), left to right."""
    binary = np.asarray(mask) > 0.5
    count, _, stats, _ = cv2.connectedComponentsWithStats(binary.astype(np.uint8), connectivity=8)
    boxes: list[Box] = []
    for i in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[i])
        if area >= min_pixels:
            boxes.append((x, y, x + w, y + h))
    return sorted(boxes)
