"""The session router in front of two real workers, all on 127.0.0.1.

Two worker apps share the loaded models (one process here, as two pods would each
load their own) with one session slot each; real aiortc peers call through the router.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from streaming.client import ClientPeer
from streaming.config import AppConfig
from streaming.engines import Engines
from streaming.forwarded import TrustedProxies
from streaming.router import create_router_app
from streaming.server import STATE_KEY, create_app
from streaming.session_ids import worker_of

KEY = "router-test-key"


@dataclass
class Cluster:
    """Two workers and the router in front of them."""

    workers: dict[str, TestServer]
    router: TestServer

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.router.port}"

    def sessions_on(self, worker_id: str) -> set[str]:
        return set(self.workers[worker_id].app[STATE_KEY].sessions)


def _worker_config(base: AppConfig, worker_id: str, **server: object) -> AppConfig:
    update = {"worker_id": worker_id, "max_sessions": 1, "trusted_proxies": ["127.0.0.1"]}
    update.update(server)
    return base.model_copy(update={"server": base.server.model_copy(update=update)})


async def _start(app: object) -> TestServer:
    srv = TestServer(app, host="127.0.0.1", port=0)  # type: ignore[arg-type]
    await srv.start_server()
    return srv


@pytest.fixture
async def cluster(service_config: AppConfig, engines: Engines) -> AsyncIterator[Cluster]:
    workers = {
        wid: await _start(create_app(_worker_config(service_config, wid), engines=engines))
        for wid in ("w1", "w2")
    }
    router_config = service_config.model_copy(
        update={
            "router": service_config.router.model_copy(
                update={
                    "workers": [f"http://127.0.0.1:{w.port}" for w in workers.values()],
                    "poll_interval_s": 0.2,
                }
            )
        }
    )
    router = await _start(create_router_app(router_config))
    yield Cluster(workers, router)
    await router.close()
    for w in workers.values():
        await w.close()


async def _call(url: str) -> ClientPeer:
    peer = ClientPeer(url, video_every=5)
    refused = await peer.connect()
    assert refused is None, f"refused: {refused.status if refused else ''}"
    await peer.wait_open()
    return peer


async def _wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_sessions_spread_stay_pinned_and_overflow_is_refused(cluster: Cluster) -> None:
    first = await _call(cluster.url)
    second = await _call(cluster.url)
    try:
        assert first.session_id and second.session_id
        w_first, w_second = worker_of(first.session_id), worker_of(second.session_id)
        # One slot each: the router put the two calls on different workers.
        assert {w_first, w_second} == {"w1", "w2"}
        assert first.session_id in cluster.sessions_on(str(w_first))
        # Media flows from the worker straight to the peer.
        await _wait_until(lambda: len(first.received.video) >= 3 and first.received.audio)

        async with aiohttp.ClientSession() as http:
            third = ClientPeer(cluster.url)
            refused = await third.connect()
            await third.close()
            assert refused is not None and refused.status == 503
            assert refused.headers.get("Retry-After")
            assert (await refused.json())["error"]["code"] == "no_capacity"
            ready = await http.get(f"{cluster.url}/readyz")
            assert ready.status == 503  # the pool is full

            listed = await (await http.get(f"{cluster.url}/v1/sessions")).json()
            assert {s["session_id"] for s in listed["sessions"]} == {
                first.session_id,
                second.session_id,
            }
            # A session's own calls reach the worker that holds it.
            transcript = await http.get(f"{cluster.url}/v1/sessions/{first.session_id}/transcript")
            assert transcript.status == 200, await transcript.text()
            unknown = await http.delete(f"{cluster.url}/v1/sessions/w9.abcdefgh")
            assert unknown.status == 404
            assert (await unknown.json())["error"]["code"] == "unknown_session"

            gone = await http.delete(f"{cluster.url}/v1/sessions/{first.session_id}")
            assert gone.status == 200
            await _wait_until(lambda: not cluster.sessions_on(str(w_first)))
            assert second.session_id in cluster.sessions_on(str(w_second))

            fourth = await _call_when_free(cluster.url)
            try:
                assert fourth.session_id is not None
                assert worker_of(fourth.session_id) == w_first
            finally:
                await fourth.hangup()
    finally:
        await first.close()
        await second.hangup()


async def _call_when_free(url: str, timeout: float = 5.0) -> ClientPeer:
    deadline = time.monotonic() + timeout
    while True:
        peer = ClientPeer(url, video_every=5)
        refused = await peer.connect()
        if refused is None:
            await peer.wait_open()
            return peer
        await peer.close()
        assert refused.status == 503 and time.monotonic() < deadline, refused.status
        await asyncio.sleep(0.2)


async def test_a_dead_worker_is_skipped_and_shared_routes_still_answer(cluster: Cluster) -> None:
    await cluster.workers["w1"].close()
    peer = await _call_when_free(cluster.url)
    try:
        assert peer.session_id is not None and worker_of(peer.session_id) == "w2"
        async with aiohttp.ClientSession() as http:
            for path in ("/widget.js", "/openapi.json", "/v1/avatars"):
                resp = await http.get(f"{cluster.url}{path}")
                assert resp.status == 200, (path, resp.status)
            metrics = await (await http.get(f"{cluster.url}/metrics")).text()
            assert 'gwm_router_workers{state="unreachable"} 1.0' in metrics
    finally:
        await peer.hangup()


async def test_workers_limit_the_real_client_behind_the_router(
    service_config: AppConfig, engines: Engines
) -> None:
    worker = await _start(
        create_app(_worker_config(service_config, "w1", rate_limit_per_minute=2), engines=engines)
    )
    router_config = service_config.model_copy(
        update={
            "router": service_config.router.model_copy(
                update={"workers": [f"http://127.0.0.1:{worker.port}"]}
            )
        }
    )
    router = await _start(create_router_app(router_config))
    try:
        async with aiohttp.ClientSession() as http:

            async def get(client_ip: str) -> int:
                resp = await http.get(
                    f"http://127.0.0.1:{router.port}/v1/avatars",
                    headers={"X-Forwarded-For": client_ip},
                )
                return resp.status

            # Two requests a minute per client: the third from one client is refused,
            # while another client behind the same router is still served.
            assert [await get("203.0.113.9") for _ in range(3)] == [200, 200, 429]
            assert await get("203.0.113.10") == 200
    finally:
        await router.close()
        await worker.close()


def test_forwarded_for_believes_only_trusted_hops() -> None:
    proxies = TrustedProxies(["10.0.0.0/8", "127.0.0.1"])
    # Not from a proxy: the header is ignored (a client cannot pick its own address).
    assert proxies.client_address("198.51.100.7", "203.0.113.9") == "198.51.100.7"
    # Through the router: the rightmost untrusted hop, whatever the client claimed.
    assert proxies.client_address("10.1.2.3", "6.6.6.6, 203.0.113.9, 10.0.0.5") == "203.0.113.9"
    assert proxies.client_address("127.0.0.1", "203.0.113.9") == "203.0.113.9"
    # Garbage in the chain stops the search at the proxy itself.
    assert proxies.client_address("10.1.2.3", "203.0.113.9, not-an-ip") == "10.1.2.3"


async def test_a_session_token_is_spent_on_every_worker(
    service_config: AppConfig, engines: Engines, tmp_path: Path
) -> None:
    """Workers sharing a database refuse a token another worker already accepted."""
    shared = {
        "api_keys": [SecretStr(KEY)],
        "token_secret": SecretStr("one-secret-for-every-worker"),
        "database_url": f"sqlite:///{tmp_path / 'shared.db'}",
    }
    workers = {
        wid: await _start(
            create_app(_worker_config(service_config, wid, **shared), engines=engines)
        )
        for wid in ("w1", "w2")
    }
    auth = {"Authorization": f"Bearer {KEY}"}
    try:
        async with aiohttp.ClientSession() as http:
            minted = await http.post(
                f"http://127.0.0.1:{workers['w1'].port}/v1/tokens", json={}, headers=auth
            )
            assert minted.status == 201, await minted.text()
            token = {"Authorization": f"Bearer {(await minted.json())['token']}"}
        first = ClientPeer(f"http://127.0.0.1:{workers['w1'].port}", headers=token)
        replay = ClientPeer(f"http://127.0.0.1:{workers['w2'].port}", headers=token)
        try:
            assert await first.connect() is None
            refused = await replay.connect()
            assert refused is not None and refused.status == 403
            assert (await refused.json())["error"]["code"] == "token_reused"
            assert not cluster_sessions(workers["w2"])
        finally:
            await replay.close()
            await first.hangup()
    finally:
        for w in workers.values():
            await w.close()


def cluster_sessions(worker: TestServer) -> set[str]:
    """Ids of the sessions open on ``worker``."""
    return set(worker.app[STATE_KEY].sessions)


async def test_workers_are_found_by_dns_name(service_config: AppConfig, engines: Engines) -> None:
    """The Kubernetes path: a name whose records are the workers (here ``localhost``)."""
    worker = await _start(create_app(_worker_config(service_config, "pod-a"), engines=engines))
    router_config = service_config.model_copy(
        update={
            "router": service_config.router.model_copy(
                update={"dns_name": "localhost", "worker_port": worker.port}
            )
        }
    )
    router = await _start(create_router_app(router_config))
    try:
        peer = await _call(f"http://127.0.0.1:{router.port}")
        try:
            assert peer.session_id is not None and worker_of(peer.session_id) == "pod-a"
        finally:
            await peer.hangup()
    finally:
        await router.close()
        await worker.close()
