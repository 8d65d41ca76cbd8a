"""The world model: the avatar's state evolved one video frame at a time.

``state[n+1] = step(state[n], drives, mode, rng)`` with frame ``n`` at time ``n / fps``
on the session's media clock. Speech drives (:class:`MouthDrive`) are placed at
absolute clock times, may be appended while earlier speech still plays (streaming),
and can be cut off (barge-in). Everything random comes from one seeded
``numpy.random.Generator``, so the same inputs and seed give the same states.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from avatar.config import AvatarConfig
from avatar.motion.drive import CHANNELS, MouthDrive
from avatar.motion.dynamics import NormalStream, OrnsteinUhlenbeck, SpringBank, decay
from avatar.motion.idle import BlinkProcess, Breathing, GazeProcess, GazeStyle
from avatar.state import AvatarState, Mode
from models.types import Speech, Word

F64 = npt.NDArray[np.float64]

SUBSTEP_S = 0.005
"""Longest integration substep (the mouth springs are stiff)."""
MODE_BLEND_S = 0.35
"""Time constant of the blend between the behaviours of two modes."""

# spring channels: mouth (4), head yaw/pitch/roll/x/y (5), torso (1), brow (1), tongue (1)
_MOUTH = slice(0, 4)
_HEAD = slice(4, 9)
_YAW, _PITCH, _ROLL = 4, 5, 6
_TORSO = 9
_BROW = 10
_TONGUE = 11
_N_SPRINGS = 12
_OMEGA = np.array([80.0, 40.0, 80.0, 50.0, 5.0, 7.0, 5.0, 4.0, 4.0, 2.5, 12.0, 60.0])
_ZETA = np.array([1.0, 1.0, 1.0, 1.0, 0.75, 0.55, 0.8, 0.9, 0.9, 0.9, 0.9, 1.0])

# per mode: head noise sigma (yaw, pitch, roll, x, y), head bias, brow bias,
# blink rate factor, breathing period
_HEAD_SIGMA = np.array(
    [
        [0.045, 0.025, 0.020, 0.008, 0.005],
        [0.022, 0.014, 0.014, 0.005, 0.004],
        [0.030, 0.018, 0.018, 0.006, 0.004],
        [0.040, 0.025, 0.022, 0.008, 0.005],
    ]
)
_HEAD_BIAS = np.array(
    [
        [0.0, 0.0, 0.0, 0.0, 0.0],
        [0.0, -0.02, 0.035, 0.0, 0.0],
        [0.0, 0.045, -0.03, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0, 0.0],
    ]
)
_BROW_BIAS = np.array([0.0, 0.12, -0.12, 0.05])
_BLINK_FACTOR = np.array([1.0, 0.85, 1.25, 1.15])
_BREATH_PERIOD = np.array([5.0, 4.2, 4.5, 3.8])
_TORSO_SIGMA = np.full(4, 0.01)
_NOISE_TAU = np.array([1.2, 1.0, 1.5, 1.5, 1.5, 2.5])
# all per-mode parameters in one table, blended with one product per frame
_PARAMS = np.column_stack(
    [_HEAD_SIGMA, _TORSO_SIGMA, _HEAD_BIAS, _BROW_BIAS, _BLINK_FACTOR, _BREATH_PERIOD]
)
_P_SIGMA = slice(0, 6)
_P_BIAS = slice(6, 11)
_P_BROW, _P_BLINK, _P_BREATH = 11, 12, 13
_ONEHOT = {
    m: np.eye(4)[i] for i, m in enumerate((Mode.IDLE, Mode.LISTENING, Mode.THINKING, Mode.SPEAKING))
}
_GAZE_TO_HEAD = 0.35 * np.array([0.25, 0.15])
"""Head rotation (radians) per unit of gaze: the head follows the eyes a little."""


def _gaze_style(mode: Mode, aversion_side: float) -> GazeStyle:
    if mode is Mode.LISTENING:
        return GazeStyle(center=(0.0, 0.0), spread=0.05, fixation_s=1.8, glance_p=0.05)
    if mode is Mode.SPEAKING:
        return GazeStyle(center=(0.0, 0.0), spread=0.06, fixation_s=1.2, glance_p=0.2)
    if mode is Mode.THINKING:
        return GazeStyle(
            center=(0.5 * aversion_side, 0.35), spread=0.08, fixation_s=1.5, glance_p=0.0
        )
    return GazeStyle(center=(0.0, 0.0), spread=0.3, fixation_s=1.0, glance_p=0.1)


@dataclass
class _Scheduled:
    drive: MouthDrive
    start: float
    spoken_end: float
    """Clock time at which its speech ends (earlier when interrupted)."""
    accent_i: int = 0


class WorldModel:
    """The avatar's dynamics on a frame clock (see the module docstring).

    ``config`` gives the lookahead (how long the mouth may move before its sound) and
    the blink rate; frame ``n`` is at ``n / fps`` seconds of the media clock.
    """

    def __init__(self, config: AvatarConfig, fps: int, seed: int | None = None) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.config = config
        self.fps = int(fps)
        self.seed = config.seed if seed is None else int(seed)
        self.lookahead = config.lookahead_ms / 1000.0
        self._rng = np.random.default_rng(self.seed)
        self._normals = NormalStream(self._rng)
        self._frame = 0
        self._mode = Mode.IDLE
        self._mode_w = np.array([1.0, 0.0, 0.0, 0.0])
        self._springs = SpringBank(_OMEGA, _ZETA)
        self._noise = OrnsteinUhlenbeck(6, _NOISE_TAU)
        self._blink = BlinkProcess(config.blink_rate_per_min, self._rng)
        self._gaze = GazeProcess(self._rng)
        self._breath = Breathing(float(self._rng.uniform()))
        self._aversion_side = 1.0
        self._speech: list[_Scheduled] = []
        self._energy = 0.0
        self._brow_pulse = 0.0
        self._next_nod = math.inf
        self._nod_now = False

    # ------------------------------------------------------------------ inputs

    @property
    def frame(self) -> int:
        """Index of the frame the next :meth:`step` returns."""
        return self._frame

    @property
    def time(self) -> float:
        """Clock time of the frame the next :meth:`step` returns."""
        return self._frame / self.fps

    @property
    def mode(self) -> Mode:
        """The conversation mode last set."""
        return self._mode

    def make_drive(self, speech: Speech, words: Sequence[Word] | None = None) -> MouthDrive:
        """The drive of a speech chunk with this model's lookahead: from its phoneme
        timeline, else from its sound (``words``, timings relative to the chunk, refine
        that). The one speech -> drive step of live calls and offline renders; it reads
        no state, so it may run in a worker thread."""
        return MouthDrive.from_speech(speech, lookahead_ms=self.config.lookahead_ms, words=words)

    def schedule_speech(self, drive: MouthDrive, start_time: float) -> None:
        """Play ``drive`` with its audio starting at clock time ``start_time``.

        Raises ValueError if the drive anticipates its sound by more than the
        configured lookahead, or for a negative or non-finite start time.
        """
        if not math.isfinite(start_time) or start_time < 0.0:
            raise ValueError(f"start_time must be a finite time >= 0, got {start_time}")
        if drive.lead > self.lookahead + 1e-9:
            raise ValueError(
                f"drive leads its sound by {drive.lead * 1000:.0f} ms, more than the "
                f"configured lookahead of {self.config.lookahead_ms} ms"
            )
        item = _Scheduled(
            drive=drive, start=float(start_time), spoken_end=float(start_time) + drive.duration
        )
        self._speech.append(item)
        self._speech.sort(key=lambda s: s.start)

    def set_mode(self, mode: Mode) -> None:
        """Change the conversation mode; behaviour blends over a few hundred ms."""
        if mode is self._mode:
            return
        self._mode = mode
        if mode is Mode.THINKING:
            self._aversion_side = 1.0 if float(self._rng.uniform()) < 0.5 else -1.0
        # eyes react to a change of mode within ~100-250 ms
        self._gaze.redirect(self.time, 0.1 + 0.15 * float(self._rng.uniform()))
        if mode is Mode.LISTENING:
            self._next_nod = self.time + 1.5 + float(self._rng.exponential(2.5))

    def interrupt(self, at_time: float) -> None:
        """Barge-in: drop all speech after clock time ``at_time``.

        Speech scheduled to start later is dropped; speech playing at ``at_time`` is
        cut there, and the mouth springs close the mouth smoothly (within ~100 ms).
        """
        kept: list[_Scheduled] = []
        for item in self._speech:
            if item.start >= at_time:
                continue
            rel = at_time - item.start
            if rel < item.drive.duration + 1e-9:
                item.drive = item.drive.truncated(rel)
                item.spoken_end = at_time
            kept.append(item)
        self._speech = kept

    def backchannel(self) -> None:
        """A listener's nod (at a pause of the user), at the next frame while listening."""
        self._nod_now = self._mode is Mode.LISTENING

    def scheduled_until(self) -> float:
        """Clock time at which the scheduled (and not cut) speech it still holds ends.

        0 when it holds none. What the user heard is recorded by the audio playout
        (``streaming.playout``), not here.
        """
        return max((s.spoken_end for s in self._speech), default=0.0)

    def is_speaking(self) -> bool:
        """Whether speech is playing at the current frame (or still scheduled later)."""
        return any(s.spoken_end > self.time for s in self._speech)

    # ------------------------------------------------------------------ dynamics

    def step(self) -> AvatarState:
        """The state of the next frame (at :attr:`time`); advances the clock one frame."""
        n = self._frame
        t = n / self.fps
        dt = 1.0 / self.fps if n > 0 else 0.0
        state = self._advance(t - dt, t, dt)
        self._frame = n + 1
        return state

    def _mouth_targets(self, times: F64) -> tuple[F64, float]:
        """Combined drive targets (m, 4) at clock ``times`` and the loudness at the last."""
        best = np.zeros((len(times), CHANNELS))
        activity = np.zeros(len(times))
        energy = 0.0
        t_first, t_last = float(times[0]), float(times[-1])
        for item in self._speech:
            d = item.drive
            if t_last < item.start + d.t0 or t_first > item.start + d.end:
                continue
            tg, en = d.sample(times - item.start)
            act = np.abs(tg).sum(axis=1)
            take = act > activity
            best[take] = tg[take]
            activity[take] = act[take]
            energy = max(energy, float(en[-1]))
        return best, energy

    def _accents(self, t0: float, t1: float) -> float:
        """Strongest accent in (t0, t1] of the playing speech (0 if none)."""
        strongest = 0.0
        for item in self._speech:
            accents = item.drive.accents
            while item.accent_i < len(accents) and item.start + accents[item.accent_i][0] <= t1:
                at, strength = accents[item.accent_i]
                if item.start + at > t0:
                    strongest = max(strongest, strength)
                item.accent_i += 1
        return strongest

    def _advance(self, t_prev: float, t: float, dt: float) -> AvatarState:
        rng = self._rng
        if dt > 0.0:
            self._mode_w += (_ONEHOT[self._mode] - self._mode_w) * (1.0 - decay(dt, MODE_BLEND_S))
        w = self._mode_w
        params = w @ _PARAMS

        # speech: mouth targets on substeps, loudness and accents for prosody
        m = max(1, math.ceil(dt / SUBSTEP_S - 1e-9)) if dt > 0.0 else 1
        h = dt / m
        sub_times = t_prev + h * np.arange(1, m + 1) if dt > 0.0 else np.array([t])
        mouth, energy = self._mouth_targets(sub_times)
        self._energy += (energy - self._energy) * (1.0 - decay(dt, 0.15))
        accent = self._accents(t_prev, t) if dt > 0.0 else 0.0
        speaking_w = float(w[3])
        if accent > 0.0:
            scale = accent * float(rng.uniform(0.6, 1.0))
            self._springs.kick(_PITCH, -0.7 * scale)
            self._springs.kick(_YAW, 0.35 * scale * self._normals.next())
            self._springs.kick(_ROLL, 0.2 * scale * self._normals.next())
            if float(rng.uniform()) < 0.35:
                self._brow_pulse = max(self._brow_pulse, 0.35 * accent)

        # listening: nods (random, or at the user's pauses) with a brow raise
        listening = self._mode is Mode.LISTENING
        if self._nod_now or (listening and t >= self._next_nod):
            self._springs.kick(_PITCH, -float(rng.uniform(0.5, 0.9)))
            if float(rng.uniform()) < 0.5:
                self._brow_pulse = max(self._brow_pulse, float(rng.uniform(0.2, 0.4)))
            self._nod_now = False
            self._next_nod = t + 2.0 + float(rng.exponential(4.0)) if listening else math.inf
        self._brow_pulse *= decay(dt, 0.35) if dt > 0.0 else 1.0

        # gaze and eyelids
        gx, gy = self._gaze.update(t, _gaze_style(self._mode, self._aversion_side))
        blink_factor = float(params[_P_BLINK])
        if self._gaze.last_amplitude > 0.45 and float(rng.uniform()) < 0.35:
            self._blink.trigger(t, blink_factor)
        closure = self._blink.update(t, blink_factor)
        lid = min(1.0, closure + 0.15 * max(0.0, -gy) * (1.0 - closure))
        breath = self._breath.update(dt, float(params[_P_BREATH]))

        # head, torso and brow targets: noise + mode bias + gaze following
        sigma = params[_P_SIGMA] * (1.0 + speaking_w * (0.8 * self._energy - 0.3))
        noise = self._noise.step(self._normals.take(6), sigma, dt)
        target = np.empty(_N_SPRINGS)
        target[_HEAD] = noise[:5] + params[_P_BIAS]
        target[_YAW] += _GAZE_TO_HEAD[0] * gx
        target[_PITCH] += _GAZE_TO_HEAD[1] * gy
        target[_TORSO] = noise[5] + 0.3 * float(self._springs.x[7])
        target[_BROW] = float(params[_P_BROW]) + self._brow_pulse
        if dt > 0.0:
            targets = np.empty((m, _N_SPRINGS))
            targets[:] = target
            targets[:, _MOUTH] = mouth[:, :4]
            targets[:, _TONGUE] = mouth[:, 4]
            self._springs.advance(targets, h)
        x = self._springs.x
        self._speech = [s for s in self._speech if s.start + s.drive.end > t - 0.5]

        return AvatarState(
            jaw_open=_clip(x[0], 0.0, 1.0),
            mouth_wide=_clip(x[1], -1.0, 1.0),
            lip_press=_clip(x[2], 0.0, 1.0),
            teeth_show=_clip(x[3], 0.0, 1.0),
            blink_left=lid,
            blink_right=lid,
            gaze_x=gx,
            gaze_y=gy,
            brow_raise=_clip(x[_BROW], -1.0, 1.0),
            head_yaw=float(x[_YAW]),
            head_pitch=float(x[_PITCH]),
            head_roll=float(x[_ROLL]),
            head_x=float(x[7]),
            head_y=float(x[8]) + 0.004 * breath,
            torso_x=float(x[_TORSO]),
            breath=breath,
            tongue_show=_clip(x[_TONGUE], 0.0, 1.0),
            mode=self._mode,
        )


def _clip(v: float, lo: float, hi: float) -> float:
    return float(min(hi, max(lo, v)))
