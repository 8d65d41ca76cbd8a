"""The server's side of persistence: open the transcript store, record sessions and
turns as they happen, and answer ``GET /v1/sessions/{id}/transcript``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable

from aiohttp import web

from streaming.api_error import ApiError
from streaming.config import AppConfig
from streaming.store import TranscriptStore, default_database_url, turn_row
from streaming.turn_record import TurnRecord

STORE_KEY: web.AppKey[TranscriptStore] = web.AppKey("gwm_store", TranscriptStore)


def attach_store(app: web.Application, config: AppConfig) -> TranscriptStore:
    """Create the store for ``server.database_url``, open it with the app, close it after,
    and add the transcript route."""
    store = TranscriptStore(config.server.database_url or default_database_url())
    app[STORE_KEY] = store
    app.router.add_get("/v1/sessions/{session_id}/transcript", get_transcript)

    async def _open(_: web.Application) -> None:
        await store.open()

    async def _close(_: web.Application) -> None:
        await store.close()

    app.on_startup.append(_open)
    app.on_cleanup.append(_close)
    return store


def session_opened(store: TranscriptStore, session_id: str, created: float, avatar: str) -> None:
    """Record a new session (queued; the turns written after it see it)."""
    store.open_session(session_id, created, avatar)


def session_closed(store: TranscriptStore, session_id: str, reason: str) -> None:
    """Record the end of a session."""
    store.end_session(session_id, time.time(), reason)


def turn_finished(store: TranscriptStore, session_id: str, record: TurnRecord) -> Awaitable[None]:
    """Commit a completed turn; the result resolves once it is durable."""
    return asyncio.wrap_future(store.add_turn(session_id, turn_row(record)))


async def get_transcript(request: web.Request) -> web.Response:
    """``GET /v1/sessions/{id}/transcript``: a session's turns, live or ended, across restarts."""
    data = await request.app[STORE_KEY].transcript(request.match_info["session_id"])
    if data is None:
        raise ApiError(404, "unknown_session", "no such session")
    return web.json_response(data)
