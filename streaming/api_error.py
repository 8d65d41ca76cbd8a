"""The error every API handler raises; the server answers it as JSON with a stable code."""

from __future__ import annotations

from aiohttp import web


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
