"""The turn pipeline without models: fake VAD/STT/LLM/TTS and a clock the test moves.

Listener, Responder, Speaker and Conversation (streaming/listener.py, responder.py,
speaker.py, conversation.py) with the fakes of tests/streaming/fakes.py: barge-in,
speculation, the state race of a replaced turn, fallbacks and skipped turns.
"""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from avatar.config import AvatarConfig
from avatar.motion import WorldModel
from avatar.state import Mode
from models.stt.serial import SerialRunner
from models.types import PhonemeSpan, Speech
from models.vad import VAD_SAMPLE_RATE
from streaming.listener import Listener, SpeechStarted, Utterance
from streaming.playout import AudioPlayout
from streaming.speaker import Speaker
from streaming.tracks import VIDEO_STEPS_AHEAD, speech_lead_s
from streaming.turn_end import WordEndPolicy
from tests.streaming.fakes import (
    FAKE_END_OF_TURN,
    FALLBACK,
    TTS_RATE,
    FakeClock,
    FakeStt,
    FakeVad,
    Rig,
    advance,
    answered,
    silence,
    speech,
    until,
)

pytestmark = pytest.mark.timeout(30)

END_OF_TURN = silence(0.5)  # more than FakeVad's 400 ms of silence


# --- one turn --------------------------------------------------------------------


async def test_a_voice_turn_is_heard_answered_and_remembered() -> None:
    rig = Rig()
    rig.say(silence(0.2), speech(1.0), END_OF_TURN)
    await answered(rig, 1)
    assert rig.states() == ["listening", "thinking", "speaking", "listening"]
    assert [e["text"] for e in rig.of("user_transcript")] == ["what is two plus two"]
    final = [e for e in rig.of("assistant_text") if e["final"]]
    assert final == [
        {
            "type": "assistant_text",
            "text": "Two plus two is four.",
            "turn_id": 1,
            "final": True,
            "interrupted": False,
        }
    ]
    assert [(m.role, m.content) for m in rig.conversation.history] == [
        ("user", "what is two plus two"),
        ("assistant", "Two plus two is four."),
    ]
    metrics = rig.of("turn_metrics")[0]
    for key in ("stt_ms", "llm_first_token_ms", "tts_first_chunk_ms", "voice_to_voice_ms"):
        assert key in metrics
    # The user stopped 0.5 s of silence before the end was certain; the reply starts one
    # speech lead after it was scheduled, with the fake clock standing still meanwhile.
    assert metrics["voice_to_voice_ms"] == pytest.approx(
        (rig.lead_s("Two plus two is four.") + 19 * 0.02) * 1000, abs=25
    )
    await rig.conversation.close()


async def test_a_typed_message_is_answered_like_speech() -> None:
    rig = Rig()
    rig.conversation.submit_text("hello")
    await answered(rig, 1)
    assert rig.llm.requests[0][-1].content == "hello"
    assert rig.tts.texts == ["Two plus two is four."]
    await rig.conversation.close()


# --- the state race: a replaced turn cannot change the state --------------------------


async def test_a_typed_message_during_a_reply_keeps_its_state_while_the_old_turn_is_stored() -> (
    None
):
    rig = Rig()
    stored: list[asyncio.Future[None]] = []

    def slow_store(record: object) -> asyncio.Future[None]:
        stored.append(asyncio.get_running_loop().create_future())
        return stored[-1]

    rig.hook = slow_store
    rig.llm.paced = True
    rig.conversation.submit_text("tell me a story")
    rig.llm.release(2)
    await until(lambda: rig.conversation.state == "speaking", "turn 1 speaks")
    rig.conversation.submit_text("actually, what time is it")  # turn 2 replaces turn 1
    await until(lambda: len(stored) == 1, "turn 1 is being stored")
    assert rig.conversation.state == "thinking"  # turn 2 waits for its first token
    stored[0].set_result(None)  # turn 1's write lands while turn 2 thinks
    await until(lambda: any(e.get("interrupted") for e in rig.of("assistant_text")), "turn 1 done")
    await asyncio.sleep(0.01)
    assert rig.conversation.state == "thinking", "the replaced turn set the state"
    assert rig.states()[-1] == "thinking"
    rig.llm.release(2)
    await until(lambda: rig.conversation.state == "speaking", "turn 2 speaks")
    await until(lambda: len(stored) == 2 or advance(rig), "turn 2 played out")
    stored[1].set_result(None)
    await until(lambda: rig.conversation.state == "listening", "listening again")
    await rig.conversation.close()


