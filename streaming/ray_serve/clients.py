"""Stand-ins for the local engines that call the Ray Serve deployments instead.

They keep the interfaces the session code uses: :class:`RaySpeechRecognizer` is
called like ``models.stt.SpeechRecognizer`` (``atranscribe`` awaited on the event
loop, ``transcribe`` from a worker thread), :class:`RayTextToSpeech` is a
``TextToSpeech`` (``stream`` is an async generator of ``Speech`` chunks, one
sentence per request, two requests ahead), and :class:`RayRenderer` is a
``Renderer`` (``render`` blocks the executor thread that calls it, never the loop).

Failures of Ray itself (a dead replica, a timeout, an unreachable cluster) become
``STTError`` / ``TTSError``, which the conversation already turns into a skipped
turn; typed engine errors raised in a replica (bad audio or text) are re-raised as
they are. A frame that Ray cannot render in time is rendered locally instead, and
frames stay local for a short while after a failure, so the video never stalls.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np
import numpy.typing as npt

from avatar.render import Renderer
from avatar.state import AvatarState
from models.config import SttConfig, TtsConfig
from models.errors import EngineError, STTError, TTSError
from models.stt import STT_SAMPLE_RATE
from models.stt.whisper import check_utterance
from models.tts import check_text, split_sentences
from models.types import FloatAudio, Speech, Transcript

if TYPE_CHECKING:
    from ray.serve.handle import DeploymentHandle, DeploymentResponse

log = logging.getLogger(__name__)

T = TypeVar("T")

LOCAL_AFTER_FAILURE_S = 2.0
"""After Ray fails to render a frame, frames are rendered locally for this long."""


def _typed(exc: BaseException, error: type[EngineError], what: str) -> EngineError:
    """The typed error for a failed call: the replica's own typed error, or ``error``."""
    cause = getattr(exc, "cause", None)  # a RayTaskError carries what the replica raised
    if isinstance(cause, EngineError):
        return cause
    if isinstance(exc, EngineError) and cause is None:
        return exc
    log.warning("%s on Ray Serve failed: %r", what, exc)
    if isinstance(exc, TimeoutError):
        return error(f"{what} on Ray Serve timed out")
    return error(f"{what} on Ray Serve failed ({type(exc).__name__})")


def _cancel(response: DeploymentResponse[Any] | None) -> None:
    """Cancel a request, best effort (Ray may be gone already)."""
    if response is None:
        return
    try:
        response.cancel()
    except Exception as exc:  # noqa: BLE001 - the failure being handled matters more
        log.debug("cancelling a Ray Serve request failed: %r", exc)


def remote(method: DeploymentHandle, *args: Any) -> DeploymentResponse[Any]:
    """``method.remote(*args)``: a non-streaming call, so always a DeploymentResponse."""
    return cast("DeploymentResponse[Any]", method.remote(*args))


def call_sync(
    send: Callable[[], DeploymentResponse[T]],
    timeout_s: float,
    error: type[EngineError],
    what: str,
) -> T:
    """Send a request and wait for its result in this (non-event-loop) thread."""
    response: DeploymentResponse[T] | None = None
    try:
        response = send()
        return response.result(timeout_s=timeout_s)
    except Exception as exc:
        _cancel(response)
        raise _typed(exc, error, what) from exc


async def call_async(
    send: Callable[[], DeploymentResponse[T]],
    timeout_s: float,
    error: type[EngineError],
    what: str,
) -> T:
    """Send a request and await its result; cancelling the caller cancels the request."""
    response: DeploymentResponse[T] | None = None
    try:
        response = send()
        return await _await(response, timeout_s)
    except asyncio.CancelledError:
        _cancel(response)
        raise
    except Exception as exc:
        _cancel(response)
        raise _typed(exc, error, what) from exc


async def _await(response: DeploymentResponse[T], timeout_s: float) -> T:
    async def result() -> T:
        return await response

    return await asyncio.wait_for(result(), timeout_s)


class RaySpeechRecognizer:
    """Speech recognition on the ``stt`` deployment, called like ``SpeechRecognizer``."""

    def __init__(self, handle: DeploymentHandle, config: SttConfig, timeout_s: float) -> None:
        self._handle = handle
        self._config = config
        self._timeout_s = timeout_s

    @property
    def sample_rate(self) -> int:
        """Rate of the PCM :meth:`transcribe` expects (16000)."""
        return STT_SAMPLE_RATE

    def check(self, pcm: FloatAudio, sample_rate: int = STT_SAMPLE_RATE) -> FloatAudio:
        """Validated float32 mono copy of ``pcm`` (InvalidAudioError at once, no request)."""
        return check_utterance(pcm, sample_rate, self._config.max_utterance_s)

    def transcribe(
        self, pcm: FloatAudio, sample_rate: int = STT_SAMPLE_RATE, *, prompt: str = ""
    ) -> Transcript:
        """Transcribe one utterance; blocks, so call it from a worker thread."""
        audio = self.check(pcm, sample_rate)
        return call_sync(
            partial(remote, self._handle.transcribe, audio, sample_rate, prompt),
            self._timeout_s,
            STTError,
            "speech recognition",
        )

    async def atranscribe(
        self,
        pcm: FloatAudio,
        sample_rate: int = STT_SAMPLE_RATE,
        *,
        prompt: str = "",
        partial: bool = False,
    ) -> Transcript:
        """Transcribe one utterance without blocking the event loop (``partial``: a pass
        over speech still going on, which yields to other utterances in the replica)."""
        audio = self.check(pcm, sample_rate)
        return await call_async(
            functools.partial(remote, self._handle.transcribe, audio, sample_rate, prompt, partial),
            self._timeout_s,
            STTError,
            "speech recognition",
        )


