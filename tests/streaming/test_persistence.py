"""Nothing lost: ``avatar serve`` as a real process, SIGKILLed mid-session and restarted on
the same SQLite database, still serves every completed turn; SIGTERM drains gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from streaming.client import ClientPeer
from tests.conftest import TEST_PROMPT
from tests.streaming.postgres import postgres_fixture  # noqa: F401 (a fixture)

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[2]
GOODBYE = "I have to go now. Goodbye!"
QUESTIONS = ["Say hello to me.", "What is two plus two?", "Name a color."]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServeProcess:
    """``avatar serve`` in a subprocess on 127.0.0.1 with a given database."""

    def __init__(self, db: Path, log: Path, extra: tuple[str, ...] = ()) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gwm_avatars.cli",
                "--config",
                "default",
                "--set",
                "server.ice_host_addresses=[127.0.0.1]",
                "--set",
                f"server.database_url=sqlite:///{db}",
                "--set",
                "server.drain_timeout_s=8",
                "--set",
                "llm.max_tokens=30",
                "--set",
                "llm.model=qwen2.5-0.5b-instruct-gguf",  # as tests/conftest.py: the pipeline
                "--set",
                "llm.examples=[]",
                "--set",
                "llm.first_token_timeout_s=60",
                "--set",
                f"llm.system_prompt={TEST_PROMPT!r}",
                *(arg for item in extra for arg in ("--set", item)),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    async def wait(self, path: str, timeout: float = 150.0) -> None:
        """Until ``path`` answers 200."""
        t = time.monotonic()
        async with aiohttp.ClientSession() as http:
            while time.monotonic() - t < timeout:
                assert self.proc.poll() is None, "avatar serve exited early"
                with contextlib.suppress(aiohttp.ClientError):
                    if (await http.get(f"{self.url}{path}")).status == 200:
                        return
                await asyncio.sleep(0.3)
        raise TimeoutError(f"{path} not ready in {timeout} s")

    def stop(self) -> None:
        """Kill it if it still runs."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[list[ServeProcess]]:
    """Started processes, killed at the end whatever happens."""
    started: list[ServeProcess] = []
    yield started
    for p in started:
        p.stop()


