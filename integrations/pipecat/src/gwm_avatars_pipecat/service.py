"""``GWMAvatarVideoService``: GWM Avatars as the face of a pipecat agent.

Put it after the TTS, before the output transport::

    Pipeline([transport.input(), stt, user_agg, llm, tts,
              GWMAvatarVideoService(url=..., api_key=...),
              transport.output(), assistant_agg])

It opens an echo session while the pipeline is set up, sends the TTS audio
(``TTSAudioRawFrame``, resampled to 48 kHz) into it and pushes downstream what the
service returns: the same speech as ``SpeechOutputAudioRawFrame`` (the TTS audio is
not passed on as well) and the face as ``OutputImageRawFrame``, so the transport plays
sound and picture together. Both carry ``pts`` on the pipeline clock (one timeline:
each stream's media time plus its smallest arrival delay). An
``InterruptionFrame`` drops the speech buffered here and at the service. ``EndFrame``
waits for the buffered speech to come back, then hangs up; ``CancelFrame`` hangs up
at once. A session that cannot be opened, or that is lost, is an ``ErrorFrame``
(pushed upstream, the processor marked unusable); from then on the TTS audio is
passed on unchanged, so the agent keeps its voice without its face.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any

import numpy as np
from loguru import logger
from pipecat.audio.utils import create_stream_resampler
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InterruptionFrame,
    OutputImageRawFrame,
    SpeechOutputAudioRawFrame,
    StartFrame,
    TTSAudioRawFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessorSetup
from pipecat.services.ai_service import AIService
from pipecat.services.settings import ServiceSettings

from gwm_avatars_pipecat.audio import mono_int16
from gwm_avatars_pipecat.config import RATE, SessionOptions
from gwm_avatars_pipecat.session import AvatarSessionError, EchoSession

_NS = 1_000_000_000
RECEIVE_HOLD_NS = {"audio": 60_000_000, "video": 40_000_000}
"""How long aiortc's receive jitter buffers hold a frame back: audio until 4 packets of
20 ms are in (the first waits for 3 more), video until the next frame starts."""


class GWMAvatarVideoService(AIService):
    """Lip-synced video (and the synchronized speech) for the pipeline's TTS audio."""

    def __init__(
        self,
        *,
        url: str,
        api_key: str | None = None,
        avatar: str | None = None,
        voice: str | None = None,
        ice_servers: list[dict[str, Any]] | None = None,
        options: SessionOptions | None = None,
        **kwargs: Any,
    ) -> None:
        """Args:
        url: the avatar service, e.g. ``http://127.0.0.1:8080``.
        api_key: sent as ``Authorization: Bearer``; None where the service needs none.
        avatar: an avatar id (``default``, or one uploaded with ``POST /v1/avatars``).
        voice: the service's voice for ``say()`` (its own TTS).
        ice_servers: browser-shaped STUN/TURN servers; None: ask the service.
        options: timeouts (:class:`~gwm_avatars_pipecat.config.SessionOptions`).
        **kwargs: passed to pipecat's ``AIService``.
        """
        super().__init__(settings=ServiceSettings(model=None), **kwargs)
        self._url = url
        self._api_key = api_key
        self._avatar = avatar
        self._voice = voice
        self._ice_servers = ice_servers
        self._options = options or SessionOptions()
        self._session: EchoSession | None = None
        self._open_error: AvatarSessionError | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._forwarding = False
        self._lost = False
        self._out_rate = RATE
        self._to_call = create_stream_resampler()
        self._from_call = create_stream_resampler()
        self._anchors: dict[str, int] = {}
        self._last_loud = 0.0  # time.monotonic() of the last loud audio that came back

    @property
    def session(self) -> EchoSession | None:
        """The open echo session (None before setup, after close, or when it failed)."""
        return self._session

    def can_generate_metrics(self) -> bool:
        """Time to first byte: TTS audio in → its echo out."""
        return True

    async def setup(self, setup: FrameProcessorSetup) -> None:  # type: ignore[override]
        """Open the echo session (pipecat sets processors up concurrently)."""
        await super().setup(setup)
        self._out_rate = setup.audio_out_sample_rate
        session = EchoSession(
            self._url,
            api_key=self._api_key,
            avatar=self._avatar,
            voice=self._voice,
            ice_servers=self._ice_servers,
            options=self._options,
        )
        try:
            await session.open()
        except AvatarSessionError as exc:
            self._open_error = exc  # reported once the pipeline has started
            return
        self._session = session
        self._spawn(self._receive_audio(session))
        self._spawn(self._receive_video(session))
        self._spawn(self._receive_events(session))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self._tasks.append(self.create_task(coro))

    async def start(self, frame: StartFrame) -> None:
        """Report a session that could not be opened."""
        await super().start(frame)
        if self._open_error is not None:
            await self.push_error(
                f"GWM avatar: {self._open_error}",
                exception=self._open_error,
                force_treat_as_permanent=True,
            )

    async def stop(self, frame: EndFrame) -> None:
        """Let the buffered speech play and come back, then hang up."""
        await super().stop(frame)
        session = self._session
        if session is not None and not self._lost:
            try:
                async with asyncio.timeout(self._options.end_timeout_s):
                    await session.track.wait_idle()
            except TimeoutError:
                logger.warning(f"{self}: speech still queued after {self._options.end_timeout_s} s")
            await self._wait_for_the_echo()
        await self._close()

    async def _wait_for_the_echo(self) -> None:
        """At least ``end_tail_s``, then until the echo has been quiet for ``end_quiet_s``
        (or ``end_tail_max_s`` have passed)."""
        opts = self._options
        idle_at = time.monotonic()
        await asyncio.sleep(opts.end_tail_s)
        while not self._lost and time.monotonic() - idle_at < opts.end_tail_max_s:
            quiet_for = time.monotonic() - self._last_loud
            if quiet_for >= opts.end_quiet_s:
                return
            await asyncio.sleep(opts.end_quiet_s - quiet_for)

    async def cancel(self, frame: CancelFrame) -> None:
        """Hang up at once."""
        await super().cancel(frame)
        await self._close()

    async def cleanup(self) -> None:
        """Hang up if still connected (idempotent)."""
        await super().cleanup()
        await self._close()

    async def _close(self) -> None:
        self._forwarding = False
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            await self.cancel_task(task)
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def say(self, text: str) -> None:
        """Have the service speak ``text`` with its own voice (its mouth is phoneme-exact)."""
        if self._session is not None:
            self._session.speak(text)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Send TTS audio to the avatar, clear on interruptions, pass the rest on."""
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame):
            await self.push_frame(frame, direction)
            self._forwarding = True  # returned media goes downstream after the StartFrame
        elif isinstance(frame, TTSAudioRawFrame) and self._active:
            await self._send_speech(frame)
        elif isinstance(frame, InterruptionFrame):
            if self._active:
                assert self._session is not None
                self._session.interrupt()
            await self.push_frame(frame, direction)
        else:
            await self.push_frame(frame, direction)

    @property
    def _active(self) -> bool:
        return self._session is not None and not self._lost

    async def _send_speech(self, frame: TTSAudioRawFrame) -> None:
        assert self._session is not None
        if self._session.track.idle:
            await self.start_ttfb_metrics()
        pcm = mono_int16(frame.audio, frame.num_channels)
        data = await self._to_call.resample(pcm.tobytes(), frame.sample_rate, RATE)
        self._session.send_speech(np.frombuffer(data, dtype=np.int16))

    def _pts(self, kind: str, media_s: float) -> int:
        """``media_s`` into a stream as pipeline clock time.

        The stream's media time plus the smallest (arrival - media time) seen on it so
        far: the path's own latency, which a frame that came late (the first one, while
        the service's encoder starts) does not shift for the rest of the call; less what
        aiortc's receiver holds each kind back (RECEIVE_HOLD_NS), which is not the path's.
        """
        media_ns = round(media_s * _NS)
        offset = self.get_clock().get_time() - media_ns - RECEIVE_HOLD_NS[kind]
        self._anchors[kind] = min(self._anchors.get(kind, offset), offset)
        return self._anchors[kind] + media_ns

    async def _receive_audio(self, session: EchoSession) -> None:
        try:
            async for chunk in session.audio():
                if not self._forwarding:
                    continue
                pts = self._pts("audio", chunk.media_s)
                if np.abs(chunk.pcm).max(initial=0) > self._options.quiet_level:
                    self._last_loud = time.monotonic()
                    await self.stop_ttfb_metrics()
                data = await self._from_call.resample(chunk.pcm.tobytes(), RATE, self._out_rate)
                out = SpeechOutputAudioRawFrame(
                    audio=data, sample_rate=self._out_rate, num_channels=1
                )
                out.pts = pts
                await self.push_frame(out)
        except AvatarSessionError as exc:
            await self._session_lost(exc)

    async def _receive_video(self, session: EchoSession) -> None:
        try:
            async for image in session.video():
                if not self._forwarding:
                    continue
                pts = self._pts("video", image.media_s)
                out = OutputImageRawFrame(
                    image=image.rgb, size=(image.width, image.height), format="RGB"
                )
                out.pts = pts
                await self.push_frame(out)
        except AvatarSessionError as exc:
            await self._session_lost(exc)

    async def _receive_events(self, session: EchoSession) -> None:
        async for event in session.events():
            if event.get("type") == "error":
                await self.push_error(f"GWM avatar service: {event.get('message', event)}")
            else:
                logger.debug(f"{self}: {event}")

    async def _session_lost(self, exc: AvatarSessionError) -> None:
        """Report once; the TTS audio passes through from now on."""
        if self._lost:
            return
        self._lost = True
        await self.push_error(f"GWM avatar: {exc}", exception=exc, force_treat_as_permanent=True)
