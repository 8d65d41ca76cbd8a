"""Echo mode: the avatar as the face of another voice agent.

The caller's inbound audio *is* the avatar's speech: each stretch of it (from its first
loud frame until :attr:`EchoConfig.end_after_s` of silence) is played back on the
outbound audio track, and the mouth is driven by its sound, computed as it arrives
(:class:`~avatar.motion.audio_stream.AudioDriveStream`). Both go on the session's one
media clock at the same time: a stretch's first loud frame is placed
:attr:`Echo.delay_s` after it arrived (its pre-roll just before it) — the speaker's lead
(:func:`streaming.tracks.speech_lead_s`: the video track's look-ahead plus the mouth's
lookahead), which covers the audio the mouth needs beyond each moment
(:attr:`AudioDriveStream.latency`, 42.5 ms at the defaults) — and the rest follows
back to back, so the delay stays fixed while the audio flows. Audio that arrives after
the tracks have gone past its place (the caller stalled, not this server: then the
tracks wait too) is placed where its sound and mouth still show: the delay grows by
that much until the next pause in the speech, where it starts again at
:attr:`Echo.delay_s`.

``speak`` messages are spoken with the service's TTS (the phoneme-exact mouth, through
:meth:`Speaker.play`) and queued like echo audio: everything plays in the order it
arrived. ``interrupt`` / ``clear`` drops everything queued, silences the audio and
closes the mouth a frame from now, and ignores the rest of the speech in flight (until
the caller's audio has been quiet for :data:`QUIET_S` or paused for :data:`STALL_S`).
No STT, LLM or VAD is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from avatar.motion import WorldModel
from avatar.motion.audio_stream import AudioDriveStream, DriveRows
from avatar.motion.drive import HOP, MouthDrive
from avatar.state import Mode
from models.audio import to_int16
from models.errors import EngineError
from models.tts.base import TextToSpeech
from models.types import FloatAudio
from streaming.clock import MediaClock
from streaming.config import EchoConfig
from streaming.events import error_event, state_event
from streaming.playout import AudioPlayout
from streaming.speaker import Speaker

log = logging.getLogger(__name__)

Emit = Callable[[dict[str, Any]], None]
QUIET_S = 0.1
"""After an interruption, this much silence in the caller's audio ends the speech that
was in flight (the caller stopped sending it)."""
STALL_S = 0.5
"""After an interruption, a pause this long in the arrival of the caller's audio (a
caller that sends nothing between utterances) also ends it: longer than this server's
own stalls under load, shorter than a turn of the conversation."""


def speak_done_event(text: str, seconds: float, *, interrupted: bool) -> dict[str, Any]:
    """A ``speak`` request has finished playing (or was cut: ``interrupted``)."""
    return {
        "type": "speak_done",
        "text": text,
        "seconds": round(seconds, 3),
        "interrupted": interrupted,
    }


def dbfs(pcm: FloatAudio) -> float:
    """RMS level of float audio in dBFS (-inf for digital silence)."""
    if len(pcm) == 0:
        return -math.inf
    rms = float(np.sqrt(np.mean(np.square(pcm, dtype=np.float64))))
    return 20.0 * math.log10(rms) if rms > 0.0 else -math.inf


@dataclass
class EchoStats:
    """Counters of one echo session."""

    stretches: int = 0
    """Stretches of the caller's speech echoed."""
    late_s: float = 0.0
    """How much the delay grew, in all, because the caller's audio came late."""
    speaks: int = 0
    """``speak`` requests spoken (or cut)."""


@dataclass
class _Anchor:
    """Where a span of the inbound stream plays: clock sample = stream sample + offset
    (in samples at the outbound rate)."""

    start: int
    offset: int
    end: int | None = None


