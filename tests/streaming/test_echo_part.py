"""The echo part on a clock the test moves: the caller's audio is played back at the
fixed delay, sample for sample, with a mouth that follows it; clear, speak, states.

The tracks are played by the test: every 20 ms of fake time it pulls the playout (the
audio track) and steps the world model as far ahead as the video track does.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from avatar.analysis import best_lag_correlation
from avatar.config import AvatarConfig
from avatar.motion import WorldModel
from avatar.state import AvatarState
from models.audio import resample, to_int16
from streaming.config import EchoConfig
from streaming.echo import Echo
from streaming.playout import AudioPlayout
from streaming.speaker import Speaker
from streaming.tracks import VIDEO_STEPS_AHEAD, speech_lead_s
from tests.streaming.fakes import FakeClock, FakeTts, until

RATE = 48_000
FRAME = 960
FPS = 25


def syllables(seconds: float) -> np.ndarray:
    """48 kHz voiced syllables, three a second."""
    t = np.arange(int(seconds * RATE)) / RATE
    envelope = np.clip(np.sin(2 * np.pi * 3 * t), 0.0, None) ** 0.7
    return (0.3 * envelope * np.sin(2 * np.pi * 150 * t)).astype(np.float32)


def voiced(seconds: float) -> np.ndarray:
    """48 kHz speech with no pause in it (a long vowel, its loudness moving)."""
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) * np.sin(2 * np.pi * 150 * t)).astype(
        np.float32
    )


def quiet(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), np.float32)


class EchoRig:
    """An echo part with its speaker, playout and world model, played by the test."""

    def __init__(self, **config: Any) -> None:
        self.clock = FakeClock(fps=FPS)
        self.clock.advance(5.0)  # a call that has been going on for a while
        self.playout = AudioPlayout(RATE)
        self.world = WorldModel(AvatarConfig(), fps=FPS, seed=0)
        self.speaker = Speaker(self.clock, self.playout, self.world)
        self.tts = FakeTts()
        self.events: list[dict[str, Any]] = []
        self.echo = Echo(
            self.speaker,
            self.playout,
            self.world,
            self.clock,
            self.tts,
            self.events.append,
            EchoConfig(**config),
            now=self.clock.now,
        )
        self.out: list[np.ndarray] = []  # every 20 ms pulled since the start of the clock
        self.states: list[AvatarState] = []
        self._pulled = 0
        self.tick(0.0)

    def tick(self, seconds: float) -> None:
        """Move time on in 20 ms steps, playing the tracks."""
        for _ in range(round(seconds / 0.02)):
            self.clock.advance(0.02)
            self._play()
        if seconds == 0.0:
            self._play()

    def _play(self) -> None:
        now = self.clock.sample_now()
        while (self._pulled + 1) * FRAME <= now:
            self.out.append(self.playout.pull(self._pulled * FRAME, FRAME))
            self._pulled += 1
        ahead = self.clock.elapsed() + VIDEO_STEPS_AHEAD / FPS
        while self.world.time <= ahead:
            self.states.append(self.world.step())

    def send(self, pcm: np.ndarray) -> list[float]:
        """The caller's audio, one 20 ms frame per 20 ms of time; each frame's arrival."""
        arrivals = []
        pcm16 = resample(pcm, RATE, 16_000)
        for k in range(len(pcm) // FRAME):
            self.tick(0.02)
            arrivals.append(self.clock.elapsed())
            frame = pcm[k * FRAME : (k + 1) * FRAME]
            self.echo.feed_audio(frame, pcm16[k * 320 : (k + 1) * 320])
        return arrivals

    def burst(self, pcm: np.ndarray) -> None:
        """The caller's audio all at once (it had stalled, and catches up)."""
        pcm16 = resample(pcm, RATE, 16_000)
        for k in range(len(pcm) // FRAME):
            frame = pcm[k * FRAME : (k + 1) * FRAME]
            self.echo.feed_audio(frame, pcm16[k * 320 : (k + 1) * 320])

    def played(self) -> np.ndarray:
        return np.concatenate(self.out)

    def jaw(self) -> np.ndarray:
        return np.array([s.jaw_open for s in self.states])

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]


