"""An echo session with a GWM Avatars service: one aiortc peer, as any WebRTC client.

The caller's outbound audio (:class:`~gwm_avatars_pipecat.speech_track.SpeechTrack`) is
the avatar's speech; the service returns it on its audio track, with the face
animated to it on its video track, a small fixed look-ahead later. The ``events``
data channel carries ``interrupt`` (drop the buffered speech) and ``speak`` one way,
``state`` and ``error`` the other. :meth:`EchoSession.audio` and
:meth:`EchoSession.video` yield what comes back with its media time; both raise
:class:`SessionLostError` when the service goes away (the call ends, or no media
arrives for ``media_timeout_s``), so a dead service never leaves a reader waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import av
from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from loguru import logger

from gwm_avatars_pipecat.audio import I16, frame_mono_int16
from gwm_avatars_pipecat.config import SessionOptions
from gwm_avatars_pipecat.speech_track import SpeechTrack


class AvatarSessionError(RuntimeError):
    """The echo session could not be opened (unreachable, refused, timed out)."""


class SessionLostError(AvatarSessionError):
    """The echo session ended while in use (the service went away or stopped sending)."""


@dataclass(frozen=True)
class ReceivedAudio:
    """Audio from the service: 48 kHz mono int16, starting ``media_s`` into its stream."""

    pcm: I16
    media_s: float


@dataclass(frozen=True)
class ReceivedImage:
    """A video frame from the service: packed RGB, shown ``media_s`` into its stream."""

    rgb: bytes
    width: int
    height: int
    media_s: float


def ice_configuration(servers: list[dict[str, Any]]) -> RTCConfiguration:
    """aiortc's configuration from browser-shaped ``RTCIceServer`` dicts."""
    return RTCConfiguration(
        iceServers=[
            RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
            for s in servers
        ]
    )


async def _error_message(resp: aiohttp.ClientResponse) -> str:
    """``status code: message`` from the service's JSON error, else the HTTP reason."""
    try:
        body = await resp.json()
        error = body["error"]
        return f"{resp.status} {error['code']}: {error['message']}"
    except (aiohttp.ContentTypeError, ValueError, KeyError, TypeError):
        return f"{resp.status} {resp.reason}"


