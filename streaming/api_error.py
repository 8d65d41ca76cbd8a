"""The error every API handler raises; the server answers it as JSON with a stable code."""

from __future__ import annotations


class ApiError(Exception):
    """An error answered to the client as JSON with a stable code."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
