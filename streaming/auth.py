"""API keys, short-lived session tokens and per-caller limits for ``/v1/``.

With ``server.api_keys`` set, every ``/v1/`` call needs ``Authorization: Bearer <key>``.
A backend holding a key mints a single-use session token with ``POST /v1/tokens``
(body :class:`TokenRequest`) and gives it to a browser, which sends it as
``Authorization: Bearer <token>`` on ``POST /v1/sessions`` only; the browser never sees
a key. A token is ``v1.<payload>.<HMAC-SHA256>`` (base64url) over a random id, its
expiry, the minting key's fingerprint and an optional scope (avatar, voice, origin)
and the session mode it opens (conversation unless minted for ``echo``).
The HMAC secret is ``server.token_secret``, else random per start: then tokens do not
survive a restart. Used token ids are remembered in memory until they expire.

Without keys (the local default) nothing is authenticated; requests are then limited
per client IP instead of per key, except from loopback (this machine). Refusals raise
:class:`~streaming.api_error.ApiError` with a stable code: ``unauthorized``,
``token_expired`` (401), ``token_reused``, ``origin_mismatch``, ``scope_mismatch`` (403),
``rate_limited``, ``session_limit`` (429).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from pydantic import BaseModel, ConfigDict, Field

from streaming.api_error import ApiError, read_body
from streaming.config import ServerConfig
from streaming.cors import API_PREFIX, normalize_origin
from streaming.ratelimit import RateLimiter
from streaming.turn import ICE_KEY, IceServer

log = logging.getLogger(__name__)

TOKEN_PREFIX = "v1."
MAX_TOKEN_TTL_S = 600.0
MAX_TOKEN_CHARS = 2048
SESSIONS_PATH = "/v1/sessions"
ICE_SERVERS_PATH = "/v1/ice-servers"
# Where a session token is accepted: opening a session (which spends it), and fetching
# the ICE servers needed before the offer (which does not).
TOKEN_ROUTES = frozenset({("POST", SESSIONS_PATH), ("GET", ICE_SERVERS_PATH)})


class TokenRequest(BaseModel):
    """Body of ``POST /v1/tokens``: the scope and lifetime of one session token."""

    model_config = ConfigDict(extra="forbid")

    avatar: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    voice: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    origin: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    ttl_s: Annotated[float, Field(gt=0.0, le=MAX_TOKEN_TTL_S)] | None = None
    mode: Literal["conversation", "echo"] | None = Field(
        default=None,
        description="The session mode the token opens; None: conversation only",
    )


class TokenResponse(BaseModel):
    """Answer of ``POST /v1/tokens``."""

    token: str
    expires_at: float = Field(description="Unix time (seconds) after which it is refused")
    ice_servers: list[IceServer] = Field(
        default_factory=list,
        description="STUN/TURN servers for the browser's iceServers (as GET /v1/ice-servers)",
    )


@dataclass(frozen=True)
class TokenClaims:
    """What a verified session token grants."""

    id: str
    expires_at: float
    key: str
    avatar: str | None = None
    voice: str | None = None
    origin: str | None = None
    mode: str = "conversation"
    """The session mode it opens (a token minted without one: conversation only)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: ``key:<fingerprint>`` or ``ip:<address>``, and the token used, if any."""

    name: str
    token: TokenClaims | None = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def key_fingerprint(key: str) -> str:
    """A short, non-secret name for an API key (for limits and logs)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]


def _is_loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _unauthorized(message: str, code: str = "unauthorized") -> ApiError:
    return ApiError(401, code, message, {"WWW-Authenticate": 'Bearer realm="gwm"'})


