"""Cross-origin rules for the API and the widget script, at the HTTP level."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from streaming.config import AppConfig
from streaming.engines import Engines
from streaming.server import STATE_KEY, create_app

SHOP = "https://shop.example.com"
EVIL = "https://evil.example.net"


@pytest.fixture
async def strict_server(service_config: AppConfig, engines: Engines) -> AsyncIterator[TestServer]:
    """A service that lets only the shop's pages call it."""
    server = service_config.server.model_copy(update={"allowed_origins": [SHOP + "/"]})
    app = create_app(service_config.model_copy(update={"server": server}), engines=engines)
    srv = TestServer(app, host="127.0.0.1", port=0)
    await srv.start_server()
    yield srv
    await srv.close()


def _preflight(origin: str, method: str = "POST") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "content-type, authorization",
    }


async def test_only_listed_origins_may_call_the_api(strict_server: TestServer) -> None:
    url = str(strict_server.make_url("/v1/sessions"))
    async with aiohttp.ClientSession() as http:
        # The listed origin: preflight passes and names what the widget needs.
        resp = await http.options(url, headers=_preflight(SHOP))
        assert resp.status == 204
        assert resp.headers["Access-Control-Allow-Origin"] == SHOP
        assert "POST" in resp.headers["Access-Control-Allow-Methods"]
        assert "Authorization" in resp.headers["Access-Control-Allow-Headers"]
        assert "Origin" in resp.headers["Vary"]
        resp = await http.options(f"{url}/abc", headers=_preflight(SHOP, "DELETE"))
        assert resp.status == 204
        # Its errors are readable cross-origin, Retry-After included.
        json_from_shop = {"Origin": SHOP, "Content-Type": "application/json"}
        resp = await http.post(url, data=b"{", headers=json_from_shop)
        assert resp.status == 400
        assert resp.headers["Access-Control-Allow-Origin"] == SHOP
        assert "Retry-After" in resp.headers["Access-Control-Expose-Headers"]

        # Another origin: refused with JSON, for the preflight and for the request itself.
        for method, headers in (
            ("OPTIONS", _preflight(EVIL)),
            ("POST", {"Origin": EVIL, "Content-Type": "application/json"}),
        ):
            resp = await http.request(method, url, data=b"{}", headers=headers)
            assert resp.status == 403, method
            assert (await resp.json())["error"]["code"] == "origin_not_allowed"
            assert "Access-Control-Allow-Origin" not in resp.headers
        assert not strict_server.app[STATE_KEY].sessions

        # The service's own pages, and callers without an Origin (curl), still work.
        own = f"http://{strict_server.host}:{strict_server.port}"
        resp = await http.get(url, headers={"Origin": own})
        assert resp.status == 200
        assert resp.headers["Access-Control-Allow-Origin"] == own
        resp = await http.get(url)
        assert resp.status == 200
        assert "Access-Control-Allow-Origin" not in resp.headers

        # Health checks are not API calls (the widget probes them in no-cors mode).
        resp = await http.get(str(strict_server.make_url("/healthz")), headers={"Origin": EVIL})
        assert resp.status == 200


async def test_widget_script_loads_from_any_site(strict_server: TestServer) -> None:
    async with aiohttp.ClientSession() as http:
        resp = await http.get(str(strict_server.make_url("/widget.js")), headers={"Origin": EVIL})
        body = await resp.text()
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/javascript")
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert "customElements.define(TAG" in body
