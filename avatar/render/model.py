"""Everything the renderers precompute once per rig: the warp basis, ROIs and textures.

The picture is the reference portrait warped by a backward sampling field, plus three
small regions of interest (the mouth, each eye) composited on top:

* A **common field** at low resolution (cells of ``cell`` pixels): head roll, yaw,
  pitch and translation, torso sway, breathing, brows, and the smooth part of the
  mouth's motion (chin, jaw line, cheeks, mouth corners). It is linear in a
  coefficient vector, ``F = Σ coef[k] · basis[k]``, inverted by damped fixed-point
  iteration and upsampled bilinearly. It is exactly zero near and outside the
  person's silhouette, so the background never moves.
* The **mouth ROI** (:mod:`avatar.render.mouth`) splits the lips into an upper and a
  lower part, each with a local field; where they part, a synthesized interior shows.
* Each **eye ROI** (:mod:`avatar.render.eyes`) lets the upper lid slide down and moves
  an iris sprite over an iris-free eyeball.

Both renderers compute the same sampling positions with the same formulas; they
differ only in the sampler and the arithmetic library.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from avatar.identity import landmarks as L
from avatar.identity.rig import AvatarRig
from avatar.render.geometry import F32, F64, curve_y, smoothstep

HEAD_UNITS = (
    "rot_c",
    "rot_s",
    "tx",
    "ty",
    "yaw",
    "pitch",
    "torso",
    "breath",
    "brow_up",
    "brow_down",
)
MOUTH_COMMON_UNITS = ("jaw", "wide", "round")
COMMON_UNITS = HEAD_UNITS + tuple(f"mouth_{u}" for u in MOUTH_COMMON_UNITS)
MOUTH_UNITS = ("jaw", "wide", "round", "press", "teeth")

ITERS = 4
"""Fixed-point iterations when inverting a forward field."""
DAMPING = 0.7
"""Step size of the damped iterations (after a first full step)."""

YAW_RADIUS = 0.45
"""Depth of the face centre (fraction of face height) used for yaw/pitch parallax."""
BREATH_RISE = 0.012
BROW_RISE = 0.035


@dataclass(frozen=True, eq=False)
class Roi:
    """A region of interest: its arrays' box in the portrait, its content, its probes.

    The arrays (fields, masks, textures) cover the box (x0, y0, w, h): the content box
    (where the local fields live) plus a margin, so the portrait is in the textures
    wherever a destination pixel of the ROI samples it. The local fields are stored on
    a coarser grid (every ``step`` pixels, node ``j`` at ``x0 + j * step``).

    The ROI moves with the common field: the CPU renderer takes the tight box around
    the moved probes (corners, edge midpoints and centre of the content box); the torch
    renderer a fixed-size box (content ± pad) placed by the centre probe.
    """

    x0: int
    y0: int
    w: int
    h: int
    content: tuple[int, int, int, int]
    """(x0, y0, w, h) of the content box."""
    pad_x: int
    pad_y: int
    step: int
    probes: F32
    """(9, 2) probe points in portrait pixels; the centre is the last."""
    probe_basis: F32
    """(K, 9, 2): each common unit's displacement at the probes."""
    margin: int
    """Extra pixels around the tight destination box."""

    @property
    def out_w(self) -> int:
        """Width of the fixed-size destination box."""
        return self.content[2] + 2 * self.pad_x

    @property
    def out_h(self) -> int:
        """Height of the fixed-size destination box."""
        return self.content[3] + 2 * self.pad_y

    @property
    def node_shape(self) -> tuple[int, int]:
        """(rows, cols) of the coarse field grid."""
        return (self.h - 1) // self.step + 1, (self.w - 1) // self.step + 1

    def nodes(self) -> F64:
        """(rows, cols, 2) portrait coordinates of the coarse field grid."""
        nh, nw = self.node_shape
        gx, gy = np.meshgrid(
            self.x0 + self.step * np.arange(nw), self.y0 + self.step * np.arange(nh)
        )
        return np.stack([gx, gy], -1).astype(np.float64)

    def columns(self) -> F64:
        """Portrait x of each array column."""
        return np.arange(self.x0, self.x0 + self.w, dtype=np.float64)

    def rows(self) -> F64:
        """Portrait y of each array row, as a column vector."""
        return np.arange(self.y0, self.y0 + self.h, dtype=np.float64)[:, None]

    def content_taper(self, pts: F64, margin: float) -> F64:
        """1 inside the content box, falling smoothly to 0 at its edges."""
        cx0, cy0, cw, ch = self.content
        x, y = pts[..., 0], pts[..., 1]
        edge = np.minimum(
            np.minimum(x - cx0, cx0 + cw - 1 - x), np.minimum(y - cy0, cy0 + ch - 1 - y)
        )
        return smoothstep(edge / max(margin, 1.0))


