"""The CPU renderer: numpy for the fields, OpenCV ``remap`` for the sampling.

Per frame: the common field (a few small matrix products and three low-resolution
remaps), one full-frame remap of the moving part of the portrait, and the mouth and
eye ROIs when they are active. Single-threaded it costs a few milliseconds at 512×512.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from avatar.identity.rig import AvatarRig
from avatar.render.model import DAMPING, ITERS, EyeModel, RigModel, build_model
from avatar.render.params import FrameParams, frame_params
from avatar.state import AvatarState

F32 = npt.NDArray[np.float32]
LASH_DARKEN = 0.55


def _remap(img: np.ndarray, coords: F32, *, zero: bool = False) -> np.ndarray:
    border = cv2.BORDER_CONSTANT if zero else cv2.BORDER_REPLICATE
    out = cv2.remap(img, coords, None, cv2.INTER_LINEAR, borderMode=border, borderValue=0)
    return out if out.ndim == 3 else out[:, :, None]


def _pull_back(field: F32, start: F32) -> F32:
    """Invert a forward field: solve ``q + field(q) = start`` by damped fixed-point steps."""
    q = start - _remap(field, start, zero=True)
    for _ in range(ITERS - 1):
        q += DAMPING * (start - _remap(field, q, zero=True) - q)
    return q


class CpuRenderer:
    """Renders :class:`AvatarState` frames of one rig with numpy and OpenCV."""

    def __init__(self, rig: AvatarRig, *, model: RigModel | None = None) -> None:
        self.rig = rig
        self.model = model if model is not None else build_model(rig)
        self.size: tuple[int, int] = self.model.size
        m = self.model
        hl, wl = m.low_shape
        self._basis = m.basis.reshape(m.basis.shape[0], -1)
        iy, ix = np.mgrid[0:hl, 0:wl].astype(np.float32)
        self._low_idx = np.stack([ix, iy], -1)
        self._low_scale = np.array([wl / self.size[0], hl / self.size[1]], np.float32)
        mo = m.mouth
        self._up = mo.up_fields.reshape(mo.up_fields.shape[0], -1)
        self._low = mo.low_fields.reshape(mo.low_fields.shape[0], -1)

    def render(self, state: AvatarState) -> npt.NDArray[np.uint8]:
        """One frame (H×W×3 uint8 RGB) for one state."""
        return self._render(frame_params(self.model, [state]), 0)

    def render_batch(self, states: Sequence[AvatarState]) -> list[npt.NDArray[np.uint8]]:
        """Frames for several states, in order."""
        params = frame_params(self.model, states)
        return [self._render(params, i) for i in range(len(states))]

    # ------------------------------------------------------------ internals

    def inverse_common(self, coef: F32) -> F32:
        """Low-resolution backward displacement (h_l, w_l, 2) of the common field."""
        hl, wl = self.model.low_shape
        fwd = (coef @ self._basis).reshape(hl, wl, 2)
        g = -fwd
        for _ in range(ITERS - 1):
            g += DAMPING * (-_remap(fwd, self._low_idx + g * self._low_scale) - g)
        return g

    def _render(self, p: FrameParams, i: int) -> npt.NDArray[np.uint8]:
        m = self.model
        w, h = self.size
        out = m.portrait.copy()
        warp = m.identity
        if np.any(p.common[i] != 0):
            g = self.inverse_common(p.common[i])
            warp = cv2.resize(g, (w, h), interpolation=cv2.INTER_LINEAR)
            warp += m.identity
            x0, y0, x1, y1 = m.move_box
            out[y0:y1, x0:x1] = cv2.remap(
                m.portrait, warp[y0:y1, x0:x1], None, cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REPLICATE,
            )  # fmt: skip
        if np.any(p.mouth[i] != 0):
            self._mouth(out, warp, p, i)
        for e, eye in enumerate(m.eyes):
            if p.blink[i, e] != 0 or np.any(p.gaze[i] != 0):
                self._eye(out, warp, eye, p, i, e)
        return out

    def _mouth(self, out: npt.NDArray[np.uint8], warp: F32, p: FrameParams, i: int) -> None:
        m = self.model
        mo = m.mouth
        roi = mo.roi
        bx, by, bx1, by1 = (int(v) for v in p.mouth_tight[i])
        src = warp[by:by1, bx:bx1]
        origin = np.array([roi.x0, roi.y0], np.float32)
        local = src - origin
        coef = p.mouth[i]
        d_up = (coef @ self._up).reshape(roi.h, roi.w, 2)
        d_low = (coef @ self._low).reshape(roi.h, roi.w, 2)
        q_up = _pull_back(d_up, local)
        q_low = _pull_back(d_low, local)
        a_up = _remap(mo.atlas_up, q_up)
        a_low = _remap(mo.atlas_low, q_low)
        i_up = _remap(m.portrait_f, q_up + origin)
        i_low = _remap(m.portrait_f, q_low + origin)
        out[by:by1, bx:bx1] = composite_mouth(a_up, a_low, i_up, i_low)

    def _eye(
        self, out: npt.NDArray[np.uint8], warp: F32, eye: EyeModel, p: FrameParams, i: int, e: int
    ) -> None:
        m = self.model
        roi = eye.roi
        bx, by, bx1, by1 = (int(v) for v in p.eye_tight[i, e])
        src = warp[by:by1, bx:bx1]
        origin = np.array([roi.x0, roi.y0], np.float32)
        local = src - origin
        blink = float(p.blink[i, e])
        q_lid = _pull_back(eye.lid_field * np.float32(blink), local) if blink else local
        shift = np.array(
            [p.gaze[i, 0] * eye.gaze_px[0], -p.gaze[i, 1] * eye.gaze_px[1]], np.float32
        )
        a_lid = _remap(eye.atlas_lid, q_lid)
        a_face = _remap(eye.atlas_face, local)
        a_iris = _remap(eye.atlas_iris, local - shift, zero=True)
        i_lid = _remap(m.portrait_f, q_lid + origin)
        i_face = _remap(m.portrait_f, src)
        out[by:by1, bx:bx1] = composite_eye(
            a_lid, a_face, a_iris, i_lid, i_face, blink
        )


def composite_mouth(a_up: F32, a_low: F32, i_up: F32, i_low: F32) -> npt.NDArray[np.uint8]:
    """Blend the upper part, lower part and the synthesized interior of the mouth box."""
    ml = a_low[..., 0:1]
    w_int = np.maximum(1.0 - ml - a_up[..., 0:1], 0.0)
    w_up = 1.0 - ml - w_int
    out = a_up[..., 5:8].copy()
    out += (a_low[..., 1:4] - out) * a_low[..., 4:5]
    out += (a_up[..., 1:4] - out) * a_up[..., 4:5]
    out *= w_int
    out += i_low * ml
    out += i_up * w_up
    np.clip(out, 0.0, 255.0, out=out)
    return np.rint(out).astype(np.uint8)


def composite_eye(
    a_lid: F32, a_face: F32, a_iris: F32, i_lid: F32, i_face: F32, blink: float
) -> npt.NDArray[np.uint8]:
    """Blend the (closing) upper lid, the lower lid and the eyeball with its iris."""
    mu, ml = a_lid[..., :1], a_face[..., :1]
    w_up = mu
    w_low = np.minimum(ml, 1.0 - mu)
    w_eye = 1.0 - w_up - w_low
    lid = i_lid * (1.0 - LASH_DARKEN * blink * a_lid[..., 1:2])
    ball = a_face[..., 1:4]
    ball = ball + (a_iris[..., :3] - ball) * a_iris[..., 3:4]
    colour = w_up * lid + w_low * i_face + w_eye * ball
    return np.rint(np.clip(colour, 0.0, 255.0)).astype(np.uint8)
