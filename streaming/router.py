"""``avatar route``: one HTTP front for many workers, stateless, any number of replicas.

- ``POST /v1/sessions`` goes to the worker with the most free slots (from its
  ``/readyz``); a worker that turns it away for capacity is skipped and the next one
  tried; with none left the caller gets 503 ``no_capacity`` with Retry-After.
- Every later call for a session (``/v1/sessions/<id>...``) goes to the worker named in
  its id (``<worker_id>.<random>``, see ``streaming.session_ids``): sessions stay
  pinned to the worker that answered the offer, with no routing table to share.
- ``GET /v1/sessions`` merges every worker's list; anything else (demo page, widget,
  tokens, ICE servers, avatars, OpenAPI) goes to any worker with its models loaded.

Media never passes through the router: ICE connects the caller to the worker (or to
a TURN relay in front of it). Workers see the caller's address in X-Forwarded-For;
list the router in their ``server.trusted_proxies``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from streaming.api_error import ApiError, json_error
from streaming.config import AppConfig
from streaming.session_ids import worker_of
from streaming.worker_pool import WorkerPool, WorkerStatus

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5
SESSION_PATH = re.compile(r"/v1/sessions/(?P<sid>[^/]+)(?P<rest>/.*)?")
# Codes a worker answers when it cannot take a session now (another worker may).
REFUSALS = {"at_capacity", "draining", "not_ready"}
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}


class RouterMetrics:
    """The router's own Prometheus registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.routed = Counter(
            "gwm_router_sessions_routed_total",
            "Sessions a worker accepted through this router",
            registry=self.registry,
        )
        self.rejected = Counter(
            "gwm_router_sessions_rejected_total",
            "Session requests no worker could take",
            ["reason"],
            registry=self.registry,
        )
        self.workers = Gauge(
            "gwm_router_workers", "Known workers by state", ["state"], registry=self.registry
        )
        self.free_slots = Gauge(
            "gwm_router_free_session_slots",
            "Sessions the pool can still take (for autoscaling)",
            registry=self.registry,
        )

    def observe_pool(self, pool: WorkerPool) -> None:
        """Refresh the gauges from the pool."""
        workers = pool.workers
        self.workers.labels(state="ready").set(sum(w.ready and w.reachable for w in workers))
        self.workers.labels(state="full").set(
            sum(w.reachable and w.loaded and not w.ready and not w.draining for w in workers)
        )
        self.workers.labels(state="draining").set(sum(w.reachable and w.draining for w in workers))
        self.workers.labels(state="unreachable").set(sum(not w.reachable for w in workers))
        self.free_slots.set(sum(w.free for w in workers))


@dataclass
class RouterState:
    """What one router instance owns."""

    config: AppConfig
    metrics: RouterMetrics = field(default_factory=RouterMetrics)
    http: aiohttp.ClientSession | None = None
    pool: WorkerPool | None = None

    def require_pool(self) -> WorkerPool:
        """The worker pool (present once the app has started)."""
        if self.pool is None:
            raise ApiError(503, "not_ready", "the router is starting", _retry())
        return self.pool


ROUTER_KEY: web.AppKey[RouterState] = web.AppKey("gwm_router", RouterState)


def _retry() -> dict[str, str]:
    return {"Retry-After": str(RETRY_AFTER_S)}


def _forward_headers(request: web.Request) -> CIMultiDict[str]:
    headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP)
    chain = request.headers.get("X-Forwarded-For")
    client = request.remote or "unknown"
    headers["X-Forwarded-For"] = f"{chain}, {client}" if chain else client
    headers["X-Forwarded-Proto"] = request.headers.get("X-Forwarded-Proto", request.scheme)
    headers["X-Forwarded-Host"] = request.headers.get("X-Forwarded-Host", request.host)
    return headers


class WorkerUnreachableError(ConnectionError):
    """The worker did not take the request (connection refused, reset, timed out)."""


async def _send(
    state: RouterState, worker: WorkerStatus, request: web.Request, body: bytes
) -> tuple[int, CIMultiDict[str], bytes]:
    assert state.http is not None
    timeout = aiohttp.ClientTimeout(total=state.config.router.request_timeout_s)
    url = f"{worker.url}{request.rel_url}"
    try:
        async with state.http.request(
            request.method,
            url,
            data=body or None,
            headers=_forward_headers(request),
            timeout=timeout,
            allow_redirects=False,
        ) as resp:
            payload = await resp.read()
            headers = CIMultiDict(
                (k, v) for k, v in resp.headers.items() if k.lower() not in HOP_BY_HOP
            )
            return resp.status, headers, payload
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise WorkerUnreachableError(str(exc) or type(exc).__name__) from exc


def _response(status: int, headers: CIMultiDict[str], body: bytes) -> web.Response:
    return web.Response(status=status, headers=headers, body=body)


def _refusal_code(status: int, body: bytes) -> str | None:
    if status != 503:
        return None
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None
    return code if code in REFUSALS else None