class RayTextToSpeech:
    """Speech synthesis on the ``tts`` deployment, a ``TextToSpeech``.

    Each sentence is one request (the replica returns its ``Speech`` chunks, phoneme
    timelines included); ``stream`` keeps ``max_ahead`` sentences in flight.
    """

    def __init__(
        self,
        handle: DeploymentHandle,
        config: TtsConfig,
        timeout_s: float,
        *,
        max_ahead: int = 2,
    ) -> None:
        self._handle = handle
        self._config = config
        self._timeout_s = timeout_s
        self._max_ahead = max(1, max_ahead)
        self._sample_rate: int = call_sync(
            partial(remote, handle.sample_rate), timeout_s, TTSError, "asking the voice's rate"
        )

    @property
    def sample_rate(self) -> int:
        """Rate of the PCM the served voice produces."""
        return self._sample_rate

    def synthesize(self, text: str) -> Iterator[Speech]:
        """Synthesize ``text`` sentence by sentence; blocks, so call it from a thread.

        Raises InvalidTextError at once for empty or too long text, TTSError while
        iterating when a request fails.
        """
        clean = check_text(text, self._config.max_text_chars)
        return self._synthesize(split_sentences(clean))

    def _synthesize(self, sentences: list[str]) -> Iterator[Speech]:
        for sentence in sentences:
            yield from call_sync(
                partial(remote, self._handle.synthesize, sentence),
                self._timeout_s,
                TTSError,
                "speech synthesis",
            )

    def stream(self, text: str) -> AsyncGenerator[Speech, None]:
        """Yield each sentence's speech as soon as it is back, the next ones in flight.

        Closing or cancelling the iterator cancels the requests still in flight.
        Raises InvalidTextError at once for empty or too long text.
        """
        clean = check_text(text, self._config.max_text_chars)
        return self._stream(split_sentences(clean))

    async def _stream(self, sentences: list[str]) -> AsyncGenerator[Speech, None]:
        todo = iter(sentences)
        pending: deque[DeploymentResponse[list[Speech]]] = deque()
        try:
            for sentence in itertools.islice(todo, self._max_ahead):
                pending.append(self._send(sentence))
            while pending:
                response = pending[0]
                try:
                    chunks = await _await(response, self._timeout_s)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    raise _typed(exc, TTSError, "speech synthesis") from exc
                pending.popleft()
                following = next(todo, None)
                if following is not None:
                    pending.append(self._send(following))
                for chunk in chunks:
                    yield chunk
        finally:
            for response in pending:
                _cancel(response)

    def _send(self, sentence: str) -> DeploymentResponse[list[Speech]]:
        try:
            return remote(self._handle.synthesize, sentence)
        except Exception as exc:
            raise _typed(exc, TTSError, "speech synthesis") from exc


class RayRenderer:
    """Frames of one avatar rendered on the ``render`` deployment, a ``Renderer``.

    ``render`` blocks its calling thread (the session's render executor) until the
    frame is back; the deployment batches frames arriving from many sessions. A
    frame that fails or takes over ``timeout_s`` is rendered locally instead (the
    local renderer is built on first need).
    """

    def __init__(
        self,
        handle: DeploymentHandle,
        bundle: Path | None,
        size: tuple[int, int],
        local: Callable[[], Renderer],
        timeout_s: float,
    ) -> None:
        self._handle = handle
        self._bundle = str(bundle) if bundle is not None else None
        self.size: tuple[int, int] = (int(size[0]), int(size[1]))
        self._make_local = local
        self._local: Renderer | None = None
        self._lock = threading.Lock()
        self._timeout_s = timeout_s
        self._local_until = 0.0
        self.remote_frames = 0
        self.local_frames = 0

    def render(self, state: AvatarState) -> npt.NDArray[np.uint8]:
        """One H×W×3 uint8 RGB frame (from Ray, or locally while Ray is failing)."""
        return self.render_batch([state])[0]

    def render_batch(self, states: Sequence[AvatarState]) -> list[npt.NDArray[np.uint8]]:
        """Frames for several states, in order (sent at once: the replica batches them)."""
        if time.monotonic() < self._local_until:
            return self._render_locally(states)
        responses: list[Any] = []
        try:
            responses = [remote(self._handle.render, self._bundle, self.size, s) for s in states]
            deadline = time.monotonic() + self._timeout_s
            frames = [r.result(timeout_s=max(0.0, deadline - time.monotonic())) for r in responses]
        except Exception as exc:  # noqa: BLE001 - any Ray failure: render here instead
            for r in responses:
                _cancel(r)
            log.warning(
                "rendering on Ray Serve failed (%r); rendering locally for %.0f s",
                exc,
                LOCAL_AFTER_FAILURE_S,
            )
            self._local_until = time.monotonic() + LOCAL_AFTER_FAILURE_S
            return self._render_locally(states)
        with self._lock:
            self.remote_frames += len(frames)
        return frames

    def _render_locally(self, states: Sequence[AvatarState]) -> list[npt.NDArray[np.uint8]]:
        with self._lock:
            if self._local is None:
                self._local = self._make_local()
            local = self._local
            self.local_frames += len(states)
        return local.render_batch(states)
