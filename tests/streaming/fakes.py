"""Model-free stand-ins for the turn pipeline's engines, and a clock the test moves.

The fakes are deterministic: the VAD calls loud 20 ms windows speech, the STT answers
with a scripted text, the LLM writes scripted pieces (or fails, or stalls, or waits for
the test), the TTS speaks 0.2 s per word. Nothing sleeps in real time except the waits
for a condition in :func:`until`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import numpy as np

from avatar.config import AvatarConfig
from avatar.motion import WorldModel
from avatar.state import Mode
from models.errors import LLMError, TTSError
from models.types import (
    ChatMessage,
    FloatAudio,
    GenerationStats,
    Speech,
    Transcript,
    VadEvent,
    VadEventKind,
)
from models.vad import VAD_SAMPLE_RATE
from streaming.clock import MediaClock
from streaming.config import EndOfTurnConfig
from streaming.conversation import Conversation, ConversationOptions
from streaming.listener import Listener
from streaming.playout import AudioPlayout
from streaming.responder import Responder
from streaming.speaker import Speaker
from streaming.turn_end import WordEndPolicy

WINDOW = 320  # 20 ms at 16 kHz
FAKE_END_OF_TURN = EndOfTurnConfig(
    guess_after_ms=200, question_ms=250, statement_ms=400, unfinished_ms=400
)
"""The rig's end of turn: FakeVad ends speech after 400 ms, and the FakeStt's words
(no sentence mark) wait for it."""
TTS_RATE = 16_000
WORD_S = 0.2
FALLBACK = "Sorry, say that again?"


class FakeClock(MediaClock):
    """A media clock whose time moves only when the test calls :meth:`advance`."""

    def __init__(self, fps: int = 25) -> None:
        self.t = 100.0
        self._waiters: list[tuple[float, asyncio.Future[None]]] = []
        super().__init__(sample_rate=48_000, fps=fps, now=lambda: self.t)
        self.start()

    async def wait_until(self, media_time: float) -> float:
        self.start()
        assert self._t0 is not None
        target = self._t0 + media_time
        if target <= self.t:
            return self.t - target
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append((target, fut))
        await fut
        return 0.0

    def advance(self, dt: float) -> None:
        """Move time on and wake every wait that is due."""
        self.t += dt
        due = [(t, f) for t, f in self._waiters if t <= self.t]
        self._waiters = [(t, f) for t, f in self._waiters if t > self.t]
        for _, fut in due:
            if not fut.done():
                fut.set_result(None)


class FakeVad:
    """Speech = 20 ms windows with a peak over 0.05; ends after ``silence_windows``."""

    def __init__(self, silence_windows: int = 20) -> None:
        self._silence_windows = silence_windows
        self.reset()

    def reset(self) -> None:
        self._buf = np.zeros(0, np.float32)
        self._n = 0
        self._speaking = False
        self._quiet = 0

    @property
    def sample_rate(self) -> int:
        return VAD_SAMPLE_RATE

    @property
    def speaking(self) -> bool:
        return self._speaking

    @property
    def probability(self) -> float:
        return 1.0 if self._speaking and not self._quiet else 0.0

    @property
    def trailing_silence(self) -> float:
        return self._quiet * WINDOW / VAD_SAMPLE_RATE if self._speaking else 0.0

    def process(self, pcm: FloatAudio) -> list[VadEvent]:
        self._buf = np.concatenate([self._buf, pcm])
        events = []
        while len(self._buf) >= WINDOW:
            window, self._buf = self._buf[:WINDOW], self._buf[WINDOW:]
            voiced = float(np.abs(window).max()) > 0.05
            t = self._n / VAD_SAMPLE_RATE
            self._n += WINDOW
            if voiced and not self._speaking:
                self._speaking, self._quiet = True, 0
                events.append(VadEvent(VadEventKind.SPEECH_START, t, self._n - WINDOW))
            elif self._speaking:
                self._quiet = 0 if voiced else self._quiet + 1
                if self._quiet >= self._silence_windows:
                    self._speaking = False
                    end = t - (self._quiet - 1) * WINDOW / VAD_SAMPLE_RATE
                    events.append(VadEvent(VadEventKind.SPEECH_END, end, int(end * 16000)))
        return events

    def flush(self) -> list[VadEvent]:
        self.reset()
        return []


def transcript(text: str) -> Transcript:
    return Transcript(text, (), "en", 1.0, 1.0, 1.0)


class FakeStt:
    """Answers ``text``; holds every call while ``gate`` is clear."""

    def __init__(self, text: str = "what is two plus two") -> None:
        self.text = text
        self.gate = asyncio.Event()
        self.gate.set()
        self.calls = 0
        self.seconds: list[float] = []
        self.cancelled = 0
        self.finished = 0
        self.prompts: list[str] = []
        self.partials = 0
        """Calls for speech still going on."""

    async def atranscribe(
        self,
        pcm: FloatAudio,
        sample_rate: int = VAD_SAMPLE_RATE,
        *,
        prompt: str = "",
        partial: bool = False,
    ) -> Transcript:
        if partial:
            self.partials += 1
        self.calls += 1
        self.seconds.append(len(pcm) / sample_rate)
        self.prompts.append(prompt)
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        self.finished += 1
        return transcript(self.text)


class FakeLlm:
    """Writes ``pieces`` (one per step; with ``paced``, one per :meth:`release`).

    ``fail_at``: raise LLMError before that piece; ``stall``: never write at all.
    """

    def __init__(self, pieces: Sequence[str] = ("Two plus two ", "is four.")) -> None:
        self.pieces = list(pieces)
        self.fail_at: int | None = None
        self.stall = False
        self.paced = False
        self._release: asyncio.Queue[None] = asyncio.Queue()
        self.requests: list[list[ChatMessage]] = []
        self.keys: list[str | None] = []
        self.forgotten: list[str] = []
        self.warmed: list[tuple[list[ChatMessage], str]] = []
        """Every :meth:`warm` call: its messages and key."""
        self.closed = 0

    def release(self, n: int = 1) -> None:
        for _ in range(n):
            self._release.put_nowait(None)

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        stats: GenerationStats | None = None,
        key: str | None = None,
    ) -> AsyncIterator[str]:
        self.requests.append(list(messages))
        self.keys.append(key)
        return self._gen(stats)

    def warm(self, messages: Sequence[ChatMessage], *, key: str) -> None:
        self.warmed.append((list(messages), key))

    def forget(self, key: str) -> None:
        self.forgotten.append(key)

    async def _gen(self, stats: GenerationStats | None) -> AsyncIterator[str]:
        try:
            if self.stall:
                await asyncio.Event().wait()
            for i, piece in enumerate(self.pieces):
                if self.paced:
                    await self._release.get()
                if i == self.fail_at:
                    raise LLMError("the fake LLM broke")
                if stats is not None:
                    stats.tokens += 1
                yield piece
        finally:
            self.closed += 1


class FakeTts:
    """0.2 s of a tone per word; raises TTSError for a text that contains ``fail``."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.fail = ""

    def stream(self, text: str) -> AsyncIterator[Speech]:
        self.texts.append(text)
        return self._gen(text)

    async def _gen(self, text: str) -> AsyncIterator[Speech]:
        await asyncio.sleep(0)
        if self.fail and self.fail in text:
            raise TTSError("the fake voice broke")
        yield fake_speech(text)


