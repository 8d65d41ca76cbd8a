"""From an :class:`AvatarState` to the renderer's coefficients (shared by both paths).

Conventions (image coordinates, y down): ``head_yaw > 0`` turns the face toward the
viewer's right; ``head_pitch > 0`` tilts it up; ``head_roll > 0`` tilts the head toward
the viewer's right (clockwise on screen); ``head_x/head_y > 0`` move it right/down;
``torso_x > 0`` sways right; ``gaze_x > 0`` looks to the viewer's right, ``gaze_y > 0``
up; ``blink_right`` closes the subject's right eye (on the image's left). Angles are
clamped to ±0.5 rad and translations to ±0.3 face heights: the warp is meant for the
small motions of a talking head.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from avatar.render.model import (
    BREATH_RISE,
    COMMON_UNITS,
    LOWER_LIP_INNER,
    MOUTH_COMMON_UNITS,
    MOUTH_UNITS,
    UPPER_LIP_INNER,
    YAW_RADIUS,
    RigModel,
    Roi,
)
from avatar.state import AvatarState

MAX_ANGLE = 0.5
MAX_SHIFT = 0.3


@dataclass(frozen=True)
class FrameParams:
    """Coefficients for a batch of states (B = number of states)."""

    common: npt.NDArray[np.float32]
    """(B, K) coefficients of the common basis."""
    mouth: npt.NDArray[np.float32]
    """(B, U) mouth-unit weights."""
    blink: npt.NDArray[np.float32]
    """(B, 2) effective lid closure (subject's right, left)."""
    gaze: npt.NDArray[np.float32]
    """(B, 2) gaze (x right, y up) in -1..1."""
    mouth_box: npt.NDArray[np.int64]
    """(B, 2) top-left corner of the fixed-size destination mouth box."""
    eye_boxes: npt.NDArray[np.int64]
    """(B, 2, 2) top-left corners of the fixed-size destination eye boxes."""
    mouth_tight: npt.NDArray[np.int64]
    """(B, 4) tight destination mouth box (x0, y0, x1, y1)."""
    eye_tight: npt.NDArray[np.int64]
    """(B, 2, 4) tight destination eye boxes."""
    interior: npt.NDArray[np.float32]
    """(B, 6) reach (px below the upper lip / above the lower lip, at the mouth's
    centre) of the upper teeth, the tongue, the lower teeth, and the upper and lower
    lips' inner surfaces; then how much the tongue's tip is in front of the teeth."""


def _clip(v: float, lo: float, hi: float) -> float:
    return float(min(hi, max(lo, v))) if math.isfinite(v) else 0.0


def common_coefficients(state: AvatarState, face_height: float) -> list[float]:
    """The K coefficients of the common basis for one state (head, body, brows, mouth)."""
    fh = face_height
    roll = _clip(state.head_roll, -MAX_ANGLE, MAX_ANGLE)
    yaw = _clip(state.head_yaw, -MAX_ANGLE, MAX_ANGLE)
    pitch = _clip(state.head_pitch, -MAX_ANGLE, MAX_ANGLE)
    brow = _clip(state.brow_raise, -1.0, 1.0)
    coef = {
        "rot_c": math.cos(roll) - 1.0,
        "rot_s": math.sin(roll),
        "tx": _clip(state.head_x, -MAX_SHIFT, MAX_SHIFT) * fh,
        "ty": _clip(state.head_y, -MAX_SHIFT, MAX_SHIFT) * fh,
        "yaw": YAW_RADIUS * fh * math.sin(yaw),
        "pitch": -YAW_RADIUS * fh * math.sin(pitch),
        "torso": _clip(state.torso_x, -MAX_SHIFT, MAX_SHIFT) * fh,
        "breath": -BREATH_RISE * fh * _clip(state.breath, 0.0, 1.0),
        "brow_up": max(0.0, brow),
        "brow_down": max(0.0, -brow),
    }
    mouth = dict(zip(MOUTH_UNITS, mouth_coefficients(state), strict=True))
    coef.update({f"mouth_{u}": mouth[u] for u in MOUTH_COMMON_UNITS})
    return [coef[k] for k in COMMON_UNITS]


def mouth_coefficients(state: AvatarState) -> list[float]:
    """The mouth-unit weights (jaw, wide, round, press, teeth) for one state."""
    wide = _clip(state.mouth_wide, -1.0, 1.0)
    coef = {
        "jaw": _clip(state.jaw_open, 0.0, 1.2),
        "wide": max(0.0, wide),
        "round": max(0.0, -wide),
        "press": _clip(state.lip_press, 0.0, 1.0),
        "teeth": _clip(state.teeth_show, 0.0, 1.0),
    }
    return [coef[k] for k in MOUTH_UNITS]


TEETH_REACH = (0.027, 0.012, 0.008, 0.024)
"""Upper teeth below the upper lip, in face heights: at rest, more per unit of
``teeth_show`` and of spreading, less per unit of rounding (the lips cover them)."""
LOWER_TEETH_REACH = (0.012, 0.01)
"""Lower teeth above the lower lip (face heights): hidden behind the lip's inner
surface, plus this much more when the jaw opens or the lips spread."""
TONGUE_REACH = (0.028, 0.03)
"""How far the tongue rises above the lower lip (face heights): with the jaw wide open
(it lies on the floor of the mouth), and more with ``tongue_show`` (th, l: the tip
rises in front of the teeth's edges, which it hides)."""


def interior_reach(
    mouth: npt.NDArray[np.float32], tongue: npt.NDArray[np.float32], face_height: float
) -> npt.NDArray[np.float32]:
    """(B, 6) interior reaches in pixels (:attr:`FrameParams.interior`) for (B, U) mouth
    units and (B,) ``tongue_show``."""
    rows = [
        _interior_row(dict(zip(MOUTH_UNITS, units, strict=True)), tip, face_height)
        for units, tip in zip(
            np.asarray(mouth, np.float64).tolist(),
            np.asarray(tongue, np.float64).reshape(-1).tolist(),
            strict=True,
        )
    ]
    return np.array(rows, np.float64).reshape(len(rows), 6).astype(np.float32)


def _interior_row(m: dict[str, float], tongue: float, fh: float) -> list[float]:
    """:func:`interior_reach` for one frame, on Python floats (a batch is a few frames;
    per-element numpy calls would cost more than the arithmetic)."""
    tip = min(max(tongue, 0.0), 1.0)
    base, show, spread, rnd = TEETH_REACH
    teeth = base + show * m["teeth"] + spread * m["wide"] - rnd * m["round"]
    teeth = min(max(teeth * (1.0 - 0.35 * tip), 0.004), 0.06) * fh
    u = min(max((m["jaw"] - 0.2) / 0.6, 0.0), 1.0)
    floor, raised = TONGUE_REACH
    tongue_px = (floor * u * u * (3.0 - 2.0 * u) + raised * tip) * fh
    # the inner surfaces of the lips (and the lower teeth behind the lower one) come
    # into view as the lips part, so nothing appears at once out of a closed mouth
    o = min(max((m["jaw"] + 0.3 * m["teeth"]) / 0.2, 0.0), 1.0)
    parted = o * o * (3.0 - 2.0 * o)
    lo_base, lo_more = LOWER_TEETH_REACH
    show_low = 0.8 * m["jaw"] + 0.5 * m["wide"] + 0.3 * m["teeth"] - m["round"]
    show_low = min(max(show_low, 0.0), 1.0) * (1.0 - tip)
    lower = (lo_base + lo_more * show_low) * fh * parted
    return [
        teeth,
        tongue_px,
        lower,
        UPPER_LIP_INNER * fh * parted,
        LOWER_LIP_INNER * fh * parted,
        tip,
    ]


def roi_boxes(
    roi: Roi, common: npt.NDArray[np.float64], size: tuple[int, int]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Where a ROI lands for (B, K) float64 common coefficients: the top-left corners
    (B, 2) of its fixed-size destination box (torch renderer), placed by the centre
    probe, and its tight destination boxes (B, 4) as (x0, y0, x1, y1), end-exclusive,
    around all the moved probes (CPU renderer)."""
    # einsum, not matmul: a multi-threaded BLAS spins a second core for a product this small
    disp = np.einsum("bk,kpc->bpc", common, roi.probe_basis.astype(np.float64))
    shift = np.rint(disp[:, -1])
    cx0, cy0 = roi.content[:2]
    x = np.clip(cx0 - roi.pad_x + shift[:, 0], 0, size[0] - roi.out_w)
    y = np.clip(cy0 - roi.pad_y + shift[:, 1], 0, size[1] - roi.out_h)
    origin = np.stack([x, y], axis=-1).astype(np.int64)
    pts = roi.probes[None].astype(np.float64) + disp
    lo = np.floor(pts.min(axis=1)) - roi.margin
    hi = np.ceil(pts.max(axis=1)) + roi.margin + 1
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, np.array(size, np.float64))
    tight = np.concatenate([lo, np.maximum(hi, lo + 1)], axis=1).astype(np.int64)
    return origin, tight


def frame_params(model: RigModel, states: Sequence[AvatarState]) -> FrameParams:
    """Coefficients and ROI placements for a batch of states."""
    fh = model.face_height
    common = np.array([common_coefficients(s, fh) for s in states], np.float32).reshape(
        len(states), len(COMMON_UNITS)
    )
    mouth = np.array([mouth_coefficients(s) for s in states], np.float32).reshape(
        len(states), len(MOUTH_UNITS)
    )
    gaze = np.array(
        [[_clip(s.gaze_x, -1.0, 1.0), _clip(s.gaze_y, -1.0, 1.0)] for s in states], np.float32
    ).reshape(len(states), 2)
    # looking down lowers the upper lids a little
    droop = 0.25 * np.maximum(0.0, -gaze[:, 1])
    blink = np.array(
        [[_clip(s.blink_right, 0.0, 1.0), _clip(s.blink_left, 0.0, 1.0)] for s in states],
        np.float32,
    ).reshape(len(states), 2)
    blink = np.clip(blink + droop[:, None], 0.0, 1.0).astype(np.float32)
    common64 = common.astype(np.float64)
    mouth_box, mouth_tight = roi_boxes(model.mouth.roi, common64, model.size)
    eyes = [roi_boxes(e.roi, common64, model.size) for e in model.eyes]
    return FrameParams(
        common=common,
        mouth=mouth,
        blink=blink,
        gaze=gaze,
        mouth_box=mouth_box,
        eye_boxes=np.stack([origin for origin, _ in eyes], axis=1),
        mouth_tight=mouth_tight,
        eye_tight=np.stack([tight for _, tight in eyes], axis=1),
        interior=interior_reach(
            mouth, np.array([s.tongue_show for s in states], np.float32).reshape(-1), fh
        ),
    )