# Channels of the mouth atlases (see :func:`avatar.render.mouth.mouth_atlases`). The
# upper atlas is sampled through the upper lip's field, the lower one through the
# lower lip's; ``t`` is the distance (px) from that lip's inner edge into the opening.
UP_RGB, UP_MASK = slice(0, 3), 3
UP_TEETH = slice(4, 7)
"""Upper teeth RGB (the photo's own teeth where it shows them)."""
UP_T, UP_REACH, UP_PHOTO = 7, 8, 9
"""``t`` below the upper lip; the teeth profile (reach per px of band height); the
static alpha of the photo's own teeth."""
UP_CAVITY = slice(10, 13)
"""Cavity RGB where it is lit most (just inside the lips)."""
UP_LIGHT = 13
"""Light reaching the cavity from the upper lip's side (1 at the lip, ~0 deep)."""
UP_LIP = slice(14, 17)
UP_LIP_REACH = 17
"""The upper lip's inner surface (RGB, profile): a band along the opening's top."""
UP_CHANNELS = 18
LO_RGB, LO_MASK = slice(0, 3), 3
LO_TONGUE = slice(4, 7)
LO_T, LO_REACH = 7, 8
"""``t`` above the lower lip; the tongue's profile (a dome, 1 at the centre)."""
LO_TEETH = slice(9, 12)
LO_TEETH_REACH = 12
"""The lower teeth's profile across the mouth (their reach per frame)."""
LO_LIGHT = 13
LO_LIP = slice(14, 17)
LO_LIP_REACH = 17
LO_CHANNELS = 18
CAVITY_DEEP = 0.12
UPPER_LIP_INNER = 0.008
LOWER_LIP_INNER = 0.01
"""Widths of the lips' inner surfaces seen in an open mouth (face heights)."""
"""Brightness of the back of the mouth relative to the cavity just inside the lips."""


@dataclass(frozen=True, eq=False)
class MouthModel:
    """Mouth ROI: per-unit local fields of the upper and lower lips, and textures."""

    roi: Roi
    up_fields: F32
    """(U, rows, cols, 2) upper-part forward displacement per mouth unit (coarse grid)."""
    low_fields: F32
    """(U, rows, cols, 2) lower-part forward displacement per mouth unit (coarse grid)."""
    atlas_up: F32
    """(h, w, UP_CHANNELS): portrait RGB, upper-part mask, and the upper interior."""
    atlas_low: F32
    """(h, w, LO_CHANNELS): portrait RGB, lower-part mask, and the lower interior."""
    shows_teeth: bool = False
    """Whether the photo shows its own teeth between the lips at rest."""


@dataclass(frozen=True, eq=False)
class EyeModel:
    """One eye ROI: the lid-closing field and textures."""

    roi: Roi
    lid_field: F32
    """(rows, cols, 2) upper-lid forward displacement at blink = 1 (coarse grid)."""
    atlas_lid: F32
    """(h, w, 5): portrait RGB, upper-lid mask, lash-line alpha."""
    atlas_face: F32
    """(h, w, 8): portrait RGB, lower-lid mask, iris-free eyeball RGB, and what stays
    put in front of the closing lid (glasses frames, brows)."""
    atlas_iris: F32
    """(h, w, 4): iris RGBA."""
    gaze_px: tuple[float, float]
    """Iris shift in pixels at gaze = ±1 (x, y)."""


