"""Framing: crop and scale a photo so the face is large and head and shoulders show.

The face (the face-mesh bounding box, forehead to chin) is scaled to
``FACE_FRACTION`` of the output height, centred horizontally, its centre placed at
``FACE_CENTER_Y`` of the height. Where the photo ends, the crop slides to stay inside
it; where it cannot (a tight crop of a face), the borders are replicated.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

FACE_FRACTION = 0.42
FACE_CENTER_Y = 0.44


@dataclass(frozen=True)
class Framing:
    """How the portrait was cut from the photo: ``out = scale * (src - (x0, y0))``."""

    scale: float
    x0: float
    y0: float
    width: int
    height: int

    def matrix(self) -> npt.NDArray[np.float64]:
        """The 2×3 affine matrix from photo pixels to portrait pixels."""
        s = self.scale
        return np.array([[s, 0.0, -s * self.x0], [0.0, s, -s * self.y0]], dtype=np.float64)

    def apply(self, pts: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
        """Map photo pixel coordinates to portrait pixel coordinates."""
        out = (np.asarray(pts, dtype=np.float64) - [self.x0, self.y0]) * self.scale
        return out.astype(np.float32)


def _fit(start: float, length: float, available: int) -> float:
    lo, hi = min(0.0, available - length), max(0.0, available - length)
    return float(np.clip(start, lo, hi))


def plan_framing(
    photo_size: tuple[int, int], landmarks: npt.NDArray[np.floating], size: tuple[int, int]
) -> Framing:
    """Choose the crop for a face with these landmarks in a photo of ``photo_size`` (W, H)."""
    pw, ph = photo_size
    out_w, out_h = size
    mesh = np.asarray(landmarks[:468], dtype=np.float64)
    (fx0, fy0), (fx1, fy1) = mesh.min(axis=0), mesh.max(axis=0)
    face_h = max(fy1 - fy0, 1.0)
    scale = FACE_FRACTION * out_h / face_h
    crop_w, crop_h = out_w / scale, out_h / scale
    cx, cy = (fx0 + fx1) / 2.0, (fy0 + fy1) / 2.0
    x0 = _fit(cx - crop_w / 2.0, crop_w, pw)
    y0 = _fit(cy - FACE_CENTER_Y * crop_h, crop_h, ph)
    return Framing(scale=float(scale), x0=x0, y0=y0, width=out_w, height=out_h)


def apply_framing(photo: npt.NDArray[np.uint8], framing: Framing) -> npt.NDArray[np.uint8]:
    """Cut and scale the portrait out of the photo (area-averaged when shrinking)."""
    m = np.vstack([framing.matrix(), [0.0, 0.0, 1.0]])
    src: np.ndarray = photo
    if framing.scale < 0.8:
        h, w = photo.shape[:2]
        nw, nh = max(1, round(w * framing.scale)), max(1, round(h * framing.scale))
        src = cv2.resize(photo, (nw, nh), interpolation=cv2.INTER_AREA)
        sx, sy = nw / w, nh / h
        pre = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
        m = m @ np.linalg.inv(pre)
    flags = cv2.INTER_CUBIC if framing.scale > 1.0 else cv2.INTER_LINEAR
    size = (framing.width, framing.height)
    out = cv2.warpAffine(src, m[:2], size, flags=flags, borderMode=cv2.BORDER_REPLICATE)
    inside = cv2.warpAffine(
        np.ones(src.shape[:2], np.float32),
        m[:2],
        size,
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0.0,),
    )
    if float(inside.min()) < 0.999:
        # beyond the photo's edge: replicated border pixels, softened into a blur
        sigma = 0.03 * max(size)
        soft = cv2.GaussianBlur(out.astype(np.float32), (0, 0), sigma)
        keep = np.clip(cv2.GaussianBlur(inside, (0, 0), 2.0), 0.0, 1.0)[..., None]
        out = np.clip(out * keep + soft * (1.0 - keep) + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(out)
