"""The avatar's world model: the dynamics of mouth, eyes, brows, head, torso and breath.

``state[t+1] = step(state[t], drive, mode, rng)`` on a frame clock:
:class:`WorldModel` evolves an :class:`avatar.state.AvatarState` one video frame at a
time from the speech drives scheduled on the session's media clock
(:class:`MouthDrive`, from a phoneme timeline or from audio) and the conversation
mode, with seeded idle life (blinks, saccades, breathing, nods).
"""

from avatar.motion.drive import MouthDrive
from avatar.motion.visemes import Viseme, viseme_of
from avatar.motion.world import WorldModel

__all__ = ["MouthDrive", "Viseme", "WorldModel", "viseme_of"]
