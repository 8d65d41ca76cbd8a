"""How the conversation benchmark reads a call: which reply sound answers a question,
and what counts as a false cut-in (pure logic on recorded events, no models)."""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.conversation import Answer, Question, answered, rest_ms, score, stage_lines

Q = Question("Could you tell me | what bees make?", "en-us:160:50", np.zeros(0, np.float32), 2.0)
START, END = 10.0, 12.0


def _ev(t: float, **e: Any) -> tuple[float, dict[str, Any]]:
    return (t, e)


def test_the_reply_is_the_first_loud_sound_after_its_turn_began() -> None:
    """A previous reply's tail arriving after the end of speech is not the answer."""
    events = [
        _ev(12.5, type="state", state="thinking"),
        _ev(13.0, type="user_transcript", text="Could you tell me what bees make?", turn_id=4),
        _ev(13.4, type="assistant_text", text="Honey.", turn_id=4, final=False),
        _ev(15.0, type="turn_metrics", turn_id=4, stt_ms=500.0),
    ]
    loud = [12.1, 12.2, 13.6, 13.7]  # 12.1-12.2: the previous reply's tail
    answer = score(Q, events, loud, START, END)
    assert not answer.cut_in
    assert answer.v2v_s is not None and abs(answer.v2v_s - 1.6) < 1e-9
    assert answer.metrics == {"stt_ms": 500.0}


def test_a_turn_started_in_the_pause_is_a_false_cut_in() -> None:
    events = [
        _ev(11.2, type="state", state="thinking"),  # during the pause, before the end
        _ev(11.4, type="state", state="listening"),
        _ev(13.0, type="user_transcript", text="what bees make", turn_id=2),
    ]
    assert score(Q, events, [], START, END).cut_in


def test_a_question_heard_as_two_turns_is_a_false_cut_in() -> None:
    events = [
        _ev(12.3, type="user_transcript", text="Could you tell me", turn_id=1),
        _ev(12.9, type="user_transcript", text="what bees make", turn_id=2),
    ]
    answer = score(Q, events, [], START, END)
    assert "2 turns" in answer.cut_in
    assert answer.transcripts == ["Could you tell me", "what bees make"]


def test_sound_during_the_question_is_a_false_cut_in() -> None:
    assert score(Q, [], [11.5], START, END).cut_in


def test_answered_waits_for_the_last_turns_metrics_and_quiet() -> None:
    events = [
        _ev(12.5, type="user_transcript", text="x", turn_id=1),
        _ev(14.0, type="state", state="speaking"),
        _ev(16.0, type="turn_metrics", turn_id=1),
        _ev(16.0, type="state", state="listening"),
    ]
    assert not answered(events[:2], 20.0, END)
    assert not answered(events, 16.5, END)  # not quiet long enough yet
    assert answered(events, 18.0, END)


def test_rest_is_what_the_stages_leave_of_voice_to_voice() -> None:
    metrics = {
        "voice_to_voice_ms": 2000.0,
        "stt_ms": 600.0,
        "llm_first_token_ms": 300.0,
        "llm_first_clause_ms": 700.0,
        "tts_first_chunk_ms": 100.0,
    }
    assert rest_ms(metrics) == 600.0  # the first token is inside the first clause
    assert rest_ms({"voice_to_voice_ms": 2000.0, "stt_ms": 600.0}) is None


def test_every_metric_the_server_sends_is_printed_flags_as_shares() -> None:
    """Keys added by other stages (12a/12b) show up without a change here."""
    answers = [
        Answer(Q, metrics={"stt_ms": 500.0, "llm_tokens": 0.0, "end_of_turn_wait_ms": 210.0}),
        Answer(Q, metrics={"stt_ms": 600.0, "llm_tokens": 9.0, "llm_speculative": 1.0}),
    ]
    lines = stage_lines(answers)
    assert lines[0].split()[0] == "end_of_turn_wait_ms"  # the stages in their order first
    speculative = next(line for line in lines if "llm_speculative" in line)
    assert "share" in speculative and "50%" in speculative
    assert "p50" in next(line for line in lines if "llm_tokens" in line)
