"""The LLM gets the next prompt before the turn ends, without models: partial passes
of the recognizer while the user speaks (a fake VAD and recognizer), and what the
conversation asks the LLM to evaluate ahead (a fake LLM that records it)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from models.types import ChatMessage, FloatAudio
from streaming.listener import UserPaused, UserSpeaking
from tests.streaming.fakes import WINDOW, FakeStt, Rig, answered, silence, speech
from tests.streaming.test_end_of_turn import Feeder

pytestmark = pytest.mark.timeout(30)


def partials(f: Feeder) -> list[UserSpeaking]:
    return [e for e in f.events if isinstance(e, UserSpeaking)]


async def test_the_words_so_far_are_transcribed_while_the_user_speaks() -> None:
    stt = FakeStt("What is the capi")
    f = Feeder(stt, partial_every_s=0.5)
    await f.feed(speech(1.7))
    # a pass every 0.5 s of the utterance (its 0.3 s pre-roll included), each one longer
    assert stt.partials == 3 and len(partials(f)) == 3
    assert np.diff(stt.seconds).min() == pytest.approx(0.5, abs=2 * WINDOW / 16_000)
    assert partials(f)[0].text == "What is the capi"
    f.listener.close()


def test_the_settled_words_leave_out_a_last_word_that_may_be_cut() -> None:
    assert UserSpeaking("What is the capi").settled() == "What is the"
    assert UserSpeaking("Is it raining?").settled() == "Is it raining?"
    assert UserSpeaking("Hello").settled() == ""
    assert UserSpeaking("  ").settled() == ""


async def test_one_pass_at_a_time_and_none_when_turned_off() -> None:
    stt = FakeStt("What is the capital")
    stt.gate.clear()  # the recognizer is busy: the first pass never finishes
    f = Feeder(stt, partial_every_s=0.5)
    await f.feed(speech(2.0))
    assert stt.partials == 1 and partials(f) == []
    stt.gate.set()
    f.listener.close()

    off = FakeStt("What is the capital")
    g = Feeder(off)
    await g.feed(speech(2.0), silence(0.5))
    assert off.partials == 0 and partials(g) == []
    g.listener.close()


async def test_a_partial_pass_never_delays_the_guess() -> None:
    stt = FakeStt("What is the capital of France?")
    stt.gate.clear()  # the pass is still running when the user pauses
    f = Feeder(stt, partial_every_s=0.5)
    await f.feed(speech(0.6), silence(0.2))
    assert stt.partials == 1 and stt.cancelled == 1  # cancelled as the guess started
    assert any(isinstance(e, UserPaused) for e in f.events) and partials(f) == []
    stt.gate.set()
    await f.feed(silence(0.4))
    [utterance] = f.utterances()
    assert stt.partials == 1  # none started during the pause
    assert utterance.guess is not None and (await utterance.guess).text.endswith("France?")
    f.listener.close()


async def _say(rig: Rig, *parts: FloatAudio) -> None:
    """Feed 20 ms frames, letting the event loop run between them (passes finish)."""
    pcm = np.concatenate(parts)
    for i in range(0, len(pcm), WINDOW):
        rig.conversation.feed_audio(pcm[i : i + WINDOW])
        for _ in range(3):
            await asyncio.sleep(0)


async def test_the_llm_evaluates_the_next_prompt_ahead() -> None:
    rig = Rig(partial_every_s=0.5)
    # a new conversation: the persona and the start of the user's turn
    [(first, key)] = rig.llm.warmed
    assert key == "session-1"
    assert first == [ChatMessage("system", "Be brief."), ChatMessage("user", "")]

    rig.stt.text = "what is two plus"
    await _say(rig, speech(1.2))
    # the user's words so far, without the last one that may be cut off
    assert rig.llm.warmed[-1][0][-1] == ChatMessage("user", "what is two")

    rig.stt.text = "what is two plus two"
    await _say(rig, silence(0.5))
    await asyncio.sleep(0)
    while_replying = len(rig.llm.warmed)
    await answered(rig, 1)
    asked = rig.llm.requests[-1]
    # nothing while the reply was prepared and played; then the history as the LLM will
    # see it next, with the next user turn started
    assert len(rig.llm.warmed) == while_replying + 1
    after, _ = rig.llm.warmed[-1]
    assert after[: len(asked)] == asked
    assert after[len(asked) :] == [
        ChatMessage("assistant", "Two plus two is four."),
        ChatMessage("user", ""),
    ]
    await rig.conversation.close()


async def test_no_partial_pass_while_the_machine_has_no_cpu_to_spare() -> None:
    stt = FakeStt("What is the capital")
    spare = [False]
    f = Feeder(stt, partial_every_s=0.5, spare_cpu=lambda: spare[0])
    await f.feed(speech(1.2))
    assert stt.partials == 0  # busy: the passes are skipped, not queued
    spare[0] = True
    await f.feed(speech(0.6))
    assert stt.partials == 1 and len(partials(f)) == 1
    f.listener.close()
