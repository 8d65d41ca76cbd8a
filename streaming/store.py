"""Sessions and their transcripts in a real database, written as each turn completes.

SQLite (the default, in WAL mode) or PostgreSQL (``postgresql://...``, needs the
``postgres`` extra: psycopg). One dedicated writer thread owns the connection; every
write and read is queued to it in order, so a read sees every write queued before it,
and each turn is committed on its own. With WAL and ``synchronous=NORMAL`` a committed
turn survives the process being killed (only a power loss can take the last commits).
The schema is versioned in a ``schema_version`` table and migrated on open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from streaming.turn_record import TurnRecord

log = logging.getLogger(__name__)

T = TypeVar("T")

MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            "CREATE TABLE IF NOT EXISTS sessions ("
            " id TEXT PRIMARY KEY,"
            " created_at DOUBLE PRECISION NOT NULL,"
            " ended_at DOUBLE PRECISION,"
            " avatar TEXT NOT NULL,"
            " close_reason TEXT)",
            "CREATE TABLE IF NOT EXISTS turns ("
            " session_id TEXT NOT NULL REFERENCES sessions(id),"
            " turn_id INTEGER NOT NULL,"
            " started_at DOUBLE PRECISION NOT NULL,"
            " completed_at DOUBLE PRECISION NOT NULL,"
            " user_text TEXT NOT NULL,"
            " reply_text TEXT NOT NULL,"
            " spoken_text TEXT NOT NULL,"
            " interrupted INTEGER NOT NULL,"
            " cut_at DOUBLE PRECISION,"
            " spoken_s DOUBLE PRECISION,"
            " error TEXT,"
            " metrics TEXT NOT NULL,"
            " PRIMARY KEY (session_id, turn_id))",
        ],
    ),
    (
        2,
        [
            # Spent single-use session tokens, shared by every worker on this database.
            "CREATE TABLE IF NOT EXISTS used_tokens ("
            " id TEXT PRIMARY KEY,"
            " expires_at DOUBLE PRECISION NOT NULL)",
        ],
    ),
]
"""(version, statements) in order; a database at version v gets every later entry."""


class StoreError(RuntimeError):
    """The database URL is unusable or the database cannot be opened."""


@dataclass(frozen=True)
class TurnRow:
    """One completed turn as stored."""

    turn_id: int
    started_at: float
    completed_at: float
    user_text: str
    reply_text: str
    spoken_text: str
    interrupted: bool
    cut_at: float | None
    spoken_s: float | None
    error: str | None
    metrics: dict[str, float]


class _Connection(Protocol):
    def cursor(self) -> Any: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def close(self) -> None: ...


def turn_row(record: TurnRecord) -> TurnRow:
    """The stored form of a conversation's turn record."""
    return TurnRow(
        turn_id=record.turn_id,
        started_at=record.started_at,
        completed_at=record.completed_at or record.started_at,
        user_text=record.user_text,
        reply_text=record.reply_text,
        spoken_text=record.spoken_text,
        interrupted=record.interrupted,
        cut_at=record.cut_at,
        spoken_s=record.spoken_s,
        error=record.error or None,
        metrics={k: float(v) for k, v in record.metrics.items()},
    )


def default_database_url() -> str:
    """``sqlite:///$XDG_DATA_HOME/gwm-avatars/sessions.db`` (``~/.local/share`` when unset)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return f"sqlite:///{Path(base) / 'gwm-avatars' / 'sessions.db'}"


def sqlite_path(url: str) -> str:
    """The file of a ``sqlite:///path`` URL (``:memory:`` allowed)."""
    path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else ""
    if not path:
        raise StoreError(f"a SQLite URL looks like sqlite:///path/to/file.db, got {url!r}")
    return path


