"""Faults with real components on 127.0.0.1: a broken or stalled LLM server, a failing
TTS stage, a data channel flood, a peer that vanishes and one that never connects.

The LLM is the real ``openai`` backend pointed at a tiny OpenAI-compatible server in
the test whose behaviour each test switches (close at once, stall, answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from aiohttp.test_utils import TestServer

from models.llm import OpenAIChatLLM
from models.tts import create_tts
from streaming.client import ClientPeer
from streaming.config import AppConfig
from streaming.engines import Engines
from streaming.server import STATE_KEY, create_app

pytestmark = pytest.mark.timeout(180)

FALLBACK = "Sorry, I lost my train of thought. Could you say that again?"
ANSWER = "Two plus two is four."
LONG_CLAUSE = " ".join(["blah"] * 60)  # one 300-character clause: over the TTS limit below
LOUD = 0.02


class FakeLLMServer:
    """An OpenAI-compatible endpoint whose ``mode`` is ``close``, ``stall`` or ``answer``."""

    def __init__(self) -> None:
        self.mode = "answer"
        self.reply = ANSWER
        self.requests = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for t in list(self._handlers):
            t.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.requests += 1
        if self.mode == "close":
            return  # drop the connection without a word
        length = 0
        for line in head.decode("latin-1").split("\r\n"):
            if line.lower().startswith("content-length:"):
                length = int(line.split(":", 1)[1])
        await reader.readexactly(length)
        if self.mode == "stall":
            await reader.read()  # say nothing until the client gives up
            return
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
        )
        for word in self.reply.split(" "):
            chunk = {"choices": [{"delta": {"content": word + " "}}]}
            writer.write(f"data: {json.dumps(chunk)}\n\n".encode())
        writer.write(b"data: [DONE]\n\n")
        await writer.drain()


@pytest.fixture
async def fake_llm() -> AsyncIterator[FakeLLMServer]:
    """The fake OpenAI-compatible server on 127.0.0.1."""
    srv = FakeLLMServer()
    await srv.start()
    yield srv
    await srv.stop()


def _fault_config(base: AppConfig, llm_port: int, db: Path) -> AppConfig:
    cfg = base.model_copy(deep=True)
    cfg.llm.backend = "openai"
    cfg.llm.openai.base_url = f"http://127.0.0.1:{llm_port}/v1"
    cfg.llm.first_token_timeout_s = 2.0
    cfg.llm.fallback_reply = FALLBACK
    cfg.server.idle_timeout_s = 4.0
    cfg.server.database_url = f"sqlite:///{db}"
    return cfg


@pytest.fixture(scope="module")
def short_tts(engines: Engines):  # type: ignore[no-untyped-def]
    """A second Piper voice that refuses text over 200 characters (a TTS stage that fails)."""
    tts_cfg = engines.config.tts.model_copy(update={"max_text_chars": 200})
    return create_tts(tts_cfg, engines.resolver)


@pytest.fixture
async def fault_server(
    service_config: AppConfig,
    engines: Engines,
    fake_llm: FakeLLMServer,
    short_tts,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> AsyncIterator[TestServer]:
    """A server whose engines are the shared ones with the openai LLM and the picky TTS."""
    cfg = _fault_config(service_config, fake_llm.port, tmp_path / "faults.db")
    llm = OpenAIChatLLM(cfg.llm)
    llm.load()
    mine = dataclasses.replace(engines, config=cfg, llm=llm, tts=short_tts)
    app = create_app(cfg, engines=mine)
    srv = TestServer(app, host="127.0.0.1", port=0)
    await srv.start_server()
    yield srv
    await srv.close()
    await llm.aclose()


def _url(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


async def _connected(server: TestServer) -> ClientPeer:
    peer = ClientPeer(_url(server), keep_video=False)
    failed = await peer.connect()
    assert failed is None, f"session refused: {failed.status if failed else ''}"
    await peer.wait_open()
    return peer


def _loud_s(peer: ClientPeer, since: float) -> float:
    frames = [a for t, a in peer.received.audio if t >= since]
    if not frames:
        return 0.0
    return float((np.abs(np.concatenate(frames)) > LOUD).sum()) / 48_000


async def _turn(peer: ClientPeer, text: str) -> tuple[dict, float]:  # type: ignore[type-arg]
    t0 = time.monotonic()
    peer.send({"type": "text", "text": text})
    final = await peer.wait_event("assistant_text", 60, pred=lambda m: m["final"])
    await asyncio.sleep(0.3)
    return final, t0


async def test_broken_or_stalled_llm_speaks_the_fallback_and_the_session_goes_on(
    fault_server: TestServer, fake_llm: FakeLLMServer
) -> None:
    peer = await _connected(fault_server)
    try:
        fake_llm.mode = "close"
        closed, t_closed = await _turn(peer, "Hello, can you hear me?")
        loud_closed = _loud_s(peer, t_closed)

        fake_llm.mode = "stall"
        stalled, t_stalled = await _turn(peer, "Are you still there?")
        waited = time.monotonic() - t_stalled
        loud_stalled = _loud_s(peer, t_stalled)

        fake_llm.mode = "answer"
        answered, t_answer = await _turn(peer, "What is two plus two?")
        loud_answer = _loud_s(peer, t_answer)
        sid = peer.session_id
        state = fault_server.app[STATE_KEY]
        history = [(m.role, m.content) for m in state.sessions[sid].conversation.history]
        errors = peer.received.events_of("error")
    finally:
        await peer.hangup()

    assert closed["text"] == FALLBACK and not closed["interrupted"]
    assert loud_closed > 0.5, "the fallback line was not heard"
    assert stalled["text"] == FALLBACK
    assert 2.0 <= waited < 20, waited  # the first-token timeout (2 s) plus speaking the line
    assert loud_stalled > 0.5
    assert answered["text"] == ANSWER
    assert loud_answer > 0.3
    assert not errors, errors
    assert fake_llm.requests == 3
    # The history alternates and holds what was said.
    assert [r for r, _ in history] == ["user", "assistant"] * 3
    assert history[1][1] == FALLBACK and history[-1][1] == ANSWER

    async with aiohttp.ClientSession() as http:
        resp = await http.get(f"{_url(fault_server)}/v1/sessions/{sid}/transcript")
        data = await resp.json()
    assert resp.status == 200
    turns = data["turns"]
    assert [t["user_text"] for t in turns] == [
        "Hello, can you hear me?",
        "Are you still there?",
        "What is two plus two?",
    ]
    assert [t["metrics"].get("llm_failed") for t in turns] == [1.0, 1.0, None]
    assert turns[2]["spoken_text"] == ANSWER and turns[2]["metrics"]["voice_to_voice_ms"] > 0


async def test_a_failing_tts_stage_skips_the_turn_only(
    fault_server: TestServer, fake_llm: FakeLLMServer
) -> None:
    peer = await _connected(fault_server)
    try:
        fake_llm.reply = LONG_CLAUSE
        peer.send({"type": "text", "text": "Say something very long."})
        error = await peer.wait_event("error", 30)
        fake_llm.reply = ANSWER
        answered, _ = await _turn(peer, "What is two plus two?")
        sid = peer.session_id
        history = [
            (m.role, m.content)
            for m in fault_server.app[STATE_KEY].sessions[sid].conversation.history
        ]
    finally:
        await peer.hangup()
    assert error["code"] == "turn_skipped"
    assert answered["text"] == ANSWER
    # The skipped question left no dangling user message behind.
    assert history == [("user", "What is two plus two?"), ("assistant", ANSWER)]


async def _gone(server: TestServer, sid: str, within: float) -> float:
    t0 = time.monotonic()
    state = server.app[STATE_KEY]
    while sid in state.sessions:
        if time.monotonic() - t0 > within:
            raise AssertionError(f"session {sid} still open after {within} s")
        await asyncio.sleep(0.1)
    return time.monotonic() - t0


async def test_flood_vanishing_peer_and_unconnected_offer_are_torn_down(
    fault_server: TestServer,
) -> None:
    # A data channel flood closes that session and only that one.
    calm = await _connected(fault_server)
    flooder = await _connected(fault_server)
    try:
        for _ in range(120):
            flooder.send({"type": "interrupt"})
        assert flooder.session_id
        await _gone(fault_server, flooder.session_id, 5)
        assert calm.session_id in fault_server.app[STATE_KEY].sessions
    finally:
        await flooder.close()
    # A peer that vanishes without DELETE is noticed (connection closed or idle timeout).
    assert calm.session_id
    await calm.close()
    await _gone(fault_server, calm.session_id, 10)
    # An offer whose peer never completes ICE is reaped by the idle timeout (4 s here).
    ghost = ClientPeer(_url(fault_server), keep_video=False)
    assert await ghost.connect() is None
    assert ghost.session_id
    await ghost.pc.close()
    await _gone(fault_server, ghost.session_id, 10)
    for t in ghost._tasks:
        t.cancel()
    assert not fault_server.app[STATE_KEY].sessions
    names = [t.get_name() for t in asyncio.all_tasks() if "session-" in t.get_name()]
    assert not names, names
