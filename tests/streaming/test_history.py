"""The history the LLM sees: what was heard, and trimmed so that its start rarely
changes (the LLM keeps a conversation's evaluated prompt only while it does)."""

from __future__ import annotations

from itertools import pairwise

from models.types import ChatMessage
from streaming.history import History
from streaming.speaker import Heard
from streaming.turn_record import TurnRecord


def _turn(history: History, n: int) -> None:
    history.ask(f"question {n}")
    record = TurnRecord(turn_id=n, user_text=f"question {n}", reply_text=f"answer {n}")
    history.close(record, Heard(f"answer {n}", 1.0))


def test_the_history_loses_its_oldest_half_at_once_and_keeps_alternating() -> None:
    history = History(max_messages=8)
    firsts: list[str] = []
    for n in range(1, 21):
        _turn(history, n)
        assert len(history.messages) <= 8
        assert history.messages[0].role == "user"
        assert [m.role for m in history.messages] == ["user", "assistant"] * (
            len(history.messages) // 2
        )
        assert history.messages[-1] == ChatMessage("assistant", f"answer {n}")
        firsts.append(history.messages[0].content)
    # the start changed once every max/4 turns, never at two turns in a row
    changes = [n for n in range(1, 20) if firsts[n] != firsts[n - 1]]
    assert changes and all(b - a >= 2 for a, b in pairwise(changes))
    assert len(changes) <= 20 // 2
    # never fewer than half of what is allowed is kept once it was full
    assert len(history.messages) >= 4
    assert len(history.turns) == 8  # the records: the last max_messages turns
