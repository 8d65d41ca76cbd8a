"""A Python client for the avatar service: a real aiortc peer, as a browser would be.

Used by the tests and benchmarks (on 127.0.0.1) and usable from scripts: it offers
audio (a fake microphone that plays queued PCM in real time) and receives the
avatar's audio, video and data channel events with their arrival times. ICE servers
(STUN/TURN, browser JSON shape) are given, or fetched from ``GET /v1/ice-servers`` with
:meth:`ClientPeer.from_server`; a relay-only peer whose TURN gives no relay raises
:class:`~streaming.turn.TurnUnavailableError` at once instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import av
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from streaming.turn import TurnUnavailableError, check_turn, has_relay_candidate, rtc_configuration

RATE = 48_000
FRAME = 960  # 20 ms
DIAGNOSE_TIMEOUT_S = 2.0


def _seconds(frame: av.AudioFrame | av.VideoFrame) -> float:
    """A received frame's pts in seconds (nan without one)."""
    if frame.pts is None or frame.time_base is None:
        return float("nan")
    return float(frame.pts * frame.time_base)


class IceServersError(RuntimeError):
    """``GET /v1/ice-servers`` failed (the status and the service's error message)."""


async def fetch_ice_servers(
    base_url: str, headers: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """The service's ICE servers for this caller (``GET /v1/ice-servers``)."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{base_url}/v1/ice-servers", headers=headers or {}) as resp,
    ):
        try:
            data = await resp.json()
        except (aiohttp.ContentTypeError, ValueError):
            data = {}
        if resp.status != 200:
            message = data.get("error", {}).get("message", resp.reason)
            raise IceServersError(f"GET /v1/ice-servers: {resp.status} {message}")
    servers = data.get("ice_servers")
    if not isinstance(servers, list):
        raise IceServersError("GET /v1/ice-servers: the answer has no ice_servers list")
    return servers


class MicTrack(MediaStreamTrack):
    """A fake microphone: plays queued PCM (48 kHz mono float) in real time, else silence."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._queue: list[np.ndarray] = []
        self._buf = np.zeros(0, dtype=np.float32)
        self._k = 0
        self._t0: float | None = None
        self.sent_log: list[tuple[float, int]] = []  # (wall time, start sample) of each clip

    def say(self, pcm48k: np.ndarray) -> None:
        """Queue audio to be 'spoken' after what is queued."""
        self._queue.append(pcm48k.astype(np.float32))

    def hush(self) -> None:
        """Stop at once: drop what is queued and what is playing (the agent was cut off)."""
        self._queue.clear()
        self._buf = np.zeros(0, dtype=np.float32)

    @property
    def idle(self) -> bool:
        """Nothing left to play."""
        return not self._queue and len(self._buf) == 0

    async def recv(self) -> av.AudioFrame:
        if self._t0 is None:
            self._t0 = time.monotonic()
        due = self._t0 + self._k * FRAME / RATE
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(self._buf) < FRAME and self._queue:
            clip = self._queue.pop(0)
            self.sent_log.append((time.monotonic(), self._k * FRAME))
            self._buf = np.concatenate([self._buf, clip])
        chunk = self._buf[:FRAME]
        self._buf = self._buf[FRAME:]
        if len(chunk) < FRAME:
            chunk = np.pad(chunk, (0, FRAME - len(chunk)))
        s16 = (np.clip(chunk, -1, 1) * 32767).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(s16, format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._k * FRAME
        frame.time_base = fractions.Fraction(1, RATE)
        self._k += 1
        return frame


@dataclass
class Received:
    """Everything the client got back, with arrival times (time.monotonic())."""

    audio: list[tuple[float, np.ndarray]] = field(default_factory=list)
    video: list[tuple[float, np.ndarray]] = field(default_factory=list)
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    audio_pts: list[float] = field(default_factory=list)
    """Media time (seconds, the sender's RTP clock from an arbitrary start) of each audio frame."""
    video_pts: list[float] = field(default_factory=list)
    """Media time of each video frame, as ``audio_pts``."""

    def audio_pcm(self) -> np.ndarray:
        """All received audio as 48 kHz mono float."""
        if not self.audio:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate([a for _, a in self.audio])

    def events_of(self, kind: str) -> list[dict[str, Any]]:
        """Events of one type, in order."""
        return [e for _, e in self.events if e.get("type") == kind]


class ClientPeer:
    """Connects to the avatar service like a browser would."""

    def __init__(
        self,
        base_url: str,
        *,
        keep_video: bool = True,
        video_every: int = 1,
        headers: dict[str, str] | None = None,
        ice_servers: list[dict[str, Any]] | None = None,
        relay_only: bool = False,
    ) -> None:
        self.base_url = base_url
        self.headers = dict(headers or {})  # sent on every HTTP call (e.g. Authorization)
        self.mic = MicTrack()
        # Browser-shaped STUN/TURN servers; none: loopback/host candidates only.
        self.ice_servers = list(ice_servers or [])
        self.relay_only = relay_only
        self.pc = RTCPeerConnection(rtc_configuration(self.ice_servers, relay_only=relay_only))
        self.channel = self.pc.createDataChannel("events")
        self.received = Received()
        self.session_id: str | None = None
        self.answer: dict[str, Any] | None = None  # the 201 body of POST /v1/sessions
        self._tasks: list[asyncio.Task[None]] = []
        self._keep_video = keep_video
        self._video_every = video_every
        self._event_waiters: list[
            tuple[str, asyncio.Future[dict[str, Any]], Callable[[dict[str, Any]], bool]]
        ] = []
        self._cursor = 0

        @self.channel.on("message")
        def _on_message(raw: str) -> None:
            msg = json.loads(raw)
            self.received.events.append((time.monotonic(), msg))
            for kind, fut, pred in list(self._event_waiters):
                if msg.get("type") == kind and not fut.done() and pred(msg):
                    fut.set_result(msg)

        @self.pc.on("track")
        def _on_track(track: MediaStreamTrack) -> None:
            self._tasks.append(asyncio.ensure_future(self._drain(track)))

    @classmethod
    async def from_server(
        cls, base_url: str, *, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> ClientPeer:
        """A peer using the ICE servers the service hands out (``GET /v1/ice-servers``)."""
        servers = await fetch_ice_servers(base_url, headers)
        return cls(base_url, headers=headers, ice_servers=servers, **kwargs)

    async def _drain(self, track: MediaStreamTrack) -> None:
        n = 0
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            now = time.monotonic()
            if isinstance(frame, av.AudioFrame):
                arr = frame.to_ndarray().reshape(-1).astype(np.float32) / 32768.0
                if frame.layout.name == "stereo":
                    arr = arr.reshape(-1, 2).mean(axis=1)
                self.received.audio.append((now, arr))
                self.received.audio_pts.append(_seconds(frame))
            elif isinstance(frame, av.VideoFrame):
                n += 1
                keep = self._keep_video and n % self._video_every == 0
                img = frame.to_ndarray(format="rgb24") if keep else np.zeros(0, np.uint8)
                self.received.video.append((now, img))
                self.received.video_pts.append(_seconds(frame))

    async def connect(
        self, *, headers: dict[str, str] | None = None, **request: Any
    ) -> aiohttp.ClientResponse | None:
        """Offer, POST /v1/sessions, apply the answer. Returns the response on failure.

        ``headers`` (e.g. ``Authorization: Bearer <session token>``, ``Origin``) replace
        the peer's own headers for this one request.
        """
        self.pc.addTrack(self.mic)
        self.pc.addTransceiver("video", direction="recvonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        if self.relay_only and not has_relay_candidate(self.pc.localDescription.sdp):
            await self._no_relay()
        body = {"sdp": self.pc.localDescription.sdp, "type": "offer", **request}
        async with aiohttp.ClientSession() as http:
            resp = await http.post(
                f"{self.base_url}/v1/sessions",
                json=body,
                headers=self.headers if headers is None else headers,
            )
            data = await resp.json()
            if resp.status != 201:
                return resp
        self.answer = data
        self.session_id = data["session_id"]
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=data["sdp"], type="answer"))
        return None

    async def _no_relay(self) -> None:
        """Relay-only gathering found no relay: say why (a TURN allocation tells)."""
        try:
            await check_turn(self.ice_servers, timeout_s=DIAGNOSE_TIMEOUT_S)
        except TurnUnavailableError as exc:
            raise TurnUnavailableError(f"relay-only, and no relay candidate: {exc}") from exc
        raise TurnUnavailableError(
            "relay-only, and ICE gathering gave no relay candidate (is a TURN url configured?)"
        )

    async def wait_event(
        self, kind: str, timeout: float, pred: Callable[[dict[str, Any]], bool] = lambda m: True
    ) -> dict[str, Any]:
        """The next event of a type matching ``pred``, after the last one waited for.

        Events are consumed in arrival order: one that arrived before this call but after
        the previously returned event is returned at once.
        """
        events = self.received.events
        for i in range(self._cursor, len(events)):
            msg = events[i][1]
            if msg.get("type") == kind and pred(msg):
                self._cursor = i + 1
                return msg
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._event_waiters.append((kind, fut, pred))
        try:
            msg = await asyncio.wait_for(fut, timeout)
        finally:
            self._event_waiters = [w for w in self._event_waiters if w[1] is not fut]
        self._cursor = next(
            (i + 1 for i in range(len(events) - 1, -1, -1) if events[i][1] is msg), len(events)
        )
        return msg

    def send(self, msg: dict[str, Any]) -> None:
        """Send a message on the events channel."""
        self.channel.send(json.dumps(msg))

    async def wait_open(self, timeout: float = 10.0) -> None:
        """Wait until the data channel is open."""
        t = time.monotonic()
        while self.channel.readyState != "open":
            if time.monotonic() - t > timeout:
                raise TimeoutError("data channel did not open")
            await asyncio.sleep(0.02)

    async def hangup(self, *, delete: bool = True) -> None:
        """DELETE the session (optionally) and close the peer."""
        if delete and self.session_id:
            async with aiohttp.ClientSession() as http:
                await http.delete(
                    f"{self.base_url}/v1/sessions/{self.session_id}", headers=self.headers
                )
        await self.close()

    async def close(self) -> None:
        """Close the peer connection and stop the receivers."""
        await self.pc.close()
        for t in self._tasks:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
