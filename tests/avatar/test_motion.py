"""The world model's dynamics: mouth drives, causality, barge-in, idle life, determinism.

These tests run the world model without rendering (it is cheap); the rendered-pixel
checks of lip sync and blinks are in ``test_render_cli.py``.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from avatar.analysis import best_lag_correlation, blink_events, speech_envelope
from avatar.config import AvatarConfig
from avatar.motion import MouthDrive, Viseme, WorldModel, viseme_of
from avatar.motion.visemes import VISEME_TARGETS
from avatar.state import AvatarState, Mode
from models.types import PhonemeSpan, Speech, Word
from tests.avatar.speech_support import padded, say

FPS = 25
PAD = 1.0
SENTENCE = "Peter bought a bubble, and we all laughed about it for a while."


@pytest.fixture(scope="module")
def speech() -> Speech:
    """A Piper sentence with its phoneme timeline."""
    return say(SENTENCE)


def run(
    drive: MouthDrive | None,
    seconds: float,
    *,
    seed: int = 1,
    start: float = PAD,
    fps: int = FPS,
    mode: Mode = Mode.SPEAKING,
    config: AvatarConfig | None = None,
) -> list[AvatarState]:
    """States of ``seconds`` of a world model playing ``drive`` from ``start``."""
    wm = WorldModel(config or AvatarConfig(), fps, seed=seed)
    wm.set_mode(mode)
    if drive is not None:
        wm.schedule_speech(drive, start)
    return [wm.step() for _ in range(round(seconds * fps))]


def jaw(states: list[AvatarState]) -> np.ndarray:
    return np.array([s.jaw_open for s in states])


def test_visemes_of_piper_symbols() -> None:
    assert viseme_of("p") is Viseme.PP
    assert viseme_of("m") is Viseme.PP
    assert viseme_of("ɑ") is Viseme.AA
    assert viseme_of("u") is Viseme.OU
    assert viseme_of(".") is Viseme.SILENCE
    assert viseme_of("^") is Viseme.SILENCE
    assert viseme_of("ˈ") is None
    assert viseme_of(" ") is None
    # the tongue shows for th and l, not for t/d/n or the lips
    assert viseme_of("ð") is Viseme.TH and VISEME_TARGETS[Viseme.TH].tongue_show > 0.5
    assert viseme_of("l") is Viseme.LL and VISEME_TARGETS[Viseme.LL].tongue_show > 0.5
    assert VISEME_TARGETS[viseme_of("t") or Viseme.SILENCE].tongue_show < 0.5
    assert VISEME_TARGETS[Viseme.PP].tongue_show == 0.0


@pytest.mark.parametrize("source", ["phonemes", "audio"])
def test_mouth_follows_speech_and_rests_in_silence(speech: Speech, source: str) -> None:
    if source == "phonemes":
        assert speech.phonemes
        drive = MouthDrive.from_phonemes(speech.phonemes, speech.duration)
    else:
        drive = MouthDrive.from_audio(speech.pcm, speech.sample_rate)
    pcm = padded(speech, PAD, PAD)
    states = run(drive, len(pcm) / speech.sample_rate)
    opening = jaw(states)
    env = speech_envelope(pcm, speech.sample_rate, FPS)
    r, lag = best_lag_correlation(opening, env, 3)
    assert r >= 0.6, f"jaw vs loudness r={r:.2f}"
    assert abs(lag) <= 1
    n = len(states)
    silence = np.r_[0 : round(PAD * FPS) - 2, n - round(PAD * FPS) + 5 : n]
    assert np.all(opening[silence] < 0.02)
    assert opening.max() > 0.5


@pytest.mark.parametrize("source", ["phonemes", "audio"])
def test_mouth_never_moves_before_its_sound(speech: Speech, source: str) -> None:
    """Nothing moves earlier than the first audible sample minus the lookahead."""
    config = AvatarConfig(lookahead_ms=60)
    lead = config.lookahead_ms / 1000.0
    if source == "phonemes":
        assert speech.phonemes
        drive = MouthDrive.from_phonemes(speech.phonemes, speech.duration, lookahead_ms=60)
    else:
        drive = MouthDrive.from_audio(speech.pcm, speech.sample_rate, lookahead_ms=60)
    fps = 200  # fine time resolution
    states = run(drive, PAD + 0.5, fps=fps, config=config)
    onset = PAD + np.argmax(np.abs(speech.pcm) > 0.01) / speech.sample_rate
    moving = np.flatnonzero(jaw(states) > 1e-4)
    assert len(moving) > 0
    assert moving[0] / fps >= onset - lead - 1e-6, (moving[0] / fps, onset)
    # too long a lead is refused
    wm = WorldModel(AvatarConfig(lookahead_ms=20), FPS, seed=0)
    with pytest.raises(ValueError, match="lookahead"):
        wm.schedule_speech(drive, 0.5)


def test_bilabials_close_the_lips() -> None:
    """'a b a' shuts the jaw and presses the lips on the b, between two open vowels."""
    spans = [PhonemeSpan("^", 0.0, 0.2)]
    t = 0.2
    for ph, d in [("a", 0.2), ("b", 0.07), ("a", 0.2), ("$", 0.2)]:
        spans.append(PhonemeSpan(ph, t, d))
        t += d
    drive = MouthDrive.from_phonemes(spans, t)
    tg, _ = drive.sample(np.arange(0.0, t, 0.005))
    # targets blend (coarticulation): no snap between 5 ms hops
    assert np.abs(np.diff(tg, axis=0)).max() < 0.35
    fps = 200
    states = run(drive, t, start=0.0, fps=fps)
    opening = jaw(states)
    press = np.array([s.lip_press for s in states])
    b = slice(round(0.35 * fps), round(0.47 * fps))
    assert opening[b].min() < 0.12 and press[b].max() > 0.8
    assert opening[round(0.3 * fps)] > 0.6 and opening[round(0.58 * fps)] > 0.6
    assert opening[-1] < 0.02


def test_th_and_l_raise_the_tongue() -> None:
    """The tongue's tip comes up for 'th' and 'l' only, and is down in silence."""
    spans = [PhonemeSpan("^", 0.0, 0.2)]
    t = 0.2
    for ph, d in [("ɑ", 0.15), ("ð", 0.12), ("ɑ", 0.15), ("m", 0.1), ("ɑ", 0.15), ("$", 0.3)]:
        spans.append(PhonemeSpan(ph, t, d))
        t += d
    drive = MouthDrive.from_phonemes(spans, t)
    fps = 200
    tongue = np.array([s.tongue_show for s in run(drive, t, start=0.0, fps=fps)])
    assert tongue[round(0.38 * fps) : round(0.5 * fps)].max() > 0.6  # ð
    assert tongue[round(0.62 * fps) : round(0.72 * fps)].max() < 0.2  # m
    assert tongue[: round(0.1 * fps)].max() < 1e-3 and tongue[-1] < 0.05
    assert np.all(MouthDrive.from_audio(np.zeros(16000, np.float32), 16000).targets[:, 4] == 0)


