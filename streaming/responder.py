"""The responder: chat messages in, the reply's text pieces and speech out.

The LLM streams text pieces; a clause splitter cuts them into clauses and the
spoken-text shaping (:class:`~models.tts.spoken.SpokenClauses`: no list numbers,
markdown, code, emoji or URLs; numbers, units and abbreviations in words) makes them
speakable; each clause is synthesized while the LLM goes on writing the next (two tasks
joined by a queue, as pipecat's processors or livekit/agents' streams). A
:class:`Reply` yields a :class:`TextPiece` per spoken clause (the captions show what is
said) and :class:`~models.types.Speech` chunks as the TTS speaks them; closing it stops
both. When the LLM fails or sends no
first token in time, the reply is the configured fallback line instead (if nothing
was written yet); a TTS error ends the reply with that error.

A *speculative* reply (started on a guess of the user's words before the end of their
turn was certain) synthesizes only its first clause until :meth:`Reply.adopt`; a
speculation that is dropped is closed without a word having been played.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from models.errors import BackendUnavailableError, LLMError
from models.tts import ClauseSplitter
from models.tts.spoken import SpokenClauses, speakable
from models.types import ChatMessage, GenerationStats, Speech

log = logging.getLogger(__name__)

FIRST_CLAUSE_CHARS = 12
"""A reply's first clause may end at a comma this early, so speech starts sooner."""
FIRST_PHRASE_WORDS = 4
"""The first clause may also end at a phrase break after this many words, so a
one-sentence reply starts speaking before the LLM has finished the sentence."""


def live_clauses() -> SpokenClauses:
    """The clause splitter and shaping of a live reply: the first clause as early as
    it can be said well (a comma after 12 characters, a phrase break after 4 words, a
    word's final punctuation without waiting for the next token)."""
    return SpokenClauses(
        ClauseSplitter(
            first_clause_chars=FIRST_CLAUSE_CHARS,
            first_phrase_words=FIRST_PHRASE_WORDS,
            eager_first=True,
        )
    )


class ChatModel(Protocol):
    """What the responder needs of a language model (``models.llm.LanguageModel``)."""

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        stats: GenerationStats | None = ...,
        key: str | None = ...,
    ) -> AsyncIterator[str]:
        """Stream the reply to ``messages``; closing the iterator stops the generation."""
        ...

    def forget(self, key: str) -> None:
        """Drop what the model keeps for conversation ``key``."""
        ...

    def warm(self, messages: Sequence[ChatMessage], *, key: str) -> None:
        """Evaluate the prompt of ``messages`` for ``key`` ahead of its next generation
        (the last message may be an unfinished user turn; best effort, returns at once)."""
        ...


class Voice(Protocol):
    """What the responder needs of a TTS (``models.tts.TextToSpeech``)."""

    def stream(self, text: str) -> AsyncIterator[Speech]:
        """Synthesize ``text`` chunk by chunk; closing the iterator stops it."""
        ...


@dataclass(frozen=True)
class TextPiece:
    """A piece of the reply's caption: a spoken clause (or the fallback line), with the
    space that joins it to the one before."""

    text: str


ReplyItem = TextPiece | Speech
_END = object()


class Responder:
    """Turns chat messages into a :class:`Reply` (one per turn; shared config)."""

    def __init__(
        self,
        llm: ChatModel,
        tts: Voice,
        *,
        first_token_timeout_s: float,
        fallback_reply: str,
        speakable: Callable[[str], str] | None = None,
        now: Callable[[], float] = time.monotonic,
        key: str | None = None,
    ) -> None:
        self.llm = llm
        self.key = key
        """The conversation's name for the LLM (it keeps the evaluated prompt per key)."""
        self.tts = tts
        self.first_token_timeout_s = first_token_timeout_s
        self.fallback_reply = fallback_reply
        self.speakable = speakable or (lambda clause: clause)
        """Applied to every shaped clause on its way to the captions and the TTS."""
        self.now = now

    def reply(self, messages: Sequence[ChatMessage], *, speculative: bool = False) -> Reply:
        """Start answering ``messages`` (needs a running event loop); a ``speculative``
        reply voices only its first clause until it is adopted."""
        return Reply(self, messages, speculative=speculative)

    def forget(self) -> None:
        """The conversation is over: the LLM may drop what it kept for it."""
        if self.key is not None:
            self.llm.forget(self.key)

    def warm(self, messages: Sequence[ChatMessage]) -> None:
        """Let the LLM evaluate the next turn's prompt ahead (``messages`` may end with
        the user's unfinished turn); nothing without a conversation key."""
        if self.key is not None:
            self.llm.warm(messages, key=self.key)

    def speak(self, text: str) -> AsyncIterator[Speech]:
        """Just the voice: ``text``, shaped, as speech chunks (a goodbye)."""
        return self.tts.stream(self.speakable(speakable(text)))