class TokenSigner:
    """Mints and verifies signed session tokens."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the token secret must be at least 16 bytes")
        self._secret = secret

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode("ascii"), hashlib.sha256).digest())

    def mint(
        self, *, key: str, ttl_s: float, scope: TokenRequest, now: float | None = None
    ) -> tuple[str, TokenClaims]:
        """A new token for the key with fingerprint ``key``, valid ``ttl_s`` seconds."""
        now = time.time() if now is None else now
        claims = TokenClaims(
            id=_b64(secrets.token_bytes(12)),
            expires_at=round(now + min(ttl_s, MAX_TOKEN_TTL_S), 3),
            key=key,
            avatar=scope.avatar,
            voice=scope.voice,
            origin=normalize_origin(scope.origin) if scope.origin else None,
            mode=scope.mode or "conversation",
        )
        doc: dict[str, Any] = {"i": claims.id, "e": claims.expires_at, "k": key}
        for short, value in (("a", claims.avatar), ("v", claims.voice), ("o", claims.origin)):
            if value is not None:
                doc[short] = value
        if claims.mode != "conversation":
            doc["m"] = claims.mode
        payload = _b64(json.dumps(doc, separators=(",", ":")).encode("utf-8"))
        return f"{TOKEN_PREFIX}{payload}.{self._sign(payload)}", claims

    def verify(self, token: str, now: float | None = None) -> TokenClaims:
        """The claims of a well-signed, unexpired token; else a 401 :class:`ApiError`."""
        if (
            not token.startswith(TOKEN_PREFIX)
            or len(token) > MAX_TOKEN_CHARS
            or not token.isascii()
        ):
            raise _unauthorized("invalid API key or session token")
        payload, _, sig = token[len(TOKEN_PREFIX) :].partition(".")
        if not hmac.compare_digest(sig.encode("ascii"), self._sign(payload).encode("ascii")):
            raise _unauthorized("invalid API key or session token")
        try:
            doc = json.loads(_unb64(payload))
            claims = TokenClaims(
                id=str(doc["i"]),
                expires_at=float(doc["e"]),
                key=str(doc["k"]),
                avatar=doc.get("a"),
                voice=doc.get("v"),
                origin=doc.get("o"),
                mode=str(doc.get("m", "conversation")),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise _unauthorized("malformed session token") from exc
        if (time.time() if now is None else now) >= claims.expires_at:
            raise _unauthorized("the session token has expired", "token_expired")
        return claims


class AccessGuard:
    """Authentication, rate limits and per-caller session caps for one server."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self._keys = {
            key_fingerprint(k.get_secret_value()): k.get_secret_value() for k in config.api_keys
        }
        if config.token_secret is not None:
            secret = hashlib.sha256(config.token_secret.get_secret_value().encode()).digest()
        else:
            secret = secrets.token_bytes(32)
            if self._keys:
                log.warning(
                    "server.token_secret is not set: session tokens are signed with a random "
                    "secret and stop working when the server restarts"
                )
        self.signer = TokenSigner(secret)
        self.requests = RateLimiter(config.rate_limit_per_minute)
        self.session_starts = RateLimiter(config.session_rate_limit_per_minute)
        self._owners: dict[str, str] = {}

    @property
    def enabled(self) -> bool:
        """Whether API keys are configured (else no authentication)."""
        return bool(self._keys)

    def _match_key(self, presented: str) -> str | None:
        found = None
        for fp, key in self._keys.items():
            if hmac.compare_digest(presented.encode("utf-8"), key.encode("utf-8")):
                found = fp
        return found

    def identify(self, request: web.Request) -> Principal:
        """Who sends ``request`` (401 when keys are configured and it proves nothing)."""
        if not self.enabled:
            return Principal(f"ip:{request.remote or 'unknown'}")
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential or not credential.isascii():
            raise _unauthorized("send 'Authorization: Bearer <API key or session token>'")
        fp = self._match_key(credential)
        if fp is not None:
            return Principal(f"key:{fp}")
        if (request.method, request.path) in TOKEN_ROUTES:
            claims = self.signer.verify(credential)
            if claims.key not in self._keys:  # minted with a key that was since removed
                raise _unauthorized("the key that minted this token is no longer valid")
            return Principal(f"key:{claims.key}", claims)
        raise _unauthorized(
            "invalid API key (session tokens only open sessions and fetch ICE servers)"
        )

    def limit(self, request: web.Request, principal: Principal) -> None:
        """Spend this request from the caller's budgets (429 ``rate_limited`` when empty).

        Without API keys, callers on this machine (loopback) are not limited: that is the
        local default, where the demo page and scripts may poll freely.
        """
        if not self.enabled and _is_loopback(request.remote):
            return
        wait = self.requests.retry_after(principal.name)
        if not wait and request.method == "POST" and request.path == SESSIONS_PATH:
            wait = self.session_starts.retry_after(principal.name)
        if wait:
            raise ApiError(
                429, "rate_limited", "too many requests; slow down", {"Retry-After": str(wait)}
            )

    def mint(self, principal: Principal, body: TokenRequest) -> TokenResponse:
        """A session token for ``principal`` (who called with an API key)."""
        if principal.token is not None:
            raise _unauthorized("a session token cannot mint tokens")
        key = principal.name.partition(":")[2] if principal.name.startswith("key:") else "local"
        ttl = body.ttl_s if body.ttl_s is not None else self.config.token_ttl_s
        token, claims = self.signer.mint(key=key, ttl_s=ttl, scope=body)
        return TokenResponse(token=token, expires_at=claims.expires_at)

    def admit_session(
        self,
        request: web.Request,
        *,
        avatar: str,
        voice: str,
        active: Collection[str],
        mode: str = "conversation",
    ) -> Principal:
        """Check a session request against its token (if any) and the caller's session cap.

        ``avatar``/``voice``/``mode`` are what the session would use; ``active`` the ids of
        the open sessions. The caller spends an admitted token (single use, in the database every
        worker shares: ``TranscriptStore.claim_token``) before it opens the session.
        """
        principal = request.get(PRINCIPAL_KEY) or self.identify(request)
        claims = principal.token
        if claims is not None:
            if claims.origin is not None:
                origin = request.headers.get("Origin")
                if origin is None or normalize_origin(origin) != claims.origin:
                    raise ApiError(
                        403, "origin_mismatch", "this token is for pages on another origin"
                    )
            if claims.avatar is not None and claims.avatar != avatar:
                raise ApiError(403, "scope_mismatch", f"this token is not for avatar {avatar!r}")
            if claims.voice is not None and claims.voice != voice:
                raise ApiError(403, "scope_mismatch", f"this token is not for voice {voice!r}")
            if claims.mode != mode:
                raise ApiError(403, "scope_mismatch", f"this token is not for {mode} sessions")
        cap = self.config.max_sessions_per_key
        if cap is not None:
            self._owners = {sid: p for sid, p in self._owners.items() if sid in active}
            mine = sum(1 for p in self._owners.values() if p == principal.name)
            if mine >= cap:
                raise ApiError(
                    429,
                    "session_limit",
                    f"this caller already has {mine} open sessions (the limit is {cap})",
                    {"Retry-After": "5"},
                )
        return principal

    def bind(self, session_id: str, principal: Principal) -> None:
        """Count an opened session against its caller's cap."""
        self._owners[session_id] = principal.name