async def test_a_goodbye_during_a_reply_is_not_overwritten_by_the_replaced_turn() -> None:
    rig = Rig()
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    rig.hook = lambda record: gate
    rig.conversation.submit_text("tell me a story")
    await until(lambda: rig.conversation.state == "speaking", "turn 1 speaks")
    goodbye = asyncio.get_running_loop().create_task(rig.conversation.say("Goodbye now."))
    await until(lambda: "Goodbye now." in rig.tts.texts, "goodbye spoken")
    gate.set_result(None)
    await until(lambda: len(rig.conversation.turns) == 1, "turn 1 stored")
    await asyncio.sleep(0.01)
    assert rig.conversation.state == "speaking"
    assert "listening" not in rig.states()[2:]
    await until(lambda: goodbye.done() or advance(rig), "goodbye played")
    await rig.conversation.close()


# --- barge-in ----------------------------------------------------------------------


async def test_barge_in_mid_clause_cuts_the_reply_and_keeps_only_what_was_heard() -> None:
    rig = Rig()
    rig.llm.pieces = ["One two three four five, ", "six seven eight nine ten."]
    rig.conversation.submit_text("count to ten")
    await until(lambda: len(rig.playout._ledger.get(1, [])) == 2, "both clauses scheduled")
    lead = rig.lead_s("One two three four five,")
    rig.clock.advance(lead + 1.4)  # the first clause (1 s) and 0.4 s of the second played
    rig.say(speech(0.1))
    assert rig.conversation.state == "listening"
    await until(lambda: len(rig.conversation.turns) == 1, "the cut turn is recorded")
    record = rig.conversation.turns[0]
    assert record.interrupted
    # cut one 20 ms frame after now: 0.42 s of the 1 s second clause, two of its five words
    assert record.spoken_text == "One two three four five, six seven"
    assert record.spoken_s == pytest.approx(1.42, abs=0.01)
    assert record.reply_text == "One two three four five, six seven eight nine ten."
    assert rig.conversation.history[-1].content == "One two three four five, six seven"
    final = [e for e in rig.of("assistant_text") if e["final"]][-1]
    assert final["interrupted"] and final["text"] == record.spoken_text
    assert not rig.playout.is_playing(rig.clock.sample_now() + 2 * rig.clock.samples_per_frame)
    await rig.conversation.close()


async def test_barge_in_during_thinking_cancels_the_turn_and_its_transcription() -> None:
    rig = Rig()
    rig.stt.gate.clear()  # the recognizer is busy
    rig.say(speech(0.6), END_OF_TURN)
    await until(lambda: rig.conversation.state == "thinking", "thinking")
    rig.say(speech(0.1))  # the user goes on
    assert rig.conversation.state == "listening"
    await until(lambda: rig.stt.cancelled >= 1, "transcription cancelled")
    assert rig.llm.requests == []
    assert rig.conversation.turns == []  # nothing was said: no turn to record
    await rig.conversation.close()


async def test_an_interrupt_before_any_audio_played_leaves_no_assistant_message() -> None:
    rig = Rig()
    rig.conversation.submit_text("hello")
    await until(lambda: rig.conversation.state == "speaking", "speaking")
    rig.conversation.interrupt()  # still inside the speech lead: nothing heard
    await until(lambda: len(rig.conversation.turns) == 1, "recorded")
    assert rig.conversation.turns[0].spoken_text == ""
    assert [m.role for m in rig.conversation.history] == ["user"]
    await rig.conversation.close()


