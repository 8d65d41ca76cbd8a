"""Session ids that name the worker holding the session.

Behind ``avatar route`` each worker has a ``server.worker_id``; its session ids read
``<worker_id>.<random>``. The random part (``secrets.token_urlsafe``) never holds a
dot, so the worker is everything before the last dot, and any router replica can pin
a session's later calls without shared state.
"""

from __future__ import annotations

import secrets

SEPARATOR = "."


def session_id_prefix(worker_id: str | None) -> str:
    """The prefix for session ids minted by ``worker_id`` (empty without one)."""
    return f"{worker_id}{SEPARATOR}" if worker_id else ""


def new_session_id(prefix: str = "") -> str:
    """A fresh unguessable session id (72 random bits after ``prefix``)."""
    return prefix + secrets.token_urlsafe(12)


def worker_of(session_id: str) -> str | None:
    """The worker named in ``session_id``, or None when it names none."""
    worker, sep, rest = session_id.rpartition(SEPARATOR)
    return worker if sep and worker and rest else None