async def _new_session(state: RouterState, request: web.Request) -> web.StreamResponse:
    pool = state.require_pool()
    body = await request.read()
    tried: set[str] = set()
    while (worker := pool.pick(tried)) is not None:
        tried.add(worker.url)
        try:
            status, headers, payload = await _send(state, worker, request, body)
        except WorkerUnreachableError as exc:
            pool.mark_unreachable(worker, str(exc))
            continue
        refusal = _refusal_code(status, payload)
        if refusal is not None:
            log.info("worker %s refused a session (%s); trying another", worker.worker_id, refusal)
            pool.mark_full(worker)
            continue
        if status == 201:
            worker.reserved += 1
            state.metrics.routed.inc()
        return _response(status, headers, payload)
    if not pool.loaded_workers():
        state.metrics.rejected.labels(reason="no_workers").inc()
        raise ApiError(503, "not_ready", "no avatar worker is up yet", _retry())
    state.metrics.rejected.labels(reason="no_capacity").inc()
    raise ApiError(503, "no_capacity", "every avatar worker is busy; try again soon", _retry())


async def _pinned(state: RouterState, request: web.Request, session_id: str) -> web.StreamResponse:
    worker_id = worker_of(session_id)
    worker = state.require_pool().by_id(worker_id) if worker_id else None
    if worker is None:
        raise ApiError(404, "unknown_session", "no such session")
    try:
        status, headers, payload = await _send(state, worker, request, await request.read())
    except WorkerUnreachableError as exc:
        raise ApiError(502, "worker_unreachable", "the session's worker did not answer") from exc
    return _response(status, headers, payload)


async def _list_sessions(state: RouterState, request: web.Request) -> web.StreamResponse:
    workers = [w for w in state.require_pool().workers if w.reachable and w.loaded]
    results = await asyncio.gather(
        *(_send(state, w, request, b"") for w in workers), return_exceptions=True
    )
    sessions: list[Any] = []
    for result in results:
        if isinstance(result, BaseException):
            continue  # an unreachable worker's sessions are gone with it
        status, headers, payload = result
        if status != 200:
            return _response(status, headers, payload)  # e.g. 401: the same for every worker
        sessions.extend(json.loads(payload).get("sessions", []))
    return web.json_response({"sessions": sessions})


async def _anywhere(state: RouterState, request: web.Request) -> web.StreamResponse:
    body = await request.read()
    pool = state.require_pool()
    for worker in pool.loaded_workers():
        try:
            status, headers, payload = await _send(state, worker, request, body)
        except WorkerUnreachableError as exc:
            pool.mark_unreachable(worker, str(exc))
            continue
        return _response(status, headers, payload)
    raise ApiError(503, "not_ready", "no avatar worker is up yet", _retry())


async def _readyz(state: RouterState) -> web.Response:
    workers = state.pool.workers if state.pool is not None else []
    free = sum(w.free for w in workers)
    body = {
        "ready": free > 0,
        "capacity_left": free,
        "workers": len(workers),
        "workers_ready": sum(w.free > 0 for w in workers),
    }
    return web.json_response(body, status=200 if free > 0 else 503)


async def route(request: web.Request) -> web.StreamResponse:
    """Dispatch one request to the right worker (see the module docstring)."""
    state = request.app[ROUTER_KEY]
    path = request.path
    if path == "/healthz":
        return web.json_response({"status": "ok"})
    if path == "/readyz":
        return await _readyz(state)
    if path == "/metrics":
        if state.pool is not None:
            state.metrics.observe_pool(state.pool)
        return web.Response(body=generate_latest(state.metrics.registry), content_type="text/plain")
    if path == "/v1/sessions" and request.method == "POST":
        return await _new_session(state, request)
    if path == "/v1/sessions" and request.method == "GET":
        return await _list_sessions(state, request)
    match = SESSION_PATH.fullmatch(path)
    if match and request.method != "OPTIONS":
        return await _pinned(state, request, match["sid"])
    return await _anywhere(state, request)


@web.middleware
async def _errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return json_error(exc.status, exc.code, exc.message, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {413: "body_too_large"}.get(exc.status, "http_error")
        return json_error(exc.status, code, exc.reason)
    except Exception:
        log.exception("router error on %s %s", request.method, request.path)
        return json_error(500, "internal", "internal router error")


async def _on_startup(app: web.Application) -> None:
    state = app[ROUTER_KEY]
    # Pass bodies through as the worker sent them (no re-compression, no decoding).
    state.http = aiohttp.ClientSession(auto_decompress=False)
    state.pool = WorkerPool(state.config.router, state.http)
    await state.pool.start()
    log.info("router: %d worker(s) known", len(state.pool.workers))


async def _on_cleanup(app: web.Application) -> None:
    state = app[ROUTER_KEY]
    if state.pool is not None:
        await state.pool.aclose()
    if state.http is not None:
        await state.http.close()


def create_router_app(config: AppConfig) -> web.Application:
    """Build the router application."""
    srv = config.server
    app = web.Application(
        middlewares=[_errors],
        client_max_size=max(srv.max_body_bytes, srv.max_avatar_bytes + 64 * 1024),
    )
    app[ROUTER_KEY] = RouterState(config=config)
    app.router.add_route("*", "/{tail:.*}", route)
    app.on_startup.append(_on_startup)
    app.on_cleanup.append(_on_cleanup)
    return app