# --- speculation -------------------------------------------------------------------


async def test_speculation_confirmed_the_guess_answers_the_turn() -> None:
    rig = Rig()
    rig.say(speech(0.6), silence(0.3))  # a pause: the guess starts
    await until(lambda: rig.stt.finished == 1, "guess done")
    rig.say(silence(0.2))  # the end of turn is certain
    await answered(rig, 1)
    assert rig.stt.calls == 1
    assert rig.of("turn_metrics")[0]["stt_speculative"] == 1.0
    await rig.conversation.close()


async def test_speculation_abandoned_when_the_user_goes_on_is_cancelled_at_once() -> None:
    rig = Rig()
    rig.stt.gate.clear()
    rig.say(speech(0.6), silence(0.3))
    await until(lambda: rig.stt.calls == 1, "guess started")
    rig.say(speech(0.3))  # they go on: the guess is stale
    await until(lambda: rig.stt.cancelled == 1, "guess cancelled")
    rig.stt.gate.set()
    rig.say(END_OF_TURN)
    await answered(rig, 1)
    # a second guess, of the whole utterance, answered the turn
    assert rig.stt.calls == 2 and rig.stt.finished == 1
    assert rig.stt.seconds[1] > rig.stt.seconds[0] + 0.3
    await rig.conversation.close()


async def test_speculation_overtaken_by_the_end_of_turn_is_awaited_not_repeated() -> None:
    rig = Rig()
    rig.stt.gate.clear()
    rig.say(speech(0.6), END_OF_TURN)  # the guess is still running at the end of turn
    await until(lambda: rig.conversation.state == "thinking", "thinking")
    rig.stt.gate.set()
    await answered(rig, 1)
    assert rig.stt.calls == 1 and rig.stt.cancelled == 0
    await rig.conversation.close()


async def test_speculation_overtaken_by_a_typed_message_is_cancelled() -> None:
    rig = Rig()
    rig.stt.gate.clear()
    rig.say(speech(0.6), END_OF_TURN)
    await until(lambda: rig.conversation.state == "thinking", "thinking")
    rig.conversation.submit_text("never mind")
    await until(lambda: rig.stt.cancelled == 1, "guess cancelled")
    await answered(rig, 2)
    assert rig.conversation.history[0].content == "never mind"
    await rig.conversation.close()


def test_a_queued_transcription_whose_caller_left_never_runs() -> None:
    runner = SerialRunner()
    busy, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def hold() -> None:
        busy.set()
        release.wait(10)

    async def main() -> None:
        holder = asyncio.get_running_loop().run_in_executor(None, runner.call, hold)
        await asyncio.to_thread(busy.wait, 10)
        stale = asyncio.get_running_loop().create_task(runner.acall(lambda: ran.append("x")))
        await asyncio.sleep(0.05)  # queued behind the holder
        stale.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stale  # the caller has gone before the holder lets go
        release.set()
        await holder
        assert await runner.acall(lambda: "next") == "next"

    asyncio.run(main())
    assert ran == []
    assert runner.dropped == 1


# --- the listener ------------------------------------------------------------------


async def test_an_utterance_is_cut_at_the_cap_and_keeps_its_preroll() -> None:
    listener = Listener(
        FakeVad(),
        FakeStt(),
        max_utterance_s=1.0,
        policy=WordEndPolicy(FAKE_END_OF_TURN),
        now=lambda: 5.0,
    )
    events = []
    pcm = np.concatenate([silence(0.5), speech(2.0)])
    for i in range(0, len(pcm), 320):
        events.extend(listener.feed(pcm[i : i + 320]))
    utterances = [e for e in events if isinstance(e, Utterance)]
    assert isinstance(events[0], SpeechStarted)
    # 2 s of speech with a 1 s cap: cut at the cap, and what follows is a new utterance
    assert len(utterances) == 2
    assert len(utterances[0].pcm) == VAD_SAMPLE_RATE  # exactly the cap, never over it
    assert utterances[0].pcm[0] == 0.0  # starts with the pre-roll's silence
    assert len(utterances[1].pcm) <= VAD_SAMPLE_RATE
    listener.close()