def test_audio_drive_is_closed_in_noise_and_gated_by_words(speech: Speech) -> None:
    rng = np.random.default_rng(0)
    noise = (rng.standard_normal(speech.sample_rate) * 0.002).astype(np.float32)
    pcm = np.concatenate([noise, speech.pcm + 0.002 * rng.standard_normal(len(speech.pcm))])
    drive = MouthDrive.from_audio(pcm.astype(np.float32), speech.sample_rate)
    tg, _ = drive.sample(np.arange(0.0, 0.9, 0.005))
    assert tg[:, 0].max() == 0.0  # hiss alone never opens the mouth
    # STT word timings: sound outside every word stays closed
    half = speech.duration / 2
    gated = MouthDrive.from_audio(
        speech.pcm, speech.sample_rate, words=[Word("first", 0.0, half, 0.9)]
    )
    first, _ = gated.sample(np.arange(0.0, half, 0.005))
    second, _ = gated.sample(np.arange(half + 0.15, speech.duration, 0.005))
    assert first[:, 0].max() > 0.3
    assert second[:, 0].max() < 0.02


def test_barge_in_closes_the_mouth_and_drops_queued_speech(speech: Speech) -> None:
    assert speech.phonemes
    drive = MouthDrive.from_phonemes(speech.phonemes, speech.duration)
    wm = WorldModel(AvatarConfig(), FPS, seed=3)
    wm.set_mode(Mode.SPEAKING)
    wm.schedule_speech(drive, 0.0)
    wm.schedule_speech(drive, speech.duration)  # streamed: the next chunk is queued
    assert wm.scheduled_until() == pytest.approx(2 * speech.duration)
    states = [wm.step() for _ in range(round(1.5 * FPS))]
    # find a frame where the mouth is open, cut there
    open_frames = [i for i, s in enumerate(states) if s.jaw_open > 0.3]
    assert open_frames
    cut = 1.5
    wm.interrupt(cut)
    wm.set_mode(Mode.LISTENING)
    after = [wm.step() for _ in range(round(1.0 * FPS))]
    first = round(cut * FPS)
    opening = jaw(after)
    # within ~100 ms (+ one frame) the mouth is closed, and stays closed
    assert np.all(opening[round(0.12 * FPS) :] < 0.05), opening[:6]
    assert wm.scheduled_until() == pytest.approx(cut)
    assert not wm.is_speaking()
    assert first == len(states)