def fake_speech(text: str) -> Speech:
    """What :class:`FakeTts` says for ``text``: 0.2 s of a tone per word."""
    n = int(len(text.split()) * WORD_S * TTS_RATE)
    pcm = (0.3 * np.sin(np.arange(n) * 0.05)).astype(np.float32)
    return Speech(pcm, TTS_RATE, text)


def speech(seconds: float) -> FloatAudio:
    """The user speaking (loud enough for :class:`FakeVad`)."""
    return np.full(int(seconds * VAD_SAMPLE_RATE), 0.3, np.float32)


def silence(seconds: float) -> FloatAudio:
    return np.zeros(int(seconds * VAD_SAMPLE_RATE), np.float32)


class Rig:
    """A conversation built from the fakes, with what it emitted."""

    def lead_s(self, text: str) -> float:
        """How far ahead the speaker places the fake speech of ``text`` from silence."""
        return self.speaker.lead_for(self.world.make_drive(fake_speech(text)))

    def __init__(
        self,
        *,
        max_utterance_s: float = 30.0,
        timeout_s: float = 5.0,
        options: ConversationOptions | None = None,
        key: str = "session-1",
        partial_every_s: float = 0.0,
    ) -> None:
        self.clock = FakeClock()
        self.stt = FakeStt()
        self.llm = FakeLlm()
        self.tts = FakeTts()
        self.events: list[dict[str, Any]] = []
        self.hook: Callable[[Any], Any] | None = None
        self.playout = AudioPlayout(self.clock.sample_rate)
        self.world = WorldModel(AvatarConfig(), fps=self.clock.fps, seed=0)
        self.modes: list[Mode] = []
        self.listener = Listener(
            FakeVad(),
            self.stt,
            max_utterance_s=max_utterance_s,
            policy=WordEndPolicy(FAKE_END_OF_TURN),
            prompt_chars=200,
            partial_every_s=partial_every_s,
            now=self.clock.now,
        )
        self.responder = Responder(
            self.llm,
            self.tts,
            first_token_timeout_s=timeout_s,
            fallback_reply=FALLBACK,
            now=self.clock.now,
            key=key,
        )
        self.speaker = Speaker(self.clock, self.playout, self.world)
        self.clock.advance(7.0)  # a call that has been going on for a while
        self.conversation = Conversation(
            self.listener,
            self.responder,
            self.speaker,
            self.world,
            self.events.append,
            options or ConversationOptions(system_prompt="Be brief."),
            on_turn_complete=lambda r: self.hook(r) if self.hook else None,
            now=self.clock.now,
        )

    def states(self) -> list[str]:
        return [e["state"] for e in self.events if e["type"] == "state"]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]

    def say(self, *parts: FloatAudio) -> None:
        """Feed audio in 20 ms frames."""
        pcm = np.concatenate(parts)
        for i in range(0, len(pcm), WINDOW):
            self.conversation.feed_audio(pcm[i : i + WINDOW])


async def until(cond: Callable[[], bool], what: str = "", limit_s: float = 5.0) -> None:
    """Let the loop run until ``cond()`` holds; fail after ``limit_s`` (a hang, not a timing)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"never happened: {what or cond}")
        await asyncio.sleep(0.001)


async def answered(rig: Rig, turn_id: int) -> None:
    """Let turn ``turn_id`` speak, play all of it out, and finish."""
    await until(lambda: rig.conversation.state == "speaking", "speaking")
    await until(lambda: _finished(rig, turn_id) or advance(rig), f"turn {turn_id} finished")


def _finished(rig: Rig, turn_id: int) -> bool:
    metrics = rig.of("turn_metrics")
    return bool(metrics) and metrics[-1]["turn_id"] == turn_id


def advance(rig: Rig) -> bool:
    """Move the fake clock on by 0.1 s (for use inside an ``until`` condition)."""
    rig.clock.advance(0.1)
    return False
