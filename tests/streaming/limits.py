"""Helpers for the auth, limits, avatar-upload and fuzz tests: a server with its own config."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

from aiohttp.test_utils import TestServer
from aiortc import RTCPeerConnection

from streaming.client import ClientPeer
from streaming.config import AppConfig, ServerConfig
from streaming.engines import Engines
from streaming.server import create_app


@contextlib.asynccontextmanager
async def custom_server(
    base: AppConfig, engines: Engines, *, sections: dict[str, Any] | None = None, **server: Any
) -> AsyncIterator[TestServer]:
    """A server on 127.0.0.1 sharing the loaded engines, with ``server.<field>`` overrides
    and whole other config ``sections`` replaced (e.g. ``{"ice": IceConfig(...)}``)."""
    fields = base.server.model_dump() | server
    update = {**(sections or {}), "server": ServerConfig.model_validate(fields)}
    config = base.model_copy(update=update)
    # Sessions read their limits from the engines' config: share the models, not the config.
    own = dataclasses.replace(engines, config=config)
    srv = TestServer(create_app(config, engines=own), host="127.0.0.1", port=0)
    await srv.start_server()
    try:
        yield srv
    finally:
        await srv.close()
        # Shared engines: forget this server's upload folder again.
        root = config.server.avatars_dir
        if root is not None and root in engines.avatar_dirs:
            engines.avatar_dirs.remove(root)


def base_url(server: TestServer) -> str:
    """``http://127.0.0.1:<port>``."""
    return str(server.make_url("")).rstrip("/")


async def offer_sdp(audio: str = "sendrecv") -> str:
    """A real SDP offer from an aiortc peer (audio in ``audio`` direction, video recvonly)."""
    pc = RTCPeerConnection()
    try:
        pc.addTransceiver("audio", direction=audio)
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        return pc.localDescription.sdp
    finally:
        await pc.close()


async def wait_frames(peer: ClientPeer, count: int, timeout: float = 15.0) -> None:
    """Wait until ``peer`` has received ``count`` video frames."""
    deadline = asyncio.get_running_loop().time() + timeout
    while len(peer.received.video) < count:
        assert asyncio.get_running_loop().time() < deadline, (
            f"only {len(peer.received.video)} of {count} video frames in {timeout:.0f}s"
        )
        await asyncio.sleep(0.05)
