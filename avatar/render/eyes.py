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
from avatar.render.model import CommonGrid, EyeModel, clip_box, make_roi


def build_eye(rig: AvatarRig, grid: CommonGrid, basis: F64, *, side: str) -> EyeModel:
    """One eye ROI (``side``: the subject's "right" or "left")."""
    lm = rig.landmarks.astype(np.float64)
    fh = rig.face_height
    if side == "right":
        up_i, lo_i, brow_i, iris_i = L.RIGHT_EYE_UPPER, L.RIGHT_EYE_LOWER, L.RIGHT_BROW_LOWER, \
            L.RIGHT_IRIS  # fmt: skip
    else:
        up_i, lo_i, brow_i, iris_i = L.LEFT_EYE_UPPER, L.LEFT_EYE_LOWER, L.LEFT_BROW_LOWER, \
            L.LEFT_IRIS  # fmt: skip
    up, lo, brow = lm[list(up_i)], lm[list(lo_i)], lm[list(brow_i)]
    xa, xb = min(up[0, 0], up[-1, 0]), max(up[0, 0], up[-1, 0])
    box = clip_box(xa - 0.05 * fh, brow[:, 1].min() - 0.01 * fh, xb + 0.05 * fh,
                   lo[:, 1].max() + 0.05 * fh, rig.size)  # fmt: skip
    x0, y0, w, h = box
    roi = make_roi(box, basis, rig.size, (0.04 * fh, 0.04 * fh), 0.01 * fh)
    xs = np.arange(x0, x0 + w, dtype=np.float64)
    ys = np.arange(y0, y0 + h, dtype=np.float64)[:, None]
    y_up = curve_y(up, xs)[None, :]
    y_lo = np.maximum(curve_y(lo, xs)[None, :], y_up)
    y_brow = curve_y(brow, xs)[None, :]
    upper = np.clip(y_up - ys + 0.5, 0.0, 1.0)
    lower = np.clip(ys - y_lo + 0.5, 0.0, 1.0)
    aperture = np.clip(1.0 - upper - lower, 0.0, 1.0)
    outside = np.maximum(0.0, np.maximum(xa - xs, xs - xb))[None, :]
    hwin = 1.0 - smoothstep(outside / (0.02 * fh))
    inside = (xs >= xa) & (xs <= xb)
    span = float(np.mean((y_up - y_brow)[0, inside])) if inside.any() else 0.05 * fh
    S = max(3.0, 0.9 * span)
    # the lid edge travels to just past the lower lid; the skin above it stretches
    travel = (y_lo - y_up + 1.0) * hwin
    ramp = np.clip((ys - (y_up - S)) / S, 0.0, 1.0)
    below = 1.0 - smoothstep((ys - (y_lo + 0.02 * fh)) / (0.02 * fh))
    lid = np.zeros((h, w, 2))
    lid[..., 1] = travel * ramp * below * grid.move_full[y0 : y0 + h, x0 : x0 + w]
    lash = np.clip(1.0 - (y_up - ys) / (0.012 * fh + 0.5), 0.0, 1.0) * (ys <= y_up + 0.5) * hwin
    pf = rig.portrait[y0 : y0 + h, x0 : x0 + w].astype(np.float64)
    # the iris sprite, and an eyeball with the iris painted out
    c = lm[iris_i[0]]
    rad = float(np.mean(np.linalg.norm(lm[list(iris_i[1:])] - c, axis=1)))
    dist = np.sqrt((xs[None, :] - c[0]) ** 2 + (ys - c[1]) ** 2)
    # the sprite covers the iris with its anti-aliased rim; the eyeball under it is
    # inpainted from the sclera around (a little wider, so no dark ring is left behind)
    disc = np.clip(rad + 1.0 - dist, 0.0, 1.0)
    core = (dist <= rad + 1.5).astype(np.uint8)
    sclera = np.array(rig.colors.sclera, np.float64)
    fill = np.where((aperture > 0.5)[..., None], pf, sclera)
    inpainted = cv2.inpaint(np.clip(fill, 0, 255).astype(np.uint8), core, 3, cv2.INPAINT_TELEA)
    eyeball = np.where(core[..., None] > 0, inpainted.astype(np.float64), pf)
    visible = (aperture > 0.5) & (disc > 0)
    mean_iris = pf[visible].mean(axis=0) if visible.any() else np.array([70.0, 50.0, 40.0])
    iris = np.empty_like(pf)
    iris[:] = mean_iris
    iris[visible] = pf[visible]
    yy, xx = np.nonzero((disc > 0) & ~visible)
    my = np.clip(np.round(2 * (c[1] - y0) - yy).astype(int), 0, h - 1)
    ok = visible[my, xx]
    iris[yy[ok], xx[ok]] = pf[my[ok], xx[ok]]
    ew = float(np.linalg.norm(up[-1] - up[0]))
    return EyeModel(
        roi=roi,
        lid_field=lid.astype(np.float32),
        atlas_lid=np.stack([upper, lash], -1).astype(np.float32),
        atlas_face=np.concatenate([lower[..., None], eyeball], -1).astype(np.float32),
        atlas_iris=np.concatenate([iris, disc[..., None]], -1).astype(np.float32),
        gaze_px=(0.11 * ew, 0.07 * ew),
    )
