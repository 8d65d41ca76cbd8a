"""One speech -> drive -> frames path: a live call's speaker and the offline render give
the same mouth track for the same speech (same drive and seed -> same frames)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from avatar.config import AvatarConfig, RenderConfig
from avatar.motion import WorldModel
from avatar.state import AvatarState, Mode
from gwm_avatars.commands.render import render_speech_to_mp4
from models.types import PhonemeSpan, Speech
from streaming.playout import AudioPlayout
from streaming.speaker import Speaker
from tests.streaming.fakes import FakeClock

RATE = 16_000
MOUTH = ("jaw_open", "mouth_wide", "lip_press", "teeth_show")


class BlankRenderer:
    """Frames of the right size and nothing else (the test compares states)."""

    def render(self, state: AvatarState) -> npt.NDArray[np.uint8]:
        return np.zeros((64, 64, 3), np.uint8)

    def render_batch(self, states: Sequence[AvatarState]) -> list[npt.NDArray[np.uint8]]:
        return [self.render(s) for s in states]


def _speech(phonemes: bool) -> Speech:
    t = np.arange(int(1.2 * RATE)) / RATE
    envelope = (np.sin(2 * np.pi * 3 * t) > 0).astype(np.float32)  # three syllables a second
    pcm = (0.4 * envelope * np.sin(2 * np.pi * 180 * t)).astype(np.float32)
    spans = None
    if phonemes:
        symbols = "hɛloʊðɛɹfɹɛnd"
        step = 1.2 / len(symbols)
        spans = tuple(PhonemeSpan(p, i * step, step) for i, p in enumerate(symbols))
    return Speech(pcm, RATE, "hello there friend", spans)


def _mouth(states: Sequence[AvatarState]) -> npt.NDArray[np.float64]:
    return np.array([[getattr(s, k) for k in MOUTH] for s in states])


@pytest.mark.parametrize("phonemes", [True, False], ids=["phonemes", "audio-only"])
async def test_the_live_speaker_and_the_offline_render_make_the_same_mouth_track(
    tmp_path: Path, phonemes: bool
) -> None:
    speech = _speech(phonemes)
    config = AvatarConfig(seed=7)
    fps = 25

    clock = FakeClock(fps=fps)
    world = WorldModel(config, fps=fps, seed=7)
    speaker = Speaker(clock, AudioPlayout(clock.sample_rate), world)
    speaker.give_floor(1)
    world.set_mode(Mode.SPEAKING)
    starts_in = await speaker.play(1, speech)
    assert starts_in == pytest.approx(speaker.lead_for(world.make_drive(speech)))
    assert starts_in <= speaker.lead_s

    # offline: the speech starts after a pad as long as the live chunk's lead
    result = render_speech_to_mp4(
        [speech],
        tmp_path / "offline.mp4",
        BlankRenderer(),
        avatar_config=config,
        render_config=RenderConfig(fps=fps),
        pad_s=starts_in,
        keep_states=True,
    )
    live = [world.step() for _ in range(result.frames)]

    offline = _mouth(result.states)
    assert offline[:, 0].max() > 0.2  # the mouth moved
    np.testing.assert_array_equal(_mouth(live), offline)
