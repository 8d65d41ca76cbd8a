"""The CPU renderer: numpy for the fields, OpenCV ``remap`` for the sampling.

Per frame: the common field (a small weighted sum and three low-resolution remaps),
the remap of the pixels that can move (bands of rows, each over the columns where the
field can be non-zero; every other pixel is the portrait's), and the mouth and eye
boxes when they are active (their local fields are inverted on a coarse grid, then
each box is sampled once or twice). Single-threaded it costs a few milliseconds at
512×512. Nothing here calls BLAS: a multi-threaded BLAS would spin a second core
for a product this small, which the encoder beside the renderer needs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np
import numpy.typing as npt

from avatar.identity.rig import AvatarRig
from avatar.render.model import (
    CAVITY_DEEP,
    DAMPING,
    ITERS,
    LO_LIGHT,
    LO_LIP,
    LO_LIP_REACH,
    LO_MASK,
    LO_REACH,
    LO_RGB,
    LO_T,
    LO_TEETH,
    LO_TEETH_REACH,
    LO_TONGUE,
    UP_CAVITY,
    UP_LIGHT,
    UP_LIP,
    UP_LIP_REACH,
    UP_MASK,
    UP_PHOTO,
    UP_REACH,
    UP_RGB,
    UP_T,
    UP_TEETH,
    EyeModel,
    RigModel,
    Roi,
    build_model,
)
from avatar.render.params import FrameParams, frame_params
from avatar.state import AvatarState

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]
LASH_DARKEN = 0.55
BAND_ROWS = 16
"""Rows per band of the moving part's remap."""
BASE_CHANNELS = 4
"""The mouth atlases' first channels: the portrait's RGB and the part's mask (sampled
over the whole mouth box); the interior's channels follow (sampled over its opening)."""


def _remap(img: np.ndarray, coords: F32, *, zero: bool = False) -> np.ndarray:
    border = cv2.BORDER_CONSTANT if zero else cv2.BORDER_REPLICATE
    out: np.ndarray = cv2.remap(  # type: ignore[call-overload]
        img, coords, None, cv2.INTER_LINEAR, borderMode=border, borderValue=0
    )
    return out if out.ndim == 3 else out[:, :, None]


class _Grid:
    """A ROI's coarse grid: node indices and the conversions to portrait pixels."""

    def __init__(self, roi: Roi) -> None:
        nh, nw = roi.node_shape
        iy, ix = np.mgrid[0:nh, 0:nw].astype(np.float32)
        self.idx = np.stack([ix, iy], -1)
        self.step = np.float32(roi.step)
        self.inv_step = np.float32(1.0 / roi.step)
        self.origin = np.array([roi.x0, roi.y0], np.float32)
        self.shape = (nh, nw)

    def invert(self, fwd: F32) -> F32:
        """Backward displacement at the nodes for a forward field given at the nodes."""
        d = fwd * self.inv_step
        q = self.idx - d
        for _ in range(ITERS - 1):
            q += DAMPING * (self.idx - _remap(d, q, zero=True) - q)
        q -= self.idx
        q *= self.step
        return q

    def pull(self, back: F32, local: F32) -> F32:
        """Apply a node backward field at ROI-local pixel positions."""
        return local + _remap(back, local * self.inv_step, zero=True)


class _Warp:
    """A backward map: the identity, except inside ``box`` where it is ``part``."""

    def __init__(
        self, identity: F32, part: F32 | None = None, box: tuple[int, int, int, int] = (0, 0, 0, 0)
    ) -> None:
        self.identity = identity
        self.part = identity[0:0, 0:0] if part is None else part
        self.box = box

    def crop(self, x0: int, y0: int, x1: int, y1: int) -> F32:
        """The map over a box (a view when it lies inside the computed part)."""
        bx0, by0, bx1, by1 = self.box
        if bx0 <= x0 and by0 <= y0 and x1 <= bx1 and y1 <= by1:
            return self.part[y0 - by0 : y1 - by0, x0 - bx0 : x1 - bx0]
        out = self.identity[y0:y1, x0:x1].copy()
        ix0, iy0, ix1, iy1 = max(x0, bx0), max(y0, by0), min(x1, bx1), min(y1, by1)
        if ix1 > ix0 and iy1 > iy0:
            out[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0] = self.part[
                iy0 - by0 : iy1 - by0, ix0 - bx0 : ix1 - bx0
            ]
        return out


