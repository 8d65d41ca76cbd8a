"""``GET /v1/ice-servers``: the STUN/TURN servers a client passes as ``iceServers``.

Clients gather their candidates before they send their offer (no trickle ICE), so they
fetch this first. The same credentials open it as ``POST /v1/sessions`` (an API key, or a
session token, which it does not spend); it is rate-limited like every ``/v1/`` call.
TURN credentials are minted per request and name the caller in their username.
"""

from __future__ import annotations

from aiohttp import web

from streaming.auth import GUARD_KEY, ICE_SERVERS_PATH, PRINCIPAL_KEY
from streaming.config import AppConfig
from streaming.turn import ICE_KEY, IceProvider, IceServersResponse


async def get_ice_servers(request: web.Request) -> web.Response:
    """``GET /v1/ice-servers``: ICE servers with fresh TURN credentials for this caller."""
    provider = request.app[ICE_KEY]
    principal = request.get(PRINCIPAL_KEY) or request.app[GUARD_KEY].identify(request)
    body = IceServersResponse.model_validate(
        {"ice_servers": provider.for_client(principal.name), "ttl_s": provider.ttl_s}
    )
    return web.json_response(
        body.model_dump(exclude_none=True, exclude={"ttl_s"}) | {"ttl_s": body.ttl_s},
        headers={"Cache-Control": "no-store"},
    )


async def _start_monitor(app: web.Application) -> None:
    app[ICE_KEY].start()


async def _stop_monitor(app: web.Application) -> None:
    await app[ICE_KEY].stop()


def attach_ice(app: web.Application, config: AppConfig) -> IceProvider:
    """Add the ICE provider, ``GET /v1/ice-servers`` and the TURN preflight to ``app``."""
    provider = IceProvider(config.ice, max_session_s=config.server.max_session_s)
    app[ICE_KEY] = provider
    app.router.add_get(ICE_SERVERS_PATH, get_ice_servers)
    app.on_startup.append(_start_monitor)
    app.on_shutdown.append(_stop_monitor)
    return provider
