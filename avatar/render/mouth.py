"""The mouth: control targets per mouth unit, the split fields, and the interior.

Each mouth unit (jaw, wide, round, press, teeth) moves landmark points. Its smooth part
(chin, jaw line, cheeks, corners) goes into the common low-resolution field; what is
left at each lip point (its target minus the smooth part) becomes a local field of the
upper or the lower lip, confined between the mouth corners. The interior (cavity,
tongue, lower and upper teeth) is drawn once, in portrait coordinates, and sampled
through the upper (teeth, cavity) or lower (tongue, lower teeth) part's field.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatar.identity import landmarks as L
from avatar.identity.rig import JAW_DROP, AvatarRig
from avatar.render.geometry import F32, F64, box_ring, curve_y, smoothstep, tps_field
from avatar.render.model import (
    MOUTH_COMMON_UNITS,
    MOUTH_UNITS,
    CommonGrid,
    MouthModel,
    Roi,
    clip_box,
    make_roi,
    sample_nearest,
)


@dataclass(frozen=True, eq=False)
class MouthTargets:
    """Control points of the mouth units, in portrait pixels."""

    mid: F64
    axis: F64
    """Unit vector from the image-left mouth corner to the right one."""
    width: float
    com_pts: F64
    com_vals: F64
    """(N, 2·len(MOUTH_COMMON_UNITS)) smooth-part targets."""
    up_pts: F64
    lo_pts: F64
    up_tgt: F64
    """(n, 2·len(MOUTH_UNITS)) total targets of the upper lip points."""
    lo_tgt: F64
    jaw_box: tuple[int, int, int, int]


def mouth_targets(rig: AvatarRig) -> MouthTargets:
    """Where each mouth unit moves the jaw, corners, cheeks and lips (at weight 1)."""
    lm = rig.landmarks.astype(np.float64)
    fh = rig.face_height
    J = JAW_DROP * fh
    c0, c1 = lm[L.MOUTH_CORNERS[0]], lm[L.MOUTH_CORNERS[1]]
    mw = max(float(np.linalg.norm(c1 - c0)), 2.0)
    e = (c1 - c0) / mw
    n = np.array([-e[1], e[0]])
    mid = (c0 + c1) / 2.0

    def vec(along: float, down: float) -> F64:
        return np.asarray(along * e + down * n)

    # smooth part: jaw line, corners, cheeks beside the corners, the neck under the chin
    jaw_w = dict(
        zip(
            (132, 58, 172, 136, 150, 149, 176, 148),
            (0.1, 0.25, 0.4, 0.55, 0.7, 0.85, 0.95, 1.0),
            strict=True,
        )
    )
    jaw_w.update(zip((361, 288, 397, 365, 379, 378, 400, 377), list(jaw_w.values()), strict=True))
    jaw_w[L.CHIN] = 1.08
    pts: list[F64] = []
    vals: list[F64] = []
    for i, wgt in jaw_w.items():
        pts.append(lm[i])
        vals.append(np.r_[vec(0.0, wgt * J), 0.0, 0.0, 0.0, 0.0])
    for c, s in ((c0, -1.0), (c1, 1.0)):
        pts.append(c)
        vals.append(
            np.r_[
                vec(-s * 0.03 * mw, 0.45 * J),
                vec(s * 0.10 * mw, -0.015 * fh),
                vec(-s * 0.14 * mw, 0.0),
            ]
        )
        for k, fj, fw, fr in ((0.35, 0.3, 0.06, 0.07), (0.8, 0.15, 0.025, 0.03)):
            pts.append(mid + s * e * (mw / 2.0) * (1.0 + k))
            vals.append(
                np.r_[vec(0.0, fj * J), vec(s * fw * mw, -fw / 6.0 * fh), vec(-s * fr * mw, 0.0)]
            )
    chin = lm[L.CHIN]
    for dy, f in ((0.1, 0.45), (0.2, 0.12)):
        pts.append(chin + n * dy * fh)
        vals.append(np.r_[vec(0.0, f * J), 0.0, 0.0, 0.0, 0.0])

    # lip points: total targets of each unit (jaw, wide, round, press, teeth)
    inner_up, inner_lo = lm[list(L.LIPS_INNER_UPPER)], lm[list(L.LIPS_INNER_LOWER)]

    def lip_targets(idx: tuple[int, ...], inner: bool, upper: bool) -> F64:
        p = lm[list(idx[1:-1])]
        other = lm[list((L.LIPS_INNER_UPPER if upper else L.LIPS_INNER_LOWER)[1:-1])]
        thick = np.linalg.norm(p - other, axis=1)
        # the opening between the lips at rest (a smile showing teeth): pressing closes it
        gap = np.maximum(curve_y(inner_lo, p[:, 0]) - curve_y(inner_up, p[:, 0]), 0.0) + 0.3
        out = []
        for j, pt in enumerate(p):
            u = float((pt - mid) @ e / (mw / 2.0))
            au, su = min(abs(u), 1.0), float(np.sign(u))
            s = au**2.5
            ctr = -0.06 * J if upper else J
            jaw = vec(-su * 0.03 * mw * s, (1.0 - s) * ctr + s * 0.45 * J)
            wide = vec(0.10 * mw * u, -0.015 * fh * u * u)
            rnd = (0.007 if inner else 0.014) * fh * (1.0 - au * au)
            rnd_v = vec(-0.14 * mw * u, -rnd if upper else rnd)
            close = 0.5 * gap[j] + (0.0 if inner else 0.4 * thick[j])
            press = vec(0.0, close if upper else -close)
            bare = (0.4 + 0.6 * (1.0 - au * au)) * fh
            teeth = vec(0.0, -0.028 * bare if upper else 0.012 * bare)
            out.append(np.r_[jaw, wide, rnd_v, press, teeth])
        return np.array(out)

    up_pts = np.vstack([lm[list(L.LIPS_OUTER_UPPER[1:-1])], lm[list(L.LIPS_INNER_UPPER[1:-1])]])
    lo_pts = np.vstack([lm[list(L.LIPS_OUTER_LOWER[1:-1])], lm[list(L.LIPS_INNER_LOWER[1:-1])]])
    up_tgt = np.vstack(
        [lip_targets(L.LIPS_OUTER_UPPER, False, True), lip_targets(L.LIPS_INNER_UPPER, True, True)]
    )
    lo_tgt = np.vstack(
        [
            lip_targets(L.LIPS_OUTER_LOWER, False, False),
            lip_targets(L.LIPS_INNER_LOWER, True, False),
        ]
    )
    jaw = lm[list(L.JAW_LINE)]
    jaw_box = clip_box(
        jaw[:, 0].min() - 0.05 * fh,
        lm[L.NOSE_TIP][1] - 0.02 * fh,
        jaw[:, 0].max() + 0.05 * fh,
        chin[1] + 0.32 * fh,
        rig.size,
    )
    return MouthTargets(
        mid=mid,
        axis=e,
        width=mw,
        com_pts=np.array(pts),
        com_vals=np.array(vals),
        up_pts=up_pts,
        lo_pts=lo_pts,
        up_tgt=up_tgt,
        lo_tgt=lo_tgt,
        jaw_box=jaw_box,
    )


def mouth_common_basis(rig: AvatarRig, grid: CommonGrid, t: MouthTargets) -> tuple[F64, F64, F64]:
    """The smooth part of the mouth units on the low-res grid; also its value at the lips."""
    fh = rig.face_height
    lm = rig.landmarks.astype(np.float64)
    x0, y0, w, h = t.jaw_box
    ring = box_ring(x0, y0, x0 + w - 1, y0 + h - 1, 0.06 * fh)
    nose = lm[list(L.NOSE)]
    cp = np.vstack([t.com_pts, ring, nose])
    nc = t.com_vals.shape[1]
    cv = np.vstack([t.com_vals, np.zeros((len(ring) + len(nose), nc))])
    X, Y = grid.nodes[..., 0], grid.nodes[..., 1]
    inside = (x0 <= X) & (x0 + w - 1 >= X) & (y0 <= Y) & (y0 + h - 1 >= Y)
    query = np.vstack([grid.nodes[inside], t.up_pts, t.lo_pts])
    at = tps_field(cp, cv, query, scale=fh)
    n_in = int(inside.sum())
    margin = 0.04 * fh
    edge = np.minimum(np.minimum(X - x0, x0 + w - 1 - X), np.minimum(Y - y0, y0 + h - 1 - Y))
    taper = smoothstep(edge / margin) * grid.move
    nu = len(MOUTH_COMMON_UNITS)
    basis = np.zeros((nu, *grid.shape, 2))
    vals = at[:n_in].reshape(n_in, nu, 2)
    for k in range(nu):
        basis[k][inside] = vals[:, k, :] * taper[inside][:, None]
    full = len(MOUTH_UNITS) * 2
    base_up = np.zeros((len(t.up_pts), full))
    base_lo = np.zeros((len(t.lo_pts), full))
    base_up[:, :nc] = at[n_in : n_in + len(t.up_pts)]
    base_lo[:, :nc] = at[n_in + len(t.up_pts) :]
    return basis, base_up, base_lo


def build_mouth(
    rig: AvatarRig, grid: CommonGrid, basis: F64, t: MouthTargets, base_up: F64, base_lo: F64
) -> MouthModel:
    """The mouth ROI: the lips' local fields per unit, masks, and interior textures."""
    lm = rig.landmarks.astype(np.float64)
    fh = rig.face_height
    J = JAW_DROP * fh
    mw, e, mid = t.width, t.axis, t.mid
    ends = np.array([mid - e * 0.75 * mw, mid + e * 0.75 * mw])
    content = clip_box(
        ends[:, 0].min(),
        lm[L.NOSE_BASE][1] - 0.015 * fh,
        ends[:, 0].max(),
        lm[L.CHIN][1] + 0.01 * fh,
        rig.size,
    )
    roi = make_roi(
        content, basis, rig.size, (0.05 * fh + 0.15 * mw, 0.05 * fh + 0.6 * J), 0.02 * fh
    )
    nodes = roi.nodes()
    q = nodes.reshape(-1, 2)
    u = ((q - mid) @ e) / (mw / 2.0)
    window = 1.0 - smoothstep((np.abs(u) - 1.0) / 0.25)
    taper = roi.content_taper(q, 0.03 * fh) * sample_nearest(grid.move_full, q)
    cx0, cy0, cw, ch = content
    ring = box_ring(cx0, cy0, cx0 + cw - 1, cy0 + ch - 1, 0.05 * fh)
    anchors = np.vstack(
        [lm[list(L.MOUTH_CORNERS + L.INNER_CORNERS)], lm[list(L.NOSE)], lm[list(L.JAW_LINE)], ring]
    )
    nu = len(MOUTH_UNITS)
    nh, nw = roi.node_shape
    fields = []
    for pts, resid in ((t.up_pts, t.up_tgt - base_up), (t.lo_pts, t.lo_tgt - base_lo)):
        split = tps_field(
            np.vstack([pts, anchors]),
            np.vstack([resid, np.zeros((len(anchors), 2 * nu))]),
            q,
            scale=fh,
        )
        f = split * (window * taper)[:, None]
        fields.append(np.ascontiguousarray(f.reshape(nh, nw, nu, 2).transpose(2, 0, 1, 3)))
    atlas_up, atlas_low = mouth_atlases(rig, roi)
    return MouthModel(
        roi=roi,
        up_fields=fields[0].astype(np.float32),
        low_fields=fields[1].astype(np.float32),
        atlas_up=atlas_up,
        atlas_low=atlas_low,
    )