class Reply:
    """One reply in flight: an async iterator of :data:`ReplyItem`, closed as a whole."""

    def __init__(
        self, responder: Responder, messages: Sequence[ChatMessage], *, speculative: bool = False
    ) -> None:
        self._r = responder
        self.messages = list(messages)
        """What the LLM was asked."""
        self.metrics: dict[str, float] = {}
        self._adopted = asyncio.Event()
        if not speculative:
            self._adopted.set()
        self._pieces: list[str] = []
        self._out: asyncio.Queue[object] = asyncio.Queue()
        self._clauses: asyncio.Queue[str | None] = asyncio.Queue()
        self._captioned = False  # a caption piece was sent (later ones start with a space)
        self._t0 = responder.now()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._guard(self._write(messages)), name="reply-llm"),
            loop.create_task(self._guard(self._voice()), name="reply-tts"),
        ]

    @property
    def text(self) -> str:
        """Everything the LLM wrote so far, as it wrote it (before shaping)."""
        return "".join(self._pieces).strip()

    @property
    def started(self) -> float:
        """When the reply started (the responder's clock)."""
        return self._t0

    def adopt(self) -> None:
        """A speculative reply becomes the turn's: voice every clause from now on."""
        self._adopted.set()

    def __aiter__(self) -> Reply:
        return self

    async def __anext__(self) -> ReplyItem:
        item = await self._out.get()
        if item is _END:
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            raise item
        assert isinstance(item, TextPiece | Speech)
        return item

    async def aclose(self) -> None:
        """Stop the LLM and the TTS and wait until they have stopped."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _ms(self) -> float:
        return (self._r.now() - self._t0) * 1000

    async def _guard(self, work: object) -> None:
        try:
            await work  # type: ignore[misc]
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, raised there
            self._out.put_nowait(exc)

    async def _write(self, messages: Sequence[ChatMessage]) -> None:
        splitter = live_clauses()
        stats = GenerationStats()
        try:
            pieces = self._r.llm.stream(messages, stats=stats, key=self._r.key)
            async with contextlib.aclosing(pieces):  # type: ignore[type-var]
                it = pieces.__aiter__()
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for loses a
                # cancellation that comes as the first token arrives (the reply would run on).
                async with asyncio.timeout(self._r.first_token_timeout_s):
                    piece = await it.__anext__()
                self.metrics["llm_first_token_ms"] = self._ms()
                while True:
                    self._piece(piece, splitter)
                    piece = await it.__anext__()
        except StopAsyncIteration:
            pass
        except (BackendUnavailableError, LLMError, asyncio.TimeoutError) as exc:
            log.warning("the language model failed: %r", exc)
            self.metrics["llm_failed"] = 1.0
            if not self._pieces:  # say something rather than nothing; the session goes on
                line = self._r.fallback_reply
                self._pieces.append(line)
                self._clause(line)
        for clause in splitter.flush():
            self._clause(clause)
        self.metrics["llm_total_ms"] = self._ms()
        self.metrics["llm_tokens"] = float(stats.tokens)
        if "prompt_tokens" in stats.extra:  # a backend that keeps prompts evaluated
            new = stats.extra["prompt_tokens"] - stats.extra.get("cached_tokens", 0.0)
            self.metrics["llm_new_prompt_tokens"] = new
        self._clauses.put_nowait(None)

    def _piece(self, piece: str, splitter: SpokenClauses) -> None:
        self._pieces.append(piece)
        for clause in splitter.push(piece):
            self.metrics.setdefault("llm_first_clause_ms", self._ms())
            self._clause(clause)

    def _clause(self, clause: str) -> None:
        """The one place where a clause passes from the LLM side to the captions and
        the TTS, so both get the same text."""
        text = self._r.speakable(clause)
        if not text:
            return
        self._out.put_nowait(TextPiece(f" {text}" if self._captioned else text))
        self._captioned = True
        self._clauses.put_nowait(text)

    async def _voice(self) -> None:
        voiced = 0
        while (text := await self._clauses.get()) is not None:
            if voiced:  # a speculation voices its first clause only, until adopted
                await self._adopted.wait()
            voiced += 1
            t = self._r.now()
            chunks = self._r.tts.stream(text)
            async with contextlib.aclosing(chunks):  # type: ignore[type-var]
                async for speech in chunks:
                    self.metrics.setdefault("tts_first_chunk_ms", (self._r.now() - t) * 1000)
                    self._out.put_nowait(speech)
        self._out.put_nowait(_END)