def test_streaming_chunks_play_back_to_back(speech: Speech) -> None:
    assert speech.phonemes
    drive = MouthDrive.from_phonemes(speech.phonemes, speech.duration)
    wm = WorldModel(AvatarConfig(), FPS, seed=3)
    wm.set_mode(Mode.SPEAKING)
    wm.schedule_speech(drive, 0.2)
    for _ in range(FPS):
        wm.step()
    wm.schedule_speech(drive, 0.2 + speech.duration)  # appended while the first plays
    n = round((0.2 + 2 * speech.duration + 0.5) * FPS) - FPS
    states = [wm.step() for _ in range(n)]
    second_half = jaw(states)[round((0.2 + speech.duration + 0.3) * FPS) - FPS :]
    assert second_half.max() > 0.5
    assert not wm.is_speaking()


def test_same_seed_same_states_different_seed_different_motion(speech: Speech) -> None:
    assert speech.phonemes
    drive = MouthDrive.from_phonemes(speech.phonemes, speech.duration)

    def states(seed: int) -> np.ndarray:
        wm = WorldModel(AvatarConfig(), FPS, seed=seed)
        wm.set_mode(Mode.LISTENING)
        out = [wm.step() for _ in range(30)]
        wm.set_mode(Mode.SPEAKING)
        wm.schedule_speech(drive, wm.time)
        out += [wm.step() for _ in range(150)]
        return np.stack([s.as_vector() for s in out])

    a, b, c = states(7), states(7), states(8)
    assert np.array_equal(a, b)
    head = slice(9, 14)  # head yaw..head_y in as_vector order
    assert np.abs(a[:, head] - c[:, head]).max() > 0.005
    assert np.allclose(a[:, 0], c[:, 0], atol=0.05)  # the mouth follows the speech alike


def test_idle_blinks_at_a_human_rate() -> None:
    states = run(None, 60.0, seed=11, mode=Mode.IDLE)
    closure = np.array([s.blink_left for s in states])
    events = blink_events(closure, FPS, threshold=0.4)
    assert 8 <= len(events) <= 30, len(events)
    whole = [e for e in events if e.start_frame > 0 and e.start_frame + e.frames < len(closure)]
    assert all(0.08 <= e.duration_s <= 0.4 for e in whole), [e.duration_s for e in whole]
    # refractory: blinks never overlap, and eyes are open most of the time
    assert np.mean(closure > 0.5) < 0.1
    # different seeds blink at different times
    other = np.array([s.blink_left for s in run(None, 60.0, seed=12, mode=Mode.IDLE)])
    assert not np.array_equal(closure > 0.5, other > 0.5)


def test_thinking_averts_gaze_listening_keeps_eye_contact() -> None:
    def gaze(mode: Mode) -> np.ndarray:
        states = run(None, 20.0, seed=5, mode=mode)[FPS:]
        return np.array([np.hypot(s.gaze_x, s.gaze_y) for s in states])

    listening, thinking = gaze(Mode.LISTENING), gaze(Mode.THINKING)
    assert np.median(listening) < 0.15
    assert np.median(thinking) > 0.4


def test_listening_nods_and_raises_brows() -> None:
    listen = run(None, 30.0, seed=5, mode=Mode.LISTENING)
    idle = run(None, 30.0, seed=5, mode=Mode.IDLE)
    pitch_speed = np.abs(np.diff([s.head_pitch for s in listen])) * FPS
    assert pitch_speed.max() > 0.15  # at least one nod (rad/s)
    assert max(s.brow_raise for s in listen) > max(s.brow_raise for s in idle) + 0.1


def test_breathing_period_and_smooth_mode_changes() -> None:
    wm = WorldModel(AvatarConfig(), FPS, seed=2)
    wm.set_mode(Mode.LISTENING)
    states = [wm.step() for _ in range(20 * FPS)]
    breath = np.array([s.breath for s in states])
    spectrum = np.abs(np.fft.rfft(breath - breath.mean()))
    freqs = np.fft.rfftfreq(len(breath), 1.0 / FPS)
    period = 1.0 / freqs[1 + np.argmax(spectrum[1:])]
    assert 3.0 <= period <= 6.0
    wm.set_mode(Mode.THINKING)
    more = [wm.step() for _ in range(2 * FPS)]
    vec = np.stack([s.as_vector() for s in states[-5:] + more])
    head_jumps = np.abs(np.diff(vec[:, 9:12], axis=0)).max()
    assert head_jumps < 0.03  # radians per frame: the head turns, it does not snap
    assert more[-1].mode is Mode.THINKING


def test_world_model_step_cost(speech: Speech) -> None:
    assert speech.phonemes
    wm = WorldModel(AvatarConfig(), FPS, seed=0)
    wm.set_mode(Mode.SPEAKING)
    wm.schedule_speech(MouthDrive.from_phonemes(speech.phonemes, speech.duration), 0.0)
    for _ in range(3):
        wm.step()
    n = 500
    t0 = time.perf_counter()
    for _ in range(n):
        wm.step()
    us = (time.perf_counter() - t0) / n * 1e6
    assert us < 2000, f"{us:.0f} µs per step"