class TranscriptStore:
    """Sessions and turns in SQL, behind one writer thread (see module docstring)."""

    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite:"):
            self.dialect = "sqlite"
            sqlite_path(url)
        elif url.startswith(("postgresql://", "postgres://")):
            self.dialect = "postgres"
        else:
            raise StoreError(f"unsupported database URL {url!r} (sqlite:/// or postgresql://)")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        self._conn: _Connection | None = None
        self._closed = False

    # --- lifecycle (call from the event loop) ---------------------------------

    async def open(self) -> None:
        """Connect and migrate the schema (raises StoreError)."""
        await asyncio.wrap_future(self._submit(self._open))

    async def close(self) -> None:
        """Finish queued writes, close the connection and stop the writer thread."""
        if self._closed:
            return
        self._closed = True
        await asyncio.wrap_future(self._executor.submit(self._close_conn))
        await asyncio.to_thread(self._executor.shutdown, True)

    # --- writes (fire and forget, ordered; await the result to know it is durable) ---

    def open_session(self, session_id: str, created_at: float, avatar: str) -> Future[None]:
        """Record a new session."""
        return self._submit(
            self._write,
            "INSERT INTO sessions (id, created_at, avatar) VALUES (?, ?, ?) "
            "ON CONFLICT (id) DO NOTHING",
            (session_id, created_at, avatar),
        )

    def end_session(self, session_id: str, ended_at: float, reason: str) -> Future[None]:
        """Record that a session ended and why."""
        return self._submit(
            self._write,
            "UPDATE sessions SET ended_at = ?, close_reason = ? WHERE id = ?",
            (ended_at, reason, session_id),
        )

    def add_turn(self, session_id: str, row: TurnRow) -> Future[None]:
        """Commit one completed turn."""
        return self._submit(
            self._write,
            "INSERT INTO turns (session_id, turn_id, started_at, completed_at, user_text, "
            "reply_text, spoken_text, interrupted, cut_at, spoken_s, error, metrics) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (session_id, turn_id) "
            "DO NOTHING",
            (
                session_id,
                row.turn_id,
                row.started_at,
                row.completed_at,
                row.user_text,
                row.reply_text,
                row.spoken_text,
                int(row.interrupted),
                row.cut_at,
                row.spoken_s,
                row.error,
                json.dumps(row.metrics),
            ),
        )

    def claim_token(self, token_id: str, expires_at: float, now: float) -> Future[bool]:
        """Spend a single-use token: True the first time ``token_id`` is claimed, on any
        worker sharing this database; False if it was already spent."""
        return self._submit(self._claim, token_id, expires_at, now)

    # --- reads ------------------------------------------------------------------

    async def transcript(self, session_id: str) -> dict[str, Any] | None:
        """The session and its turns in order, or None if it was never recorded."""
        return await asyncio.wrap_future(self._submit(self._read_transcript, session_id))

    # --- the writer thread ------------------------------------------------------

    def _submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        if self._closed:
            failed: Future[T] = Future()
            failed.set_exception(StoreError("the transcript store is closed"))
            return failed
        fut = self._executor.submit(fn, *args)
        fut.add_done_callback(_log_failure)
        return fut

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.dialect == "postgres" else statement

    def _open(self) -> None:
        self._conn = connect(self.url, self.dialect)
        self._migrate()

    def _migrate(self) -> None:
        with self._transaction() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            cur.execute("SELECT MAX(version) FROM schema_version")
            current = cur.fetchone()[0] or 0
            for version, statements in MIGRATIONS:
                if version <= current:
                    continue
                for stmt in statements:
                    cur.execute(stmt)
                cur.execute(
                    self._sql("INSERT INTO schema_version (version) VALUES (?)"), (version,)
                )
                log.info("transcript store migrated to schema version %d", version)

    def _require(self) -> _Connection:
        if self._conn is None:
            raise StoreError("the transcript store is not open")
        return self._conn

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Any]:
        """A cursor whose statements commit together, or roll back on any error."""
        conn = self._require()
        cur = conn.cursor()
        try:
            yield cur
            conn.commit()
        except Exception:
            conn.rollback()
            raise
        finally:
            cur.close()

    def _write(self, statement: str, params: tuple[Any, ...]) -> None:
        with self._transaction() as cur:
            cur.execute(self._sql(statement), params)

    def _claim(self, token_id: str, expires_at: float, now: float) -> bool:
        with self._transaction() as cur:
            cur.execute(self._sql("DELETE FROM used_tokens WHERE expires_at <= ?"), (now,))
            cur.execute(
                self._sql(
                    "INSERT INTO used_tokens (id, expires_at) VALUES (?, ?) "
                    "ON CONFLICT (id) DO NOTHING"
                ),
                (token_id, expires_at),
            )
            return bool(cur.rowcount == 1)

    def _read_transcript(self, session_id: str) -> dict[str, Any] | None:
        conn = self._require()
        cur = conn.cursor()
        try:
            cur.execute(
                self._sql(
                    "SELECT id, created_at, ended_at, avatar, close_reason FROM sessions "
                    "WHERE id = ?"
                ),
                (session_id,),
            )
            sess = cur.fetchone()
            if sess is None:
                conn.commit()
                return None
            cur.execute(
                self._sql(
                    "SELECT turn_id, started_at, completed_at, user_text, reply_text, "
                    "spoken_text, interrupted, cut_at, spoken_s, error, metrics FROM turns "
                    "WHERE session_id = ? ORDER BY turn_id"
                ),
                (session_id,),
            )
            rows = cur.fetchall()
            conn.commit()
        finally:
            cur.close()
        return _transcript_json(sess, rows)

    def _close_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def connect(url: str, dialect: str) -> _Connection:
    """A connection to the database at ``url`` (SQLite in WAL mode, or PostgreSQL)."""
    if dialect == "sqlite":
        path = sqlite_path(url)
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=5000")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the SQLite database {path}: {exc}") from exc
        conn.isolation_level = "DEFERRED"
        return conn
    try:
        import psycopg
    except ImportError as exc:
        raise StoreError(
            "postgresql:// needs psycopg: pip install 'gwm-avatars[postgres]'"
        ) from exc
    try:
        return psycopg.connect(url)
    except psycopg.Error as exc:
        raise StoreError(f"cannot connect to PostgreSQL: {exc}") from exc


def _transcript_json(sess: Any, rows: list[Any]) -> dict[str, Any]:
    """The ``GET /v1/sessions/{id}/transcript`` body from a session row and turn rows."""
    return {
        "session_id": sess[0],
        "created_at": sess[1],
        "ended_at": sess[2],
        "avatar": sess[3],
        "close_reason": sess[4],
        "turns": [
            {
                "turn_id": r[0],
                "started_at": r[1],
                "completed_at": r[2],
                "user_text": r[3],
                "reply_text": r[4],
                "spoken_text": r[5],
                "interrupted": bool(r[6]),
                "cut_at": r[7],
                "spoken_s": r[8],
                "error": r[9],
                "metrics": json.loads(r[10]),
            }
            for r in rows
        ],
    }


def _log_failure(fut: Future[Any]) -> None:
    exc = fut.exception() if not fut.cancelled() else None
    if exc is not None:
        log.error("transcript store operation failed: %s", exc)
