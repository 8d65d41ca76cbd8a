"""What the conversation remembers: the chat history the LLM sees and the last turns."""

from __future__ import annotations

import asyncio
import logging

from models.types import ChatMessage
from streaming.turn_record import TurnHook, TurnRecord

log = logging.getLogger(__name__)

PERSIST_TIMEOUT_S = 5.0
"""How long a finished turn waits for ``on_turn_complete``'s write before it is announced."""


class History:
    """The chat history (alternating user and assistant, only what was heard) and the
    records of the last turns, both kept to ``max_messages``."""

    def __init__(self, max_messages: int) -> None:
        self.max_messages = max_messages
        self.messages: list[ChatMessage] = []
        self.turns: list[TurnRecord] = []

    def ask(self, text: str) -> None:
        """The user's side of a turn that is being answered."""
        self.messages.append(ChatMessage("user", text))

    def close(self, record: TurnRecord) -> None:
        """A finished turn: keep what the user heard of the reply, or, when the turn was
        skipped, drop its question so that the history keeps alternating."""
        if record.error:
            last = self.messages[-1] if self.messages else None
            if last is not None and last.role == "user" and last.content == record.user_text:
                self.messages.pop()
        elif record.spoken_text:
            self.messages.append(ChatMessage("assistant", record.spoken_text))
        del self.messages[: max(0, len(self.messages) - self.max_messages)]
        self.turns.append(record)
        del self.turns[: -self.max_messages]


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
