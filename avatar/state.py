"""What the world model tracks about the avatar, one value per video frame.

The state is small and explicit: every quantity the renderer needs and nothing more.
Angles are radians, translations are fractions of the face height, weights are 0..1.
It is immutable; the motion model makes a new one each frame.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from enum import Enum

import numpy as np
import numpy.typing as npt


class Mode(str, Enum):
    """What the avatar is doing in the conversation."""

    IDLE = "idle"
    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"


@dataclass(frozen=True)
class AvatarState:
    """The avatar's pose and expression at one video frame."""

    # mouth and jaw
    jaw_open: float = 0.0
    """0 = lips together, 1 = fully open (vowel 'aa')."""
    mouth_wide: float = 0.0
    """-1 = rounded/puckered ('oo'), 0 = neutral, +1 = spread ('ee')."""
    lip_press: float = 0.0
    """0..1, lips pressed together (bilabials p/b/m)."""
    teeth_show: float = 0.0
    """0..1, upper teeth visible (f/v, s, 'ee')."""
    # eyes and brows
    blink_left: float = 0.0
    """0 = open, 1 = closed."""
    blink_right: float = 0.0
    gaze_x: float = 0.0
    """-1..1, looking to the viewer's left..right (about ±20 degrees)."""
    gaze_y: float = 0.0
    """-1..1, looking down..up."""
    brow_raise: float = 0.0
    """-1..1, frown..raise."""
    # head (rotation in radians, translation as a fraction of the face height)
    head_yaw: float = 0.0
    head_pitch: float = 0.0
    head_roll: float = 0.0
    head_x: float = 0.0
    head_y: float = 0.0
    # body
    torso_x: float = 0.0
    """Sideways sway, fraction of the face height."""
    breath: float = 0.0
    """0..1, chest/shoulder rise of breathing."""
    tongue_show: float = 0.0
    """0..1, the tongue's tip raised into view between or behind the teeth (th, l)."""
    mode: Mode = Mode.IDLE

    def as_vector(self) -> npt.NDArray[np.float32]:
        """The numeric fields in declaration order (for batching and tests)."""
        return np.array(
            [getattr(self, f.name) for f in fields(self) if f.name != "mode"], dtype=np.float32
        )

    def with_(self, **changes: float | Mode) -> AvatarState:
        """A copy with some fields changed."""
        return replace(self, **changes)  # type: ignore[arg-type]


NEUTRAL = AvatarState()
"""The rest pose: mouth closed, eyes open and forward, head still."""