def _gap_shade(
    u: F64, px_per_u: float, gap_px: float, gaps: tuple[float, ...], depth: float = 0.15
) -> F64:
    """Darkening at the gaps between teeth (u: -1..1 across the opening)."""
    shade = np.ones_like(u)
    for g in gaps:
        for s in (1.0,) if g == 0.0 else (1.0, -1.0):
            shade *= 1.0 - depth * np.exp(-0.5 * ((u - s * g) * px_per_u / gap_px) ** 2)
    return shade


def mouth_atlases(rig: AvatarRig, roi: Roi) -> tuple[F32, F32]:
    """Portrait, part masks and interior textures of the mouth ROI."""
    x0, y0, w, h = roi.x0, roi.y0, roi.w, roi.h
    lm = rig.landmarks.astype(np.float64)
    fh = rig.face_height
    col = rig.colors
    xs = roi.columns()
    ys = roi.rows()
    y_ui = curve_y(lm[list(L.LIPS_INNER_UPPER)], xs)[None, :]
    y_li = np.maximum(curve_y(lm[list(L.LIPS_INNER_LOWER)], xs)[None, :], y_ui)
    upper = np.clip(y_ui - ys + 0.5, 0.0, 1.0)
    lower = np.clip(ys - y_li + 0.5, 0.0, 1.0)
    opening = np.clip(1.0 - upper - lower, 0.0, 1.0)
    portrait = rig.portrait[y0 : y0 + h, x0 : x0 + w].astype(np.float64)
    c0, c1 = lm[L.INNER_CORNERS[0]], lm[L.INNER_CORNERS[1]]
    cx = (c0[0] + c1[0]) / 2.0
    half = max(abs(c1[0] - c0[0]) / 2.0, 2.0)
    u = np.broadcast_to((xs[None, :] - cx) / half, (h, w))
    au = np.abs(u)
    side = np.sqrt(np.clip(1.0 - u * u, 0.0, 1.0))
    gap_px = max(0.5, 0.0035 * fh)
    teeth_col = np.array(col.teeth, np.float64)
    # upper teeth: a band under the upper inner lip, darker at the sides and under the lip
    t = ys - y_ui
    # where the photo shows its teeth, the band just continues them a little
    o_h = y_li - y_ui
    shows = float(np.max(o_h)) > 0.015 * fh
    h_t = o_h + 0.01 * fh
    if not shows:
        h_t = np.maximum(h_t, 0.032 * fh * (0.55 + 0.45 * side))
    a_teeth = np.clip(h_t - t + 0.5, 0.0, 1.0) * np.clip(t + 2.5, 0.0, 1.0)
    a_teeth *= 1.0 - smoothstep((au - 0.8) / 0.35)
    shade = (1.0 - 0.45 * au**2) * (0.84 + 0.16 * smoothstep(t / (0.3 * h_t)))
    shade *= 1.0 - 0.1 * smoothstep((t - 0.75 * h_t) / (0.25 * h_t))
    shade *= _gap_shade(u, half, gap_px, (0.0, 0.24, 0.44), 0.07)
    teeth_rgb = teeth_col * shade[..., None]
    photo = opening > 0.01
    teeth_rgb[photo] = portrait[photo]
    a_teeth = np.where(photo, 1.0, a_teeth)
    # cavity: dark, darker in the middle and further back
    depth = smoothstep((ys - y_ui) / (0.1 * fh))
    cav_shade = (0.7 + 0.3 * np.clip(au, 0.0, 1.0)) * (1.0 - 0.35 * depth)
    cav = np.array(col.cavity, np.float64) * cav_shade[..., None]
    # lower interior: the edge of the lower teeth over a tongue, above the lower inner lip
    tl = y_li - ys
    h_lt = 0.017 * fh * (0.3 + 0.7 * side)
    a_lt = np.clip(h_lt - tl + 0.5, 0.0, 1.0) * np.clip(tl + 2.5, 0.0, 1.0)
    a_lt *= 1.0 - smoothstep((au - 0.35) / 0.3)
    lt_shade = 0.8 * (1.0 - 0.4 * au**1.6) * _gap_shade(u, half, gap_px, (0.0, 0.2), 0.06)
    lt_shade *= 0.85 + 0.15 * smoothstep((h_lt - tl) / (0.5 * h_lt + 1e-6))
    lt_rgb = teeth_col * lt_shade[..., None]
    mid_li = float(curve_y(lm[list(L.LIPS_INNER_LOWER)], [cx])[0])
    ty = mid_li - 0.03 * fh
    r = np.sqrt((u / 0.6) ** 2 + ((ys - ty) / (0.045 * fh)) ** 2)
    a_tg = 1.0 - smoothstep((r - 0.75) / 0.4)
    tg_shade = 0.65 + 0.35 * smoothstep((ys - (ty - 0.045 * fh)) / (0.06 * fh))
    tg_rgb = np.array(col.tongue, np.float64) * tg_shade[..., None]
    a_low = a_lt + a_tg * (1.0 - a_lt)
    low_rgb = (lt_rgb * a_lt[..., None] + tg_rgb * (a_tg * (1.0 - a_lt))[..., None]) / np.maximum(
        a_low, 1e-6
    )[..., None]
    atlas_up = np.concatenate(
        [portrait, upper[..., None], teeth_rgb, a_teeth[..., None], cav], axis=-1
    )
    atlas_low = np.concatenate([portrait, lower[..., None], low_rgb, a_low[..., None]], axis=-1)
    return atlas_up.astype(np.float32), atlas_low.astype(np.float32)
