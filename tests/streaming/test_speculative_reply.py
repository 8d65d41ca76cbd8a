"""The reply started on the listener's guess before the end of turn is certain.

Model-free (tests/streaming/fakes.py, a fake clock): when the user pauses, the reply to
the guess starts at once but plays nothing; the turn adopts it if it ends on the same
guess, and it is dropped unheard when the user goes on, barges in or types. The
history and the transcript events are exactly what they would be without speculation.
"""

from __future__ import annotations

import pytest

from tests.streaming.fakes import Rig, answered, silence, speech, until

pytestmark = pytest.mark.timeout(30)

PAUSE = silence(0.3)  # long enough for a guess (200 ms), short of the end of turn (400 ms)
REST_OF_END = silence(0.2)


def finals(rig: Rig) -> list[str]:
    return [e["text"] for e in rig.of("assistant_text") if e["final"]]


def history(rig: Rig) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in rig.conversation.history]


async def test_a_reply_started_on_the_guess_is_adopted_when_the_turn_ends_on_it() -> None:
    rig = Rig()
    rig.llm.pieces = ["Sure, two plus two is four. ", "That is easy."]
    rig.say(speech(0.6), PAUSE)
    # The reply starts during the pause, before the end of turn is certain ...
    await until(lambda: len(rig.llm.requests) == 1, "speculative reply started")
    await until(lambda: rig.llm.closed == 1, "speculative reply written")
    assert rig.conversation.state == "listening"  # ... but nothing is played yet,
    assert rig.tts.texts == ["Sure, two plus two is four."]  # only its first clause voiced
    assert not rig.of("user_transcript") and not rig.of("assistant_text")
    rig.say(REST_OF_END)
    await answered(rig, 1)
    assert len(rig.llm.requests) == 1  # adopted: asked once, answered once
    assert rig.tts.texts == ["Sure, two plus two is four.", "That is easy."]
    assert [e["text"] for e in rig.of("user_transcript")] == ["what is two plus two"]
    assert finals(rig) == ["Sure, two plus two is four. That is easy."]
    assert history(rig) == [
        ("user", "what is two plus two"),
        ("assistant", "Sure, two plus two is four. That is easy."),
    ]
    metrics = rig.of("turn_metrics")[0]
    assert metrics["llm_speculative"] == 1.0
    assert metrics["llm_head_start_ms"] >= 0.0
    # The reply was ready when the end of turn was decided: the user waited only for the
    # end-of-turn silence and the speech lead (one 20 ms chunk of slack).
    assert metrics["voice_to_voice_ms"] == pytest.approx(
        metrics["end_of_turn_wait_ms"] + rig.lead_s("Sure, two plus two is four.") * 1000, abs=25
    )
    assert rig.llm.keys == ["session-1"]
    await rig.conversation.close()
    assert rig.llm.forgotten == ["session-1"]  # the session's cached prompt is freed


async def test_a_speculative_reply_is_dropped_unheard_when_the_user_goes_on() -> None:
    rig = Rig()
    rig.llm.paced = True  # the speculative reply is still being written when they go on
    rig.say(speech(0.6), PAUSE)
    await until(lambda: len(rig.llm.requests) == 1, "speculative reply started")
    rig.llm.release()
    rig.stt.text = "what is two plus two and three"
    rig.say(speech(0.4))  # they go on: the guess and its reply are stale
    await until(lambda: rig.llm.closed == 1, "speculative generation stopped")
    assert rig.conversation.state == "listening"
    rig.llm.paced = False
    rig.llm.release(10)
    rig.say(PAUSE, REST_OF_END)
    await answered(rig, 1)
    assert len(rig.llm.requests) == 2
    assert rig.llm.requests[1][-1].content == "what is two plus two and three"
    assert [e["text"] for e in rig.of("user_transcript")] == ["what is two plus two and three"]
    assert finals(rig) == ["Two plus two is four."]  # one reply, the second one
    assert history(rig) == [
        ("user", "what is two plus two and three"),
        ("assistant", "Two plus two is four."),
    ]
    assert rig.of("turn_metrics")[0]["llm_speculative"] == 1.0  # the new pause's reply
    await rig.conversation.close()


async def test_a_speculative_reply_is_dropped_when_the_user_types_instead() -> None:
    rig = Rig()
    rig.llm.paced = True
    rig.say(speech(0.6), PAUSE)
    await until(lambda: len(rig.llm.requests) == 1, "speculative reply started")
    rig.conversation.submit_text("never mind")
    await until(lambda: rig.llm.closed == 1, "speculative generation stopped")
    rig.llm.paced = False
    rig.llm.release(10)
    await answered(rig, 1)
    assert len(rig.llm.requests) == 2
    assert [e["text"] for e in rig.of("user_transcript")] == ["never mind"]
    assert finals(rig) == ["Two plus two is four."]
    assert history(rig) == [("user", "never mind"), ("assistant", "Two plus two is four.")]
    assert "llm_speculative" not in rig.of("turn_metrics")[0]
    await rig.conversation.close()


async def test_a_barge_in_during_the_pause_drops_the_speculation_and_the_old_reply() -> None:
    rig = Rig()
    rig.say(speech(0.6), PAUSE, REST_OF_END)
    await answered(rig, 1)  # a first exchange (itself answered speculatively)
    rig.llm.paced = True
    rig.say(speech(0.6), PAUSE)
    await until(lambda: len(rig.llm.requests) == 2, "second speculative reply started")
    # The second question's speculation sees the first exchange in its history.
    assert [m.content for m in rig.llm.requests[1][-3:]] == [
        "what is two plus two",
        "Two plus two is four.",
        "what is two plus two",
    ]
    rig.say(speech(0.3))  # the user goes on
    await until(lambda: rig.llm.closed == 2, "dropped")
    assert len(finals(rig)) == 1
    assert len(history(rig)) == 2  # nothing of the dropped reply is remembered
    await rig.conversation.close()


async def test_a_guess_that_hears_nothing_starts_no_reply() -> None:
    rig = Rig()
    rig.stt.text = "  "
    rig.say(speech(0.6), PAUSE)
    await until(lambda: rig.stt.finished == 1, "guess done")
    rig.say(REST_OF_END)
    await until(lambda: rig.conversation.state == "listening" and not rig.conversation.replying)
    assert rig.llm.requests == []
    assert not rig.of("user_transcript")
    await rig.conversation.close()