async def test_a_pause_of_the_user_is_reported_once_and_makes_the_listener_nod() -> None:
    listener = Listener(
        FakeVad(),
        FakeStt(),
        max_utterance_s=30.0,
        policy=WordEndPolicy(FAKE_END_OF_TURN),
        now=lambda: 5.0,
    )
    events = []
    pcm = np.concatenate([speech(0.6), silence(0.3), speech(0.4), silence(0.3)])
    for i in range(0, len(pcm), 320):
        events.extend(listener.feed(pcm[i : i + 320]))
    assert [type(e).__name__ for e in events] == ["SpeechStarted", "UserPaused", "UserPaused"]
    listener.close()
    pitch = []
    for nods in (False, True):  # twins: same seed, one of them nods
        world = WorldModel(AvatarConfig(), fps=25, seed=1)
        world.set_mode(Mode.LISTENING)
        for _ in range(5):
            world.step()
        if nods:
            world.backchannel()
        pitch.append(min(world.step().head_pitch for _ in range(5)))
    assert pitch[1] < pitch[0] - 0.02  # the head dips


# --- failures ----------------------------------------------------------------------


async def test_no_first_token_in_time_speaks_the_fallback_line() -> None:
    rig = Rig(timeout_s=0.05)
    rig.llm.stall = True
    rig.conversation.submit_text("hello?")
    await answered(rig, 1)
    assert rig.tts.texts == [FALLBACK]
    assert rig.of("turn_metrics")[0]["llm_failed"] == 1.0
    assert rig.conversation.history[-1].content == FALLBACK
    assert rig.llm.closed == 1  # the stalled generation was closed
    await rig.conversation.close()


async def test_an_llm_error_mid_reply_keeps_what_was_written_without_the_fallback() -> None:
    rig = Rig()
    rig.llm.pieces = ["Two plus two is four. ", "And then", " more"]
    rig.llm.fail_at = 1
    rig.conversation.submit_text("hello?")
    await answered(rig, 1)
    assert rig.tts.texts == ["Two plus two is four."]
    assert rig.conversation.history[-1].content == "Two plus two is four."
    await rig.conversation.close()


async def test_an_llm_error_before_any_text_speaks_the_fallback_and_the_session_answers_on() -> (
    None
):
    rig = Rig()
    rig.llm.fail_at = 0
    rig.conversation.submit_text("first")
    await answered(rig, 1)
    assert rig.tts.texts == [FALLBACK]
    rig.llm.fail_at = None
    rig.conversation.submit_text("second")
    await answered(rig, 2)
    assert rig.tts.texts[-1] == "Two plus two is four."
    await rig.conversation.close()


async def test_a_tts_error_skips_the_turn_and_the_session_still_answers() -> None:
    rig = Rig()
    rig.tts.fail = "four"
    rig.conversation.submit_text("first")
    await until(lambda: rig.of("error") != [], "turn skipped")
    assert rig.of("error")[0]["code"] == "turn_skipped"
    await until(lambda: rig.conversation.state == "listening", "listening")
    assert rig.conversation.history == []  # the unanswered question is dropped
    assert rig.conversation.turns[0].error
    rig.tts.fail = ""
    rig.conversation.submit_text("second")
    await answered(rig, 2)
    assert [m.content for m in rig.conversation.history] == ["second", "Two plus two is four."]
    await rig.conversation.close()


# --- the speaker and the responder ---------------------------------------------------


async def test_a_stale_turn_cannot_schedule_speech() -> None:
    clock = FakeClock()
    playout = AudioPlayout(clock.sample_rate)
    world = WorldModel(AvatarConfig(), fps=25)
    speaker = Speaker(clock, playout, world)
    chunk = Speech(np.full(TTS_RATE, 0.1, np.float32), TTS_RATE, "hi there")
    speaker.give_floor(1)
    lead = speaker.lead_for(world.make_drive(chunk))
    assert await speaker.play(1, chunk) == pytest.approx(lead, abs=1e-3)
    speaker.cut()
    assert await speaker.play(1, chunk) is None
    speaker.give_floor(2)
    assert await speaker.play(1, chunk) is None
    assert speaker.heard(1).text == ""  # cut before any of it played