class EchoSession:
    """One echo session: open it, feed it speech, read back audio and video, close it."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        avatar: str | None = None,
        voice: str | None = None,
        ice_servers: list[dict[str, Any]] | None = None,
        options: SessionOptions | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.avatar = avatar
        self.voice = voice
        self.options = options or SessionOptions()
        self.track = SpeechTrack()
        self.session_id: str | None = None
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._ice_servers = ice_servers
        self._pc: RTCPeerConnection | None = None
        self._channel: RTCDataChannel | None = None
        self._remote: dict[str, asyncio.Future[MediaStreamTrack]] = {}
        self._events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._closed = False

    @property
    def closed(self) -> bool:
        """:meth:`close` was called."""
        return self._closed

    async def open(self) -> None:
        """Offer, ``POST /v1/sessions`` (mode echo), connect; within ``connect_timeout_s``."""
        try:
            async with asyncio.timeout(self.options.connect_timeout_s):
                await self._open()
        except TimeoutError:
            await self.close()
            raise AvatarSessionError(
                f"no echo session with {self.url} within {self.options.connect_timeout_s:g} s"
            ) from None
        except aiohttp.ClientError as exc:
            await self.close()
            raise AvatarSessionError(
                f"cannot reach the avatar service at {self.url}: {exc}"
            ) from exc
        except AvatarSessionError:
            await self.close()
            raise

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        self._remote = {"audio": loop.create_future(), "video": loop.create_future()}
        async with aiohttp.ClientSession(headers=self._headers) as http:
            servers = self._ice_servers
            if servers is None:
                servers = await self._fetch_ice_servers(http)
            pc = self._pc = RTCPeerConnection(ice_configuration(servers))
            channel = self._channel = pc.createDataChannel("events")
            opened = asyncio.Event()
            channel.on("open", opened.set)
            channel.on("message", self._on_message)
            pc.on("track", self._on_track)
            pc.addTrack(self.track)
            pc.addTransceiver("video", direction="recvonly")
            await pc.setLocalDescription(await pc.createOffer())
            body: dict[str, Any] = {"sdp": pc.localDescription.sdp, "type": "offer", "mode": "echo"}
            if self.avatar is not None:
                body["avatar"] = self.avatar
            if self.voice is not None:
                body["voice"] = self.voice
            async with http.post(f"{self.url}/v1/sessions", json=body) as resp:
                if resp.status != 201:
                    raise AvatarSessionError(
                        f"POST /v1/sessions refused: {await _error_message(resp)}"
                    )
                answer = await resp.json()
        self.session_id = str(answer["session_id"])
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        await opened.wait()
        await asyncio.gather(*self._remote.values())
        logger.info(f"echo session {self.session_id} open with {self.url}")

    async def _fetch_ice_servers(self, http: aiohttp.ClientSession) -> list[dict[str, Any]]:
        async with http.get(f"{self.url}/v1/ice-servers") as resp:
            if resp.status != 200:
                raise AvatarSessionError(
                    f"GET /v1/ice-servers refused: {await _error_message(resp)}"
                )
            servers = (await resp.json()).get("ice_servers")
        if not isinstance(servers, list):
            raise AvatarSessionError("GET /v1/ice-servers: the answer has no ice_servers list")
        return servers

    def _on_track(self, track: MediaStreamTrack) -> None:
        fut = self._remote.get(track.kind)
        if fut is not None and not fut.done():
            fut.set_result(track)

    def _on_message(self, raw: str | bytes) -> None:
        try:
            msg = json.loads(raw)
        except ValueError:
            logger.warning(f"echo session {self.session_id}: a non-JSON event: {raw[:80]!r}")
            return
        if isinstance(msg, dict):
            self._events.put_nowait(msg)

    def send_speech(self, pcm: I16) -> None:
        """Queue speech (48 kHz mono int16) on the outbound track."""
        self.track.push(pcm)

    def interrupt(self) -> None:
        """Drop the speech queued here and, with ``interrupt``, what the service buffered."""
        self.track.clear()
        self._send({"type": "interrupt"})

    def speak(self, text: str) -> None:
        """Ask the service to speak ``text`` with its own voice (phoneme-exact mouth)."""
        self._send({"type": "speak", "text": text})

    def _send(self, msg: dict[str, Any]) -> None:
        channel = self._channel
        if channel is not None and channel.readyState == "open":
            channel.send(json.dumps(msg))

    async def _frames(self, kind: str) -> AsyncIterator[av.AudioFrame | av.VideoFrame]:
        """The remote track's frames; :class:`SessionLostError` when they stop."""
        track = await self._remote[kind]
        while True:
            try:
                async with asyncio.timeout(self.options.media_timeout_s):
                    frame = await track.recv()
            except TimeoutError:
                if self._closed:
                    return
                raise SessionLostError(
                    f"no {kind} from the avatar service for {self.options.media_timeout_s:g} s"
                ) from None
            except MediaStreamError:
                if self._closed:
                    return
                raise SessionLostError(f"the avatar service ended the {kind} track") from None
            if isinstance(frame, (av.AudioFrame, av.VideoFrame)):
                yield frame

    async def audio(self) -> AsyncIterator[ReceivedAudio]:
        """The avatar's speech as it arrives (silence included), until the session closes."""
        clock = _TrackClock()
        async for frame in self._frames("audio"):
            assert isinstance(frame, av.AudioFrame)
            yield ReceivedAudio(frame_mono_int16(frame), clock.seconds(frame))

    async def video(self) -> AsyncIterator[ReceivedImage]:
        """The avatar's face as it arrives, until the session closes."""
        clock = _TrackClock()
        async for frame in self._frames("video"):
            assert isinstance(frame, av.VideoFrame)
            rgb = frame.to_ndarray(format="rgb24")
            yield ReceivedImage(rgb.tobytes(), frame.width, frame.height, clock.seconds(frame))

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """The service's events (``state``, ``error``, ...) until the session closes."""
        while True:
            msg = await self._events.get()
            if msg is None:
                return
            yield msg

    async def close(self) -> None:
        """Hang up (``DELETE /v1/sessions/{id}``, best effort) and close the peer."""
        if self._closed:
            return
        self._closed = True
        self._events.put_nowait(None)
        if self.session_id is not None:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with (
                    asyncio.timeout(self.options.hangup_timeout_s),
                    aiohttp.ClientSession(headers=self._headers) as http,
                    http.delete(f"{self.url}/v1/sessions/{self.session_id}"),
                ):
                    pass
        self.track.stop()
        if self._pc is not None:
            await self._pc.close()
        for fut in self._remote.values():
            fut.cancel()
        logger.info(f"echo session {self.session_id} closed")


class _TrackClock:
    """A received track's media time: seconds since its first frame, from the frames'
    timestamps (0 where a frame has no time base)."""

    def __init__(self) -> None:
        self._first: int | None = None

    def seconds(self, frame: av.AudioFrame | av.VideoFrame) -> float:
        """The media time of ``frame``."""
        pts = int(frame.pts or 0)
        if self._first is None:
            self._first = pts
        return float((pts - self._first) * frame.time_base) if frame.time_base else 0.0
