"""The error every API handler raises; the server answers it as JSON with a stable code."""

from __future__ import annotations

from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class ApiError(Exception):
    """An error answered to the client as JSON with a stable code."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def json_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON error response: ``{"error": {"code": ..., "message": ...}}``."""
    return web.json_response(
        {"error": {"code": code, "message": message}}, status=status, headers=headers
    )


async def read_body(request: web.Request, model: type[M]) -> M:
    """The request's JSON body validated as ``model``.

    415 ``unsupported_media_type`` for another content type, 400 ``invalid_json`` for
    unparsable JSON, 400 ``invalid_request`` naming the first invalid field.
    """
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send JSON (Content-Type: application/json)")
    try:
        data = await request.json()
    except ValueError as exc:
        raise ApiError(400, "invalid_json", "request body is not valid JSON") from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(x) for x in first["loc"]) or "body"
        raise ApiError(400, "invalid_request", f"{loc}: {first['msg']}") from exc