async def _get_json(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http:
        resp = await http.get(url)
        return resp.status, await resp.json()


async def _sigterm(server: ServeProcess) -> tuple[int, Any, aiohttp.ClientResponse | None]:
    """SIGTERM ``server``; then its readiness and the answer to a new call."""
    server.proc.send_signal(signal.SIGTERM)
    await asyncio.sleep(0.3)
    ready_status, ready = await _get_json(f"{server.url}/readyz")
    late = ClientPeer(server.url, keep_video=False)
    refused = await late.connect()
    await late.close()
    return ready_status, ready, refused


@pytest.mark.models  # `avatar serve` in a subprocess loads every model
async def test_sigkill_loses_no_completed_turn_and_sigterm_drains(
    serve: list[ServeProcess], tmp_path: Path
) -> None:
    db = tmp_path / "sessions.db"
    first = ServeProcess(db, tmp_path / "serve.log")
    serve.append(first)
    await first.wait("/readyz")
    peer = ClientPeer(first.url, keep_video=False)
    assert await peer.connect() is None
    await peer.wait_open()
    sid = peer.session_id
    finals = []
    try:
        for q in QUESTIONS:
            peer.send({"type": "text", "text": q})
            finals.append(await peer.wait_event("assistant_text", 90, pred=lambda m: m["final"]))
            await peer.wait_event("turn_metrics", 10)
        # The moment the client has seen the third turn complete: kill -9, no goodbye.
        first.proc.send_signal(signal.SIGKILL)
        assert first.proc.wait(10) == -signal.SIGKILL
    finally:
        await peer.close()

    second = ServeProcess(db, tmp_path / "serve.log")
    serve.append(second)
    await second.wait("/healthz")  # the transcript needs the database, not the models
    status, data = await _get_json(f"{second.url}/v1/sessions/{sid}/transcript")
    assert status == 200, data
    turns = data["turns"]
    assert [t["user_text"] for t in turns] == QUESTIONS
    for turn, final in zip(turns, finals, strict=True):
        assert turn["spoken_text"] == final["text"] and turn["spoken_text"]
        assert turn["reply_text"]
        assert turn["interrupted"] is False and turn["cut_at"] is None
        for stage in ("llm_first_token_ms", "tts_first_chunk_ms", "voice_to_voice_ms"):
            assert turn["metrics"][stage] > 0, (stage, turn["metrics"])
        assert turn["completed_at"] >= turn["started_at"]
    assert data["ended_at"] is None  # it was killed, not closed
    status, _ = await _get_json(f"{second.url}/v1/sessions/nope/transcript")
    assert status == 404

    # SIGTERM: readiness goes false, new sessions get 503 draining, the active session
    # hears the goodbye and is closed, and the process exits 0.
    await second.wait("/readyz")
    peer = ClientPeer(second.url, keep_video=False)
    assert await peer.connect() is None
    await peer.wait_open()
    try:
        await asyncio.sleep(0.5)
        t_term = time.monotonic()
        ready_status, ready, refused = await _sigterm(second)
        goodbye = await peer.wait_event("assistant_text", 15, pred=lambda m: m["final"])
        code = await asyncio.to_thread(second.proc.wait, 20)
        drained_in = time.monotonic() - t_term
    finally:
        await peer.close()
    assert ready_status == 503 and ready["draining"] is True
    assert refused is not None and refused.status == 503
    assert (await refused.json())["error"]["code"] == "draining"
    assert goodbye["text"] == GOODBYE
    assert code == 0
    assert drained_in < 8 + 5
    loud = [a for _, a in peer.received.audio if abs(a).max() > 0.02]
    assert len(loud) > 20, "the goodbye was not heard"


@pytest.mark.models
async def test_sigterm_with_drain_grace_lets_open_sessions_finish(
    serve: list[ServeProcess], tmp_path: Path
) -> None:
    """A rollout or scale-down (Kubernetes): no new sessions, open ones go on undisturbed."""
    worker = ServeProcess(
        tmp_path / "sessions.db",
        tmp_path / "serve.log",
        extra=("server.drain_grace_s=60", "server.worker_id=worker-a"),
    )
    serve.append(worker)
    await worker.wait("/readyz")
    peer = ClientPeer(worker.url, keep_video=False)
    assert await peer.connect() is None
    await peer.wait_open()
    try:
        assert peer.session_id is not None and peer.session_id.startswith("worker-a.")
        ready_status, ready, refused = await _sigterm(worker)
        # The open session is not cut short: it still gets a real answer, not the goodbye.
        peer.send({"type": "text", "text": QUESTIONS[0]})
        reply = await peer.wait_event("assistant_text", 60, pred=lambda m: m["final"])
        assert worker.proc.poll() is None, "the worker quit while a session was open"
        t_hangup = time.monotonic()
        await peer.hangup()
        code = await asyncio.to_thread(worker.proc.wait, 20)
        exited_in = time.monotonic() - t_hangup
    finally:
        await peer.close()
    assert ready_status == 503 and ready["draining"] is True
    assert refused is not None and (await refused.json())["error"]["code"] == "draining"
    assert reply["text"] and reply["text"] != GOODBYE
    assert code == 0
    # It left when its last session ended, long before the 60 s grace.
    assert exited_in < 15, exited_in


async def test_postgres_store_round_trip(postgres_url: str) -> None:
    from streaming.store import TranscriptStore, TurnRow

    store = TranscriptStore(postgres_url)
    await store.open()
    sid = f"pg-{time.time_ns()}"
    try:
        store.open_session(sid, time.time(), "default")
        row = TurnRow(1, 1.0, 2.0, "hi", "hello there", "hello", True, 3.0, 0.5, None, {"a_ms": 1})
        await asyncio.wrap_future(store.add_turn(sid, row))
        data = await store.transcript(sid)
    finally:
        await store.close()
    assert data is not None
    assert data["turns"][0]["spoken_text"] == "hello" and data["turns"][0]["interrupted"]


async def test_postgres_spends_a_token_once_across_workers(postgres_url: str) -> None:
    """Two workers' stores on one PostgreSQL database: a token is claimed exactly once."""
    from streaming.store import TranscriptStore

    stores = [TranscriptStore(postgres_url), TranscriptStore(postgres_url)]
    for store in stores:
        await store.open()
    token, now = f"tok-{time.time_ns()}", time.time()
    try:
        first = await asyncio.wrap_future(stores[0].claim_token(token, now + 60, now))
        again = await asyncio.wrap_future(stores[1].claim_token(token, now + 60, now))
        # An expired claim is swept, so the table does not grow forever.
        old = f"old-{time.time_ns()}"
        await asyncio.wrap_future(stores[0].claim_token(old, now - 1, now - 2))
        swept = await asyncio.wrap_future(stores[1].claim_token(old, now + 60, now))
    finally:
        for store in stores:
            await store.close()
    assert (first, again, swept) == (True, False, True)
