"""The listener: the user's audio in, :class:`SpeechStarted` and :class:`Utterance` out.

Inbound 16 kHz audio goes through the session's VAD. Audio just before the VAD's
speech start is kept (pre-roll) so the first syllable reaches STT; speech is buffered
until its end (or until it reaches ``max_utterance_s``, when it is cut and answered).
When the user pauses (``end_of_turn.guess_after_ms``), the utterance so far is
transcribed speculatively; if they go on, that guess is cancelled at once (a guess
still queued for the recognizer never runs). The end of the turn is decided from that
guess by a :class:`~streaming.turn_end.TurnEndPolicy`: a finished sentence ends it
after a short silence, words that stop mid-phrase wait longer; the VAD's own end of
speech (its ``min_silence_ms``, the policy's longest wait) ends it whatever was said.
While the user speaks, the utterance so far is transcribed every
``partial_every_s`` of new speech at the recognizer's lowest priority, while the
machine has CPU to spare
(:class:`UserSpeaking`: the LLM can evaluate those words before the turn ends); a pass
still running when the user pauses is cancelled so that it never delays the guess.
Every transcription gets the conversation so far (:meth:`Listener.set_context`) as
Whisper's prompt. :meth:`Listener.feed` returns values: the caller decides what a
speech start or an utterance means for the conversation.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from models.types import FloatAudio, Transcript, VadEventKind
from models.vad import VAD_SAMPLE_RATE, VoiceActivityDetector
from streaming.turn_end import TurnEndPolicy

log = logging.getLogger(__name__)

PREROLL_S = 0.3
"""Audio kept before the VAD's speech start, so the first syllable reaches STT."""
MIN_UTTERANCE_S = 0.2
"""Shorter speech is noise, not an utterance."""


class AsyncTranscriber(Protocol):
    """What the listener needs of speech recognition."""

    async def atranscribe(
        self, pcm: FloatAudio, sample_rate: int = ..., *, prompt: str = ..., partial: bool = ...
    ) -> Transcript:
        """Transcribe one utterance without blocking the event loop (``prompt``: the
        conversation so far; ``partial``: speech still going on, which yields to every
        other utterance waiting for the recognizer)."""
        ...


@dataclass(frozen=True)
class SpeechStarted:
    """The user started speaking (a barge-in, if the avatar is talking)."""


@dataclass(frozen=True)
class UserSpeaking:
    """The words so far of an utterance that is still going on (a partial pass); its
    last word may be cut off mid-word (see :meth:`settled`)."""

    text: str

    def settled(self) -> str:
        """The words unlikely to change: all but the last, unless the text ends a
        sentence (the pass stopped in the middle of the last word as often as not)."""
        text = self.text.strip()
        if not text or text[-1] in ".?!":
            return text
        return text.rsplit(" ", 1)[0] if " " in text else ""


@dataclass(frozen=True)
class UserPaused:
    """The user paused long enough that their turn may be over (a listener nods).

    ``guess`` is the speculative transcription of the utterance so far: the same task
    arrives as :attr:`Utterance.guess` if the user does not go on, and is cancelled if
    they do (a reply may be started on it meanwhile, and played only once it arrives).
    """

    guess: asyncio.Task[Transcript] | None = field(default=None, repr=False, compare=False)


@dataclass
class Utterance:
    """One finished utterance of the user.

    ``end_of_user`` is when they stopped (the listener's clock, detection lag removed);
    ``guess`` the speculative transcription started before the end was certain;
    ``waited_s`` the silence waited after their last speech before the turn was decided.
    """

    pcm: FloatAudio
    end_of_user: float
    guess: asyncio.Task[Transcript] | None = field(default=None, repr=False)
    waited_s: float = 0.0

    def drop_guess(self) -> None:
        """Cancel the speculative transcription if it is still running."""
        if self.guess is not None and not self.guess.done():
            self.guess.cancel()


ListenEvent = SpeechStarted | UserSpeaking | UserPaused | Utterance