def _spans(*spans: tuple[str, float]) -> tuple[PhonemeSpan, ...]:
    out, t = [], 0.0
    for phoneme, duration in spans:
        out.append(PhonemeSpan(phoneme, t, duration))
        t += duration
    return tuple(out)


async def test_speech_from_silence_leads_by_what_its_first_mouth_shape_needs() -> None:
    """From silence a chunk starts after the video track's look-ahead plus the part of
    the lookahead its first shape uses: a TTS chunk's leading pause needs none of it,
    a chunk that opens on a bilabial all of it; no frame that shows the mouth moving
    has been stepped by then, and speech queued behind it still follows back to back."""
    clock = FakeClock()
    world = WorldModel(AvatarConfig(), fps=25)
    speaker = Speaker(clock, AudioPlayout(clock.sample_rate), world)
    speaker.give_floor(1)
    frames_lead = VIDEO_STEPS_AHEAD / 25
    pcm = np.full(int(0.5 * TTS_RATE), 0.2, np.float32)
    paused = Speech(pcm, TTS_RATE, "ah", _spans(("^", 0.12), ("a", 0.3), ("$", 0.08)))
    pressed = Speech(pcm, TTS_RATE, "pa", _spans(("p", 0.1), ("a", 0.32), ("$", 0.08)))
    for chunk, expected in ((paused, frames_lead), (pressed, speaker.lead_s)):
        drive = world.make_drive(chunk)
        starts_in = await speaker.play(1, chunk)
        assert starts_in == pytest.approx(expected, abs=1e-3)
        # the first moving target is not before the first frame still to be stepped
        assert starts_in - drive.anticipation >= frames_lead - 1e-3
        clock.advance(1.0)  # played out: the next one starts from silence again
    queued = await speaker.play(1, paused)
    behind = await speaker.play(1, pressed)
    assert queued is not None and behind == pytest.approx(queued + 0.5, abs=1e-3)


def test_the_speech_lead_covers_the_video_look_ahead_and_the_mouth_lookahead() -> None:
    assert speech_lead_s(25, 60) == pytest.approx(2 / 25 + 0.06)
    assert speech_lead_s(60, 0) == pytest.approx(2 / 60)
    assert speech_lead_s(1, 200) == pytest.approx(2.2)
    clock = FakeClock(fps=10)
    world = WorldModel(AvatarConfig(lookahead_ms=100), fps=10)
    assert Speaker(clock, AudioPlayout(48_000), world).lead_s == pytest.approx(0.3)
    with pytest.raises(ValueError, match="does not cover"):
        Speaker(clock, AudioPlayout(48_000), world, lead_s=0.12)
    with pytest.raises(ValueError):
        speech_lead_s(0, 60)


async def test_every_clause_passes_the_responders_one_shaping_step() -> None:
    rig = Rig()
    rig.responder.speakable = str.upper
    rig.llm.pieces = ["One two three four five, ", "six seven."]
    rig.conversation.submit_text("count")
    await answered(rig, 1)
    assert rig.tts.texts == ["ONE TWO THREE FOUR FIVE,", "SIX SEVEN."]
    await rig.conversation.close()


async def test_closing_mid_reply_records_the_cut_turn_and_stops_everything() -> None:
    rig = Rig()
    rig.llm.paced = True
    rig.llm.pieces = ["Once upon a time, ", "there was a fox ", "who never slept."]
    rig.conversation.submit_text("tell me a story")
    rig.llm.release(2)  # a first clause is written (and captioned); the rest is not
    await until(lambda: rig.of("assistant_text") != [], "writing")
    await rig.conversation.close()
    assert rig.conversation.turns[0].interrupted
    assert rig.llm.closed == 1
    assert not rig.playout.is_playing(0)
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
