"""Turn-taking for one session: hear the user, think, speak, and stop when interrupted.

Inbound 16 kHz audio goes through the session's VAD. At the end of the user's speech
the utterance is transcribed, the LLM streams a reply, a clause splitter cuts it into
speakable pieces, and each piece is synthesized and queued on the media clock (audio
to the playout, its phoneme timeline to the world model) while the next is still
being generated. Speech from the user while the avatar talks is a barge-in: the reply
task is cancelled (which stops the LLM and TTS), queued audio is cut, the mouth
closes, and the history keeps only what was actually heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from avatar.motion import MouthDrive, WorldModel
from avatar.state import Mode
from models.errors import BackendUnavailableError, EngineError, InvalidAudioError, LLMError
from models.llm import build_messages
from models.tts import ClauseSplitter
from models.tts.spoken import SpokenClauses
from models.types import (
    ChatMessage,
    FloatAudio,
    GenerationStats,
    Speech,
    Transcript,
    VadEventKind,
)
from streaming.audio_io import VAD_RATE, speech_to_playout
from streaming.clock import MediaClock
from streaming.engines import Engines
from streaming.events import (
    assistant_text_event,
    error_event,
    state_event,
    turn_metrics_event,
    user_transcript_event,
)
from streaming.playout import AudioPlayout, heard_text

log = logging.getLogger(__name__)

Emit = Callable[[dict[str, Any]], None]

SCHEDULE_LEAD_S = 0.12
"""How far ahead of the playing sample new speech is placed: the video track steps the
world model about two frames before a frame is due (it renders one frame ahead)."""
FIRST_CLAUSE_CHARS = 12
"""A reply's first clause may end at a comma this early, so speech starts sooner."""
FIRST_PHRASE_WORDS = 4
"""The first clause may also end at a phrase break after this many words, so a
one-sentence reply starts speaking before the LLM has finished the sentence."""
SPECULATE_AFTER_S = 0.2
"""Silence after speech that starts a speculative transcription, before the end of turn
is certain (``vad.min_silence_ms``); the guess is dropped if the user goes on."""
PREROLL_S = 0.3
"""Audio kept before the VAD's speech start, so the first syllable reaches STT."""
PERSIST_TIMEOUT_S = 5.0
"""How long a finished turn waits for ``on_turn_complete``'s write before it is announced."""
DEFAULT_FIRST_TOKEN_TIMEOUT_S = 8.0
DEFAULT_FALLBACK_REPLY = "Sorry, I lost my train of thought. Could you say that again?"


@dataclass
class ConversationOptions:
    """Per-session choices (from the session request)."""

    system_prompt: str
    examples: list[ChatMessage] = field(default_factory=list)
    """Few-shot exchanges between the system prompt and the history (never stored)."""
    language: str | None = None
    max_history_messages: int = 20
    max_utterance_s: float = 30.0
    first_token_timeout_s: float = DEFAULT_FIRST_TOKEN_TIMEOUT_S
    fallback_reply: str = DEFAULT_FALLBACK_REPLY


@dataclass
class TurnRecord:
    """What happened in one turn (for the data channel and persistence).

    ``reply_text`` is everything the LLM wrote, ``spoken_text`` what the user heard;
    an interrupted turn has ``cut_at`` (wall clock) and ``spoken_s`` (seconds of reply
    audio played before the cut). ``error`` is set when the turn was skipped.
    """

    turn_id: int
    user_text: str = ""
    reply_text: str = ""
    spoken_text: str = ""
    interrupted: bool = False
    metrics: dict[str, float] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)
    completed_at: float | None = None
    cut_at: float | None = None
    spoken_s: float | None = None
    error: str = ""


TurnHook = Callable[[TurnRecord], "Awaitable[None] | None"]
"""Called with each finished turn; an awaitable it returns (a durable write) is awaited
before the turn's final events go to the client."""


@dataclass
class _ScheduledClause:
    text: str
    start: int
    end: int


