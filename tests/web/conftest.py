"""Fixtures for the browser tests: headless Chromium (Debian) driven by Playwright.

The avatar service and a second "host site" run on 127.0.0.1 on their own asyncio loop
in a background thread (Playwright's sync API runs in the test thread). The models come
from tests/conftest.py (``engines``, loaded once per run); one browser serves the whole
run, each test gets a fresh context and page. Chromium's fake microphone plays a WAV of
a spoken question (Piper), then ~20 s of silence, in a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import wave
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
from aiohttp import web

from benchmarks.browser_hearing import chromium_args
from streaming.config import AppConfig
from streaming.engines import Engines
from streaming.server import STATE_KEY, ServerState, create_app

CHROMIUM = Path("/usr/lib/chromium/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
QUESTION = "What is the capital of France?"
HOST_TOKEN = "host-minted-token"
LEAD_SILENCE_S = 3.0
TAIL_SILENCE_S = 20.0

T = TypeVar("T")


class LoopThread:
    """An asyncio loop in a daemon thread; run coroutines on it from the test thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="web-test-loop")
        self._thread.daemon = True
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        """Run ``coro`` on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        """Stop the loop and join the thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@dataclass
class RunningApp:
    """An aiohttp app listening on 127.0.0.1."""

    app: web.Application
    runner: web.AppRunner
    port: int

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def state(self) -> ServerState:
        """The avatar service's state (service apps only)."""
        return self.app[STATE_KEY]


async def _start(app: web.Application) -> RunningApp:
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return RunningApp(app, runner, port)


@dataclass
class HostSite:
    """A static site on another origin whose pages embed the widget (and mint tokens)."""

    running: RunningApp
    pages: dict[str, str] = field(default_factory=dict)

    def page(self, name: str, html: str) -> str:
        """Publish ``html`` at ``/<name>`` and return its URL."""
        self.pages[name] = html
        return f"{self.running.url}/{name}"


def host_page(
    widgets: str, *, widget_src: str, module: bool = False, head: str = "", body: str = ""
) -> str:
    """A host page: a heading, a host button, the widgets, a log of their events."""
    kind = 'type="module"' if module else "async"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,"><title>A host site</title>{head}</head>
<body>
<h1>A host site</h1>
<button id="host-button" type="button"
  onclick="this.dataset.clicks = String(Number(this.dataset.clicks || 0) + 1);
           this.textContent = 'host clicks: ' + this.dataset.clicks">host button</button>
{widgets}
{body}
<script>
  window.hostGlobals = Object.getOwnPropertyNames(window);
  window.hostLog = [];
  for (const el of document.querySelectorAll("gwm-avatar")) {{
    for (const type of ["connected", "transcript", "reply", "state", "metrics", "error",
                        "ended"]) {{
      el.addEventListener(type, (e) => hostLog.push({{ id: el.id, type, detail: e.detail }}));
    }}
  }}
</script>
<script src="{widget_src}" {kind}></script>
</body></html>"""


@dataclass
class PageLog:
    """What a page said on its console and which exceptions it threw."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def unexpected(self, allowed: tuple[str, ...] = ()) -> list[str]:
        """Page errors, plus console errors that contain none of ``allowed``."""
        noisy = [m for m in self.console_errors if not any(a in m for a in allowed)]
        return self.page_errors + noisy


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def loop_thread() -> Iterator[LoopThread]:
    """The background loop that runs the servers."""
    lt = LoopThread()
    yield lt
    lt.close()


@pytest.fixture(scope="session")
def make_service(
    loop_thread: LoopThread, service_config: AppConfig, engines: Engines
) -> Iterator[Callable[..., RunningApp]]:
    """Start an avatar service on 127.0.0.1 (``server.*`` overrides as keywords)."""
    started: list[RunningApp] = []

    def _make(**server: Any) -> RunningApp:
        cfg = service_config.model_copy(
            update={"server": service_config.server.model_copy(update=server)}
        )

        async def go() -> RunningApp:
            return await _start(create_app(cfg, engines=engines))

        running = loop_thread.run(go())
        started.append(running)
        return running

    yield _make
    for running in started:
        with contextlib.suppress(Exception):
            loop_thread.run(running.runner.cleanup(), timeout=30)


@pytest.fixture(scope="session")
def service(make_service: Callable[..., RunningApp]) -> RunningApp:
    """The avatar service shared by the tests (any origin allowed, two sessions)."""
    return make_service()


@pytest.fixture(scope="session")
def host_site(loop_thread: LoopThread) -> Iterator[HostSite]:
    """The host site, on another origin than the service."""
    pages: dict[str, str] = {}

    async def serve(request: web.Request) -> web.Response:
        html = pages.get(request.match_info["name"])
        if html is None:
            raise web.HTTPNotFound()
        return web.Response(text=html, content_type="text/html")

    async def token(request: web.Request) -> web.Response:
        # A host backend's token endpoint: /token/ok mints one, /token/denied refuses.
        if request.match_info["kind"] != "ok":
            return web.json_response({"error": "not signed in"}, status=403)
        return web.json_response({"token": HOST_TOKEN})

    app = web.Application()
    app.router.add_get("/{name}", serve)
    app.router.add_post("/token/{kind}", token)
    running = loop_thread.run(_start(app))
    yield HostSite(running, pages)
    loop_thread.run(running.runner.cleanup())


@pytest.fixture(scope="session")
def mic_wav(tmp_path_factory: pytest.TempPathFactory, speak: Callable[..., np.ndarray]) -> Path:
    """The fake microphone: silence, the question, then ~20 s of silence (it loops)."""
    pcm = speak(QUESTION, pad_s=0.0)
    lead = np.zeros(int(LEAD_SILENCE_S * 48_000), np.float32)
    tail = np.zeros(int(TAIL_SILENCE_S * 48_000), np.float32)
    audio = np.concatenate([lead, pcm, tail])
    s16 = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")
    path = tmp_path_factory.mktemp("mic") / "question.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48_000)
        w.writeframes(s16.tobytes())
    return path


@pytest.fixture(scope="session")
def browser(mic_wav: Path) -> Iterator[Any]:
    """One headless Chromium for the whole run."""
    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    args = [*chromium_args(mic_wav), "--disable-quic"]
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=args, headless=True)
        yield b
        b.close()


@pytest.fixture
def open_page(browser: Any) -> Iterator[Callable[..., tuple[Any, PageLog]]]:
    """Open a page in a fresh context: ``open_page(url, width=..., init_script=...)``."""
    contexts: list[Any] = []

    def _open(
        url: str, *, width: int = 800, height: int = 900, init_script: str | None = None
    ) -> tuple[Any, PageLog]:
        ctx = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(ctx)
        page = ctx.new_page()
        page.set_default_timeout(20_000)
        log = PageLog()
        page.on(
            "console",
            lambda m: log.console_errors.append(m.text) if m.type == "error" else None,
        )
        page.on("pageerror", lambda e: log.page_errors.append(str(e)))
        if init_script:
            page.add_init_script(init_script)
        page.goto(url)
        return page, log

    yield _open
    for ctx in contexts:
        with contextlib.suppress(Exception):
            ctx.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots go (test-artifacts/web, ignored by git)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
