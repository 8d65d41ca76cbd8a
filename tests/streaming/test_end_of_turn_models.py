"""The end of the user's turn with real speech: espeak-ng sentences (a voice the service
never heard) through the session's Silero VAD, the live Whisper and the end-of-turn
policy. A pause of 0.6 s after "I would like to go to" must not end the turn; a
finished question must end it well before the longest wait."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from faster_whisper.audio import decode_audio

from models.types import FloatAudio
from streaming.config import AppConfig
from streaming.engines import Engines
from streaming.listener import Listener, UserPaused, Utterance
from streaming.turn_end import WordEndPolicy
from tests.avatar.speech_support import espeak_wav

pytestmark = [pytest.mark.models, pytest.mark.timeout(300)]

RATE = 16_000
FRAME = 320  # 20 ms, as a call delivers it


def _espeak(text: str, folder: Path, voice: str = "en-gb+f3") -> FloatAudio:
    """``text`` spoken by espeak-ng at 16 kHz, without the silence it leaves at the end
    (so an inserted pause is exactly as long as asked)."""
    pcm = decode_audio(str(espeak_wav(text, folder / "clip.wav", voice=voice)), RATE)
    loud = np.flatnonzero(np.abs(pcm) > 0.01)
    return pcm[: loud[-1] + 1] if loud.size else pcm


def _silence(seconds: float) -> FloatAudio:
    return np.zeros(int(seconds * RATE), np.float32)


class LiveListener:
    """A session's listener; each guess is awaited as soon as it starts, so the words
    are known at once (the fastest recognizer: the worst case for a cut-in)."""

    def __init__(self, engines: Engines, config: AppConfig) -> None:
        self.listener = Listener(
            engines.new_vad(),
            engines.stt,
            max_utterance_s=config.stt.max_utterance_s,
            policy=WordEndPolicy(config.end_of_turn),
            now=lambda: 0.0,
        )
        self.utterances: list[Utterance] = []

    async def feed(self, pcm: FloatAudio) -> None:
        for i in range(0, len(pcm), FRAME):
            for event in self.listener.feed(pcm[i : i + FRAME]):
                if isinstance(event, UserPaused) and event.guess is not None:
                    await asyncio.wait([event.guess])
                elif isinstance(event, Utterance):
                    self.utterances.append(event)


async def test_a_pause_mid_sentence_is_not_taken_for_the_end_of_the_turn(
    engines: Engines, service_config: AppConfig, tmp_path: Path
) -> None:
    first = _espeak("I would like to go to", tmp_path)
    rest = _espeak("the museum tomorrow.", tmp_path)
    live = LiveListener(engines, service_config)
    await live.feed(np.concatenate([_silence(0.3), first, _silence(0.6)]))
    assert live.utterances == [], "the turn ended during a 0.6 s pause after 'go to'"
    await live.feed(np.concatenate([rest, _silence(1.2)]))
    [utterance] = live.utterances
    assert utterance.guess is not None
    heard = (await utterance.guess).text.lower()
    assert "like to" in heard and "museum" in heard, heard  # both halves: one utterance
    live.listener.close()


async def test_a_finished_question_ends_the_turn_sooner_than_the_longest_wait(
    engines: Engines, service_config: AppConfig, tmp_path: Path
) -> None:
    question = _espeak("Which planet is closest to the sun?", tmp_path, voice="en-us")
    live = LiveListener(engines, service_config)
    await live.feed(np.concatenate([_silence(0.3), question, _silence(1.2)]))
    [utterance] = live.utterances
    eot = service_config.end_of_turn
    assert utterance.guess is not None
    heard = (await utterance.guess).text.lower()
    assert "planet" in heard and "sun" in heard, heard
    assert utterance.waited_s < eot.statement_ms / 1000, heard
    live.listener.close()