class Echo:
    """One echo session's speech: the caller's audio and ``speak`` text, in order."""

    def __init__(
        self,
        speaker: Speaker,
        playout: AudioPlayout,
        world: WorldModel,
        clock: MediaClock,
        tts: TextToSpeech,
        emit: Emit,
        config: EchoConfig,
        *,
        feature_rate: int = 16_000,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._speaker, self._playout, self._world, self._clock = speaker, playout, world, clock
        self._tts, self._emit, self._config, self._now = tts, emit, config, now
        self._drive = AudioDriveStream(feature_rate, world.config.lookahead_ms)
        if self._drive.latency > speaker.lead_s - 2.0 / clock.fps + 1e-9:
            raise ValueError("the speaker's lead does not cover the mouth's look at the audio")
        self.delay_s = speaker.lead_s
        """Added delay from an inbound frame's arrival to its playing (and its mouth)."""
        self._rate = clock.sample_rate
        self._received = 0  # inbound samples at the outbound rate (stream time * rate)
        self._pre_roll: deque[tuple[int, FloatAudio]] = deque(
            maxlen=max(0, round(config.pre_roll_ms / clock.frame_ms))
        )
        self._anchors: list[_Anchor] = []
        self._run: int | None = None  # id of the stretch of speech being echoed
        self._quiet_s = 0.0
        self._muted = False  # after a clear: the speech in flight is dropped
        self._muted_quiet_s = 0.0
        self._last_feed = -math.inf
        self._ids = 0
        self._finished_runs: list[int] = []
        self._last_row: tuple[int, np.ndarray, float] | None = None
        self._speak_queue: deque[str] = deque()
        self._speak_task: asyncio.Task[None] | None = None
        self._settle_task: asyncio.Task[None] | None = None
        self._state = ""
        self._closed = False
        self.stats = EchoStats()
        self._set_state(Mode.LISTENING)

    @property
    def state(self) -> str:
        """``listening`` or ``speaking``."""
        return self._state

    @property
    def speaking(self) -> bool:
        """Whether speech is being echoed, spoken or is still to play."""
        busy = self._speak_task is not None and not self._speak_task.done()
        return self._run is not None or busy or self._speaker.playing

    def describe(self) -> dict[str, Any]:
        """The echo's counters and its delay, for ``GET /v1/sessions``."""
        return {"delay_s": round(self.delay_s, 4), **dataclasses.asdict(self.stats)}

    # --- inputs ----------------------------------------------------------------

    def feed_audio(self, pcm: FloatAudio, features: FloatAudio) -> None:
        """One inbound frame: ``pcm`` at the outbound rate (mono float) to play, and the
        same sound at the mouth's feature rate."""
        if self._closed:
            return
        now = self._now()
        stalled = now - self._last_feed > STALL_S
        self._last_feed = now
        start = self._received
        self._received += len(pcm)
        loud = dbfs(pcm) >= self._config.silence_dbfs
        if self._muted:
            self._muted_quiet_s = 0.0 if loud else self._muted_quiet_s + len(pcm) / self._rate
            self._muted = not stalled and self._muted_quiet_s < QUIET_S
        if self._muted:
            pass
        elif self._run is None:
            if loud:
                self._start_run(start, pcm)
            else:
                self._pre_roll.append((start, pcm))
        else:
            self._play(start, pcm)
            self._quiet_s = 0.0 if loud else self._quiet_s + len(pcm) / self._rate
            if self._quiet_s >= self._config.end_after_s:
                self._end_run(self._received)
        rows = self._drive.feed(features)
        if rows is not None:
            self._place_rows(rows)

    def speak(self, text: str) -> None:
        """Queue ``text`` to be spoken with the service's voice, after what is queued."""
        if self._closed:
            return
        if len(self._speak_queue) >= self._config.max_speak_queue:
            self._emit(
                error_event(
                    "speak_queue_full",
                    f"{len(self._speak_queue)} speak requests are already waiting",
                )
            )
            return
        self._speak_queue.append(text)
        if self._speak_task is None or self._speak_task.done():
            self._speak_task = asyncio.get_running_loop().create_task(
                self._speak_all(), name="echo-speak"
            )

    def clear(self) -> None:
        """Drop everything queued and close the mouth now (the agent was interrupted)."""
        self._speaker.cut()
        while self._speak_queue:  # every accepted speak is answered by one speak_done
            self._emit(speak_done_event(self._speak_queue.popleft(), 0.0, interrupted=True))
        if self._speak_task is not None:
            self._speak_task.cancel()
        self._muted = True  # what is in flight was sent before the clear (even in a pause)
        self._muted_quiet_s = 0.0
        if self._run is not None:
            self._finished_runs.append(self._run)
        self._run = None
        self._anchors.clear()
        self._last_row = None
        self._pre_roll.clear()
        self._drive.reset()
        self._set_state(Mode.LISTENING)

    async def close(self) -> None:
        """Stop speaking and cancel and await every task of this part."""
        self._closed = True
        self._speak_queue.clear()
        tasks = [t for t in (self._speak_task, self._settle_task) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._speaker.clear()

    # --- the caller's audio ----------------------------------------------------------

    def _start_run(self, start: int, pcm: FloatAudio) -> None:
        self._ids += 1
        self._run = self._ids
        self.stats.stretches += 1
        self._quiet_s = 0.0
        # the loud frame plays the fixed delay after it arrived, what came before it earlier
        first = self._pre_roll[0][0] if self._pre_roll else start
        plays = self._clock.sample_now() + round(self.delay_s * self._rate) - (start - first)
        plays = max(plays, self._playout.pulled_until)
        self._anchors.append(_Anchor(first, plays - first))
        self._anchors = self._anchors[-8:]
        for early_start, early in self._pre_roll:
            self._play(early_start, early)
        self._pre_roll.clear()
        self._play(start, pcm)
        self._set_state(Mode.SPEAKING)

    def _end_run(self, at: int) -> None:
        if self._anchors and self._anchors[-1].end is None:
            self._anchors[-1].end = at
        if self._run is not None:
            self._finished_runs.append(self._run)
        self._run = None

    def _play(self, start: int, pcm: FloatAudio) -> None:
        """Schedule inbound audio that began at stream sample ``start``, in order."""
        assert self._run is not None
        anchor = self._anchors[-1]
        # in order, unless the tracks have gone past: the audio track's last pull, or the
        # last frame stepped plus the wait for the audio the mouth looks at
        # (the next frame to step still takes in the mouth from one frame before it)
        in_order = start + anchor.offset
        wait = max(0.0, (start - self._received) / self._rate + self._drive.latency)
        stepped = round((self._world.time - 1.0 / self._clock.fps + wait) * self._rate)
        not_before = max(in_order, stepped, self._playout.pulled_until)
        if not_before > in_order + 1:  # it came late (not a float's rounding): the delay grows
            self.stats.late_s += (not_before - in_order) / self._rate
        else:
            not_before = in_order
        at = self._playout.schedule(to_int16(pcm), "", not_before=not_before, turn_id=self._run)
        offset = at - start
        if offset != anchor.offset:
            anchor.end = start
            self._anchors.append(_Anchor(start, offset))
            self._anchors = self._anchors[-8:]

    def _place_rows(self, rows: DriveRows) -> None:
        """Put the mouth targets of stream hops on the clock where their audio plays."""
        hop = round(HOP * self._rate)  # samples per row
        for anchor in self._anchors:
            lo = max(rows.first, -(-anchor.start // hop))  # rows in [start, end)
            hi = rows.end if anchor.end is None else min(rows.end, -(-anchor.end // hop))
            if hi <= lo:
                continue
            targets = rows.targets[lo - rows.first : hi - rows.first]
            energy = rows.energy[lo - rows.first : hi - rows.first]
            first = lo
            last = self._last_row
            if last is not None and last[0] == lo - 1 and last[2] == anchor.offset:
                # start where the previous piece ended: no gap between two pieces
                targets = np.concatenate([last[1][None, :5], targets])
                energy = np.concatenate([last[1][5:], energy])
                first = lo - 1
            if len(targets) < 2:
                targets = np.concatenate([targets, targets])
                energy = np.concatenate([energy, energy])
            self._last_row = (hi - 1, np.concatenate([targets[-1], energy[-1:]]), anchor.offset)
            t_first = first * HOP
            accents = tuple((t - t_first, s) for t, s in rows.accents if t_first <= t < hi * HOP)
            drive = MouthDrive(
                targets=np.ascontiguousarray(targets, dtype=np.float32),
                energy=np.ascontiguousarray(energy, dtype=np.float32),
                t0=0.0,
                duration=(len(targets) - 1) * HOP,
                lead=0.0,
                accents=accents,
                source="audio",
            )
            start = (first * hop + anchor.offset) / self._rate
            if start >= 0.0:
                self._world.schedule_speech(drive, start)

    # --- speak -------------------------------------------------------------------

    async def _speak_all(self) -> None:
        while self._speak_queue and not self._closed:
            await self._speak_one(self._speak_queue.popleft())

    async def _speak_one(self, text: str) -> None:
        self._ids += 1
        turn_id = self._ids
        self.stats.speaks += 1
        self._speaker.give_floor(turn_id)
        end = 0.0
        interrupted = True
        try:
            async with contextlib.aclosing(self._tts.stream(text)) as chunks:  # type: ignore[type-var]
                async for speech in chunks:
                    starts_in = await self._speaker.play(turn_id, speech)
                    if starts_in is None:
                        return
                    end = self._clock.elapsed() + starts_in + speech.duration
                    self._set_state(Mode.SPEAKING)
            await self._clock.wait_until(end)
            interrupted = False
        except EngineError as exc:
            log.warning("speak failed: %s", exc)
            self._emit(error_event("speak_failed", f"could not speak this text: {exc}"))
        finally:
            heard = self._speaker.heard(turn_id)
            self._emit(speak_done_event(text, heard.seconds, interrupted=interrupted))
            self._settle_soon()

    # --- state -------------------------------------------------------------------

    def _set_state(self, mode: Mode) -> None:
        self._world.set_mode(mode)
        if mode.value != self._state:
            self._state = mode.value
            self._emit(state_event(mode.value))
        if mode is Mode.SPEAKING:
            self._settle_soon()

    def _settle_soon(self) -> None:
        if self._closed or (self._settle_task is not None and not self._settle_task.done()):
            return
        self._settle_task = asyncio.get_running_loop().create_task(
            self._settle(), name="echo-settle"
        )

    async def _settle(self) -> None:
        """Listen again once nothing is echoed, spoken or still to play."""
        frame = 1.0 / self._clock.fps
        while self.speaking:
            await self._speaker.played_out()
            await self._clock.wait_until(self._clock.elapsed() + frame)
        for run in self._finished_runs:
            self._speaker.heard(run)  # forget the record of what played
        self._finished_runs.clear()
        self._set_state(Mode.LISTENING)
