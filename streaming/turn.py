"""TURN for calls across NATs: time-limited credentials, ICE server lists and a preflight.

Credentials follow the coturn REST scheme (coturn ``use-auth-secret`` with
``static-auth-secret``): the username is ``<expiry unix time>:<user>`` and the password
``base64(HMAC-SHA1(secret, username))``, so coturn checks them without a user database
and they stop working at the expiry. ICE server lists use the browser's
``RTCIceServer`` JSON shape (``{"urls": [...], "username": ..., "credential": ...}``).

A wrong secret does not raise in aiortc: gathering just ends without a relay candidate
and the call stays "new" for ever. :func:`check_turn` (one TURN allocation) and
:func:`has_relay_candidate` turn that into a :class:`TurnUnavailableError` at once.
:class:`IceProvider` is the service's side: lists for callers, the configuration of its
own peer, and a periodic preflight whose result readiness reports.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import re
import time
from typing import Any

import aioice.stun
import aioice.turn
from aiohttp import web
from aiortc import RTCConfiguration, RTCIceServer, RTCIceTransportPolicy
from aiortc.rtcicetransport import parse_stun_turn_uri
from pydantic import BaseModel, ConfigDict, Field

from streaming.config import IceConfig

log = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 3.0
SERVER_USER = "gwm-server"
PREFLIGHT_USER = "gwm-preflight"
_USER_UNSAFE = re.compile(r"[^A-Za-z0-9._@-]+")
_RELAY_LINE = re.compile(r"^a=candidate:.* typ relay(?: |$)", re.MULTILINE)


class TurnUnavailableError(ConnectionError):
    """The TURN server refuses the credentials, does not answer, or gave no relay."""


class IceServer(BaseModel):
    """One entry of an ``RTCConfiguration.iceServers`` list, as browsers take it."""

    model_config = ConfigDict(extra="forbid")

    urls: list[str] = Field(min_length=1)
    username: str | None = None
    credential: str | None = None


class IceServersResponse(BaseModel):
    """Answer of ``GET /v1/ice-servers``: pass ``ice_servers`` as ``iceServers``."""

    ice_servers: list[IceServer] = Field(
        description="STUN and TURN servers (empty: none configured; use host candidates)"
    )
    ttl_s: int | None = Field(
        description="Seconds the TURN credentials stay valid from now (null: no TURN)"
    )


def turn_credentials(
    secret: str, user: str, ttl: float, now: float | None = None
) -> tuple[str, str]:
    """``(username, password)`` for ``user``, valid ``ttl`` seconds from ``now`` (coturn REST)."""
    expiry = int((time.time() if now is None else now) + ttl)
    username = f"{expiry}:{_USER_UNSAFE.sub('-', user) or 'user'}"
    digest = hmac.new(secret.encode("utf-8"), username.encode("utf-8"), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def ice_servers_for(
    ice: IceConfig, user: str, now: float | None = None, *, ttl_s: float | None = None
) -> list[dict[str, Any]]:
    """The configured STUN/TURN servers, with fresh TURN credentials for ``user``.

    ``ttl_s`` overrides ``ice.turn_ttl_s`` (the service's own peer outlives a call).
    """
    servers: list[dict[str, Any]] = []
    if ice.stun_urls:
        servers.append({"urls": list(ice.stun_urls)})
    if ice.turn_urls and ice.turn_secret is not None:
        ttl = ice.turn_ttl_s if ttl_s is None else ttl_s
        username, password = turn_credentials(ice.turn_secret.get_secret_value(), user, ttl, now)
        servers.append({"urls": list(ice.turn_urls), "username": username, "credential": password})
    return servers


def rtc_ice_servers(servers: list[dict[str, Any]]) -> list[RTCIceServer]:
    """Browser-shaped ICE servers as aiortc ``RTCIceServer`` objects."""
    out = []
    for entry in servers:
        server = IceServer.model_validate(entry)
        out.append(
            RTCIceServer(urls=server.urls, username=server.username, credential=server.credential)
        )
    return out


def rtc_configuration(
    servers: list[dict[str, Any]], *, relay_only: bool = False
) -> RTCConfiguration:
    """An aiortc ``RTCConfiguration`` (never ``iceServers=None``: aiortc would add public STUN).

    aiortc uses only the first STUN and the first UDP/TCP TURN url it finds.
    """
    policy = RTCIceTransportPolicy.RELAY if relay_only else RTCIceTransportPolicy.ALL
    return RTCConfiguration(iceServers=rtc_ice_servers(servers), iceTransportPolicy=policy)


def has_relay_candidate(sdp: str) -> bool:
    """Whether a session description carries a ``typ relay`` candidate."""
    return _RELAY_LINE.search(sdp) is not None


def _first_turn(servers: list[dict[str, Any]]) -> tuple[str, dict[str, Any], IceServer] | None:
    """The first TURN url aiortc can use, parsed, with its server entry."""
    for entry in servers:
        server = IceServer.model_validate(entry)
        for url in server.urls:
            if not url.startswith("turn"):
                continue
            try:
                parsed = parse_stun_turn_uri(url)
            except ValueError:
                continue
            ok = parsed["transport"] in ("udp", "tcp")
            if parsed["scheme"] == "turns":
                ok = parsed["transport"] == "tcp"
            if ok:
                return url, parsed, server
    return None


class _Closed(asyncio.DatagramProtocol):
    """Receives nothing; notes when the preflight allocation is gone."""

    def __init__(self) -> None:
        self.gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.gone.done():
            self.gone.set_result(None)


async def check_turn(
    servers: list[dict[str, Any]], *, timeout_s: float = CHECK_TIMEOUT_S
) -> tuple[str, int]:
    """Allocate (then release) a relay on the first usable TURN url; return its address.

    Raises :class:`TurnUnavailableError` naming the url and the cause (401: the secret
    does not match coturn's ``static-auth-secret``; no answer within ``timeout_s``).
    """
    found = _first_turn(servers)
    if found is None:
        raise TurnUnavailableError("no usable TURN url (turn:host[:port][?transport=udp|tcp])")
    url, parsed, server = found
    try:
        transport, protocol = await asyncio.wait_for(
            aioice.turn.create_turn_endpoint(
                _Closed,
                server_addr=(parsed["host"], parsed["port"]),
                username=server.username,
                password=server.credential,
                ssl=parsed["scheme"] == "turns",
                transport=parsed["transport"],
            ),
            timeout_s,
        )
    except aioice.stun.TransactionFailed as exc:
        code = exc.response.attributes.get("ERROR-CODE", (0, ""))
        hint = (
            ": the credentials are wrong or expired (does ice.turn_secret match coturn's "
            "static-auth-secret?)"
            if code[0] == 401
            else ""
        )
        raise TurnUnavailableError(
            f"TURN server {url} refused the allocation ({code[0]} {code[1]}){hint}"
        ) from exc
    except asyncio.TimeoutError as exc:
        raise TurnUnavailableError(
            f"TURN server {url} did not answer within {timeout_s:g} s"
        ) from exc
    except (OSError, aioice.stun.TransactionError) as exc:
        raise TurnUnavailableError(f"TURN server {url} cannot be reached: {exc}") from exc
    relayed = transport.get_extra_info("sockname")
    transport.close()  # deletes the allocation; the protocol hears when it is gone
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.shield(protocol.gone), timeout_s)
    return relayed[0], relayed[1]


class IceProvider:
    """The service's ICE servers: lists for callers, its own peer's, and TURN health."""

    def __init__(self, ice: IceConfig, *, max_session_s: float) -> None:
        self.ice = ice
        # The service's peer refreshes its allocation for the whole call.
        self._server_ttl_s = max(float(ice.turn_ttl_s), max_session_s + 300.0)
        self.error: str | None = None
        self.checked = False
        self._monitor: asyncio.Task[None] | None = None

    @property
    def turn_configured(self) -> bool:
        """Whether TURN urls (and so a secret) are configured."""
        return bool(self.ice.turn_urls)

    @property
    def ready(self) -> bool:
        """No TURN, or TURN checked and working."""
        return not self.turn_configured or (self.checked and self.error is None)

    @property
    def ttl_s(self) -> int | None:
        """Lifetime of the credentials handed to callers (None without TURN)."""
        return self.ice.turn_ttl_s if self.turn_configured else None

    def for_client(self, principal: str) -> list[dict[str, Any]]:
        """ICE servers for a caller (its name, e.g. ``key:<fp>``, goes into the username)."""
        return ice_servers_for(self.ice, principal)

    def server_configuration(self) -> RTCConfiguration:
        """The configuration of the service's own peer, with fresh credentials."""
        servers = ice_servers_for(self.ice, SERVER_USER, ttl_s=self._server_ttl_s)
        return rtc_configuration(servers, relay_only=self.ice.relay_only)

    async def check(self) -> None:
        """Run the TURN preflight once and record the outcome."""
        if not self.turn_configured:
            return
        try:
            relayed = await check_turn(ice_servers_for(self.ice, PREFLIGHT_USER, ttl_s=60))
        except TurnUnavailableError as exc:
            if self.error != str(exc):
                log.error("TURN is unusable, calls through it will not connect: %s", exc)
            self.error = str(exc)
        else:
            if self.error is not None or not self.checked:
                log.info("TURN works (relay %s:%d)", *relayed)
            self.error = None
        self.checked = True

    async def _watch(self) -> None:
        while True:
            try:
                await self.check()
            except Exception as exc:  # the monitor must outlive one bad check
                log.exception("the TURN check failed unexpectedly")
                self.error, self.checked = f"TURN check failed: {exc}", True
            if not self.ice.turn_check_interval_s:
                return
            await asyncio.sleep(self.ice.turn_check_interval_s)

    def start(self) -> None:
        """Start the preflight (and its periodic re-check) in the background."""
        if self.turn_configured and self._monitor is None:
            self._monitor = asyncio.get_running_loop().create_task(
                self._watch(), name="turn-monitor"
            )

    async def stop(self) -> None:
        """Stop the periodic re-check."""
        task, self._monitor = self._monitor, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


ICE_KEY: web.AppKey[IceProvider] = web.AppKey("gwm_ice", IceProvider)
