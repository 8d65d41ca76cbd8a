"""The speaker: puts a turn's speech on the media clock and says what the user heard.

Each synthesized chunk goes to the audio playout and its mouth drive to the world
model, at the same clock time, far enough ahead that no video frame showing it has been
stepped yet: the video track's look-ahead plus as much of the mouth's lookahead as the
chunk's first shape uses (:attr:`MouthDrive.anticipation`; at most
:func:`streaming.tracks.speech_lead_s` in all). Only the turn that holds the
floor may schedule: a cut (barge-in) takes the floor away, so a stale turn's late
chunk is dropped rather than played. What was heard is the playout's record.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from avatar.motion import WorldModel
from avatar.motion.drive import MouthDrive
from models.types import Speech
from streaming.audio_io import speech_to_playout
from streaming.clock import MediaClock
from streaming.playout import AudioPlayout, heard_words
from streaming.tracks import speech_lead_s


@dataclass(frozen=True)
class Heard:
    """What the user heard of one turn's speech."""

    text: str
    seconds: float


class Speaker:
    """Playout and world-model scheduling of one session's speech."""

    def __init__(
        self,
        clock: MediaClock,
        playout: AudioPlayout,
        world: WorldModel,
        *,
        lead_s: float | None = None,
    ) -> None:
        need = speech_lead_s(clock.fps, world.config.lookahead_ms)
        if lead_s is not None and lead_s < need - 1e-9:
            raise ValueError(
                f"a speech lead of {lead_s * 1000:.0f} ms does not cover the video track's "
                f"look-ahead plus the mouth's ({need * 1000:.0f} ms at {clock.fps} fps)"
            )
        self.lead_s = need if lead_s is None else lead_s
        """The longest lead a chunk needs (the whole lookahead; echo mode's delay)."""
        self._frames_lead_s = self.lead_s - world.lookahead
        self._clock = clock
        self._playout = playout
        self._world = world
        self._floor: int | None = None

    @property
    def playing(self) -> bool:
        """Whether scheduled speech is still to be played."""
        return self._playout.is_playing(self._clock.sample_now())

    def give_floor(self, turn_id: int) -> None:
        """Let turn ``turn_id`` (and only it) schedule speech from now on."""
        self._floor = turn_id

    def lead_for(self, drive: MouthDrive) -> float:
        """How far ahead of the playing sample a chunk with this drive is placed when
        nothing is queued: the video track's look-ahead plus the drive's anticipation
        (the mouth's first shape before the sound), at most :attr:`lead_s`."""
        return self._frames_lead_s + min(drive.anticipation, self._world.lookahead)

    async def play(self, turn_id: int, speech: Speech) -> float | None:
        """Schedule ``speech`` after what is queued (from silence: as soon as no frame
        that shows its mouth has been stepped); seconds from now until it starts
        playing, or None when ``turn_id`` does not hold the floor (it was cut) and
        nothing was queued."""
        if turn_id != self._floor:
            return None
        drive = await asyncio.to_thread(self._world.make_drive, speech)
        if turn_id != self._floor:  # cut while the drive was being made
            return None
        rate = self._clock.sample_rate
        pcm = speech_to_playout(speech, rate)
        not_before = self._clock.sample_now() + int(self.lead_for(drive) * rate)
        start = self._playout.schedule(pcm, speech.text, not_before=not_before, turn_id=turn_id)
        self._world.schedule_speech(drive, start / rate)
        return start / rate - self._clock.elapsed()

    def cut(self) -> None:
        """Stop all speech a frame from now (audio fades, the mouth closes); nobody
        holds the floor until :meth:`give_floor`."""
        self._floor = None
        at = self._clock.sample_now() + self._clock.samples_per_frame
        self._playout.interrupt(at)
        self._world.interrupt(at / self._clock.sample_rate)

    async def played_out(self) -> None:
        """Return once everything scheduled has played."""
        await self._clock.wait_until(self._playout.end_sample() / self._clock.sample_rate)

    def clear(self) -> None:
        """Drop all speech and its record (the session is over)."""
        self._floor = None
        self._playout.clear()

    def heard(self, turn_id: int) -> Heard:
        """What was heard of turn ``turn_id`` (once it has played out or been cut)."""
        chunks = self._playout.take_heard(turn_id)
        return Heard(heard_words(chunks), sum(c.played_s for c in chunks))