GUARD_KEY: web.AppKey[AccessGuard] = web.AppKey("gwm_guard", AccessGuard)
PRINCIPAL_KEY: web.RequestKey[Principal] = web.RequestKey("gwm_principal", Principal)


def guard_middleware(guard: AccessGuard) -> Middleware:
    """Authenticate and rate-limit ``/v1/`` (place it after the error middleware)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(API_PREFIX) and request.method != "OPTIONS":
            principal = guard.identify(request)
            guard.limit(request, principal)
            request[PRINCIPAL_KEY] = principal
        return await handler(request)

    return middleware


async def mint_token(request: web.Request) -> web.Response:
    """``POST /v1/tokens``: mint a single-use session token (API key required)."""
    guard = request.app[GUARD_KEY]
    body = await read_body(request, TokenRequest)
    principal = request.get(PRINCIPAL_KEY) or guard.identify(request)
    minted = guard.mint(principal, body)
    ice = request.app.get(ICE_KEY)
    if ice is not None:
        servers = [IceServer.model_validate(s) for s in ice.for_client(principal.name)]
        minted = minted.model_copy(update={"ice_servers": servers})
    return web.json_response(minted.model_dump(exclude_none=True), status=201)


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def public_bind_refusal(config: ServerConfig) -> str | None:
    """Why ``avatar serve`` must not bind ``config.host``, or None when it may.

    Loopback is always fine; another address needs API keys, or the explicit
    ``server.allow_public_without_auth``.
    """
    if config.host in LOOPBACK_HOSTS or config.api_keys or config.allow_public_without_auth:
        return None
    return (
        f"refusing to bind {config.host} without authentication; set server.api_keys "
        "(GWM_SERVER__API_KEYS), bind 127.0.0.1, or set server.allow_public_without_auth=true"
    )


def auth_summary(config: ServerConfig) -> str:
    """One log line saying how the service authenticates callers."""
    if config.api_keys:
        return (
            f"auth: {len(config.api_keys)} API key(s); /v1/ needs 'Authorization: Bearer'; "
            f"{config.rate_limit_per_minute} requests/min per key"
        )
    if config.host in LOOPBACK_HOSTS:
        return f"auth: none (no server.api_keys); listening on {config.host} only"
    return f"auth: NONE on public address {config.host} (server.allow_public_without_auth)"