class Conversation:
    """The conversation loop of one session."""

    def __init__(
        self,
        engines: Engines,
        clock: MediaClock,
        playout: AudioPlayout,
        world: WorldModel,
        emit: Emit,
        options: ConversationOptions,
        *,
        on_turn_complete: TurnHook | None = None,
    ) -> None:
        self._engines = engines
        self._clock = clock
        self._playout = playout
        self._world = world
        self._emit = emit
        self._options = options
        self._on_turn_complete = on_turn_complete
        self._vad = engines.new_vad()
        self.history: list[ChatMessage] = []
        self.turns: list[TurnRecord] = []
        self._turn_counter = 0
        self._reply_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._inbound_samples = 0
        self._utterance: list[FloatAudio] = []
        self._preroll: list[FloatAudio] = []
        self._preroll_samples = 0
        self._in_speech = False
        self._utterance_samples = 0
        self._speculation: asyncio.Task[Transcript] | None = None
        self._captioned_turn = 0  # the turn whose reply caption has begun
        self._state = ""
        self._closed = False
        self.last_activity = time.monotonic()
        self._set_state(Mode.LISTENING)

    # --- public API ----------------------------------------------------------

    @property
    def state(self) -> str:
        """The avatar's conversation state: listening, thinking or speaking."""
        return self._state

    @property
    def replying(self) -> bool:
        """Whether a reply is being prepared or played."""
        busy = self._reply_task is not None and not self._reply_task.done()
        return busy or self._playout.is_playing(self._clock.sample_now())

    def feed_audio(self, pcm: FloatAudio) -> None:
        """Inbound user audio (16 kHz mono float32), in arrival order."""
        if self._closed or len(pcm) == 0:
            return
        self._inbound_samples += len(pcm)
        if self._in_speech:
            self._utterance.append(pcm)
            self._utterance_samples += len(pcm)
        else:
            self._preroll.append(pcm)
            self._preroll_samples += len(pcm)
            while self._preroll and self._preroll_samples - len(self._preroll[0]) >= int(
                PREROLL_S * VAD_RATE
            ):
                self._preroll_samples -= len(self._preroll.pop(0))
        for event in self._vad.process(pcm):
            if event.kind is VadEventKind.SPEECH_START:
                self._on_speech_start()
            else:
                lag = self._inbound_samples / VAD_RATE - event.time
                self._on_speech_end(lag)
        self._maybe_speculate()
        if self._in_speech and self._utterance_samples > self._options.max_utterance_s * VAD_RATE:
            log.info(
                "utterance over %.0f s: cutting it and answering", self._options.max_utterance_s
            )
            self._vad.reset()
            self._on_speech_end(0.0)

    def submit_text(self, text: str) -> None:
        """The user typed a message: answer it like speech."""
        if self._closed:
            return
        self.last_activity = time.monotonic()
        self.interrupt()
        self._start_turn(text=text, end_of_user=time.monotonic())

    def interrupt(self) -> None:
        """Stop the current reply now (barge-in or an explicit interrupt)."""
        if self._reply_task is not None and not self._reply_task.done():
            self._reply_task.cancel()
        else:
            self._cut_playout()

    async def say(self, text: str) -> None:
        """Speak one line outside any turn (a goodbye) and return once it has played."""
        if self._closed:
            return
        self.interrupt()
        self._turn_counter += 1
        record = TurnRecord(turn_id=self._turn_counter)
        clauses: list[_ScheduledClause] = []
        rate = self._clock.sample_rate
        chunks = self._engines.tts.stream(text)
        async with contextlib.aclosing(chunks):  # type: ignore[type-var]
            async for speech in chunks:
                drive = await asyncio.to_thread(self._world.make_drive, speech)
                self._schedule(record, speech, drive, clauses, rate, time.monotonic())
        self._emit(assistant_text_event(text, record.turn_id, final=True))
        await self._clock.wait_until(self._playout.end_sample() / rate)

    async def close(self) -> None:
        """Cancel and await every task of this conversation."""
        self._closed = True
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()
        self._playout.clear()

    # --- VAD events ----------------------------------------------------------

    def _maybe_speculate(self) -> None:
        """Transcribe early when the user has paused long enough that the turn is
        probably over; forget the guess as soon as they speak again."""
        if not self._in_speech:
            return
        silence = self._vad.trailing_silence
        if silence == 0.0:
            self._speculation = None  # they went on: a running guess is left unobserved
        elif silence >= SPECULATE_AFTER_S and self._speculation is None:
            pcm = np.concatenate(self._utterance) if self._utterance else None
            if pcm is not None and len(pcm) >= int(0.2 * VAD_RATE):
                self._speculation = self._spawn(
                    self._engines.stt.atranscribe(pcm, VAD_RATE), name="stt-speculative"
                )

    def _on_speech_start(self) -> None:
        self.last_activity = time.monotonic()
        self._speculation = None
        self._in_speech = True
        self._utterance = list(self._preroll)
        self._utterance_samples = self._preroll_samples
        self._preroll, self._preroll_samples = [], 0
        if self.replying:
            log.info("barge-in: the user started speaking during the reply")
            self.interrupt()
        self._set_state(Mode.LISTENING)

    def _on_speech_end(self, detection_lag_s: float) -> None:
        self.last_activity = time.monotonic()
        if not self._in_speech:
            return
        self._in_speech = False
        pcm = np.concatenate(self._utterance) if self._utterance else np.zeros(0, np.float32)
        self._utterance, self._utterance_samples = [], 0
        end_of_user = time.monotonic() - max(0.0, detection_lag_s)
        guess, self._speculation = self._speculation, None
        if len(pcm) < int(0.2 * VAD_RATE):
            return
        self._start_turn(pcm=pcm, end_of_user=end_of_user, guess=guess)

    # --- turns -----------------------------------------------------------------

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _start_turn(
        self,
        *,
        end_of_user: float,
        pcm: FloatAudio | None = None,
        text: str = "",
        guess: asyncio.Task[Transcript] | None = None,
    ) -> None:
        if self._reply_task is not None and not self._reply_task.done():
            self._reply_task.cancel()
        self._turn_counter += 1
        record = TurnRecord(turn_id=self._turn_counter, user_text=text)
        self._reply_task = self._spawn(
            self._run_turn(record, pcm, end_of_user, guess), name=f"turn-{record.turn_id}"
        )

    def _set_state(self, mode: Mode) -> None:
        self._world.set_mode(mode)
        if mode.value != self._state:
            self._state = mode.value
            self._emit(state_event(mode.value))

    def _cut_playout(self) -> None:
        now = self._clock.sample_now() + self._clock.samples_per_frame
        self._playout.interrupt(now)
        self._world.interrupt(now / self._clock.sample_rate)

    async def _run_turn(
        self,
        record: TurnRecord,
        pcm: FloatAudio | None,
        end_of_user: float,
        guess: asyncio.Task[Transcript] | None = None,
    ) -> None:
        clauses: list[_ScheduledClause] = []
        reply_parts: list[str] = []
        metrics = record.metrics
        try:
            self._set_state(Mode.THINKING)
            if pcm is not None:
                t = time.monotonic()
                try:
                    if guess is not None:  # transcribed while the end of turn was pending
                        metrics["stt_speculative"] = 1.0
                        transcript = await guess
                    else:
                        transcript = await self._engines.stt.atranscribe(pcm, VAD_RATE)
                except InvalidAudioError as exc:
                    log.info("utterance skipped: %s", exc)
                    self._set_state(Mode.LISTENING)
                    return
                metrics["stt_ms"] = (time.monotonic() - t) * 1000
                record.user_text = transcript.text.strip()
                log.info(
                    "turn %d: heard %r in %.0f ms (%.1f s of audio)",
                    record.turn_id,
                    record.user_text,
                    metrics["stt_ms"],
                    len(pcm) / VAD_RATE,
                )
                if not record.user_text:
                    self._set_state(Mode.LISTENING)
                    return
            self._emit(user_transcript_event(record.user_text, record.turn_id))
            messages = build_messages(
                self._options.system_prompt,
                [*self._options.examples, *self.history],
                record.user_text,
            )
            self.history.append(ChatMessage("user", record.user_text))
            await self._reply(record, messages, clauses, reply_parts, end_of_user)
            # Let the last clause play out before the turn counts as done.
            end = self._playout.end_sample()
            await self._clock.wait_until(end / self._clock.sample_rate)
            record.reply_text = "".join(reply_parts).strip()
            record.spoken_text = " ".join(c.text for c in clauses).strip()
        except asyncio.CancelledError:
            record.interrupted = True
            record.reply_text = "".join(reply_parts).strip()
            record.spoken_text = self._spoken_before_cut(clauses)
            raise
        except EngineError as exc:
            log.warning("turn %d skipped: %s", record.turn_id, exc)
            self._skip(record, str(exc))
        except Exception:
            log.exception("turn %d failed unexpectedly", record.turn_id)
            self._skip(record, "the avatar could not answer this turn")
        finally:
            await self._finish_turn(record, end_of_user)

    def _skip(self, record: TurnRecord, reason: str) -> None:
        """A stage failed: stop any partial reply and tell the client the turn is skipped."""
        self._cut_playout()
        record.error = reason or "turn failed"
        self._emit(error_event("turn_skipped", f"this turn was skipped: {record.error}"))

    def _spoken_before_cut(self, clauses: list[_ScheduledClause]) -> str:
        cut = self._clock.sample_now() + self._clock.samples_per_frame
        self._playout.interrupt(cut)
        self._world.interrupt(cut / self._clock.sample_rate)
        heard_s = max(0, cut - clauses[0].start) / self._clock.sample_rate if clauses else 0.0
        self._last_cut = (time.time(), heard_s)
        said = []
        for c in clauses:
            if c.end <= cut:
                said.append(c.text)
            elif c.start < cut:
                said.append(heard_text(c.text, (cut - c.start) / max(1, c.end - c.start)))
        return " ".join(s for s in said if s).strip()

    async def _finish_turn(self, record: TurnRecord, end_of_user: float) -> None:
        record.completed_at = time.time()
        if record.interrupted:
            record.cut_at, record.spoken_s = self._last_cut
        if record.user_text:
            if record.error:
                # Nothing was answered: drop the question so the history keeps alternating.
                last = self.history[-1] if self.history else None
                if last is not None and last.role == "user" and last.content == record.user_text:
                    self.history.pop()
            elif record.spoken_text:
                self.history.append(ChatMessage("assistant", record.spoken_text))
            excess = len(self.history) - self._options.max_history_messages
            if excess > 0:
                del self.history[:excess]
            self.turns.append(record)
            del self.turns[: -self._options.max_history_messages]
            await self._persist(record)
            if not record.error:
                if record.reply_text or record.interrupted:
                    self._emit(
                        assistant_text_event(
                            record.spoken_text,
                            record.turn_id,
                            final=True,
                            interrupted=record.interrupted,
                        )
                    )
                self._emit(turn_metrics_event(record.turn_id, record.metrics))
        if not self._closed:
            self._set_state(Mode.LISTENING)

    async def _persist(self, record: TurnRecord) -> None:
        """Run the turn hook and wait (bounded) for the write it returns, so that a turn
        the client has seen completed is already stored."""
        if self._on_turn_complete is None:
            return
        try:
            pending = self._on_turn_complete(record)
            if pending is not None:
                await asyncio.wait_for(asyncio.shield(pending), PERSIST_TIMEOUT_S)
        except asyncio.TimeoutError:
            log.warning("turn %d: storing it took over %.0f s", record.turn_id, PERSIST_TIMEOUT_S)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("turn %d: the turn hook failed", record.turn_id)

    async def _reply(
        self,
        record: TurnRecord,
        messages: list[ChatMessage],
        clauses: list[_ScheduledClause],
        reply_parts: list[str],
        end_of_user: float,
    ) -> None:
        """Stream the LLM into TTS into the playout, pipelined clause by clause."""
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        speaker = self._spawn(
            self._speak_clauses(record, queue, clauses, end_of_user), name=f"tts-{record.turn_id}"
        )
        # Spoken-text shaping: no markdown, lists, code or emoji; numbers in words. The
        # caption pieces are these shaped clauses, so the captions show what is said.
        splitter = SpokenClauses(
            ClauseSplitter(
                first_clause_chars=FIRST_CLAUSE_CHARS, first_phrase_words=FIRST_PHRASE_WORDS
            )
        )
        stats = GenerationStats()
        t0 = time.monotonic()
        try:
            try:
                await self._stream_llm(record, messages, stats, t0, reply_parts, splitter, queue)
            except (BackendUnavailableError, LLMError, asyncio.TimeoutError) as exc:
                log.warning("turn %d: the language model failed: %r", record.turn_id, exc)
                record.metrics["llm_failed"] = 1.0
                if not reply_parts:
                    # Say something rather than nothing; the session goes on.
                    line = self._options.fallback_reply
                    reply_parts.append(line)
                    self._queue_clause(record, line, queue)
            for clause in splitter.flush():
                self._queue_clause(record, clause, queue)
            record.metrics["llm_total_ms"] = (time.monotonic() - t0) * 1000
            record.metrics["llm_tokens"] = float(stats.tokens)
            queue.put_nowait(None)
            await speaker
        finally:
            if not speaker.done():
                speaker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await speaker

    async def _stream_llm(
        self,
        record: TurnRecord,
        messages: list[ChatMessage],
        stats: GenerationStats,
        t0: float,
        reply_parts: list[str],
        splitter: SpokenClauses,
        queue: asyncio.Queue[str | None],
    ) -> None:
        """Feed the LLM's pieces on; TimeoutError when no first piece comes in time."""
        pieces = self._engines.llm.stream(messages, stats=stats)
        async with contextlib.aclosing(pieces):  # type: ignore[type-var]
            it = pieces.__aiter__()
            try:
                first = await asyncio.wait_for(it.__anext__(), self._options.first_token_timeout_s)
            except StopAsyncIteration:
                return
            self._on_piece(record, first, t0, reply_parts, splitter, queue)
            async for piece in it:
                self._on_piece(record, piece, t0, reply_parts, splitter, queue)

    def _on_piece(
        self,
        record: TurnRecord,
        piece: str,
        t0: float,
        reply_parts: list[str],
        splitter: SpokenClauses,
        queue: asyncio.Queue[str | None],
    ) -> None:
        if "llm_first_token_ms" not in record.metrics:
            record.metrics["llm_first_token_ms"] = (time.monotonic() - t0) * 1000
        reply_parts.append(piece)
        for clause in splitter.push(piece):
            if "llm_first_clause_ms" not in record.metrics:
                record.metrics["llm_first_clause_ms"] = (time.monotonic() - t0) * 1000
            self._queue_clause(record, clause, queue)

    def _queue_clause(
        self, record: TurnRecord, clause: str, queue: asyncio.Queue[str | None]
    ) -> None:
        """Send a spoken clause to the TTS and, as a caption piece, to the client."""
        piece = clause if self._captioned_turn != record.turn_id else f" {clause}"
        self._captioned_turn = record.turn_id
        self._emit(assistant_text_event(piece, record.turn_id, final=False))
        queue.put_nowait(clause)

    async def _speak_clauses(
        self,
        record: TurnRecord,
        queue: asyncio.Queue[str | None],
        clauses: list[_ScheduledClause],
        end_of_user: float,
    ) -> None:
        rate = self._clock.sample_rate
        while (text := await queue.get()) is not None:
            t = time.monotonic()
            chunks = self._engines.tts.stream(text)
            async with contextlib.aclosing(chunks):  # type: ignore[type-var]
                async for speech in chunks:
                    if "tts_first_chunk_ms" not in record.metrics:
                        record.metrics["tts_first_chunk_ms"] = (time.monotonic() - t) * 1000
                    drive = await asyncio.to_thread(self._world.make_drive, speech)
                    self._schedule(record, speech, drive, clauses, rate, end_of_user)

    def _schedule(
        self,
        record: TurnRecord,
        speech: Speech,
        drive: MouthDrive,
        clauses: list[_ScheduledClause],
        rate: int,
        end_of_user: float,
    ) -> None:
        pcm = speech_to_playout(speech, rate)
        not_before = self._clock.sample_now() + int(SCHEDULE_LEAD_S * rate)
        start = self._playout.schedule(
            pcm, speech.text, not_before=not_before, turn_id=record.turn_id
        )
        self._world.schedule_speech(drive, start / rate)
        clauses.append(_ScheduledClause(speech.text, start, start + len(pcm)))
        if "voice_to_voice_ms" not in record.metrics:
            start_wall = time.monotonic() + (start / rate - self._clock.elapsed())
            record.metrics["voice_to_voice_ms"] = (start_wall - end_of_user) * 1000
        self._set_state(Mode.SPEAKING)
