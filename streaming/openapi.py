"""The OpenAPI 3.1 description of the HTTP API, served at ``GET /openapi.json``.

Request bodies come from the same pydantic models the handlers validate with, so the
spec cannot drift from what the server accepts. Routes registered by other modules that
are not described here still appear, with a generic description, so every route shows.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel

from streaming.auth import GUARD_KEY, TokenRequest, TokenResponse
from streaming.avatars_api import AvatarInfo, AvatarList, upload_schema
from streaming.turn import IceServersResponse

REF = "#/components/schemas/{model}"
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "stable, machine-readable"},
                "message": {"type": "string", "description": "for people"},
            },
        }
    },
}
ERROR_TEXT = {
    400: "Invalid request (invalid_json, invalid_request, invalid_sdp, invalid_image, ...)",
    401: "Missing or invalid credentials (unauthorized, token_expired)",
    403: "Refused (token_reused, origin_mismatch, scope_mismatch, origin_not_allowed)",
    404: "Not found (not_found, unknown_avatar, unknown_session)",
    413: "Too large (body_too_large, image_too_large)",
    415: "Wrong Content-Type (unsupported_media_type)",
    422: "The photo cannot become an avatar (no_face, face_too_small, image_too_small)",
    429: "Too many requests or sessions (rate_limited, session_limit); see Retry-After",
    503: (
        "Not ready, at capacity, busy or no TURN relay (not_ready, at_capacity, busy, "
        "turn_unavailable); see Retry-After"
    ),
    507: "No room for more uploaded avatars (too_many_avatars)",
}
SESSION_ANSWER: dict[str, Any] = {
    "type": "object",
    "required": ["session_id", "sdp", "type"],
    "properties": {
        "session_id": {"type": "string"},
        "sdp": {"type": "string"},
        "type": {"const": "answer"},
        "ice_servers": {
            "type": "array",
            "items": {"$ref": "#/components/schemas/IceServer"},
            "description": "The ICE servers for this caller (as GET /v1/ice-servers)",
        },
    },
}
OBJECT: dict[str, Any] = {"type": "object"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": REF.format(model=name)}


def _op(
    summary: str,
    ok: tuple[int, dict[str, Any] | None, str],
    errors: tuple[int, ...] = (),
    body: dict[str, Any] | None = None,
    secured: bool = False,
) -> dict[str, Any]:
    status, schema, media = ok
    content = {media: {"schema": schema}} if schema is not None else {media: {}}
    responses: dict[str, Any] = {str(status): {"description": "OK", "content": content}}
    for code in errors:
        responses[str(code)] = {
            "description": ERROR_TEXT[code],
            "content": _json(_ref("Error")),
        }
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if body is not None:
        op["requestBody"] = body
    if secured:
        op["security"] = [{"bearerAuth": []}]
    return op


def _model_body(name: str) -> dict[str, Any]:
    return {"required": True, "content": _json(_ref(name))}


def _schemas(models: list[type[BaseModel]]) -> dict[str, Any]:
    out: dict[str, Any] = {"Error": ERROR_SCHEMA}
    for model in models:
        schema = model.model_json_schema(ref_template=REF)
        out.update(schema.pop("$defs", {}))
        out[model.__name__] = schema
    return out


def build_spec(session_offer: type[BaseModel], *, auth: bool) -> dict[str, Any]:
    """The spec for the routes this package defines; ``auth``: API keys are required."""
    limits = (429,)
    sec = (401, *limits) if auth else limits
    json_body = (400, 413, 415)
    paths: dict[str, Any] = {
        "/": {"get": _op("The demo page", (200, None, "text/html"))},
        "/widget.js": {"get": _op("The embeddable web widget", (200, None, "text/javascript"))},
        "/healthz": {"get": _op("Liveness", (200, OBJECT, "application/json"))},
        "/readyz": {"get": _op("Readiness", (200, OBJECT, "application/json"), (503,))},
        "/metrics": {"get": _op("Prometheus metrics", (200, None, "text/plain"))},
        "/openapi.json": {"get": _op("This document", (200, OBJECT, "application/json"))},
        "/v1/sessions": {
            "post": _op(
                "Open a session: SDP offer in, SDP answer out (API key or session token)",
                (201, SESSION_ANSWER, "application/json"),
                (*json_body, *sec, 403, 404, 503),
                _model_body(session_offer.__name__),
                auth,
            ),
            "get": _op("The active sessions", (200, OBJECT, "application/json"), sec, None, auth),
        },
        "/v1/sessions/{session_id}": {
            "delete": {
                **_op(
                    "Hang up a session", (200, OBJECT, "application/json"), (*sec, 404), None, auth
                ),
                "parameters": [
                    {
                        "name": "session_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
            }
        },
        "/v1/ice-servers": {
            "get": _op(
                "STUN/TURN servers (fresh TURN credentials) for the client's iceServers; "
                "fetch before the offer (API key or session token, not spent)",
                (200, _ref("IceServersResponse"), "application/json"),
                sec,
                None,
                auth,
            )
        },
        "/v1/tokens": {
            "post": _op(
                "Mint a single-use session token for a browser (API key required)",
                (201, _ref("TokenResponse"), "application/json"),
                (*json_body, *sec),
                _model_body("TokenRequest"),
                auth,
            )
        },
        "/v1/avatars": {
            "post": {
                **_op(
                    "Upload a portrait (raw PNG or JPEG body); it becomes an avatar id",
                    (201, _ref("AvatarInfo"), "application/json"),
                    (400, 413, 415, 422, *sec, 503, 507),
                    upload_schema(),
                    auth,
                ),
                "parameters": [
                    {
                        "name": "voice",
                        "in": "query",
                        "required": False,
                        "description": "The voice the avatar speaks with when a session "
                        "names none (a voice available on this server)",
                        "schema": {"type": "string"},
                    }
                ],
            },
            "get": _op(
                "The avatars a session may ask for",
                (200, _ref("AvatarList"), "application/json"),
                sec,
                None,
                auth,
            ),
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "GWM Avatars", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": _schemas(
                [
                    session_offer,
                    TokenRequest,
                    TokenResponse,
                    AvatarInfo,
                    AvatarList,
                    IceServersResponse,
                ]
            ),
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }


def _add_unlisted(spec: dict[str, Any], app: web.Application) -> None:
    """Describe, generically, routes registered elsewhere and not in the spec."""
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        method = route.method.lower()
        if not path or method in {"head", "options", "*"}:
            continue
        entry = spec["paths"].setdefault(path, {})
        if method in entry:
            continue
        op = _op(route.handler.__doc__ or path, (200, OBJECT, "application/json"))
        params = [p[1:-1] for p in path.split("/") if p.startswith("{") and p.endswith("}")]
        if params:
            op["parameters"] = [
                {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                for p in params
            ]
        entry[method] = op


def openapi_route(session_offer: type[BaseModel]) -> Handler:
    """The ``GET /openapi.json`` handler (``session_offer``: the sessions body model)."""

    async def openapi(request: web.Request) -> web.Response:
        """This API's OpenAPI 3.1 description."""
        guard = request.app[GUARD_KEY]
        spec = build_spec(session_offer, auth=guard.enabled)
        _add_unlisted(spec, request.app)
        return web.json_response(spec)

    return openapi