@dataclass(frozen=True, eq=False)
class RigModel:
    """The per-rig precomputation shared by the CPU and torch renderers."""

    size: tuple[int, int]
    face_height: float
    cell: float
    low_shape: tuple[int, int]
    basis: F32
    """(K, h_l, w_l, 2) common displacement per unit coefficient."""
    identity: F32
    """(H, W, 2) pixel-centre coordinates."""
    move_box: tuple[int, int, int, int]
    """(x0, y0, x1, y1), on cell boundaries: outside it the common field is exactly zero."""
    portrait: npt.NDArray[np.uint8]
    portrait_f: F32
    """The portrait as float32 (sampled inside the ROIs)."""
    mouth: MouthModel
    eyes: tuple[EyeModel, EyeModel]
    """(subject's right eye = image left, subject's left eye = image right)."""


@dataclass(frozen=True, eq=False)
class CommonGrid:
    """The low-resolution grid and the maps the ROI builders need."""

    size: tuple[int, int]
    cell: float
    shape: tuple[int, int]
    nodes: F64
    """(h_l, w_l, 2) full-resolution coordinates of the nodes."""
    move: F64
    """(h_l, w_l) movable weight at the nodes (0 at and outside the silhouette)."""
    move_full: F64
    """(H, W) movable weight at full resolution (before the node erosion)."""


# ---------------------------------------------------------------- low-resolution grid


def low_shape_for(size: tuple[int, int]) -> tuple[float, int, int]:
    """Cell size and low-resolution grid shape (h_l, w_l) for an output size (W, H)."""
    w, h = size
    cell = max(2.0, float(h // 128))
    return cell, math.ceil(h / cell), math.ceil(w / cell)


def node_coords(size: tuple[int, int], shape: tuple[int, int]) -> F64:
    """Full-res coordinates of low-res nodes (half-pixel aligned, as bilinear resizing)."""
    w, h = size
    hl, wl = shape
    xs = (np.arange(wl) + 0.5) * (w / wl) - 0.5
    ys = (np.arange(hl) + 0.5) * (h / hl) - 0.5
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx, gy], axis=-1)


def bilinear(arr: F64 | F32, x: float, y: float) -> F64:
    """Bilinear sample of an (h, w, C) array at continuous (x, y), edges replicated."""
    h, w = arr.shape[:2]
    x = float(np.clip(x, 0, w - 1))
    y = float(np.clip(y, 0, h - 1))
    x0, y0 = math.floor(x), math.floor(y)
    x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
    fx, fy = x - x0, y - y0
    a = np.asarray(arr, np.float64)
    top = a[y0, x0] * (1 - fx) + a[y0, x1] * fx
    bot = a[y1, x0] * (1 - fx) + a[y1, x1] * fx
    return np.asarray(top * (1 - fy) + bot * fy)


def movable_mask(person: F32, face_h: float, cell: float) -> F64:
    """1 deep inside the person; 0 outside it and in a margin inside the silhouette."""
    hard = (person > 0.5).astype(np.uint8)
    radius = 0.12 * face_h
    erode = 1.5 * cell + 4.0
    pad = math.ceil(radius + erode) + 2
    padded = cv2.copyMakeBorder(hard, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, 5)[pad:-pad, pad:-pad]
    return smoothstep((dist - erode) / radius)


def common_grid(rig: AvatarRig) -> CommonGrid:
    """The low-resolution grid of a rig and its movable weights."""
    size = rig.size
    cell, hl, wl = low_shape_for(size)
    nodes = node_coords(size, (hl, wl))
    move_full = movable_mask(rig.person, rig.face_height, cell)
    m = cv2.remap(  # type: ignore[call-overload]
        move_full.astype(np.float32),
        nodes.astype(np.float32),
        None,
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    ).astype(np.float64)
    m[m < 1e-4] = 0.0
    # nodes next to an unmovable one are pinned too: the upsampled field is then exactly
    # zero on every pixel outside the silhouette
    m *= cv2.erode((m > 0).astype(np.uint8), np.ones((3, 3), np.uint8))
    return CommonGrid(
        size=size, cell=cell, shape=(hl, wl), nodes=nodes, move=m, move_full=move_full
    )


