"""Reuse of the last rendered frame while the avatar barely moves (idle, listening).

Idle and listening video moves slowly: breathing, a drifting head, eyes that rest between
saccades. :class:`FrameReuse` decides from the states alone, not from pixels, whether
the last rendered frame can stand for a new state: it can when no pixel of the warp
would move by ``below_px`` or more between the two states (the common warp's field is
linear in the state's coefficients, so the largest displacement is exact, not
estimated), and when everything the warp does not carry (lids, gaze, mouth, tongue) is
unchanged. Speech is never reused. Motion therefore stays on the media clock with a
lag of under ``below_px`` of displacement, while each frame of a blink, a saccade, a
nod or a word is rendered.

One instance per video stream: it keeps that stream's last frame.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from avatar.render.model import RigModel
from avatar.render.params import common_coefficients
from avatar.state import AvatarState, Mode

EXACT = 1e-4
"""Lids, gaze and mouth must agree this closely for a frame to be reused."""


def _local(state: AvatarState) -> tuple[float, ...]:
    """What the renderer draws outside the common warp: lids, gaze, mouth, tongue."""
    return (
        state.blink_left,
        state.blink_right,
        state.gaze_x,
        state.gaze_y,
        state.jaw_open,
        state.mouth_wide,
        state.lip_press,
        state.teeth_show,
        state.tongue_show,
    )


class FrameReuse:
    """The last rendered frame of one stream, and whether a new state may reuse it."""

    def __init__(self, model: RigModel, below_px: float) -> None:
        if below_px <= 0:
            raise ValueError(f"below_px must be positive, got {below_px}")
        moving = np.abs(model.basis).sum(axis=(0, 3)) > 0  # nodes any unit moves
        self._basis = np.ascontiguousarray(model.basis[:, moving])  # (K, nodes, 2)
        self._face_height = model.face_height
        self._below_sq = below_px * below_px
        self._last: tuple[AvatarState, npt.NDArray[np.float32], npt.NDArray[np.uint8]] | None = None
        self.reused = 0
        self.rendered = 0

    def _coefficients(self, state: AvatarState) -> npt.NDArray[np.float32]:
        # float32 like the basis: einsum would otherwise copy the basis to float64
        return np.array(common_coefficients(state, self._face_height), np.float32)

    def displacement_px(self, a: AvatarState, b: AvatarState) -> float:
        """The largest distance any pixel of the common warp moves from ``a`` to ``b``."""
        return float(np.sqrt(self._displacement_sq(self._coefficients(b) - self._coefficients(a))))

    def _displacement_sq(self, delta: npt.NDArray[np.float32]) -> float:
        field = np.einsum("k,knc->nc", delta, self._basis)
        return float(np.max(np.einsum("nc,nc->n", field, field))) if field.size else 0.0

    def lookup(self, state: AvatarState) -> npt.NDArray[np.uint8] | None:
        """The last frame if it can stand for ``state``, else None (render it)."""
        last = self._last
        if last is None or state.mode is Mode.SPEAKING or last[0].mode is Mode.SPEAKING:
            return None
        if any(abs(x - y) > EXACT for x, y in zip(_local(state), _local(last[0]), strict=True)):
            return None
        if self._displacement_sq(self._coefficients(state) - last[1]) >= self._below_sq:
            return None
        self.reused += 1
        return last[2]

    def remember(self, state: AvatarState, image: npt.NDArray[np.uint8]) -> None:
        """``image`` was rendered for ``state``: later states are compared with it."""
        self.rendered += 1
        self._last = (state, self._coefficients(state), image)


def frame_reuse(renderer: object, below_px: float) -> FrameReuse | None:
    """A :class:`FrameReuse` for a renderer that exposes its rig model (the CPU and torch
    renderers), or None when reuse is off (``below_px`` 0) or the renderer is remote."""
    model = getattr(renderer, "model", None)
    if below_px <= 0 or not isinstance(model, RigModel):
        return None
    return FrameReuse(model, below_px)
