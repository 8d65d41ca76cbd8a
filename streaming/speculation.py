"""A reply started on a guess of the user's words, before the end of their turn is certain.

When the user pauses, the listener starts transcribing what they said so far (the
*guess*). A :class:`Speculation` starts the reply to that guess as soon as it resolves
— the LLM and the first clause's speech — but nothing of it is played: if the turn
then ends on the same guess with the same question, the turn adopts the running reply
(:meth:`Speculation.take`); otherwise (the user went on, barged in, typed) it is
dropped and its words are never heard nor remembered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from models.errors import EngineError
from models.types import ChatMessage, Transcript
from streaming.responder import Reply

log = logging.getLogger(__name__)

StartReply = Callable[[str], Reply]
"""Starts the (speculative) reply to the user's text, with the history as it is now."""


class Speculation:
    """The reply to one guess, started as soon as the guess resolves, played only if adopted."""

    def __init__(self, guess: asyncio.Task[Transcript], start: StartReply) -> None:
        self.guess = guess
        self._start = start
        self._reply: Reply | None = None
        self._task = asyncio.get_running_loop().create_task(self._run(), name="speculative-reply")

    async def _run(self) -> None:
        try:
            transcript = await self.guess
        except EngineError as exc:  # the turn hears the same failure and skips
            log.info("no speculative reply: %s", exc)
            return
        text = transcript.text.strip()
        if text:
            self._reply = self._start(text)

    async def take(
        self, guess: asyncio.Task[Transcript] | None, messages: list[ChatMessage]
    ) -> Reply | None:
        """The running reply, adopted, if it answers exactly ``messages`` on ``guess``;
        None otherwise (then :meth:`drop` it)."""
        if guess is not self.guess:
            return None
        await asyncio.wait({self._task})
        reply = self._reply
        if reply is None or reply.messages != messages:
            return None
        self._reply = None  # the turn owns it now
        reply.adopt()
        return reply

    async def drop(self) -> None:
        """Stop the speculative reply (if not adopted) and wait until it has stopped."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        reply, self._reply = self._reply, None
        if reply is not None:
            await reply.aclose()
