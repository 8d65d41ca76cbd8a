"""Turn-taking for one session: the state machine that joins the turn pipeline's parts.

The :class:`~streaming.listener.Listener` turns the user's audio into speech starts
and utterances; each utterance (or typed message) starts a turn: transcribe, ask the
:class:`~streaming.responder.Responder` for a reply, and hand its speech to the
:class:`~streaming.speaker.Speaker`. Speech from the user while the avatar talks is a
barge-in: the speaker cuts the audio and the mouth at once, the turn is cancelled
(which stops the LLM and TTS), and the history keeps only what was heard.

Exactly one turn owns the state (listening, thinking, speaking) at a time: every state
change names its turn, and a turn that has been replaced (cancelled by a barge-in, a
typed message or a goodbye) can no longer change it, nor cut the speech of the next.

When the user pauses, the reply to the listener's guess of their words starts at once
(:class:`~streaming.speculation.Speculation`); the turn adopts it if it ends on that
guess with the same question, and it is dropped unheard otherwise. Before that, the
LLM is given the next prompt as far as it is known, to evaluate while nothing waits for
it: the history and an empty user turn as soon as a turn has finished, the user's words
so far while they speak (:class:`~streaming.listener.UserSpeaking`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from avatar.state import Mode
from models.errors import EngineError, InvalidAudioError
from models.llm import build_messages, conversation_head
from models.types import ChatMessage, FloatAudio, Speech
from streaming.events import (
    assistant_text_event,
    error_event,
    state_event,
    user_transcript_event,
)
from streaming.history import History, persist
from streaming.listener import Listener, UserPaused, UserSpeaking, Utterance
from streaming.responder import Reply, Responder
from streaming.speaker import Speaker
from streaming.speculation import Speculation
from streaming.turn_record import TurnHook, TurnRecord

log = logging.getLogger(__name__)

Emit = Callable[[dict[str, Any]], None]
LISTENER = 0
"""The owner of the state while no turn is running."""
CONTEXT_MESSAGES = 4
"""The last messages of the history given to the listener as the recognizer's prompt
(it keeps their tail, ``stt.prompt_chars``)."""


class Expression(Protocol):
    """Where the conversation's mode shows (the world model)."""

    def set_mode(self, mode: Mode) -> None:
        """Blend the avatar's behaviour towards ``mode``."""
        ...

    def backchannel(self) -> None:
        """Nod (the user paused)."""
        ...


@dataclass
class ConversationOptions:
    """Per-session choices (from the session request)."""

    system_prompt: str
    examples: list[ChatMessage] = field(default_factory=list)
    """Few-shot exchanges put between the system prompt and the history (never stored)."""
    language: str | None = None
    max_history_messages: int = 20

    def messages(self, history: list[ChatMessage], text: str) -> list[ChatMessage]:
        """What the LLM is asked: the persona, the examples, the history, the user's text."""
        return build_messages(self.system_prompt, [*self.examples, *history], text)

    def upcoming(self, history: list[ChatMessage], words: str = "") -> list[ChatMessage]:
        """The next prompt as far as it is known: :meth:`messages` with the user's words
        so far (none yet: an empty user message) in place of their finished text."""
        head = conversation_head(self.system_prompt, [*self.examples, *history])
        return [*head, ChatMessage("user", words.strip())]


