"""The eyes: an upper lid that slides down to blink, and an iris that moves to gaze.

Per eye, in portrait coordinates: the lid field pushes the upper lid (and the skin up
to the brow, stretching) down to the lower lid at ``blink = 1``; the masks say what is
above the upper lid, below the lower lid, or the eye opening between; the eyeball
texture is the photo with the iris painted out (inpainted from the sclera), and the
iris sprite is the photo's iris, its hidden top mirrored from its visible bottom.
"""

from __future__ import annotations

import cv2
import numpy as np

from avatar.identity import landmarks as L
from avatar.identity.rig import AvatarRig
from avatar.render.geometry import F64, curve_y, smoothstep
from avatar.render.model import CommonGrid, EyeModel, clip_box, make_roi, sample_nearest


def build_eye(rig: AvatarRig, grid: CommonGrid, basis: F64, *, side: str) -> EyeModel:
    """One eye ROI (``side``: the subject's "right" or "left")."""
    lm = rig.landmarks.astype(np.float64)
    fh = rig.face_height
    if side == "right":
        up_i, lo_i, brow_i, iris_i = (
            L.RIGHT_EYE_UPPER,
            L.RIGHT_EYE_LOWER,
            L.RIGHT_BROW_LOWER,
            L.RIGHT_IRIS,
        )
    else:
        up_i, lo_i, brow_i, iris_i = (
            L.LEFT_EYE_UPPER,
            L.LEFT_EYE_LOWER,
            L.LEFT_BROW_LOWER,
            L.LEFT_IRIS,
        )
    up, lo, brow = lm[list(up_i)], lm[list(lo_i)], lm[list(brow_i)]
    xa, xb = min(up[0, 0], up[-1, 0]), max(up[0, 0], up[-1, 0])
    content = clip_box(
        xa - 0.05 * fh,
        brow[:, 1].min() - 0.01 * fh,
        xb + 0.05 * fh,
        lo[:, 1].max() + 0.05 * fh,
        rig.size,
    )
    roi = make_roi(content, basis, rig.size, (0.04 * fh, 0.04 * fh), 0.01 * fh)
    x0, y0, w, h = roi.x0, roi.y0, roi.w, roi.h
    xs = roi.columns()
    ys = roi.rows()
    y_up = curve_y(up, xs)[None, :]
    y_lo = np.maximum(curve_y(lo, xs)[None, :], y_up)
    upper = np.clip(y_up - ys + 0.5, 0.0, 1.0)
    lower = np.clip(ys - y_lo + 0.5, 0.0, 1.0)
    aperture = np.clip(1.0 - upper - lower, 0.0, 1.0)
    # the lid field on the coarse grid: the lid edge travels to just past the lower lid,
    # the skin above it (up to the brow) stretches
    nodes = roi.nodes()
    nx, ny = nodes[..., 0], nodes[..., 1]
    n_up = curve_y(up, nx)
    n_lo = np.maximum(curve_y(lo, nx), n_up)
    inside = (xs >= xa) & (xs <= xb)
    y_brow = curve_y(brow, xs)
    span = float(np.mean((curve_y(up, xs) - y_brow)[inside])) if inside.any() else 0.05 * fh
    S = max(3.0, 0.9 * span)
    n_out = np.maximum(0.0, np.maximum(xa - nx, nx - xb))
    travel = (n_lo - n_up + 1.0) * (1.0 - smoothstep(n_out / (0.02 * fh)))
    ramp = np.clip((ny - (n_up - S)) / S, 0.0, 1.0)
    below = 1.0 - smoothstep((ny - (n_lo + 0.02 * fh)) / (0.02 * fh))
    lid = np.zeros((*nodes.shape[:2], 2))
    lid[..., 1] = travel * ramp * below * roi.content_taper(nodes, 0.01 * fh)
    lid[..., 1] *= sample_nearest(grid.move_full, nodes)
    outside = np.maximum(0.0, np.maximum(xa - xs, xs - xb))[None, :]
    hwin = 1.0 - smoothstep(outside / (0.02 * fh))
    lash = np.clip(1.0 - (y_up - ys) / (0.012 * fh + 0.5), 0.0, 1.0) * (ys <= y_up + 0.5) * hwin
    pf = rig.portrait[y0 : y0 + h, x0 : x0 + w].astype(np.float64)
    # the iris sprite, and an eyeball with the iris painted out
    c = lm[iris_i[0]]
    rad = float(np.mean(np.linalg.norm(lm[list(iris_i[1:])] - c, axis=1)))
    dist = np.sqrt((xs[None, :] - c[0]) ** 2 + (ys - c[1]) ** 2)
    # the sprite covers the iris and a pixel of its rim; under its opaque part the
    # eyeball is inpainted from the sclera around. Where the sprite is see-through the
    # eyeball keeps the photo, so an unmoved iris reproduces the photo exactly.
    disc = np.clip(rad + 2.0 - dist, 0.0, 1.0)
    core = (disc >= 1.0).astype(np.uint8)
    sclera = np.array(rig.colors.sclera, np.float64)
    fill = np.where((aperture > 0.5)[..., None], pf, sclera)
    inpainted = cv2.inpaint(np.clip(fill, 0, 255).astype(np.uint8), core, 3, cv2.INPAINT_TELEA)
    eyeball = np.where(core[..., None] > 0, inpainted.astype(np.float64), pf)
    visible = (aperture > 0.5) & (disc > 0)
    mean_iris = pf[visible].mean(axis=0) if visible.any() else np.array([70.0, 50.0, 40.0])
    iris = np.empty_like(pf)
    iris[:] = mean_iris
    seen = (aperture > 0.0) & (disc > 0)
    iris[seen] = pf[seen]
    yy, xx = np.nonzero((disc > 0) & ~seen)
    my = np.clip(np.round(2 * (c[1] - y0) - yy).astype(int), 0, h - 1)
    ok = visible[my, xx]
    iris[yy[ok], xx[ok]] = pf[my[ok], xx[ok]]
    pin = _pinned(pf, y_up, ys, float(np.dot(rig.colors.skin, (0.299, 0.587, 0.114))), fh)
    ew = float(np.linalg.norm(up[-1] - up[0]))
    return EyeModel(
        roi=roi,
        lid_field=lid.astype(np.float32),
        atlas_lid=np.concatenate([pf, upper[..., None], lash[..., None]], -1).astype(np.float32),
        atlas_face=np.concatenate([pf, lower[..., None], eyeball, pin[..., None]], -1).astype(
            np.float32
        ),
        atlas_iris=np.concatenate([iris, disc[..., None]], -1).astype(np.float32),
        gaze_px=(0.11 * ew, 0.07 * ew),
    )


def _pinned(pf: F64, y_up: F64, ys: F64, skin_luma: float, fh: float) -> F64:
    """What stays put while the lid closes: dark things above the eyelid (the frames
    of glasses, the brows), in front of the skin that stretches behind them.

    The lid field drags the skin up to the brow; a glasses frame there would ride down
    with it. Pixels clearly darker than the skin, at least ``0.02 fh`` above the upper
    lid line (the lashes and the lid's crease move with the lid), are drawn unwarped.
    """
    luma = pf[..., 0] * 0.299 + pf[..., 1] * 0.587 + pf[..., 2] * 0.114
    dark = smoothstep((0.55 * skin_luma - luma) / (0.15 * skin_luma))
    above = smoothstep(((y_up - 0.02 * fh) - ys) / (0.01 * fh + 1.0))
    pin = (dark * above).astype(np.float32)
    pin = np.asarray(cv2.dilate(pin, np.ones((3, 3), np.uint8)), np.float32)
    return np.asarray(cv2.GaussianBlur(pin, (0, 0), 0.7), np.float64)