class Listener:
    """VAD, pre-roll, utterance buffer and speculative STT of one session."""

    def __init__(
        self,
        vad: VoiceActivityDetector,
        stt: AsyncTranscriber,
        *,
        max_utterance_s: float,
        policy: TurnEndPolicy,
        prompt_chars: int = 0,
        partial_every_s: float = 0.0,
        spare_cpu: Callable[[], bool] = lambda: True,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._vad = vad
        self._stt = stt
        self._policy = policy
        self._prompt_chars = prompt_chars
        self._prompt = ""
        self._max_samples = int(max_utterance_s * VAD_SAMPLE_RATE)
        self._now = now
        self._inbound = 0
        self._vad_origin = 0  # inbound samples before the VAD's clock was last reset
        self._preroll: list[FloatAudio] = []
        self._preroll_samples = 0
        self._utterance: list[FloatAudio] = []
        self._utterance_samples = 0
        self._in_speech = False
        self._speculation: asyncio.Task[Transcript] | None = None
        self._partial_every = int(partial_every_s * VAD_SAMPLE_RATE)
        self._partial: asyncio.Task[Transcript] | None = None
        self._partial_at = 0  # utterance samples when the last partial pass started
        self._spare_cpu = spare_cpu

    @property
    def guess(self) -> asyncio.Task[Transcript] | None:
        """The speculative transcription of the current pause (None once the user goes
        on, or before they pause): a reply started on an older guess is stale."""
        return self._speculation

    @property
    def in_speech(self) -> bool:
        """Whether the user is speaking (between a speech start and its end)."""
        return self._in_speech

    def feed(self, pcm: FloatAudio) -> list[ListenEvent]:
        """Inbound audio (16 kHz mono float32), in arrival order; what it completed."""
        if len(pcm) == 0:
            return []
        out: list[ListenEvent] = []
        self._inbound += len(pcm)
        self._buffer(pcm)
        for event in self._vad.process(pcm):
            if event.kind is VadEventKind.SPEECH_START:
                out.append(self._speech_start())
            else:
                lag = (self._inbound - self._vad_origin) / VAD_SAMPLE_RATE - event.time
                out.extend(self._speech_end(lag))
        out.extend(self._partial_result())
        if self._speculate():
            out.append(UserPaused(self._speculation))
        if self._in_speech and self._turn_is_over():
            silence = self._vad.trailing_silence
            self._reset_vad()
            out.extend(self._speech_end(silence))
        if self._in_speech and self._utterance_samples >= self._max_samples:
            log.info("utterance over %.0f s: cutting it", self._max_samples / VAD_SAMPLE_RATE)
            self._reset_vad()
            out.extend(self._speech_end(0.0))
        self._start_partial()
        return out

    def set_context(self, text: str) -> None:
        """The conversation so far (the last turns, oldest first): its tail, at most
        ``prompt_chars`` characters from a word boundary, is the prompt of every
        transcription from now on."""
        tail = " ".join(text.split())
        if len(tail) > self._prompt_chars:
            tail = tail[len(tail) - self._prompt_chars :]
            tail = tail.split(" ", 1)[1] if " " in tail else ""
        self._prompt = tail

    async def hear(self, utterance: Utterance, metrics: dict[str, float]) -> str:
        """The words of the utterance (the speculative guess, if there is one); notes
        ``stt_ms`` (the wait for the words after the end of turn), ``stt_speculative``
        and ``end_of_turn_wait_ms`` (the silence waited before the end) in ``metrics``."""
        t = self._now()
        metrics["end_of_turn_wait_ms"] = utterance.waited_s * 1000
        try:
            if utterance.guess is not None:  # transcribed while the end was pending
                metrics["stt_speculative"] = 1.0
                transcript = await utterance.guess
            else:
                transcript = await self._transcribe(utterance.pcm)
        finally:
            utterance.drop_guess()
        metrics["stt_ms"] = (self._now() - t) * 1000
        return transcript.text.strip()

    def close(self) -> None:
        """Cancel a speculation or a partial pass still running."""
        self._drop_speculation()
        self._drop_partial()

    def _buffer(self, pcm: FloatAudio) -> None:
        if self._in_speech:
            self._utterance.append(pcm)
            self._utterance_samples += len(pcm)
            return
        self._preroll.append(pcm)
        self._preroll_samples += len(pcm)
        keep = int(PREROLL_S * VAD_SAMPLE_RATE)
        while self._preroll and self._preroll_samples - len(self._preroll[0]) >= keep:
            self._preroll_samples -= len(self._preroll.pop(0))

    def _drop_partial(self) -> None:
        task, self._partial = self._partial, None
        if task is not None and not task.done():
            task.cancel()

    def _start_partial(self) -> None:
        """Transcribe the utterance so far when another ``partial_every_s`` of it has
        arrived and the user is speaking right now (not pausing: the guess is coming),
        one pass at a time, and only while the machine has CPU to spare (``spare_cpu``:
        on a busy machine the passes delay what every turn waits for)."""
        if (
            not self._partial_every
            or not self._in_speech
            or self._partial is not None
            or self._speculation is not None
            or self._vad.trailing_silence > 0.0
            or self._utterance_samples - self._partial_at < self._partial_every
        ):
            return
        self._partial_at = self._utterance_samples
        if not self._spare_cpu():
            return
        pcm = np.concatenate(self._utterance)
        self._partial = asyncio.get_running_loop().create_task(
            self._stt.atranscribe(pcm, VAD_SAMPLE_RATE, prompt=self._prompt, partial=True),
            name="stt-partial",
        )

    def _partial_result(self) -> list[UserSpeaking]:
        """The words of a partial pass that has just finished (none if it failed)."""
        task = self._partial
        if task is None or not task.done():
            return []
        self._partial = None
        if task.cancelled():
            return []
        if task.exception() is not None:  # the final transcription will report it
            log.debug("partial transcription failed: %s", task.exception())
            return []
        text = task.result().text.strip()
        return [UserSpeaking(text)] if text and self._in_speech else []

    def _drop_speculation(self) -> None:
        task, self._speculation = self._speculation, None
        if task is not None and not task.done():
            task.cancel()

    def _speculate(self) -> bool:
        """Transcribe early when the user has paused long enough that the turn is
        probably over; cancel the guess as soon as they speak again. True when a
        guess started (the user just paused)."""
        if not self._in_speech:
            return False
        silence = self._vad.trailing_silence
        if silence == 0.0:
            self._drop_speculation()
        elif (
            silence >= self._policy.guess_after_s
            and self._speculation is None
            and self._utterance_samples >= int(MIN_UTTERANCE_S * VAD_SAMPLE_RATE)
        ):
            self._drop_partial()  # the guess transcribes it all; it must not wait
            pcm = np.concatenate(self._utterance)
            self._speculation = asyncio.get_running_loop().create_task(
                self._transcribe(pcm), name="stt-speculative"
            )
            return True
        return False

    def _turn_is_over(self) -> bool:
        """Whether the silence so far ends the turn, given the guess's words (while the
        guess runs, only the VAD's own end of speech ends it)."""
        silence = self._vad.trailing_silence
        guess = self._speculation
        if silence == 0.0 or guess is None or not guess.done() or guess.cancelled():
            return False
        if guess.exception() is not None:  # the turn will report it; end it now
            return True
        return silence >= self._policy.silence_needed(guess.result().text)

    def _transcribe(self, pcm: FloatAudio) -> Coroutine[Any, Any, Transcript]:
        return self._stt.atranscribe(pcm, VAD_SAMPLE_RATE, prompt=self._prompt)

    def _reset_vad(self) -> None:
        """End the VAD's open speech here (its clock restarts)."""
        self._vad.reset()
        self._vad_origin = self._inbound

    def _speech_start(self) -> SpeechStarted:
        self._drop_speculation()
        self._drop_partial()
        self._partial_at = 0
        self._in_speech = True
        self._utterance, self._utterance_samples = self._preroll, self._preroll_samples
        self._preroll, self._preroll_samples = [], 0
        return SpeechStarted()

    def _speech_end(self, detection_lag_s: float) -> list[ListenEvent]:
        if not self._in_speech:
            return []
        self._in_speech = False
        self._drop_partial()
        pcm = np.concatenate(self._utterance) if self._utterance else np.zeros(0, np.float32)
        pcm = pcm[: self._max_samples]  # the recognizer refuses anything longer
        self._utterance, self._utterance_samples = [], 0
        guess, self._speculation = self._speculation, None
        if len(pcm) < int(MIN_UTTERANCE_S * VAD_SAMPLE_RATE):
            if guess is not None:
                guess.cancel()
            return []
        lag = max(0.0, detection_lag_s)
        return [Utterance(pcm, self._now() - lag, guess, waited_s=lag)]