def loud_frames(pcm: np.ndarray) -> np.ndarray:
    frames = pcm[: len(pcm) // FRAME * FRAME].reshape(-1, FRAME)
    return np.flatnonzero(np.abs(frames).max(axis=1) > 0.01)


async def test_the_callers_audio_plays_at_the_fixed_delay_with_a_mouth_that_follows_it() -> None:
    rig = EchoRig()
    pcm = np.concatenate([quiet(0.5), syllables(1.6), quiet(1.0)])
    arrivals = rig.send(pcm)
    rig.tick(0.5)
    played = rig.played()
    delay = rig.echo.delay_s
    assert delay == speech_lead_s(FPS, AvatarConfig().lookahead_ms)
    # the speech, sample for sample, starting `delay` after its first loud frame arrived
    first = int(loud_frames(pcm)[0])
    pre = round(EchoConfig().pre_roll_ms / 20)
    span = to_int16(pcm[(first - pre) * FRAME : len(pcm) - int(0.5 * RATE)])
    # the first loud frame plays `delay` after it arrived (its pre-roll before it)
    due = round((arrivals[first] + delay) * RATE) - pre * FRAME  # within a sample
    starts = [s for s in range(due - 1, due + 2) if np.array_equal(played[s : s + len(span)], span)]
    assert starts, "the played audio is not the caller's, at the delay"
    assert np.abs(played[: starts[0]]).max() == 0
    # the mouth (the world model's state at each frame) follows the loudness of the
    # audio played at that frame's time, without lag, and rests in silence
    jaw = rig.jaw()
    n = min(len(jaw), len(played) * FPS // RATE)
    spf = RATE // FPS
    env = np.array(
        [
            np.sqrt(np.mean(played[max(0, i * spf - spf // 2) : i * spf + spf // 2] ** 2.0))
            for i in range(n)
        ]
    )
    r, lag = best_lag_correlation(jaw[:n], env, 3)
    assert r >= 0.85 and lag == 0, (r, lag)
    loud = np.flatnonzero(env > 1.0)
    spoken = slice(int(loud[0]) - 3, int(loud[-1]) + 6)  # the mouth prepares and relaxes
    assert jaw[5 : spoken.start].max() < 0.02 and jaw[spoken.stop : n].max() < 0.02
    assert jaw[spoken].max() > 0.4
    await until(lambda: rig.echo.state == "listening", "listening after the speech")
    assert [e["state"] for e in rig.of("state")] == ["listening", "speaking", "listening"]
    await rig.echo.close()


async def test_clear_silences_and_closes_the_mouth_and_drops_the_speech_in_flight() -> None:
    rig = EchoRig()
    rig.send(quiet(0.3))
    rig.send(voiced(1.2))
    t_clear = rig.clock.elapsed()
    rig.echo.clear()
    assert rig.of("state")[-1]["state"] == "listening"
    rig.send(voiced(0.1))  # the rest of the interrupted speech, in flight
    rig.send(quiet(0.5))
    t_new = rig.clock.elapsed()
    rig.send(voiced(0.7))  # the agent's next line
    rig.send(quiet(1.0))
    played = rig.played()
    cut = round((t_clear + 0.2) * RATE)
    resume = round((t_new + rig.echo.delay_s) * RATE)
    # silent from 200 ms after the clear until the next line, which plays
    assert np.abs(played[cut:resume]).max() == 0
    assert np.abs(played[resume : resume + RATE // 2]).max() > 5000
    jaw = rig.jaw()
    after = slice(round((t_clear + 0.2) * FPS), round((t_new + rig.echo.delay_s) * FPS))
    assert jaw[after].max() < 0.05, jaw[after].max()
    assert jaw[after.stop : after.stop + 15].max() > 0.2  # the next line moves it again
    await rig.echo.close()


async def test_speak_is_queued_after_the_echo_and_reported_when_done() -> None:
    rig = EchoRig()
    rig.send(np.concatenate([quiet(0.2), syllables(0.6)]))
    rig.echo.speak("two words")  # 0.4 s of the fake voice, after the echo audio
    await until(lambda: rig.tts.texts == ["two words"], "synthesized")
    await until(lambda: rig.playout.end_sample() > rig.clock.sample_now() + RATE // 2)
    queued_end = rig.playout.end_sample()
    rig.send(quiet(0.6))
    for _ in range(200):  # 4 s of media time at most
        if rig.of("speak_done"):
            break
        rig.tick(0.02)
        await asyncio.sleep(0.001)
    done = rig.of("speak_done")[0]
    assert done == {"type": "speak_done", "text": "two words", "seconds": 0.4, "interrupted": False}
    played = rig.played()
    voice = played[queued_end - int(0.4 * RATE) : queued_end]
    assert np.count_nonzero(voice) > 0.9 * len(voice) and np.abs(voice).max() > 5000
    # a full queue is refused with an error event
    for i in range(EchoConfig().max_speak_queue + 2):
        rig.echo.speak(f"line {i}")
    assert rig.of("error")[-1]["code"] == "speak_queue_full"
    await until(lambda: rig.tts.texts[-1] == "line 0", "the next line is being spoken")
    rig.echo.clear()  # cuts the line being spoken and drops the queue
    await until(lambda: len(rig.of("speak_done")) == 1 + 8, "every line is answered")
    cut = rig.of("speak_done")[1:]
    assert sorted(d["text"] for d in cut) == [f"line {i}" for i in range(8)]
    assert all(d["interrupted"] for d in cut)
    await rig.echo.close()


async def test_late_audio_moves_the_delay_on_until_the_next_pause() -> None:
    rig = EchoRig()
    line = voiced(1.0)
    rig.send(quiet(0.2))
    rig.send(line[: RATE // 2])
    rig.tick(0.3)  # the caller stalls for 300 ms: the tracks go past its next audio...
    rig.burst(line[RATE // 2 :])  # ...which then comes all at once
    rig.send(quiet(1.0))
    late = rig.echo.stats.late_s
    assert 0.1 < late < 0.3, late  # 300 ms late, less what the delay absorbed
    arrivals = rig.send(np.concatenate([quiet(0.2), voiced(0.5)]))
    rig.send(quiet(1.0))
    played = rig.played()
    frames = played[: len(played) // FRAME * FRAME].reshape(-1, FRAME)
    loud = np.abs(frames).max(axis=1) > 500
    runs = np.flatnonzero(np.diff(np.r_[0, loud.astype(np.int8), 0]))
    (a1, b1), (a2, b2), (a3, _) = zip(runs[::2], runs[1::2], strict=True)
    # the line is whole, in two pieces with one gap of the lateness between them
    assert (b1 - a1) + (b2 - a2) in (50, 51)  # 1 s in 20 ms frames (one split by the gap)
    assert abs((a2 - b1) * 0.02 - late) <= 0.02
    # after the pause the next line plays at the fixed delay again
    first_loud = round(0.2 / 0.02)
    assert a3 == round((arrivals[first_loud] + rig.echo.delay_s) / 0.02)
    assert rig.echo.stats.late_s == late
    await rig.echo.close()