def _brow_field(lm: F32, xy: F64, fh: float, *, down: bool) -> F64:
    """Displacement of both brows (raised, or frowning when ``down``) at points ``xy``."""
    out = np.zeros_like(xy)
    mid_x = float(lm[list(L.FACE_OVAL), 0].mean())
    x, y = xy[..., 0], xy[..., 1]
    for idx in (L.RIGHT_BROW, L.LEFT_BROW):
        pts = lm[list(idx)].astype(np.float64)
        mid = (pts[:5] + pts[5:]) / 2.0
        xa, xb = mid[:, 0].min(), mid[:, 0].max()
        outside = np.maximum(0.0, np.maximum(xa - x, x - xb))
        hw = np.exp(-0.5 * (outside / (0.05 * fh)) ** 2)
        dy = y - curve_y(mid, x)
        sig = np.where(dy < 0, 0.12 * fh, 0.045 * fh)
        g = np.exp(-0.5 * (dy / sig) ** 2) * hw
        if not down:
            out[..., 1] += -BROW_RISE * fh * g
        else:
            inner_x = xb if abs(xb - mid_x) < abs(xa - mid_x) else xa
            t = np.clip(1.0 - np.abs(x - inner_x) / max(xb - xa, 1.0), 0.0, 1.0)
            out[..., 1] += 0.016 * fh * g * (0.4 + 0.6 * t)
            out[..., 0] += np.sign(mid_x - inner_x) * 0.01 * fh * g * t
    return out


def head_basis(rig: AvatarRig, grid: CommonGrid) -> F64:
    """(len(HEAD_UNITS), h_l, w_l, 2): head, body and brow displacement per coefficient."""
    fh = rig.face_height
    lm = rig.landmarks.astype(np.float64)
    m = grid.move
    mesh = lm[:468]
    (fx0, fy0), (fx1, fy1) = mesh.min(axis=0), mesh.max(axis=0)
    fcx, fcy = (fx0 + fx1) / 2.0, (fy0 + fy1) / 2.0
    chin = lm[L.CHIN]
    X, Y = grid.nodes[..., 0], grid.nodes[..., 1]
    # head weight: an ellipse around the head, fading down the neck and into the hair
    re = np.sqrt(((X - fcx) / (0.62 * fh)) ** 2 + ((Y - (fcy - 0.05 * fh)) / (0.62 * fh)) ** 2)
    w_head = (1.0 - smoothstep((re - 1.0) / 0.45)) * m
    # depth for yaw/pitch parallax: a paraboloid with a nose bump
    rz = ((X - fcx) / (0.58 * fh)) ** 2 + ((Y - fcy) / (0.7 * fh)) ** 2
    nose = lm[L.NOSE_TIP]
    bump = np.exp(-0.5 * ((X - nose[0]) ** 2 + (Y - nose[1]) ** 2) / (0.07 * fh) ** 2)
    z = np.maximum(0.0, 1.0 - rz) + 0.3 * bump
    px, py = X - fcx, Y - (chin[1] + 0.25 * fh)  # roll pivots at the neck
    zero = np.zeros_like(X)
    breath_w = m * (0.6 + 0.4 * (1.0 - w_head))
    return np.stack(
        [
            np.stack([w_head * px, w_head * py], -1),  # rot_c: (cos θ - 1)
            np.stack([-w_head * py, w_head * px], -1),  # rot_s: sin θ
            np.stack([w_head, zero], -1),  # tx (px)
            np.stack([zero, w_head], -1),  # ty (px)
            np.stack([w_head * z, zero], -1),  # yaw parallax (px)
            np.stack([zero, w_head * z], -1),  # pitch parallax (px)
            np.stack([m, zero], -1),  # torso sway (px)
            np.stack([zero, breath_w], -1),  # breathing rise (px)
            _brow_field(rig.landmarks, grid.nodes, fh, down=False) * m[..., None],
            _brow_field(rig.landmarks, grid.nodes, fh, down=True) * m[..., None],
        ]
    )


# ---------------------------------------------------------------- ROIs


def clip_box(
    x0: float, y0: float, x1: float, y1: float, size: tuple[int, int]
) -> tuple[int, int, int, int]:
    """Integer box (x0, y0, w, h) covering [x0, x1] × [y0, y1], inside the frame."""
    w, h = size
    bx0, by0 = max(0, math.floor(x0)), max(0, math.floor(y0))
    bx1, by1 = min(w, math.ceil(x1) + 1), min(h, math.ceil(y1) + 1)
    return bx0, by0, max(2, bx1 - bx0), max(2, by1 - by0)


