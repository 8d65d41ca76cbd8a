"""The widget through TURN: Chromium fetches /v1/ice-servers and reaches a relay-only service."""

from __future__ import annotations

import dataclasses
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from streaming.config import AppConfig
from streaming.engines import Engines
from streaming.server import create_app
from tests.streaming.coturn import Coturn, coturn_fixture  # noqa: F401 (a fixture)
from tests.web.conftest import LoopThread, PageLog, RunningApp, _start
from tests.web.page_scripts import MEDIA_FLOWING_JS, call_from_demo_page

pytestmark = pytest.mark.timeout(120)

OpenPage = Callable[..., tuple[Any, PageLog]]


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


@pytest.fixture
def relay_service(
    loop_thread: LoopThread, service_config: AppConfig, engines: Engines, coturn: Coturn
) -> Iterator[RunningApp]:
    """A service whose own peer offers TURN relay candidates only."""
    config = service_config.model_copy(update={"ice": coturn.ice(relay_only=True)})
    own = dataclasses.replace(engines, config=config)
    running = loop_thread.run(_start(create_app(config, engines=own)))
    yield running
    loop_thread.run(running.runner.cleanup(), timeout=30)


def test_demo_page_calls_a_relay_only_service_through_turn(
    relay_service: RunningApp, open_page: OpenPage, coturn: Coturn
) -> None:
    url = relay_service.url
    deadline = time.monotonic() + 10
    while not _get(f"{url}/readyz")[1].get("turn", {}).get("checked"):
        assert time.monotonic() < deadline, "the TURN preflight did not run"
        time.sleep(0.05)
    status, ready = _get(f"{url}/readyz")
    assert status == 200, ready

    page, console = open_page(f"{url}/")
    fetched: list[str] = []
    page.on("request", lambda r: fetched.append(r.url) if "/v1/ice-servers" in r.url else None)
    call_from_demo_page(page)
    w = page.locator("#avatar-widget")
    assert page.evaluate(MEDIA_FLOWING_JS), "no audio and video through the relay"
    page.wait_for_function(
        "() => document.getElementById('network-note').textContent.includes('relayed by TURN')"
    )
    assert fetched == [f"{url}/v1/ice-servers"]
    # The browser was given the TURN server (with credentials) and the service's answer
    # held relay candidates only.
    ice = page.evaluate(
        "() => document.getElementById('avatar-widget').peerConnection.getConfiguration()"
        ".iceServers"
    )
    assert [s["urls"] for s in ice] == [[coturn.url]]
    assert ice[0]["username"].endswith(":ip-127.0.0.1")
    (session,) = relay_service.state.sessions.values()
    cands = [
        line
        for line in session.pc.localDescription.sdp.splitlines()
        if line.startswith("a=candidate:")
    ]
    assert cands and all(" typ relay" in c for c in cands), cands

    w.get_by_role("button", name="Hang up").click()
    page.wait_for_function("() => hostLog.some((e) => e.type === 'ended')", timeout=10_000)
    deadline = time.monotonic() + 5
    while relay_service.state.sessions:
        assert time.monotonic() < deadline, "the session outlived the hang-up"
        time.sleep(0.05)
    assert not console.unexpected(), console
