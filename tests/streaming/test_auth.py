"""API keys, single-use session tokens, rate limits and session caps on a real server."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path

import aiohttp
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from avatar.identity import avatar_cache_dir
from streaming.auth import auth_summary, public_bind_refusal
from streaming.client import ClientPeer
from streaming.config import AppConfig, load_config
from streaming.engines import Engines
from streaming.ratelimit import RateLimiter
from tests.streaming.limits import base_url, custom_server, offer_sdp, wait_frames

pytestmark = pytest.mark.timeout(120)

KEY = "test-key-alpha-0123456789"
OTHER_KEY = "test-key-beta-9876543210"
ORIGIN = "https://shop.example"


def _bearer(credential: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}", **extra}


async def _mint(http: aiohttp.ClientSession, url: str, **scope: object) -> str:
    resp = await http.post(f"{url}/v1/tokens", json=scope, headers=_bearer(KEY))
    body = await resp.json()
    assert resp.status == 201, body
    assert body["expires_at"] > time.time()
    return str(body["token"])


async def _error(resp: aiohttp.ClientResponse) -> tuple[int, str]:
    body = await resp.json()
    assert body["error"]["message"]
    return resp.status, body["error"]["code"]


async def test_every_v1_call_needs_a_valid_key(service_config: AppConfig, engines: Engines) -> None:
    async with (
        custom_server(service_config, engines, api_keys=[KEY, OTHER_KEY]) as srv,
        aiohttp.ClientSession() as http,
    ):
        url = base_url(srv)
        sdp = await offer_sdp()
        calls = [
            ("GET", "/v1/sessions", None),
            ("POST", "/v1/sessions", {"sdp": sdp, "type": "offer"}),
            ("DELETE", "/v1/sessions/abc", None),
            ("POST", "/v1/tokens", {}),
            ("GET", "/v1/avatars", None),
        ]
        for headers in ({}, _bearer("wrong-key"), {"Authorization": KEY}, _bearer("")):
            for method, path, body in calls:
                resp = await http.request(method, url + path, json=body, headers=headers)
                assert await _error(resp) == (401, "unauthorized"), (method, path, headers)
                assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        # A valid key works; the public probes need none.
        for key in (KEY, OTHER_KEY):
            resp = await http.get(f"{url}/v1/sessions", headers=_bearer(key))
            assert resp.status == 200
        for path in ("/healthz", "/readyz", "/openapi.json"):
            assert (await http.get(url + path)).status == 200
        # A CORS preflight carries no credentials and still passes.
        pre = await http.options(
            f"{url}/v1/sessions",
            headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
        )
        assert pre.status == 204
        # A session token opens sessions only.
        token = await _mint(http, url)
        for method, path, body in calls[:1] + calls[3:]:
            resp = await http.request(method, url + path, json=body, headers=_bearer(token))
            assert await _error(resp) == (401, "unauthorized"), (method, path)


async def test_a_session_token_opens_exactly_one_session(
    service_config: AppConfig, engines: Engines
) -> None:
    async with (
        custom_server(service_config, engines, api_keys=[KEY]) as srv,
        aiohttp.ClientSession() as http,
    ):
        url = base_url(srv)
        token = await _mint(http, url, avatar="default", origin=ORIGIN + "/", ttl_s=60)
        browser = _bearer(token, Origin=ORIGIN)
        peer = ClientPeer(url, headers=_bearer(KEY))
        try:
            assert await peer.connect(headers=browser, avatar="default") is None
            await peer.wait_open()
            await wait_frames(peer, 5)
            again = ClientPeer(url)
            refused = await again.connect(headers=browser, avatar="default")
            await again.close()
            assert refused is not None
            assert await _error(refused) == (403, "token_reused")
        finally:
            await peer.hangup()
        listed = await (await http.get(f"{url}/v1/sessions", headers=_bearer(KEY))).json()
        assert listed["sessions"] == []


async def test_bad_tokens_are_refused_with_stable_codes(
    service_config: AppConfig, engines: Engines
) -> None:
    async with (
        custom_server(service_config, engines, api_keys=[KEY]) as srv,
        aiohttp.ClientSession() as http,
    ):
        url = base_url(srv)
        sdp = await offer_sdp()

        async def open_with(token: str, origin: str | None = ORIGIN, **extra: str):
            headers = _bearer(token) | ({"Origin": origin} if origin else {})
            body = {"sdp": sdp, "type": "offer", **extra}
            return await _error(await http.post(f"{url}/v1/sessions", json=body, headers=headers))

        short = await _mint(http, url, ttl_s=1)
        wrong_origin = await _mint(http, url, origin="https://evil.example")
        no_origin = await _mint(http, url, origin=ORIGIN)
        avatar_scoped = await _mint(http, url, avatar="default")
        voice_scoped = await _mint(http, url, voice="some-other-voice")
        good = await _mint(http, url)
        head, _, sig = good.rpartition(".")
        tampered = f"{head}.{'A' if sig[0] != 'A' else 'B'}{sig[1:]}"
        await asyncio.sleep(1.2)
        assert await open_with(short) == (401, "token_expired")
        assert await open_with(wrong_origin) == (403, "origin_mismatch")
        assert await open_with(no_origin, origin=None) == (403, "origin_mismatch")
        assert await open_with(avatar_scoped, avatar="someone-else") == (403, "scope_mismatch")
        assert await open_with(voice_scoped) == (403, "scope_mismatch")
        assert await open_with(tampered) == (401, "unauthorized")
        assert await open_with("v1.e30.nope") == (401, "unauthorized")
        assert await open_with("v1.\xe9t\xe9.abc") == (401, "unauthorized")
        assert await open_with(f"{head}.{sig}\xe9") == (401, "unauthorized")
        # Token bodies are validated like every other body.
        for bad in ({"ttl_s": 601}, {"ttl_s": -1}, {"avatar": ""}, {"scope": "all"}):
            resp = await http.post(f"{url}/v1/tokens", json=bad, headers=_bearer(KEY))
            assert await _error(resp) == (400, "invalid_request"), bad
        assert srv.app is not None


async def test_rate_limits_and_session_caps_per_key(
    service_config: AppConfig, engines: Engines
) -> None:
    async with (
        custom_server(
            service_config,
            engines,
            api_keys=[KEY, OTHER_KEY],
            rate_limit_per_minute=6,
            session_rate_limit_per_minute=3,
            max_sessions_per_key=1,
        ) as srv,
        aiohttp.ClientSession() as http,
    ):
        url = base_url(srv)
        first = ClientPeer(url, headers=_bearer(KEY))
        second = ClientPeer(url, headers=_bearer(KEY))
        other = ClientPeer(url, headers=_bearer(OTHER_KEY))
        try:
            assert await first.connect() is None
            refused = await second.connect()
            assert refused is not None
            assert await _error(refused) == (429, "session_limit")
            assert refused.headers["Retry-After"]
            assert await other.connect() is None  # another key has its own cap
            # KEY spent 2 of its 6 requests; 4 more pass, then 429 with Retry-After.
            statuses = []
            for _ in range(5):
                resp = await http.get(f"{url}/v1/sessions", headers=_bearer(KEY))
                statuses.append(resp.status)
            assert statuses == [200, 200, 200, 200, 429], statuses
            assert await _error(resp) == (429, "rate_limited")
            assert 1 <= int(resp.headers["Retry-After"]) <= 10
            # Session creation has its own, smaller budget: OTHER_KEY spent 1 of 3.
            for expected in (400, 400, 429):
                resp = await http.post(
                    f"{url}/v1/sessions", json={"type": "offer"}, headers=_bearer(OTHER_KEY)
                )
                assert resp.status == expected
        finally:
            for p in (first, second, other):
                await p.hangup(delete=False)


async def test_idle_and_overlong_sessions_are_closed(
    service_config: AppConfig, engines: Engines
) -> None:
    async with (
        custom_server(service_config, engines, idle_timeout_s=1.5, max_session_s=5.0) as srv,
        aiohttp.ClientSession() as http,
    ):
        url = base_url(srv)
        talker = ClientPeer(url)  # sends (silent) microphone audio all the time
        mute = RTCPeerConnection()  # offers audio but never sends any
        mute.addTransceiver("audio", direction="recvonly")
        mute.addTransceiver("video", direction="recvonly")
        try:
            assert await talker.connect() is None
            await mute.setLocalDescription(await mute.createOffer())
            resp = await http.post(
                f"{url}/v1/sessions", json={"sdp": mute.localDescription.sdp, "type": "offer"}
            )
            answer = await resp.json()
            assert resp.status == 201, answer
            await mute.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
            t0 = time.monotonic()

            async def open_ids() -> set[str]:
                listed = await (await http.get(f"{url}/v1/sessions")).json()
                return {s["session_id"] for s in listed["sessions"]}

            while answer["session_id"] in await open_ids():
                assert time.monotonic() - t0 < 4.5, "the idle session was not closed"
                await asyncio.sleep(0.2)
            assert talker.session_id in await open_ids()  # audio keeps it alive
            while talker.session_id in await open_ids():
                assert time.monotonic() - t0 < 9.0, "the session outlived max_session_s"
                await asyncio.sleep(0.2)
            assert time.monotonic() - t0 >= 3.0
        finally:
            await talker.hangup(delete=False)
            await mute.close()


def test_keys_come_from_the_environment_and_allow_a_public_bind() -> None:
    env = {"GWM_SERVER__API_KEYS": f"{KEY}, {OTHER_KEY}", "GWM_SERVER__HOST": "0.0.0.0"}
    config = load_config("default", environ=env)
    assert [k.get_secret_value() for k in config.server.api_keys] == [KEY, OTHER_KEY]
    assert KEY not in repr(config.server)  # secrets stay out of logs
    assert public_bind_refusal(config.server) is None
    assert "2 API key(s)" in auth_summary(config.server)
    local = load_config("default", environ={})
    assert public_bind_refusal(local.server) is None
    assert "127.0.0.1 only" in auth_summary(local.server)
    public = load_config("default", environ={"GWM_SERVER__HOST": "0.0.0.0"})
    assert "refusing to bind 0.0.0.0" in (public_bind_refusal(public.server) or "")


def test_rate_limiter_refills_over_time_and_forgets_idle_callers() -> None:
    now = [0.0]
    limiter = RateLimiter(6, max_keys=2, clock=lambda: now[0])  # one request per 10 s
    assert [limiter.retry_after("a") for _ in range(7)] == [0, 0, 0, 0, 0, 0, 10]
    assert limiter.retry_after("b") == 0  # callers do not share a budget
    now[0] = 25.0
    assert [limiter.retry_after("a") for _ in range(3)] == [0, 0, 5]
    now[0] = 1000.0
    assert limiter.retry_after("c") == 0  # a third caller: the idle ones are dropped
    assert limiter.retry_after("a") == 0


async def test_a_voice_scoped_token_covers_the_avatars_own_voice(
    service_config: AppConfig, engines: Engines, tmp_path: Path
) -> None:
    """A token for the configured voice does not open a call that would speak with the
    voice the avatar's bundle names (known only once the avatar is loaded)."""
    default = avatar_cache_dir() / "default-{}x{}".format(*engines.frame_size)
    engines.avatar("default")  # the default bundle is in the cache
    bundle = tmp_path / "avatars" / "av_00000000000000aa"
    shutil.copytree(default, bundle)
    doc = json.loads((bundle / "rig.json").read_text())
    (bundle / "rig.json").write_text(json.dumps({**doc, "voice": "some-other-voice"}))
    async with (
        custom_server(
            service_config, engines, api_keys=[KEY], avatars_dir=tmp_path / "avatars"
        ) as srv,
        aiohttp.ClientSession() as http,
    ):
        url = base_url(srv)
        token = await _mint(http, url, voice=service_config.tts.voice)
        body = {"sdp": await offer_sdp(), "type": "offer", "avatar": bundle.name}
        resp = await http.post(f"{url}/v1/sessions", json=body, headers=_bearer(token))
        assert await _error(resp) == (403, "scope_mismatch")
