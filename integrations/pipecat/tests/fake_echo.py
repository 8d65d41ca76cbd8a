"""A stand-in echo service for the plugin's fast tests: the API shape, not the avatar.

It speaks the echo-session protocol of ``POST /v1/sessions`` over real aiortc peers on
127.0.0.1: the caller's audio comes back on the audio track (20 ms frames on its own
clock, played from a 120 ms buffer; silence when there is none), and the video track
(25 fps, 32×32, on the same media clock) is grey with a brightness that follows the
loudness of the audio frame at its media time, a "mouth" that a test can read from one
pixel. ``interrupt`` drops
the buffered audio. The real service is tested in test_with_service.py; this one lets
the plugin's plumbing (timestamps, alignment, interruptions, a service that dies) be
tested in seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import time
from collections import deque
from typing import Any

import av
import numpy as np
from aiohttp import web
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

RATE = 48_000
FRAME = 960
FPS = 25
SIZE = 32


PREFILL = RATE * 120 // 1000
"""The stand-in starts playing once this much has come in (its jitter buffer)."""


class _Shared:
    """One media clock for both tracks, and the loudness of each audio frame sent."""

    def __init__(self) -> None:
        self.buffer: deque[np.int16] = deque()
        self.playing = False
        self.t0: float | None = None
        self.levels: list[float] = []
        self.new_level = asyncio.Event()

    def start(self) -> float:
        """The clock's start: the first frame either track is asked for."""
        if self.t0 is None:
            self.t0 = time.monotonic()
        return self.t0


class _EchoAudio(MediaStreamTrack):
    kind = "audio"

    def __init__(self, shared: _Shared) -> None:
        super().__init__()
        self._shared = shared
        self._k = 0

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        delay = self._shared.start() + self._k * FRAME / RATE - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        buf = self._shared.buffer
        self._shared.playing = self._shared.playing or len(buf) >= PREFILL
        n = min(FRAME, len(buf)) if self._shared.playing else 0
        pcm = np.zeros(FRAME, dtype=np.int16)
        pcm[:n] = [buf.popleft() for _ in range(n)]
        self._shared.levels.append(float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) / 32768)
        self._shared.new_level.set()
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._k * FRAME
        frame.time_base = fractions.Fraction(1, RATE)
        self._k += 1
        return frame


class _Face(MediaStreamTrack):
    kind = "video"

    def __init__(self, shared: _Shared) -> None:
        super().__init__()
        self._shared = shared
        self._k = 0

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        delay = self._shared.start() + self._k / FPS - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        # frame k shows the audio frame at its media time (one clock, as the service)
        shared, at = self._shared, self._k * RATE // FPS // FRAME
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.5):
                while len(shared.levels) <= at:
                    shared.new_level.clear()
                    await shared.new_level.wait()
        level = shared.levels[min(at, len(shared.levels) - 1)] if shared.levels else 0.0
        grey = int(np.clip(40 + 2000 * level, 0, 255))
        img = np.full((SIZE, SIZE, 3), grey, dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = self._k * 90_000 // FPS
        frame.time_base = fractions.Fraction(1, 90_000)
        self._k += 1
        return frame


class FakeEchoService:
    """``start()`` it, use ``url``, ``stop()`` it (or ``kill()``: vanish mid-call)."""

    def __init__(self, api_key: str | None = None) -> None:
        self.api_key = api_key
        self.url = ""
        self.events: list[dict[str, Any]] = []
        self._pcs: list[RTCPeerConnection] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/healthz", self._health)
        app.router.add_get("/v1/ice-servers", self._ice)
        app.router.add_post("/v1/sessions", self._session)
        app.router.add_delete("/v1/sessions/{sid}", self._hangup)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    def _authorized(self, request: web.Request) -> bool:
        return self.api_key is None or (
            request.headers.get("Authorization") == f"Bearer {self.api_key}"
        )

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def _ice(self, request: web.Request) -> web.Response:
        return web.json_response({"ice_servers": [], "ttl_s": 0})

    async def _hangup(self, request: web.Request) -> web.Response:
        return web.json_response({}, status=200)

    async def _session(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response(
                {"error": {"code": "unauthorized", "message": "a valid API key is needed"}},
                status=401,
            )
        body = await request.json()
        if body.get("mode") != "echo":
            return web.json_response(
                {"error": {"code": "bad_mode", "message": "only echo here"}}, status=400
            )
        shared = _Shared()
        pc = RTCPeerConnection()
        self._pcs.append(pc)

        @pc.on("datachannel")
        def _channel(channel: Any) -> None:
            @channel.on("message")
            def _message(raw: str) -> None:
                msg = json.loads(raw)
                self.events.append(msg)
                if msg.get("type") in ("interrupt", "clear"):
                    shared.buffer.clear()
                    shared.playing = False

        @pc.on("track")
        def _track(track: MediaStreamTrack) -> None:
            if track.kind == "audio":
                self._tasks.append(asyncio.ensure_future(self._listen(track, shared)))

        await pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type="offer"))
        pc.addTrack(_EchoAudio(shared))
        pc.addTrack(_Face(shared))
        for t in pc.getTransceivers():
            if t.kind == "audio":
                t.direction = "sendrecv"
        await pc.setLocalDescription(await pc.createAnswer())
        return web.json_response(
            {
                "session_id": f"fake{len(self._pcs)}",
                "sdp": pc.localDescription.sdp,
                "type": "answer",
                "ice_servers": [],
            },
            status=201,
        )

    async def _listen(self, track: MediaStreamTrack, shared: _Shared) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            arr = frame.to_ndarray().reshape(-1)
            if len(frame.layout.channels) == 2:
                arr = arr.reshape(-1, 2).mean(axis=1).astype(np.int16)
            shared.buffer.extend(arr.tolist())

    async def kill(self) -> None:
        """Vanish, as a killed process does: no more media, no goodbye, no HTTP."""
        for pc in self._pcs:
            for sender in pc.getSenders():
                if sender.track is not None:
                    sender.track.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def stop(self) -> None:
        """Close everything (at the end of a test)."""
        await self.kill()
        for task in self._tasks:
            task.cancel()
        for pc in self._pcs:
            with contextlib.suppress(Exception):
                await pc.close()
