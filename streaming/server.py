"""HTTP signalling and REST API (aiohttp) in front of the sessions.

Routes: ``GET /`` (demo page), ``POST /v1/sessions`` (SDP offer → answer),
``GET /v1/sessions``, ``DELETE /v1/sessions/{id}``, ``GET /healthz``, ``GET /readyz``,
``GET /metrics``, ``GET /widget.js`` (the embeddable web widget). Every error is JSON:
``{"error": {"code": ..., "message": ...}}``. Pages on other origins may call ``/v1/``
as ``server.allowed_origins`` allows (streaming/cors.py). API keys, session tokens
(``POST /v1/tokens``) and rate limits: streaming/auth.py; avatar uploads
(``/v1/avatars``): streaming/avatars_api.py; ``GET /openapi.json``: streaming/openapi.py;
STUN/TURN (``GET /v1/ice-servers``, the TURN preflight): streaming/ice_api.py, turn.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from streaming.api_error import ApiError, json_error, read_body
from streaming.auth import GUARD_KEY, AccessGuard, TokenClaims, guard_middleware, mint_token
from streaming.avatars_api import AVATARS_KEY, AvatarStore, list_avatars, upload_avatar
from streaming.config import AppConfig
from streaming.cors import cors_middleware
from streaming.engines import Engines, UnknownAvatarError
from streaming.forwarded import forwarded_middleware
from streaming.ice import use_host_addresses
from streaming.ice_api import attach_ice
from streaming.metrics import ServerMetrics
from streaming.openapi import openapi_route
from streaming.records import attach_store, session_closed, session_opened, turn_finished
from streaming.serving_health import ServingMonitor
from streaming.session import Session, SessionMode, SessionRequest
from streaming.session_ids import session_id_prefix
from streaming.store import StoreError, TranscriptStore
from streaming.turn import ICE_KEY, has_relay_candidate
from streaming.turn_record import TurnRecord

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent / "web"
MAX_SDP_BYTES = 64 * 1024
RETRY_AFTER_S = 5
# What aiortc raises on a malformed offer (found by fuzzing, tests/streaming/test_api_fuzz.py).
SDP_FAILURES = (
    ValueError,
    AssertionError,
    TypeError,
    AttributeError,
    LookupError,
    RuntimeError,
    asyncio.TimeoutError,
)


class SessionOffer(BaseModel):
    """Body of ``POST /v1/sessions``."""

    model_config = ConfigDict(extra="forbid")

    sdp: Annotated[str, Field(min_length=1, max_length=MAX_SDP_BYTES)]
    type: Literal["offer"]
    avatar: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    voice: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    system_prompt: Annotated[str, Field(max_length=4000)] | None = None
    language: Annotated[str, Field(min_length=2, max_length=16)] | None = None
    mode: SessionMode = Field(
        default="conversation",
        description=(
            "conversation: the avatar listens and answers; echo: the caller's audio is the "
            "avatar's speech, played back lip-synced after a fixed delay (no STT or LLM)"
        ),
    )


@dataclass
class ServerState:
    """Everything one server instance owns."""

    config: AppConfig
    metrics: ServerMetrics = field(default_factory=ServerMetrics)
    engines: Engines | None = None
    sessions: dict[str, Session] = field(default_factory=dict)
    pending: int = 0
    render_executor: ThreadPoolExecutor | None = None
    loader: asyncio.Task[None] | None = None
    load_error: str | None = None
    owns_engines: bool = True
    store: TranscriptStore | None = None
    draining: bool = False
    serving_monitor: ServingMonitor | None = None


STATE_KEY: web.AppKey[ServerState] = web.AppKey("gwm_state", ServerState)


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Turn every failure into a JSON error; never leak a traceback."""
    state = request.app[STATE_KEY]
    try:
        return await handler(request)
    except ApiError as exc:
        state.metrics.http_errors.labels(status=str(exc.status)).inc()
        return json_error(exc.status, exc.code, exc.message, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        state.metrics.http_errors.labels(status=str(exc.status)).inc()
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(
            exc.status, "http_error"
        )
        return json_error(exc.status, code, exc.reason)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        state.metrics.http_errors.labels(status="500").inc()
        return json_error(500, "internal", "internal server error")


def _check_offer(offer: SessionOffer) -> SessionOffer:
    sdp = offer.sdp
    if not sdp.lstrip().startswith("v=0"):
        raise ApiError(400, "invalid_sdp", "sdp is not a session description (must start with v=0)")
    if "\nm=audio" not in sdp and not sdp.startswith("m=audio"):
        raise ApiError(400, "offer_without_audio", "the offer must include an audio m-line")
    return offer


async def create_session(request: web.Request) -> web.Response:
    """``POST /v1/sessions``: SDP offer in, SDP answer out."""
    state = request.app[STATE_KEY]
    offer = _check_offer(await read_body(request, SessionOffer))
    engines = state.engines
    if engines is None:
        raise ApiError(
            503, "not_ready", "models are still loading", {"Retry-After": str(RETRY_AFTER_S)}
        )
    if state.draining:
        state.metrics.sessions_rejected.labels(reason="draining").inc()
        raise ApiError(
            503,
            "draining",
            "the server is shutting down; try another instance",
            {"Retry-After": str(RETRY_AFTER_S)},
        )
    ice = request.app[ICE_KEY]
    if ice.ice.relay_only and ice.error is not None:
        state.metrics.sessions_rejected.labels(reason="turn").inc()
        raise ApiError(
            503, "turn_unavailable", f"calls cannot connect: {ice.error}", {"Retry-After": "30"}
        )
    if len(state.sessions) + state.pending >= state.config.server.max_sessions:
        state.metrics.sessions_rejected.labels(reason="capacity").inc()
        raise ApiError(
            503,
            "at_capacity",
            f"the server is at its limit of {state.config.server.max_sessions} sessions",
            {"Retry-After": str(RETRY_AFTER_S)},
        )
    name = offer.avatar or "default"
    principal = request.app[GUARD_KEY].admit_session(
        request,
        avatar=name,
        voice=offer.voice or engines.config.tts.voice,
        mode=offer.mode,
        active=state.sessions,
    )
    if principal.token is not None:
        await _spend_token(state.store, principal.token)
    try:
        avatar = await asyncio.to_thread(engines.avatar, name)
    except UnknownAvatarError:
        raise ApiError(404, "unknown_avatar", f"no avatar named {name!r}") from None
    if offer.voice is not None and offer.voice != engines.config.tts.voice:
        raise ApiError(400, "unknown_voice", f"voice {offer.voice!r} is not loaded on this server")
    state.pending += 1
    try:
        session = Session(
            engines,
            avatar,
            SessionRequest(
                avatar=name,
                voice=offer.voice,
                system_prompt=offer.system_prompt,
                language=offer.language,
                mode=offer.mode,
            ),
            render_executor=state.render_executor,
            on_closed=lambda s: _forget(state, s),
            on_turn=lambda s, r: _record_turn(state, s, r),
            id_prefix=session_id_prefix(state.config.server.worker_id),
            rtc_config=ice.server_configuration(),
        )
        try:
            answer = await asyncio.wait_for(session.accept(offer.sdp), timeout=15)
        except SDP_FAILURES as exc:
            await session.close("bad offer")
            raise ApiError(400, "invalid_sdp", f"the offer could not be applied: {exc}") from exc
        if ice.ice.relay_only and not has_relay_candidate(answer):
            await session.close("no TURN relay")
            log.error("session %s: relay-only, but TURN gave no relay candidate", session.id)
            raise ApiError(
                503,
                "turn_unavailable",
                "the TURN server gave no relay for this call",
                {"Retry-After": str(RETRY_AFTER_S)},
            )
        state.sessions[session.id] = session
        if state.store is not None:
            session_opened(state.store, session.id, session.created, name)
        request.app[GUARD_KEY].bind(session.id, principal)
        state.metrics.sessions_total.inc()
        state.metrics.sessions_by_mode.labels(mode=offer.mode).inc()
        state.metrics.active_sessions.set(len(state.sessions))
    finally:
        state.pending -= 1
    log.info("session %s opened (avatar %s, %s)", session.id, name, offer.mode)
    return web.json_response(
        {
            "session_id": session.id,
            "sdp": answer,
            "type": "answer",
            "ice_servers": ice.for_client(principal.name),
        },
        status=201,
    )


async def _spend_token(store: TranscriptStore | None, claims: TokenClaims) -> None:
    """Spend a single-use session token in the database, shared by every worker behind a
    router, so a token used anywhere is refused everywhere (403 ``token_reused``)."""
    try:
        if store is None:
            raise StoreError("no transcript store")
        fresh = await asyncio.wrap_future(
            store.claim_token(claims.id, claims.expires_at, time.time())
        )
    except Exception as exc:  # fail closed: a token must not be usable twice
        log.error("could not record a spent session token: %s", exc)
        raise ApiError(
            503, "store_unavailable", "cannot check the session token now", {"Retry-After": "5"}
        ) from exc
    if not fresh:
        raise ApiError(403, "token_reused", "this session token was already used")


def _forget(state: ServerState, session: Session) -> None:
    if state.sessions.pop(session.id, None) is not None:
        state.metrics.dropped_frames.inc(session.video_out.stats.dropped_frames)
        if state.store is not None:
            session_closed(state.store, session.id, session.close_reason)
    state.metrics.active_sessions.set(len(state.sessions))


def _record_turn(
    state: ServerState, session: Session, record: TurnRecord
) -> Awaitable[None] | None:
    state.metrics.observe_turn(record.metrics, record.interrupted)
    if state.store is None:
        return None
    return turn_finished(state.store, session.id, record)


async def list_sessions(request: web.Request) -> web.Response:
    """``GET /v1/sessions``: the active sessions."""
    state = request.app[STATE_KEY]
    return web.json_response({"sessions": [s.describe() for s in state.sessions.values()]})


async def delete_session(request: web.Request) -> web.Response:
    """``DELETE /v1/sessions/{id}``: hang up."""
    state = request.app[STATE_KEY]
    session = state.sessions.get(request.match_info["session_id"])
    if session is None:
        raise ApiError(404, "unknown_session", "no such session")
    await session.close("deleted by client", notify=False)
    return web.json_response({"session_id": session.id, "closed": True})


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers (503 once remote model serving has been unreachable
    for ``serving.ray.restart_after_s``: a restart reconnects)."""
    monitor = request.app[STATE_KEY].serving_monitor
    if monitor is not None and monitor.should_restart():
        return web.json_response(
            {"status": "serving_unreachable", "error": monitor.health.error}, status=503
        )
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: models loaded, not draining, and capacity left (503 otherwise).

    A full worker leaves a load balancer's rotation for new sessions; a router that pins
    sessions by id (``avatar route``) still reaches it for the sessions it holds.
    """
    state = request.app[STATE_KEY]
    cap = state.config.server.max_sessions
    left = max(0, cap - len(state.sessions) - state.pending)
    ready = state.engines is not None and not state.draining and left > 0
    body: dict[str, Any] = {
        "ready": ready,
        "loaded": state.engines is not None,
        "draining": state.draining,
        "sessions": len(state.sessions),
        "max_sessions": cap,
        "capacity_left": left,
        "worker_id": state.config.server.worker_id,
    }
    if state.load_error:
        body["error"] = state.load_error
    monitor = state.serving_monitor
    if monitor is not None:  # STT/TTS on Ray Serve: no session can work while it is away
        ok = monitor.health.error is None
        ready = body["ready"] = ready and ok
        body["serving"] = {"ok": ok, "error": monitor.health.error}
    ice = request.app[ICE_KEY]
    if ice.turn_configured:  # a configured TURN that does not work: calls would not connect
        ready = body["ready"] = ready and ice.ready
        body["turn"] = {"ok": ice.ready, "checked": ice.checked, "error": ice.error}
    return web.json_response(body, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus metrics."""
    state = request.app[STATE_KEY]
    return web.Response(body=state.metrics.render(), content_type="text/plain", charset="utf-8")


async def index(request: web.Request) -> web.FileResponse:
    """The demo page."""
    return web.FileResponse(WEB_DIR / "index.html")


async def widget_js(request: web.Request) -> web.FileResponse:
    """The embeddable widget (``<script src=".../widget.js" async>``), loadable from any site."""
    return web.FileResponse(
        WEB_DIR / "widget.js",
        headers={
            "Content-Type": "text/javascript; charset=utf-8",
            "Access-Control-Allow-Origin": "*",
            "Cache-Control": "public, max-age=300",
        },
    )


async def _load_engines(app: web.Application) -> None:
    state = app[STATE_KEY]
    try:
        state.engines = await asyncio.to_thread(Engines.load, state.config)
    except Exception as exc:
        log.exception("loading the models failed")
        state.load_error = str(exc)
        return
    _watch_serving(state)


def _watch_serving(state: ServerState) -> None:
    """Check remote model serving in the background, when the engines use it."""
    serving = state.engines.serving if state.engines is not None else None
    if serving is None or state.serving_monitor is not None:
        return
    r = state.config.serving.ray
    state.serving_monitor = ServingMonitor(
        serving,
        r.health_interval_s,
        timeout_s=min(5.0, r.request_timeout_s),
        restart_after_s=r.restart_after_s,
    )
    state.serving_monitor.start()


async def _on_startup(app: web.Application) -> None:
    state = app[STATE_KEY]
    use_host_addresses(state.config.server.ice_host_addresses)
    cfg = state.config
    # Local rendering is CPU-bound: two threads. Rendering on Ray Serve waits on the
    # network: one thread per session slot lets every session's frame join one batch.
    remote = cfg.serving.backend == "ray" and "render" in cfg.serving.ray.stages
    threads = max(2, cfg.server.max_sessions) if remote else 2
    state.render_executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="render")
    if state.engines is None:
        state.loader = asyncio.get_running_loop().create_task(_load_engines(app))
    else:
        _watch_serving(state)


async def _on_shutdown(app: web.Application) -> None:
    state = app[STATE_KEY]
    if state.loader is not None and not state.loader.done():
        state.loader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await state.loader
    if state.serving_monitor is not None:
        await state.serving_monitor.stop()
    await asyncio.gather(*(s.close("server shutdown") for s in list(state.sessions.values())))


async def _on_cleanup(app: web.Application) -> None:
    state = app[STATE_KEY]
    if state.render_executor is not None:
        state.render_executor.shutdown(wait=True)
    if state.engines is not None and state.owns_engines:
        await state.engines.aclose()


def create_app(config: AppConfig, engines: Engines | None = None) -> web.Application:
    """Build the aiohttp application (pass ``engines`` to share loaded models)."""
    app = web.Application(
        middlewares=[
            forwarded_middleware(config.server.trusted_proxies),
            cors_middleware(config.server.allowed_origins),
            error_middleware,
            guard_middleware(guard := AccessGuard(config.server)),
        ],
        client_max_size=config.server.max_body_bytes,
    )
    app[STATE_KEY] = ServerState(config=config, engines=engines, owns_engines=engines is None)
    app.router.add_get("/", index)
    app.router.add_post("/v1/sessions", create_session)
    app.router.add_get("/v1/sessions", list_sessions)
    app.router.add_delete("/v1/sessions/{session_id}", delete_session)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/widget.js", widget_js)
    app[GUARD_KEY] = guard
    app[AVATARS_KEY] = AvatarStore(config, engines)
    app.router.add_post("/v1/tokens", mint_token)
    app.router.add_post("/v1/avatars", upload_avatar)
    app.router.add_get("/v1/avatars", list_avatars)
    app.router.add_get("/openapi.json", openapi_route(SessionOffer))
    app[STATE_KEY].store = attach_store(app, config)
    attach_ice(app, config)
    app.router.add_static("/static/", WEB_DIR, show_index=False)
    app.on_startup.append(_on_startup)
    app.on_shutdown.append(_on_shutdown)
    app.on_cleanup.append(_on_cleanup)
    return app