def make_roi(
    content: tuple[int, int, int, int],
    basis: F64,
    size: tuple[int, int],
    pad: tuple[float, float],
    margin: float,
    *,
    step: int = 2,
) -> Roi:
    """A ROI around a content box; ``pad`` sizes the fixed destination box."""
    cx0, cy0, cw, ch = content
    px = max(0, min(math.ceil(pad[0]) + 2, (size[0] - cw) // 2))
    py = max(0, min(math.ceil(pad[1]) + 2, (size[1] - ch) // 2))
    extra = math.ceil(margin) + 6
    x0, y0 = max(0, cx0 - px - extra), max(0, cy0 - py - extra)
    x1 = min(size[0], cx0 + cw + px + extra)
    y1 = min(size[1], cy0 + ch + py + extra)
    xs = (cx0, cx0 + (cw - 1) / 2.0, cx0 + cw - 1.0)
    ys = (cy0, cy0 + (ch - 1) / 2.0, cy0 + ch - 1.0)
    probes = [(x, y) for y in ys for x in xs if (x, y) != (xs[1], ys[1])] + [(xs[1], ys[1])]
    hl, wl = basis.shape[1:3]
    vals = np.zeros((len(basis), len(probes), 2))
    for j, (x, y) in enumerate(probes):
        u = (x + 0.5) * wl / size[0] - 0.5
        v = (y + 0.5) * hl / size[1] - 0.5
        vals[:, j] = [bilinear(b, u, v) for b in basis]
    return Roi(
        x0=x0,
        y0=y0,
        w=x1 - x0,
        h=y1 - y0,
        content=content,
        pad_x=px,
        pad_y=py,
        step=step,
        probes=np.array(probes, np.float32),
        probe_basis=vals.astype(np.float32),
        margin=math.ceil(margin) + 2,
    )


def sample_nearest(img: F64, pts: F64) -> F64:
    """Nearest-pixel values of a 2-D array at points (clamped to the image)."""
    h, w = img.shape[:2]
    xi = np.clip(np.rint(pts[..., 0]).astype(int), 0, w - 1)
    yi = np.clip(np.rint(pts[..., 1]).astype(int), 0, h - 1)
    return np.asarray(img[yi, xi])


def build_model(rig: AvatarRig) -> RigModel:
    """Precompute everything per rig (a fraction of a second) for either renderer."""
    from avatar.render.eyes import build_eye
    from avatar.render.mouth import build_mouth, mouth_common_basis, mouth_targets

    grid = common_grid(rig)
    targets = mouth_targets(rig)
    mouth_basis, base_up, base_lo = mouth_common_basis(rig, grid, targets)
    basis = np.concatenate([head_basis(rig, grid), mouth_basis], axis=0)
    w, h = rig.size
    hl, wl = grid.shape
    ys, xs = np.nonzero(np.abs(basis).sum(axis=(0, 3)) > 0)
    if len(xs):  # whole cells, with two still nodes of margin (see CpuRenderer)
        c = int(grid.cell)
        j0, j1 = max(0, int(xs.min()) - 2), min(wl, int(xs.max()) + 3)
        i0, i1 = max(0, int(ys.min()) - 2), min(hl, int(ys.max()) + 3)
        move_box = (j0 * c, i0 * c, min(w, j1 * c), min(h, i1 * c))
    else:
        move_box = (0, 0, 0, 0)
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return RigModel(
        size=rig.size,
        face_height=rig.face_height,
        cell=grid.cell,
        low_shape=grid.shape,
        basis=basis.astype(np.float32),
        identity=np.stack([gx, gy], -1),
        move_box=move_box,
        portrait=rig.portrait,
        portrait_f=rig.portrait.astype(np.float32),
        mouth=build_mouth(rig, grid, basis, targets, base_up, base_lo),
        eyes=(
            build_eye(rig, grid, basis, side="right"),
            build_eye(rig, grid, basis, side="left"),
        ),
    )