class CpuRenderer:
    """Renders :class:`AvatarState` frames of one rig with numpy and OpenCV."""

    def __init__(self, rig: AvatarRig, *, model: RigModel | None = None) -> None:
        self.rig = rig
        self.model = model if model is not None else build_model(rig)
        self.size: tuple[int, int] = self.model.size
        m = self.model
        hl, wl = m.low_shape
        c = m.cell
        self._aligned = c == int(c) and self.size[0] % c == 0 and self.size[1] % c == 0
        x0, y0, x1, y1 = m.move_box
        if self._aligned and x1 > x0 and y1 > y0:
            # the moving box's nodes (it has a margin of still nodes on every side)
            n = int(c)
            self._nodes = (y0 // n, x0 // n, (y1 + n - 1) // n, (x1 + n - 1) // n)
        else:
            self._nodes = (0, 0, hl, wl)
        i0, j0, i1, j1 = self._nodes
        self._basis = np.ascontiguousarray(m.basis[:, i0:i1, j0:j1]).reshape(len(m.basis), -1)
        iy, ix = np.mgrid[0 : i1 - i0, 0 : j1 - j0].astype(np.float32)
        self._low_idx = np.stack([ix, iy], -1)
        self._low_scale = np.array([wl / self.size[0], hl / self.size[1]], np.float32)
        mo = m.mouth
        self._up = mo.up_fields.reshape(mo.up_fields.shape[0], -1)
        self._low = mo.low_fields.reshape(mo.low_fields.shape[0], -1)
        self._mouth_grid = _Grid(mo.roi)
        self._up_base = np.ascontiguousarray(mo.atlas_up[..., :BASE_CHANNELS])
        self._low_base = np.ascontiguousarray(mo.atlas_low[..., :BASE_CHANNELS])
        self._up_inner = np.ascontiguousarray(mo.atlas_up[..., BASE_CHANNELS:])
        self._low_inner = np.ascontiguousarray(mo.atlas_low[..., BASE_CHANNELS:])
        self._eye_grids = [_Grid(e.roi) for e in m.eyes]
        # with the lids open, lid and face atlases share one map: one sampling pass
        self._eye_lid_face = [
            np.ascontiguousarray(np.concatenate([e.atlas_lid, e.atlas_face], axis=-1))
            for e in m.eyes
        ]
        self._bands = self._moving_bands() if self._aligned else [(0, 0, *self.size)]

    def render(self, state: AvatarState) -> U8:
        """One frame (H×W×3 uint8 RGB) for one state."""
        return self._render(frame_params(self.model, [state]), 0)

    def render_batch(self, states: Sequence[AvatarState]) -> list[U8]:
        """Frames for several states, in order."""
        params = frame_params(self.model, states)
        return [self._render(params, i) for i in range(len(states))]

    # ------------------------------------------------------------ internals

    def _moving_bands(self) -> list[tuple[int, int, int, int]]:
        """Boxes (x0, y0, x1, y1) of ``BAND_ROWS`` rows covering every pixel that can move.

        A pixel's upsampled field mixes the nodes of its cell and the next ones, so the
        nodes where any basis field is non-zero, grown by one node, bound the moving
        pixels; each band spans the columns of those in its rows.
        """
        m = self.model
        c = int(m.cell)
        x0, y0, x1, y1 = m.move_box
        nodes = (np.abs(m.basis).sum(axis=(0, 3)) > 0).astype(np.uint8)
        grown = cv2.dilate(nodes, np.ones((3, 3), np.uint8))
        cols = np.repeat(np.repeat(grown, c, axis=0), c, axis=1)[y0:y1, x0:x1]
        bands = []
        for top in range(0, y1 - y0, BAND_ROWS):
            xs = np.flatnonzero(cols[top : top + BAND_ROWS].any(axis=0))
            if len(xs):
                bottom = min(top + BAND_ROWS, y1 - y0)
                bands.append((x0 + int(xs[0]), y0 + top, x0 + int(xs[-1]) + 1, y0 + bottom))
        return bands

    def inverse_common(self, coef: F32) -> F32:
        """Low-resolution backward displacement (h_l, w_l, 2) of the common field."""
        g = np.zeros((*self.model.low_shape, 2), np.float32)
        i0, j0, i1, j1 = self._nodes
        g[i0:i1, j0:j1] = self._inverse_nodes(coef)
        return g

    def _inverse_nodes(self, coef: F32) -> F32:
        """:meth:`inverse_common` over the moving box's nodes (it is zero elsewhere).

        The box's border nodes are still, and so are the nodes beyond, so sampling the
        box (its border replicated) gives what sampling the whole grid would.
        """
        i0, j0, i1, j1 = self._nodes
        fwd = _weighted_sum(coef, self._basis).reshape(i1 - i0, j1 - j0, 2)
        g = -fwd
        for _ in range(ITERS - 1):
            g += DAMPING * (-_remap(fwd, self._low_idx + g * self._low_scale) - g)
        return g

    def _render(self, p: FrameParams, i: int) -> U8:
        m = self.model
        out = m.portrait.copy()
        warp = _Warp(m.identity)
        if np.any(p.common[i] != 0):
            warp = self._warp(self._inverse_nodes(p.common[i]))
            bx, by = warp.box[:2]
            for x0, y0, x1, y1 in self._bands:
                out[y0:y1, x0:x1] = cv2.remap(  # type: ignore[call-overload]
                    m.portrait,
                    warp.part[y0 - by : y1 - by, x0 - bx : x1 - bx],
                    None,
                    cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE,
                )
        if np.any(p.mouth[i] != 0):
            self._mouth(out, warp, p, i)
        for e, eye in enumerate(m.eyes):
            if p.blink[i, e] != 0 or np.any(p.gaze[i] != 0):
                self._eye(out, warp, eye, p, i, e)
        return out

    def _warp(self, sub: F32) -> _Warp:
        """The full-resolution backward map from the nodes' one, only inside the moving box."""
        m = self.model
        w, h = self.size
        x0, y0, x1, y1 = m.move_box
        c = int(m.cell)
        if self._aligned and x1 > x0 and y1 > y0:
            # resizing the box's cells alone gives the same values as resizing the whole
            # field there: the box has a margin of still nodes on every side
            up = cv2.resize(
                sub, (sub.shape[1] * c, sub.shape[0] * c), interpolation=cv2.INTER_LINEAR
            )
            part = np.asarray(up, np.float32)[: y1 - y0, : x1 - x0]
        else:
            x0, y0, x1, y1 = 0, 0, w, h
            part = np.asarray(cv2.resize(sub, (w, h), interpolation=cv2.INTER_LINEAR), np.float32)
        part += m.identity[y0:y1, x0:x1]
        return _Warp(m.identity, part, (x0, y0, x1, y1))

    def _mouth(self, out: U8, warp: _Warp, p: FrameParams, i: int) -> None:
        grid = self._mouth_grid
        x0, y0, x1, y1 = (int(v) for v in p.mouth_tight[i])
        local = warp.crop(x0, y0, x1, y1) - grid.origin
        coef = p.mouth[i]
        g_up = grid.invert(_weighted_sum(coef, self._up).reshape(*grid.shape, 2))
        g_low = grid.invert(_weighted_sum(coef, self._low).reshape(*grid.shape, 2))
        q_up, q_low = grid.pull(g_up, local), grid.pull(g_low, local)
        out[y0:y1, x0:x1] = composite_mouth(
            _remap(self._up_base, q_up),
            _remap(self._low_base, q_low),
            p.interior[i],
            lambda r0, r1, c0, c1: (
                _remap(self._up_inner, q_up[r0:r1, c0:c1]),
                _remap(self._low_inner, q_low[r0:r1, c0:c1]),
            ),
        )

    def _eye(self, out: U8, warp: _Warp, eye: EyeModel, p: FrameParams, i: int, e: int) -> None:
        grid = self._eye_grids[e]
        x0, y0, x1, y1 = (int(v) for v in p.eye_tight[i, e])
        local = warp.crop(x0, y0, x1, y1) - grid.origin
        blink = float(p.blink[i, e])
        q_lid = grid.pull(grid.invert(eye.lid_field * np.float32(blink)), local) if blink else local
        shift = np.array(
            [p.gaze[i, 0] * eye.gaze_px[0], -p.gaze[i, 1] * eye.gaze_px[1]], np.float32
        )
        if blink:
            a_lid = _remap(eye.atlas_lid, q_lid)
            a_face = _remap(eye.atlas_face, local)
        else:
            both = _remap(self._eye_lid_face[e], local)
            n_lid = eye.atlas_lid.shape[-1]
            a_lid, a_face = both[..., :n_lid], both[..., n_lid:]
        a_iris = _remap(eye.atlas_iris, local - shift, zero=True)
        out[y0:y1, x0:x1] = composite_eye(a_lid, a_face, a_iris, blink)


def _weighted_sum(coef: F32, rows: F32) -> F32:
    """``coef @ rows`` without BLAS (see the module docstring)."""
    out: F32 = np.einsum("k,kn->n", coef, rows)
    return out


def composite_mouth(
    b_up: F32,
    b_low: F32,
    reach: F32,
    interior: Callable[[int, int, int, int], tuple[F32, F32]],
) -> U8:
    """Blend the upper part, the lower part and the synthesized interior of the mouth.

    ``b_up`` holds the upper atlas's first four channels (portrait RGB, upper mask)
    sampled through the upper part's field, ``b_low`` the lower atlas's through the
    lower part's; ``interior(r0, r1, c0, c1)`` samples the atlases' other channels
    (from ``BASE_CHANNELS`` on: ``avatar.render.model.UP_*`` and ``LO_*``) over those
    rows and columns only (the opening's bounding box); ``reach`` is the frame's
    interior reaches in pixels (:attr:`avatar.render.params.FrameParams.interior`),
    and a layer that reaches 0 px is skipped. A pixel is lower lip where
    the lower pull-back lands below the lower lip line, upper lip where the upper one
    lands above the upper lip line, and the mouth's inside where neither does. Inside,
    back to front: the cavity (lit from the lips, dark at the back), the tongue, the
    lower teeth, the upper teeth, (the tongue's tip, for th and l), the lower lip's and
    the upper lip's inner surfaces.
    """
    bu, bl = _planes(b_up), _planes(b_low)
    ml = bl[LO_MASK]
    w_int = 1.0 - ml - bu[UP_MASK]
    np.maximum(w_int, 0.0, out=w_int)
    w_up = 1.0 - ml - w_int
    out = bl[LO_RGB] * ml
    out += bu[UP_RGB] * w_up
    rows = np.flatnonzero(w_int.any(axis=1))
    if len(rows):  # the interior, over the opening's bounding box only
        cols = np.flatnonzero(w_int[rows[0] : rows[-1] + 1].any(axis=0))
        r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        u, lo = interior(r0, r1, c0, c1)
        inner = _interior(_planes(u, BASE_CHANNELS), _planes(lo, BASE_CHANNELS), reach)
        inner *= w_int[r0:r1, c0:c1]
        out[:, r0:r1, c0:c1] += inner
    return _to_u8(out)


def _interior(u: F32, lo: F32, reach: F32) -> F32:
    """The interior's colour planes (3, h, w) for the upper and lower atlases' planes."""
    light = 1.0 - (1.0 - u[UP_LIGHT]) * (1.0 - lo[LO_LIGHT])
    light *= np.float32(1.0 - CAVITY_DEEP)
    light += np.float32(CAVITY_DEEP)
    inner = u[UP_CAVITY] * light
    # a layer that reaches 0 px covers nothing (its alpha is 0): skip it
    if reach[1] > 0.0:
        a_tongue = _reach_alpha(lo[LO_REACH], lo[LO_T], reach[1])
        _over(inner, lo[LO_TONGUE], a_tongue)
    if reach[2] > 0.0:
        _over(inner, lo[LO_TEETH], _reach_alpha(lo[LO_TEETH_REACH], lo[LO_T], reach[2]))
    a_teeth = u[UP_PHOTO]
    if reach[0] > 0.0:
        a_teeth = np.maximum(_reach_alpha(u[UP_REACH], u[UP_T], reach[0]), a_teeth)
    _over(inner, u[UP_TEETH], a_teeth)
    if reach[5] > 0.0 and reach[1] > 0.0:  # th, l: the tongue's tip in front of the teeth
        a_tongue *= reach[5]
        _over(inner, lo[LO_TONGUE], a_tongue)
    if reach[4] > 0.0:
        _over(inner, lo[LO_LIP], _reach_alpha(lo[LO_LIP_REACH], lo[LO_T], reach[4]))
    if reach[3] > 0.0:
        _over(inner, u[UP_LIP], _reach_alpha(u[UP_LIP_REACH], u[UP_T], reach[3]))
    return inner


def _reach_alpha(profile: F32, t: F32, reach: float) -> F32:
    """Coverage of a layer reaching ``R = reach * profile`` px from its lip: a soft 1 px
    edge at ``t = R``, fading in over the first pixel of reach (nothing at ``R = 0``)."""
    r: F32 = profile * np.float32(reach)
    a = r - t
    a += np.float32(0.5)
    np.clip(a, 0.0, 1.0, out=a)
    np.clip(r, 0.0, 1.0, out=r)
    a *= r
    return a


def _over(dst: F32, rgb: F32, alpha: F32) -> None:
    """``dst`` (3, h, w) ← ``rgb`` over ``dst`` with coverage ``alpha`` (h, w), in place."""
    dst += (rgb - dst) * alpha


def composite_eye(a_lid: F32, a_face: F32, a_iris: F32, blink: float) -> U8:
    """Blend the (closing) upper lid, the lower lid and the eyeball with its iris.

    ``a_lid`` holds (portrait RGB, upper-lid mask, lash alpha) sampled through the lid
    field, ``a_face`` (portrait RGB, lower-lid mask, eyeball RGB, pinned mask) through
    the face, and ``a_iris`` the iris sprite at the gaze offset. Pinned pixels (glasses
    frames above the lid) keep the portrait, in front of the closing lid.
    """
    lid, face, iris = _planes(a_lid), _planes(a_face), _planes(a_iris)
    mu, ml = lid[3], face[3]
    w_low = np.minimum(ml, 1.0 - mu)
    w_eye = 1.0 - mu - w_low
    w_iris = w_eye * iris[3]
    w_ball = w_eye - w_iris
    w_lid = mu * (1.0 - LASH_DARKEN * blink * lid[4])
    o = face[4:7] * w_ball
    o += iris[0:3] * w_iris
    o += face[0:3] * w_low
    o += lid[0:3] * w_lid
    pin = face[7]
    o += (face[0:3] - o) * pin
    return _to_u8(o)


def _planes(img: F32, skip: int = 0) -> F32:
    """An (h, w, C) image as C contiguous planes (C, h, w), for per-channel arithmetic;
    with ``skip``, as planes ``skip .. skip + C`` of (skip + C, h, w) whose first
    ``skip`` planes are left unset (so channel indices of the whole atlas still hold)."""
    if not skip:
        return np.ascontiguousarray(img.transpose(2, 0, 1))
    h, w, c = img.shape
    out = np.empty((skip + c, h, w), img.dtype)
    out[skip:] = img.transpose(2, 0, 1)
    return out


def _to_u8(planes: F32) -> U8:
    """(3, h, w) float planes as an (h, w, 3) uint8 image (rounded, clipped)."""
    np.clip(planes, 0.0, 255.0, out=planes)
    return np.rint(planes, out=planes).astype(np.uint8).transpose(1, 2, 0)