class Conversation:
    """The conversation loop of one session."""

    def __init__(
        self,
        listener: Listener,
        responder: Responder,
        speaker: Speaker,
        expression: Expression,
        emit: Emit,
        options: ConversationOptions,
        *,
        on_turn_complete: TurnHook | None = None,
        now: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._listener, self._responder, self._speaker = listener, responder, speaker
        self._expression, self._emit, self._options = expression, emit, options
        self._on_turn_complete, self._now, self._wall = on_turn_complete, now, wall
        self._history = History(options.max_history_messages)
        self.history: list[ChatMessage] = self._history.messages  # what the LLM sees
        self.turns: list[TurnRecord] = self._history.turns  # the last turns' records
        self._turn: tuple[TurnRecord, asyncio.Task[None]] | None = None
        self._speculation: Speculation | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._turn_counter, self._owner, self._state, self._closed = 0, LISTENER, "", False
        self._set_state(Mode.LISTENING, LISTENER)
        self._warm()

    @property
    def state(self) -> str:
        """The avatar's conversation state: listening, thinking or speaking."""
        return self._state

    @property
    def replying(self) -> bool:
        """Whether a reply is being prepared or played."""
        return (self._turn is not None and not self._turn[1].done()) or self._speaker.playing

    def feed_audio(self, pcm: FloatAudio) -> None:
        """Inbound user audio (16 kHz mono float32), in arrival order."""
        for event in [] if self._closed else self._listener.feed(pcm):
            if isinstance(event, Utterance):
                self._start_turn(event.end_of_user, utterance=event)
            elif isinstance(event, UserPaused):
                self._expression.backchannel()
                self._speculate(event)
            elif isinstance(event, UserSpeaking):
                self._warm(event.settled())
            else:  # the user started speaking: a barge-in if the avatar is replying
                if self.replying:
                    log.info("barge-in: the user started speaking during the reply")
                self.interrupt()
        spec = self._speculation
        if spec is not None and spec.guess is not self._listener.guess:
            self._discard_speculation()  # the user went on after their pause

    def submit_text(self, text: str) -> None:
        """The user typed a message: answer it like speech."""
        if not self._closed:
            self._start_turn(self._now(), text=text)

    def interrupt(self) -> None:
        """Stop the current reply now (barge-in or an explicit interrupt) and listen."""
        self._discard_speculation()
        self._stop_turn()
        self._set_state(Mode.LISTENING, LISTENER)

    async def say(self, text: str) -> None:
        """Speak one line outside any turn (a goodbye) and return once it has played."""
        if self._closed:
            return
        turn_id = self._take_floor()
        try:
            async with contextlib.aclosing(self._responder.speak(text)) as chunks:  # type: ignore[type-var]
                async for speech in chunks:
                    await self._play(turn_id, speech)
            self._emit(assistant_text_event(text, turn_id, final=True))
            await self._speaker.played_out()
        finally:
            self._speaker.heard(turn_id)
            if self._owner == turn_id:
                self._owner = LISTENER

    async def close(self) -> None:
        """Stop the current turn, then cancel and await every task of this conversation."""
        self._closed = True
        self._stop_turn()
        self._listener.close()
        spec, self._speculation = self._speculation, None
        if spec is not None:
            await spec.drop()
        while self._tasks:  # a turn cancelled here may still start dropping its speculation
            tasks = list(self._tasks)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self._speaker.clear()
        self._responder.forget()

    def _warm(self, words: str = "") -> None:
        """Let the LLM evaluate the next prompt as far as it is known (the user's words
        so far), unless a reply is on its way: the history is about to change."""
        if not self._closed and not self.replying:
            self._responder.warm(self._options.upcoming(self.history, words))

    def _set_state(self, mode: Mode, owner: int) -> None:
        """Change the state on behalf of ``owner``; a stale owner changes nothing."""
        if owner != self._owner:
            return
        self._expression.set_mode(mode)
        if mode.value != self._state:
            self._state = mode.value
            self._emit(state_event(mode.value))

    def _stop_turn(self) -> None:
        """Cut the speech now and cancel the running turn; nobody owns the state."""
        self._owner = LISTENER
        self._speaker.cut()
        current, self._turn = self._turn, None
        if current is not None and not current[1].done():
            current[0].cut_at = self._wall()
            current[1].cancel()

    def _take_floor(self) -> int:
        """Stop the current turn and make a new one the owner of state and speech."""
        self._stop_turn()
        self._turn_counter += 1
        self._owner = self._turn_counter
        self._speaker.give_floor(self._turn_counter)
        return self._turn_counter

    def _speculate(self, paused: UserPaused) -> None:
        """Start the reply to the user's words so far (replacing an older guess's)."""
        if self._closed or paused.guess is None:
            return
        self._discard_speculation()
        self._speculation = Speculation(paused.guess, self._speculative_reply)

    def _speculative_reply(self, text: str) -> Reply:
        return self._responder.reply(self._options.messages(self.history, text), speculative=True)

    def _discard_speculation(self, spec: Speculation | None = None) -> None:
        """Drop ``spec`` (default: the pending speculation) in the background."""
        if spec is None:
            spec, self._speculation = self._speculation, None
        if spec is not None:
            task = asyncio.get_running_loop().create_task(spec.drop(), name="drop-speculation")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _start_turn(
        self, end_of_user: float, *, utterance: Utterance | None = None, text: str = ""
    ) -> None:
        spec, self._speculation = self._speculation, None
        if spec is not None and (utterance is None or utterance.guess is not spec.guess):
            self._discard_speculation(spec)  # the user went on, or typed instead
            spec = None
        record = TurnRecord(turn_id=self._take_floor(), user_text=text)
        task = asyncio.get_running_loop().create_task(
            self._run_turn(record, end_of_user, utterance, spec), name=f"turn-{record.turn_id}"
        )
        self._turn = (record, task)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if utterance is not None:  # even a turn cancelled before it ran drops its guess
            task.add_done_callback(lambda _: utterance.drop_guess())

    async def _play(self, turn_id: int, speech: Speech) -> float | None:
        starts_in = await self._speaker.play(turn_id, speech)
        if starts_in is not None:
            self._set_state(Mode.SPEAKING, turn_id)
        return starts_in

    async def _run_turn(
        self,
        record: TurnRecord,
        end_of_user: float,
        utterance: Utterance | None,
        spec: Speculation | None = None,
    ) -> None:
        turn_id, metrics = record.turn_id, record.metrics
        try:
            self._set_state(Mode.THINKING, turn_id)
            if utterance is not None:
                try:
                    record.user_text = await self._listener.hear(utterance, metrics)
                except InvalidAudioError as exc:
                    log.info("utterance skipped: %s", exc)
                    return
                log.info("turn %d: heard %r", turn_id, record.user_text)
                if not record.user_text:
                    return
            self._emit(user_transcript_event(record.user_text, turn_id))
            messages = self._options.messages(self.history, record.user_text)
            reply = None
            if spec is not None and utterance is not None:
                reply = await spec.take(utterance.guess, messages)
            if reply is not None:
                metrics["llm_speculative"] = 1.0
                metrics["llm_head_start_ms"] = (self._now() - reply.started) * 1000
            self._history.ask(record.user_text)
            await self._reply(record, reply or self._responder.reply(messages), end_of_user)
            await self._speaker.played_out()  # the turn is done once its last clause played
        except asyncio.CancelledError:
            record.interrupted = True
            raise
        except EngineError as exc:
            log.warning("turn %d skipped: %s", turn_id, exc)
            self._skip(record, str(exc))
        except Exception:
            log.exception("turn %d failed unexpectedly", turn_id)
            self._skip(record, "the avatar could not answer this turn")
        finally:
            if spec is not None:  # not adopted (adopted: nothing left to drop)
                await spec.drop()
            await self._finish_turn(record)

    async def _reply(self, record: TurnRecord, reply: Reply, end_of_user: float) -> None:
        """Stream the reply's text to the client and its speech to the speaker."""
        try:
            async for item in reply:
                if isinstance(item, Speech):
                    starts_in = await self._play(record.turn_id, item)
                    if starts_in is not None and "voice_to_voice_ms" not in record.metrics:
                        v2v = self._now() + starts_in - end_of_user
                        record.metrics["voice_to_voice_ms"] = v2v * 1000
                else:
                    self._emit(assistant_text_event(item.text, record.turn_id, final=False))
        finally:
            await reply.aclose()
            record.reply_text = reply.text
            record.metrics.update(reply.metrics)

    def _skip(self, record: TurnRecord, reason: str) -> None:
        """A stage failed: stop any partial reply and tell the client the turn is skipped."""
        if self._owner == record.turn_id:
            self._speaker.cut()
        record.error = reason or "turn failed"
        self._emit(error_event("turn_skipped", f"this turn was skipped: {record.error}"))

    async def _finish_turn(self, record: TurnRecord) -> None:
        record.completed_at = self._wall()
        announce = self._history.close(record, self._speaker.heard(record.turn_id))
        if announce is not None:
            await persist(self._on_turn_complete, record)
            for event in announce:
                self._emit(event)
        # what was said (and heard) last helps the recognizer with the next utterance
        self._listener.set_context(" ".join(m.content for m in self.history[-CONTEXT_MESSAGES:]))
        if not self._closed:
            self._set_state(Mode.LISTENING, record.turn_id)
        if self._owner == record.turn_id:  # no other turn started: the history is final
            self._owner = LISTENER
            if not self._closed:
                self._responder.warm(self._options.upcoming(self.history))
