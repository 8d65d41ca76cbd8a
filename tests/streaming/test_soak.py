"""Soak and load on loopback with real aiortc clients and real models.

Soak: three clients hold conversations (text turns and a few voice turns), hang up
(with and without DELETE) and reconnect for a minute and a quarter; nothing may leak.
Load: more clients than the cap; the extra ones are refused at once while the admitted
sessions keep their frame rate and still answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from aiohttp.test_utils import TestServer

from streaming.client import ClientPeer
from streaming.config import AppConfig
from streaming.engines import Engines
from streaming.server import STATE_KEY, create_app

SOAK_S = float(os.environ.get("GWM_SOAK_S", "75"))
TEXTS = ["Say hello.", "What is two plus two?", "Name a fruit.", "What color is grass?"]


def _rss_mb() -> float:
    """Resident memory after returning free heap pages to the OS.

    glibc keeps freed memory in per-thread arenas; without a trim, RSS measures the
    allocator's high-water mark (noise of ±100 MB here) rather than live memory.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def _server(
    base: AppConfig, engines: Engines, db: Path, max_sessions: int
) -> AsyncIterator[TestServer]:
    cfg = base.model_copy(deep=True)
    cfg.server.max_sessions = max_sessions
    cfg.server.database_url = f"sqlite:///{db}"
    srv = TestServer(create_app(cfg, engines=engines), host="127.0.0.1", port=0)
    await srv.start_server()
    yield srv
    await srv.close()


@pytest.fixture
async def soak_server(
    service_config: AppConfig, engines: Engines, tmp_path: Path
) -> AsyncIterator[TestServer]:
    """A server for three sessions."""
    async for srv in _server(service_config, engines, tmp_path / "soak.db", 3):
        yield srv


@pytest.fixture
async def capped_server(
    service_config: AppConfig, engines: Engines, tmp_path: Path
) -> AsyncIterator[TestServer]:
    """A server capped at two sessions."""
    async for srv in _server(service_config, engines, tmp_path / "load.db", 2):
        yield srv


def _url(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


async def _call(url: str, turns: list[str | np.ndarray], errors: list[str], delete: bool) -> int:
    """One call: connect, hold the turns (text or 48 kHz speech), hang up. Returns turns done."""
    peer = ClientPeer(url, keep_video=False)
    done = 0
    t0 = time.monotonic()
    # A peer that left without DELETE holds its slot until the server notices: retry a
    # 503 for a while, as a client honouring Retry-After would.
    while (refused := await peer.connect()) is not None:
        await peer.close()
        if refused.status != 503 or time.monotonic() - t0 > 20:
            errors.append(f"refused {refused.status}")
            return 0
        await asyncio.sleep(0.5)
        peer = ClientPeer(url, keep_video=False)
    try:
        await peer.wait_open()
        for turn in turns:
            if isinstance(turn, str):
                peer.send({"type": "text", "text": turn})
            else:
                peer.mic.say(turn)
            try:
                await peer.wait_event("turn_metrics", 90)
            except TimeoutError:
                kind = "text" if isinstance(turn, str) else "voice"
                states = [e["state"] for e in peer.received.events_of("state")][-4:]
                errors.append(f"no answer to {kind} turn {done + 1} (states {states})")
                break
            done += 1
        errors.extend(f"{e['code']}: {e['message']}" for e in peer.received.events_of("error"))
    finally:
        await peer.hangup(delete=delete)
    return done


async def _settled(server: TestServer, timeout: float = 15.0) -> None:
    t = time.monotonic()
    while server.app[STATE_KEY].sessions and time.monotonic() - t < timeout:
        await asyncio.sleep(0.1)
    assert not server.app[STATE_KEY].sessions, "sessions left open"


def _session_tasks() -> list[str]:
    return [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("session-")]


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_soak_three_clients_hanging_up_and_reconnecting_leak_nothing(
    soak_server: TestServer, speak
) -> None:
    url = _url(soak_server)
    errors: list[str] = []
    voice = speak("What is the capital of France?")
    # Warm up every path once (lazy pools, codecs, caches), then take the baseline.
    await asyncio.gather(
        _call(url, ["Hi!", voice], errors, delete=True),
        *(_call(url, ["Hi!"], errors, delete=True) for _ in range(2)),
    )
    await _settled(soak_server)
    rss0, fds0 = _rss_mb(), _fds()
    threads0 = {t.name for t in threading.enumerate()}
    tasks0 = len(asyncio.all_tasks())

    deadline = time.monotonic() + SOAK_S
    calls = [0, 0, 0]
    turns = [0, 0, 0]

    async def client(i: int) -> None:
        k = 0
        while time.monotonic() < deadline:
            plan: list[str | np.ndarray] = [TEXTS[(i + k) % len(TEXTS)], TEXTS[(i + k + 1) % 4]]
            if (i + k) % 3 == 0:
                plan.append(voice)
            turns[i] += await _call(url, plan, errors, delete=k % 2 == 0)
            calls[i] += 1
            k += 1

    await asyncio.gather(*(client(i) for i in range(3)))
    await _settled(soak_server)
    await asyncio.sleep(1.0)

    assert not errors, errors
    assert min(calls) >= 2 and sum(turns) >= 12, (calls, turns)
    assert _rss_mb() - rss0 < 150, (rss0, _rss_mb())
    assert not _session_tasks(), _session_tasks()
    assert len(asyncio.all_tasks()) <= tasks0 + 2, [t.get_name() for t in asyncio.all_tasks()]
    leaked = [
        t.name
        for t in threading.enumerate()
        if t.name not in threads0 and not t.name.startswith(("ThreadPoolExecutor", "asyncio"))
    ]
    assert not leaked, leaked
    assert _fds() <= fds0 + 8, (fds0, _fds())


@pytest.mark.timeout(180)
async def test_over_the_cap_clients_are_refused_fast_while_admitted_ones_keep_25_fps(
    capped_server: TestServer,
) -> None:
    url = _url(capped_server)
    admitted = [ClientPeer(url, keep_video=False) for _ in range(2)]
    extra = [ClientPeer(url, keep_video=False) for _ in range(4)]
    try:
        for p in admitted:
            assert await p.connect() is None
            await p.wait_open()
        await asyncio.sleep(1.0)
        t0 = time.monotonic()
        for p in admitted:
            p.send({"type": "text", "text": "Tell me one fact about the moon."})

        async def knock(p: ClientPeer) -> tuple[int, float]:
            t = time.monotonic()
            resp = await p.connect()
            assert resp is not None
            return resp.status, time.monotonic() - t

        knocks = await asyncio.gather(*(knock(p) for p in extra))
        finals = [
            await p.wait_event("assistant_text", 90, pred=lambda m: m["final"]) for p in admitted
        ]
        t1 = time.monotonic()
    finally:
        for p in admitted + extra:
            await p.hangup(delete=p in admitted)
    assert all(status == 503 for status, _ in knocks), knocks
    assert max(s for _, s in knocks) < 1.0, knocks
    for p, final in zip(admitted, finals, strict=True):
        assert final["text"].strip()
        times = [t for t, _ in p.received.video if t0 <= t <= t1]
        fps = (len(times) - 1) / (times[-1] - times[0])
        assert fps >= 20, fps
