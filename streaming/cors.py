"""Cross-origin access to the API, so the web widget can run on other sites.

Applies to paths under ``/v1/``. A browser request carries an ``Origin``; when the
allow-list (``server.allowed_origins``) is empty every origin may call the API (local
use), otherwise only the listed origins and the service's own host. A refused origin
gets ``403 {"error": {"code": "origin_not_allowed"}}`` for the preflight and for the
request itself. Requests without an ``Origin`` (curl, server to server) pass through.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

API_PREFIX = "/v1/"
ALLOW_METHODS = "GET, POST, DELETE, OPTIONS"
ALLOW_HEADERS = "Content-Type, Authorization"
EXPOSE_HEADERS = "Retry-After"
PREFLIGHT_MAX_AGE_S = 600


def normalize_origin(origin: str) -> str:
    """``HTTPS://Example.com/`` → ``https://example.com`` (how browsers send it)."""
    return origin.strip().rstrip("/").lower()


class OriginPolicy:
    """Which browser origins may call the API."""

    def __init__(self, allowed: Iterable[str]) -> None:
        self.allowed = frozenset(normalize_origin(o) for o in allowed if o.strip())

    def allows(self, origin: str, request_host: str) -> bool:
        """Whether a page on ``origin`` may call a service reached as ``request_host``."""
        if not self.allowed:
            return True
        norm = normalize_origin(origin)
        if norm in self.allowed:
            return True
        # The service's own pages (the demo at /) are always allowed.
        return bool(request_host) and urlsplit(norm).netloc == request_host.lower()


def _refused(origin: str) -> web.Response:
    return web.json_response(
        {
            "error": {
                "code": "origin_not_allowed",
                "message": f"pages on {origin} may not use this service",
            }
        },
        status=403,
        headers={"Vary": "Origin"},
    )


def _allow_headers(resp: web.StreamResponse, origin: str) -> None:
    resp.headers["Access-Control-Allow-Origin"] = origin
    resp.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
    vary = resp.headers.get("Vary")
    if not vary:
        resp.headers["Vary"] = "Origin"
    elif "origin" not in vary.lower():
        resp.headers["Vary"] = f"{vary}, Origin"


def cors_middleware(allowed_origins: Iterable[str]) -> Middleware:
    """An aiohttp middleware enforcing ``allowed_origins`` on ``/v1/`` (place it first)."""
    policy = OriginPolicy(allowed_origins)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is None or not request.path.startswith(API_PREFIX):
            return await handler(request)
        if not policy.allows(origin, request.host):
            return _refused(origin)
        preflight = request.method == "OPTIONS" and (
            "Access-Control-Request-Method" in request.headers
        )
        if preflight and not isinstance(request.match_info.http_exception, web.HTTPNotFound):
            resp: web.StreamResponse = web.Response(status=204)
            resp.headers["Access-Control-Allow-Methods"] = ALLOW_METHODS
            resp.headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
            resp.headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE_S)
        else:
            resp = await handler(request)
        _allow_headers(resp, origin)
        return resp

    return middleware
