"""TURN: the credential scheme, GET /v1/ice-servers, and real calls relayed by coturn.

coturn (Debian's ``turnserver``) runs on 127.0.0.1 with a random secret for the whole test
run; the calls are relay-only on both sides, so nothing connects unless the relay works.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import time
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from pydantic import ValidationError

from streaming.client import ClientPeer
from streaming.config import AppConfig, IceConfig
from streaming.engines import Engines
from streaming.server import STATE_KEY
from streaming.turn import (
    TurnUnavailableError,
    check_turn,
    has_relay_candidate,
    ice_servers_for,
    turn_credentials,
)
from tests.streaming.coturn import Coturn, coturn_fixture  # noqa: F401 (a fixture)
from tests.streaming.limits import base_url, custom_server, wait_frames

pytestmark = pytest.mark.timeout(120)

KEY = "turn-test-key-0123456789"


def _hmac_b64(secret: str, text: str) -> str:
    digest = hmac.new(secret.encode(), text.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _candidates(sdp: str) -> list[str]:
    return [line for line in sdp.splitlines() if line.startswith("a=candidate:")]


# --- the credential scheme -------------------------------------------------------------


def test_credentials_follow_the_coturn_rest_scheme() -> None:
    username, password = turn_credentials("north-wind", "alice", 3600, now=1_700_000_000)
    assert username == "1700003600:alice"  # expiry = now + ttl, then the user
    # Computed with `openssl dgst -sha1 -hmac north-wind -binary | base64`.
    assert password == "iRtTIZ3N38dm9S+dP+UkHfnN9Qo="
    assert password == _hmac_b64("north-wind", username)
    # A colon in the user would split the username where coturn reads the expiry.
    assert turn_credentials("s", "key:ab cd", 60, now=0)[0] == "60:key-ab-cd"


def test_ice_servers_in_the_browser_shape() -> None:
    assert ice_servers_for(IceConfig(), "u") == []
    ice = IceConfig(
        stun_urls=["stun:stun.example.com:3478"],
        turn_urls=["turn:turn.example.com:3478?transport=udp", "turns:turn.example.com:5349"],
        turn_secret="s3cret",
        turn_ttl_s=600,
    )
    stun, turn = ice_servers_for(ice, "bob", now=1000)
    assert stun == {"urls": ["stun:stun.example.com:3478"]}
    assert turn["urls"] == ice.turn_urls
    assert turn["username"] == "1600:bob"
    assert turn["credential"] == _hmac_b64("s3cret", "1600:bob")


@pytest.mark.parametrize(
    "fields",
    [
        {"turn_urls": ["turn:turn.example.com"]},  # no secret
        {"relay_only": True},  # relay without TURN
        {"stun_urls": ["http://stun.example.com"], "turn_secret": "s"},
        {"turn_urls": ["stun:turn.example.com"], "turn_secret": "s"},
        {"turn_urls": ["turn:turn.example.com?transport=tls"], "turn_secret": "s"},
        {"turn_urls": ["turn:x"], "turn_secret": "s", "turn_ttl_s": 10},
    ],
)
def test_bad_ice_config_is_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        IceConfig.model_validate(fields)


def ice_server(
    base: AppConfig, engines: Engines, ice: IceConfig, **server: Any
) -> contextlib.AbstractAsyncContextManager[TestServer]:
    """A service on 127.0.0.1 with this ``ice`` section (and ``server.*`` overrides)."""
    return custom_server(base, engines, sections={"ice": ice}, **server)


async def _readyz(http: aiohttp.ClientSession, url: str, timeout_s: float = 10.0) -> Any:
    """/readyz once the TURN preflight has run."""
    deadline = time.monotonic() + timeout_s
    while True:
        resp = await http.get(f"{url}/readyz")
        body = await resp.json()
        if body.get("turn", {}).get("checked") or time.monotonic() > deadline:
            return resp.status, body
        await asyncio.sleep(0.05)


# --- GET /v1/ice-servers ---------------------------------------------------------------------


async def test_ice_servers_need_auth_and_carry_valid_credentials(
    service_config: AppConfig, engines: Engines, coturn: Coturn
) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    async with (
        ice_server(service_config, engines, coturn.ice(turn_ttl_s=900), api_keys=[KEY]) as srv,
        aiohttp.ClientSession() as http,
    ):
        url = base_url(srv)
        assert (await http.get(f"{url}/v1/ice-servers")).status == 401
        wrong = {"Authorization": "Bearer not-the-key"}
        assert (await http.get(f"{url}/v1/ice-servers", headers=wrong)).status == 401

        t = time.time()
        resp = await http.get(f"{url}/v1/ice-servers", headers=auth)
        assert resp.status == 200
        assert resp.headers["Cache-Control"] == "no-store"
        body = await resp.json()
        assert body["ttl_s"] == 900
        (turn,) = body["ice_servers"]
        assert turn["urls"] == [coturn.url]
        expiry, _, user = turn["username"].partition(":")
        assert abs(int(expiry) - (t + 900)) <= 5
        assert user.startswith("key-")
        assert turn["credential"] == _hmac_b64(coturn.secret, turn["username"])
        # coturn accepts them: a real allocation.
        await check_turn(body["ice_servers"])

        # A session token (what a browser holds) fetches them too, without being spent.
        minted = await http.post(f"{url}/v1/tokens", json={}, headers=auth)
        assert minted.status == 201
        token_body = await minted.json()
        assert token_body["ice_servers"][0]["urls"] == [coturn.url]
        bearer = {"Authorization": f"Bearer {token_body['token']}"}
        assert (await http.get(f"{url}/v1/ice-servers", headers=bearer)).status == 200
        assert (await http.get(f"{url}/v1/sessions", headers=bearer)).status == 401
        peer = ClientPeer(url, headers=auth)
        try:
            assert await peer.connect(headers=bearer) is None, "the token was spent"
            assert peer.answer is not None
            assert peer.answer["ice_servers"][0]["urls"] == [coturn.url]
        finally:
            await peer.hangup()


async def test_without_turn_the_list_is_empty(server: TestServer) -> None:
    async with aiohttp.ClientSession() as http:
        resp = await http.get(f"{base_url(server)}/v1/ice-servers")
        assert resp.status == 200
        assert await resp.json() == {"ice_servers": [], "ttl_s": None}


# --- calls through the relay -----------------------------------------------------------------


async def test_call_through_turn_relay_only(
    service_config: AppConfig, engines: Engines, coturn: Coturn
) -> None:
    async with (
        ice_server(service_config, engines, coturn.ice(relay_only=True)) as srv,
        aiohttp.ClientSession() as http,
    ):
        url = base_url(srv)
        status, ready = await _readyz(http, url)
        assert status == 200, ready
        assert ready["turn"] == {"ok": True, "checked": True, "error": None}

        peer = await ClientPeer.from_server(url, relay_only=True)
        try:
            assert await peer.connect() is None
            await peer.wait_open(10)
            await wait_frames(peer, 10)
            deadline = time.monotonic() + 10
            while len(peer.received.audio) < 10 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert peer.session_id is not None
            session = srv.app[STATE_KEY].sessions[peer.session_id]
            ours, theirs = peer.pc.localDescription.sdp, session.pc.localDescription.sdp
            assert peer.pc.connectionState == "connected"
        finally:
            await peer.hangup()
    for sdp in (ours, theirs):
        cands = _candidates(sdp)
        assert cands, sdp
        assert all(" typ relay" in c for c in cands), cands
    assert len(peer.received.audio) >= 10
    assert peer.received.video[-1][1].ndim == 3  # decoded RGB frames


async def test_wrong_client_secret_fails_fast_and_others_still_connect(
    service_config: AppConfig, engines: Engines, coturn: Coturn
) -> None:
    bad = ice_servers_for(coturn.ice(turn_secret="not-the-secret"), "mallory")
    async with ice_server(service_config, engines, coturn.ice(relay_only=True)) as srv:
        url = base_url(srv)
        peer = ClientPeer(url, ice_servers=bad, relay_only=True)
        t = time.monotonic()
        try:
            with pytest.raises(TurnUnavailableError, match="401"):
                await asyncio.wait_for(peer.connect(), 10)
        finally:
            await peer.close()
        assert time.monotonic() - t < 3
        assert not srv.app[STATE_KEY].sessions  # nothing was sent to the service

        good = await ClientPeer.from_server(url, relay_only=True)
        try:
            assert await good.connect() is None
            await good.wait_open(10)
            assert has_relay_candidate(good.pc.localDescription.sdp)
        finally:
            await good.hangup()


async def test_service_with_wrong_secret_is_not_ready_and_refuses_calls(
    service_config: AppConfig, engines: Engines, coturn: Coturn
) -> None:
    ice = coturn.ice(turn_secret="not-the-secret", relay_only=True)
    async with (
        ice_server(service_config, engines, ice) as srv,
        aiohttp.ClientSession() as http,
    ):
        url = base_url(srv)
        status, ready = await _readyz(http, url)
        assert status == 503
        assert ready["ready"] is False
        assert "401" in ready["turn"]["error"]
        peer = ClientPeer(url)
        try:
            refused = await peer.connect()
        finally:
            await peer.close()
        assert refused is not None
        assert refused.status == 503
        assert (await refused.json())["error"]["code"] == "turn_unavailable"
