"""Measures on rendered pixels and audio, for tests and benchmarks.

Lip sync is checked on what a viewer sees: how open the mouth looks in each frame
(:func:`mouth_opening`) against how loud the speech is around that frame
(:func:`speech_envelope`), compared with :func:`best_lag_correlation`. Blinks are
found as runs of closed-eye frames (:func:`blink_events`) in a per-frame eye measure
(:func:`eye_closure`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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


def dark_mass(luma: F32, level: float) -> float:
    """Mean of ``max(level - luma, 0)`` over a luma crop, in 0..1 (how much darkness)."""
    return float(np.mean(np.maximum(level - luma, 0.0))) / 255.0


def mouth_opening(
    frame: npt.NDArray[np.uint8],
    box: Sequence[float],
    *,
    rest: npt.NDArray[np.uint8] | None = None,
    pad: float = 0.03,
    percentile: float = 5.0,
) -> float:
    """How open the mouth looks in ``frame``: the darkness inside the mouth box.

    An opening mouth shows its dark cavity where lips, teeth and skin were. With
    ``rest`` (the same face with the mouth closed), darkness is measured below the
    ``percentile`` luma of the rest frame's mouth box (darker than almost anything
    there at rest), and the rest frame's own darkness is subtracted: a closed mouth
    reads about 0, and since it compares amounts of dark pixels rather than pixels
    at fixed places, a head that moves or turns a little (the box is padded by
    ``pad`` of its size) does not read as an open mouth. Without ``rest``, it is the
    share of pixels darker than half the box's median luma.
    """
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame must be H×W×3 RGB, got shape {frame.shape}")
    x0, y0, x1, y1 = pad_box(box, pad, frame.shape)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"mouth box {tuple(box)} is outside the frame")
    luma = luminance(frame[y0:y1, x0:x1])
    if rest is None:
        return float(np.mean(luma < 0.5 * float(np.median(luma))))
    if rest.shape != frame.shape:
        raise ValueError(f"rest frame shape {rest.shape} differs from the frame's {frame.shape}")
    rest_luma = luminance(rest[y0:y1, x0:x1])
    level = float(np.percentile(rest_luma, percentile))
    return max(0.0, dark_mass(luma, level) - dark_mass(rest_luma, level))


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


def _aligned_rms(template: F32, ref: F32, box: Box, shift: int) -> float:
    """RMS difference (0..1) of ``template`` (the crop at ``box``) against the crop of
    ``ref`` at ``box`` moved by up to ``shift`` pixels, at the best-fitting shift."""
    h, w = ref.shape
    x0, y0, x1, y1 = box
    sx0, sy0 = max(0, x0 - shift), max(0, y0 - shift)
    sx1, sy1 = min(w, x1 + shift), min(h, y1 + shift)
    scores = cv2.matchTemplate(ref[sy0:sy1, sx0:sx1], template, cv2.TM_SQDIFF)
    return float(np.sqrt(max(float(scores.min()), 0.0) / template.size)) / 255.0


def eye_change(
    frame: npt.NDArray[np.uint8],
    reference: npt.NDArray[np.uint8],
    boxes: Sequence[Sequence[float]],
    *,
    pad: float = 0.15,
    max_shift: int | None = None,
) -> float:
    """How different the eyes in ``frame`` look from those in ``reference`` (0..1).

    The RMS luma difference in each (padded) eye box against the best-aligned crop of
    the reference (shifted by up to ``max_shift`` pixels, default ~2% of the frame
    height, to follow a moving head), averaged over ``boxes``.
    """
    if frame.shape != reference.shape:
        raise ValueError(
            f"reference shape {reference.shape} differs from the frame's {frame.shape}"
        )
    if not boxes:
        raise ValueError("no eye boxes")
    shift = max(2, round(0.02 * frame.shape[0])) if max_shift is None else max(0, max_shift)
    ref_luma = luminance(reference)
    luma = luminance(frame)
    total = 0.0
    for box in boxes:
        x0, y0, x1, y1 = pad_box(box, pad, frame.shape)
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"eye box {tuple(box)} is outside the frame")
        total += _aligned_rms(luma[y0:y1, x0:x1], ref_luma, (x0, y0, x1, y1), shift)
    return total / len(boxes)


def eye_closure(
    frames: Iterable[npt.NDArray[np.uint8]],
    closed_ref: npt.NDArray[np.uint8],
    boxes: Sequence[Sequence[float]],
    *,
    window: int = 6,
    pad: float = 0.15,
) -> F32:
    """Eyelid closure per frame of a video, read from pixels: ~0 open, ~1 closed.

    Eyes are open most of the time, so the per-pixel median of the frames within
    ``window`` frames of frame n is an open-eyed picture of the same moment (same head
    pose, same gaze). With ``d_open`` the difference of frame n's eyes from that
    median and ``d_closed`` from ``closed_ref`` (the face rendered with closed eyes),
    the closure is ``d_open / (d_open + d_closed)``: a blink moves toward the closed
    reference; head motion and saccades barely move away from the local median.
    Frames are consumed one at a time and only the eye region of each is kept.
    """
    if not boxes:
        raise ValueError("no eye boxes")
    shape = closed_ref.shape
    shift = max(2, round(0.02 * shape[0]))
    padded = [pad_box(b, pad, shape) for b in boxes]
    rx0 = max(0, min(b[0] for b in padded) - shift)
    ry0 = max(0, min(b[1] for b in padded) - shift)
    rx1 = min(shape[1], max(b[2] for b in padded) + shift)
    ry1 = min(shape[0], max(b[3] for b in padded) + shift)
    local = [(x0 - rx0, y0 - ry0, x1 - rx0, y1 - ry0) for x0, y0, x1, y1 in padded]
    closed = luminance(closed_ref[ry0:ry1, rx0:rx1])
    kept = [luminance(f[ry0:ry1, rx0:rx1]) for f in frames]
    if not kept:
        return np.zeros(0, dtype=np.float32)
    crops = np.stack(kept)
    n = len(crops)
    out = np.zeros(n, dtype=np.float32)
    for i in range(n):
        median = np.median(crops[max(0, i - window) : i + window + 1], axis=0).astype(np.float32)
        d_open = d_closed = 0.0
        for x0, y0, x1, y1 in local:
            template = crops[i, y0:y1, x0:x1]
            d_open += _aligned_rms(template, median, (x0, y0, x1, y1), 2)
            d_closed += _aligned_rms(template, closed, (x0, y0, x1, y1), shift)
        out[i] = d_open / (d_open + d_closed + 1e-9)
    return out


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

    ``closure`` can come from pixels (:func:`eye_closure`) or from states
    (``blink_left``).
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
