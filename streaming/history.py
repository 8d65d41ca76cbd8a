"""What the conversation remembers: the chat history the LLM sees and the last turns,
and how a finished turn is recorded (with what was heard of it) and stored."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from models.types import ChatMessage
from streaming.events import assistant_text_event, turn_metrics_event
from streaming.speaker import Heard
from streaming.turn_record import TurnHook, TurnRecord

log = logging.getLogger(__name__)

PERSIST_TIMEOUT_S = 5.0
"""How long a finished turn waits for ``on_turn_complete``'s write before it is announced."""


class History:
    """The chat history (alternating user and assistant, only what was heard) and the
    records of the last turns (trimmed in place: the lists stay the same objects).

    The records keep the last ``max_messages``. The history, once it grows past
    ``max_messages``, loses its oldest half at once rather than a turn at a time: the
    LLM keeps the evaluated prompt of a conversation only as long as its start does
    not change, so a sliding window would make it evaluate the whole history again at
    every turn (seconds on a CPU); this way it does so once every ``max_messages / 4``
    turns, and the conversation's warm-up after the turn does it before the next
    question.
    """

    def __init__(self, max_messages: int) -> None:
        self.max_messages = max_messages
        self.messages: list[ChatMessage] = []
        self.turns: list[TurnRecord] = []

    def ask(self, text: str) -> None:
        """The user's side of a turn that is being answered."""
        self.messages.append(ChatMessage("user", text))

    def close(self, record: TurnRecord, heard: Heard) -> list[dict[str, Any]] | None:
        """A finished turn and what was heard of it: keep that in the history (a skipped
        turn drops its question, so that the history keeps alternating).

        Returns the events that announce the turn, or None when there was no turn to
        record (nothing was understood).
        """
        if not record.error:
            record.spoken_text = heard.text
        if record.interrupted:
            record.spoken_s = heard.seconds
            record.cut_at = record.cut_at or record.completed_at
        if not record.user_text:
            return None
        if record.error:
            last = self.messages[-1] if self.messages else None
            if last is not None and last.role == "user" and last.content == record.user_text:
                self.messages.pop()
        elif record.spoken_text:
            self.messages.append(ChatMessage("assistant", record.spoken_text))
        self._trim()
        self.turns.append(record)
        del self.turns[: -self.max_messages]
        if record.error:
            return []
        events = [turn_metrics_event(record.turn_id, record.metrics)]
        if record.reply_text or record.interrupted:
            final = assistant_text_event(
                record.spoken_text, record.turn_id, final=True, interrupted=record.interrupted
            )
            events.insert(0, final)
        return events

    def _trim(self) -> None:
        """Past ``max_messages``, drop the oldest messages down to half of it, so that
        the history still starts with a user message."""
        if len(self.messages) <= self.max_messages:
            return
        cut = len(self.messages) - self.max_messages // 2
        while cut < len(self.messages) and self.messages[cut].role != "user":
            cut += 1
        del self.messages[:cut]


async def persist(hook: TurnHook | None, record: TurnRecord) -> None:
    """Run the turn hook and wait (bounded) for the write it returns, so that a turn the
    client has seen completed is already stored."""
    if hook is None:
        return
    try:
        pending = hook(record)
        if pending is not None:
            await asyncio.wait_for(asyncio.shield(pending), PERSIST_TIMEOUT_S)
    except asyncio.TimeoutError:
        log.warning("turn %d: storing it took over %.0f s", record.turn_id, PERSIST_TIMEOUT_S)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("turn %d: the turn hook failed", record.turn_id)
