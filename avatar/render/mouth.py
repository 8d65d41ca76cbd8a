"""The mouth: control targets per mouth unit, the split fields, and the interior.

Each mouth unit (jaw, wide, round, press, teeth) moves landmark points. Its smooth part
(chin, jaw line, cheeks, corners) goes into the common low-resolution field; what is
left at each lip point (its target minus the smooth part) becomes a local field of the
upper or the lower lip, confined between the mouth corners. The interior is drawn
once, in portrait coordinates, as functions of the distance from each inner lip edge:
what hangs from the upper jaw (the upper lip's inner surface, the upper teeth, the
cavity) is sampled through the upper part's field, what rests on the lower one (its
lip's inner surface, the lower teeth, the tongue) through the lower part's. How far
each layer reaches into the opening is set per frame (:mod:`avatar.render.params`),
so the teeth show more for "ee" than for "oo" and nothing pops out of a closed mouth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatar.identity import landmarks as L
from avatar.identity.rig import JAW_DROP, AvatarRig
from avatar.render.geometry import F32, F64, box_ring, curve_y, smoothstep, tps_field
from avatar.render.model import (
    LO_CHANNELS,
    LOWER_LIP_INNER,
    MOUTH_COMMON_UNITS,
    MOUTH_UNITS,
    UP_CHANNELS,
    UPPER_LIP_INNER,
    CommonGrid,
    MouthModel,
    Roi,
    clip_box,
    make_roi,
    sample_nearest,
)

ROUND_IN = 0.19
"""How far each mouth corner moves toward the middle for fully rounded lips ("oo", "w"),
as a fraction of the mouth's width; the lips part into a rounder opening meanwhile."""


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
                vec(-s * ROUND_IN * mw, 0.0),
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
            rnd = (0.011 if inner else 0.016) * fh * (1.0 - au * au)
            rnd_v = vec(-ROUND_IN * mw * u, -rnd if upper else rnd)
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
    atlas_up, atlas_low, shows = mouth_atlases(rig, roi)
    return MouthModel(
        roi=roi,
        up_fields=fields[0].astype(np.float32),
        low_fields=fields[1].astype(np.float32),
        atlas_up=atlas_up,
        atlas_low=atlas_low,
        shows_teeth=shows,
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


def _luma(rgb: F64) -> F64:
    return np.asarray(rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114)


@dataclass(frozen=True)
class InteriorColors:
    """The mouth interior's colours, from the portrait's own colours and lighting."""

    teeth: F64
    cavity: F64
    """Just inside the lips (the back of the mouth is darker, see ``CAVITY_DEEP``)."""
    tongue: F64
    lip_upper: F64
    """The upper lip's inner surface (faces down, in its own shadow)."""
    lip_lower: F64
    """The lower lip's inner surface (faces up, wet, catches some light)."""


def interior_colors(rig: AvatarRig, shows_teeth: bool) -> InteriorColors:
    """Teeth, cavity, tongue and inner-lip colours for a rig.

    Teeth take the hue and level of the whites of the eyes (lit by the same light as
    the mouth), kept within the brightness range the skin implies; a photo that shows
    its teeth gives their colour directly. The cavity and tongue are the lip colour,
    darkened and tinted toward the skin, so a pale, a dark, a warm or a grey portrait
    each gets a mouth of its own colours.
    """
    col = rig.colors
    skin = np.array(col.skin, np.float64)
    lip = np.array(col.lip, np.float64)
    sclera = np.array(col.sclera, np.float64)
    ivory = np.array([236.0, 228.0, 212.0])
    skin_l = float(_luma(skin))
    if shows_teeth:
        teeth = np.array(col.teeth, np.float64)
    else:
        # the whites of the eyes tell the light's colour, when they were found (bright
        # and unsaturated; a small eye often samples skin instead)
        sat = float((sclera.max() - sclera.min()) / max(sclera.max(), 1.0))
        white = sat < 0.22 and float(_luma(sclera)) > 0.9 * skin_l
        ref = sclera if white else skin
        hue = 0.65 * ivory / _luma(ivory) + 0.35 * ref / max(float(_luma(ref)), 1.0)
        level = float(np.clip(1.25 * skin_l, 120.0, 235.0))
        teeth = np.clip(hue * level, 0.0, 255.0)
    tint = 0.75 * lip + 0.25 * skin
    # a touch more red than the tint (the inside of the mouth is mucosa), as far as the
    # photo has colour at all: a black-and-white portrait keeps a grey mouth
    colourful = min(1.0, float((lip.max() - lip.min()) / max(lip.max(), 1.0)) / 0.2)
    red = tint * (1.0 + colourful * np.array([0.1, -0.1, -0.1]))
    tongue_tone = 0.74 + colourful * np.array([0.06, -0.06, 0.0])
    return InteriorColors(
        teeth=teeth,
        cavity=red * 0.5,
        tongue=red * tongue_tone,
        lip_upper=lip * 0.62,
        lip_lower=lip * np.array([0.95, 0.8, 0.8]),
    )


def mouth_atlases(rig: AvatarRig, roi: Roi) -> tuple[F32, F32, bool]:
    """Portrait, part masks and interior textures of the mouth ROI.

    Everything is drawn in portrait coordinates as a function of ``t``, the distance
    from the nearer inner lip edge: the upper atlas (sampled through the upper lip's
    field) holds what hangs from the upper jaw, the lower atlas what rests on the
    lower one. The heights of the upper teeth and of the tongue are per-frame reaches
    (see :mod:`avatar.render.params`); the atlases hold their profiles across the
    mouth. Also returns whether the photo shows its own teeth (then they are used).
    """
    x0, y0, w, h = roi.x0, roi.y0, roi.w, roi.h
    lm = rig.landmarks.astype(np.float64)
    fh = rig.face_height
    xs = roi.columns()
    ys = roi.rows()
    y_ui = curve_y(lm[list(L.LIPS_INNER_UPPER)], xs)[None, :]
    y_li = np.maximum(curve_y(lm[list(L.LIPS_INNER_LOWER)], xs)[None, :], y_ui)
    upper = np.clip(y_ui - ys + 0.5, 0.0, 1.0)
    lower = np.clip(ys - y_li + 0.5, 0.0, 1.0)
    opening = np.clip(1.0 - upper - lower, 0.0, 1.0)
    # no mouth opens onto the background (a far mouth corner in a turned face can lie
    # beyond the silhouette): there the upper part (the still portrait) stays
    person = rig.person[y0 : y0 + h, x0 : x0 + w].astype(np.float64)
    upper = np.maximum(upper, np.minimum(1.0 - person, 1.0 - lower))
    portrait = rig.portrait[y0 : y0 + h, x0 : x0 + w].astype(np.float64)
    c0, c1 = lm[L.INNER_CORNERS[0]], lm[L.INNER_CORNERS[1]]
    cx = (c0[0] + c1[0]) / 2.0
    half = max(abs(c1[0] - c0[0]) / 2.0, 2.0)
    u = np.broadcast_to((xs[None, :] - cx) / half, (h, w))
    au = np.abs(u)
    side = np.sqrt(np.clip(1.0 - u * u, 0.0, 1.0))
    gap_px = max(0.5, 0.0035 * fh)
    o_h = y_li - y_ui
    shows = float(np.max(o_h)) > 0.015 * fh
    colors = interior_colors(rig, shows)
    shape = (h, w)

    # --- upper: the inner surface of the upper lip, the upper teeth, the cavity
    t_up = np.broadcast_to(ys - y_ui, shape)
    lip_prof = 0.4 + 0.6 * side
    lip_w = UPPER_LIP_INNER * fh * lip_prof
    lip_shade = 0.75 + 0.25 * smoothstep(t_up / np.maximum(lip_w, 0.5))
    lip_up = colors.lip_upper * (lip_shade * (1.0 - 0.35 * au**2))[..., None]
    # teeth: the band's height at the centre is the per-frame reach, less at the sides
    # (the arch turns away); shaded under the lip, at the sides, at the gaps
    reach = side**0.6 * (1.0 - smoothstep((au - 0.62) / 0.35))
    t_rel = t_up / (0.04 * fh)
    shade = (1.0 - 0.6 * au**2) * (0.8 + 0.2 * smoothstep(t_rel / 0.45))
    shade *= 1.0 - 0.12 * smoothstep((t_rel - 0.6) / 0.4)
    shade *= _gap_shade(u, half, gap_px, (0.0, 0.24, 0.44), 0.1)
    teeth_rgb = colors.teeth * shade[..., None]
    photo = np.zeros(shape)
    if shows:  # the photo's teeth, continued a little below its opening
        photo = np.clip(o_h + 0.01 * fh - t_up + 0.5, 0.0, 1.0) * (t_up > -2.5)
        photo *= 1.0 - smoothstep((au - 0.85) / 0.3)
        inside = opening > 0.01
        teeth_rgb[inside] = portrait[inside]
        photo[inside] = 1.0
        reach = reach * 0.0
    # the cavity: lit just inside the lips, dark at the back, darker toward the corners
    cavity = colors.cavity * (1.0 - 0.55 * smoothstep(au / 1.1))[..., None]
    fall = 0.02 * fh
    light_up = np.exp(-np.maximum(t_up, 0.0) / fall)

    # --- lower: the inner surface of the lower lip, the lower teeth, the tongue
    t_lo = np.broadcast_to(y_li - ys, shape)
    llip_w = LOWER_LIP_INNER * fh * lip_prof
    llip_shade = 1.0 - 0.2 * smoothstep(t_lo / np.maximum(llip_w, 0.5))
    lip_lo = colors.lip_lower * (llip_shade * (1.0 - 0.35 * au**2))[..., None]
    # the edge of the lower teeth, behind the lower lip: their reach (per frame) is
    # about the lip's inner surface when the jaw is nearly closed
    lt_prof = (0.55 + 0.45 * side) * (1.0 - smoothstep((au - 0.3) / 0.3))
    lt_shade = 0.7 * (1.0 - 0.4 * au**1.6) * _gap_shade(u, half, gap_px, (0.0, 0.2), 0.08)
    lt_rgb = (0.8 * colors.teeth + 0.2 * colors.lip_lower) * lt_shade[..., None]
    # the tongue: a dome resting behind the lower teeth, lit at its front edge
    dome = np.sqrt(np.clip(1.0 - (u / 0.8) ** 2, 0.0, 1.0))
    tg_shade = (0.95 - 0.4 * smoothstep(t_lo / (0.05 * fh))) * (1.0 - 0.3 * au**2)
    tg_shade *= 1.0 - 0.12 * np.exp(-0.5 * (u * half / (0.006 * fh + 0.5)) ** 2)  # mid line
    tongue = colors.tongue * tg_shade[..., None]
    light_lo = np.exp(-np.maximum(t_lo, 0.0) / fall)

    up_parts: list[F64] = [
        portrait,
        upper[..., None],
        teeth_rgb,
        t_up[..., None],
        reach[..., None],
        photo[..., None],
        cavity,
        light_up[..., None],
        lip_up,
        lip_prof[..., None],
    ]
    lo_parts: list[F64] = [
        portrait,
        lower[..., None],
        tongue,
        t_lo[..., None],
        dome[..., None],
        lt_rgb,
        lt_prof[..., None],
        light_lo[..., None],
        lip_lo,
        lip_prof[..., None],
    ]
    atlas_up = np.concatenate(up_parts, axis=-1)
    atlas_low = np.concatenate(lo_parts, axis=-1)
    assert atlas_up.shape[-1] == UP_CHANNELS and atlas_low.shape[-1] == LO_CHANNELS
    return atlas_up.astype(np.float32), atlas_low.astype(np.float32), shows
