"""Chromium vs aiortc hearing: the same spoken questions through both call paths, WER.

Usage: python -m benchmarks.browser_hearing [--config default] [--voice en-us ...] [--limit N]
       [--processing VALUE ...] [--rms 0.05]

Starts the service on 127.0.0.1 in this process and asks each question (espeak-ng
voices the avatar has never heard, at the level of a headset microphone) in a call of
its own, once from an aiortc peer (streaming/client.py) and once from the web widget in
headless Chromium per ``--processing`` value (the widget's ``audio-processing``
attribute; ``default``: none set), whose fake microphone plays a WAV of the question.
Prints what the service transcribed on each path and each path's WER.

The helpers (clips, the fake-microphone WAV, one call per path) are shared with
tests/web/test_hearing.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import arg_parser, config_arg, machine
from gwm_avatars.arguments import non_negative_int, number_in_range
from models.audio import resample
from streaming.client import ClientPeer
from streaming.config import AppConfig
from tests.models.wer import normalize, word_error_rate

T = TypeVar("T")

CHROMIUM = Path("/usr/lib/chromium/chromium")
RATE = 48_000
VOICES = ("en-us", "en-gb+f3", "en-gb-scotland", "en-029+m3")
"""espeak-ng voices (benchmarks/stt_voices.py uses the same)."""
QUESTIONS = (
    "Could you recommend a book for a long flight?",
    "How many days are there in a leap year?",
    "What is the tallest mountain in the world?",
    "Can you tell me a fun fact about octopuses?",
    "Which planet is closest to the sun?",
    "What should I cook for dinner tonight?",
)
SPEECH_RMS = 0.05
"""Level of the spoken question (-26 dBFS RMS over its voiced samples): a headset
microphone, not espeak-ng's near full-scale output."""
LEAD_S = 3.0
"""Silence before the question in the fake microphone's WAV (Chromium starts playing it
when the page opens the microphone, before the call is up)."""
TAIL_S = 15.0
"""Silence after it (the WAV loops): time for the transcript before it asks again."""
TRANSCRIPT_TIMEOUT_S = 60.0
SERVICE_OVERRIDES = (
    "server.ice_host_addresses=[127.0.0.1]",
    "server.max_sessions=2",
    # Hearing, not answering: every call hangs up at the transcript, and the smaller
    # model's cancelled reply leaves the cores to the next call sooner.
    "llm.model=qwen2.5-0.5b-instruct-gguf",
    "llm.max_tokens=16",
)

log = logging.getLogger(__name__)


def out(line: str = "") -> None:
    """Print one result line."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


# ---------------------------------------------------------------- the clips


def espeak_question(text: str, voice: str, rms: float = SPEECH_RMS) -> np.ndarray:
    """``text`` spoken by espeak-ng with ``voice``: 48 kHz mono float32 at ``rms``."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "q.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", "160", "-w", str(wav), text],
            check=True,
            capture_output=True,
        )
        with wave.open(str(wav), "rb") as w:
            rate = w.getframerate()
            pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768
    voiced = pcm[np.abs(pcm) > 0.01]
    level = float(np.sqrt(np.mean(voiced**2))) if len(voiced) else 1.0
    return resample(pcm * (rms / level), rate, RATE).astype(np.float32)


def write_mic_wav(
    path: Path, pcm: np.ndarray, lead_s: float = LEAD_S, tail_s: float = TAIL_S
) -> Path:
    """The fake microphone's WAV (48 kHz mono s16): silence, ``pcm``, silence."""
    audio = np.concatenate(
        [np.zeros(int(lead_s * RATE), np.float32), pcm, np.zeros(int(tail_s * RATE), np.float32)]
    )
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes((np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes())
    return path


# ---------------------------------------------------------------- one call per path


async def hear_aiortc(url: str, pcm: np.ndarray, lead_s: float = LEAD_S) -> str:
    """Ask ``pcm`` (48 kHz) in an aiortc call; what the service transcribed."""
    peer = ClientPeer(url, keep_video=False)
    try:
        refused = await peer.connect()
        if refused is not None:
            raise RuntimeError(f"POST /v1/sessions: {refused.status}")
        await peer.wait_open(30)
        peer.mic.say(np.concatenate([np.zeros(int(lead_s * RATE), np.float32), pcm]))
        msg = await peer.wait_event("user_transcript", TRANSCRIPT_TIMEOUT_S)
        return str(msg["text"])
    finally:
        await peer.hangup()


def chromium_args(mic_wav: Path) -> list[str]:
    """Headless Chromium whose microphone plays ``mic_wav`` (looped)."""
    return [
        "--no-sandbox",
        "--headless",
        "--disable-gpu",
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-audio-capture={mic_wav}",
        "--allow-loopback-in-peer-connection",
        "--autoplay-policy=no-user-gesture-required",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]


_LISTEN_JS = """(processing) => {
  window.hearingLog = [];
  const el = document.getElementById("avatar-widget");
  for (const t of ["connected", "transcript", "error"])
    el.addEventListener(t, (e) => hearingLog.push({ type: t, detail: e.detail }));
  if (processing !== null) el.setAttribute("audio-processing", processing);
}"""
_HEARD_JS = "() => hearingLog.some((e) => e.type === 'transcript' || e.type === 'error')"
_MIC_SETTINGS_JS = """() => {
  const pc = document.getElementById("avatar-widget").peerConnection;
  const sender = pc.getSenders().find((s) => s.track && s.track.kind === "audio");
  return sender ? sender.track.getSettings() : {};
}"""


@dataclass(frozen=True)
class ChromiumHearing:
    """What the service heard from the widget, and the microphone settings it used."""

    text: str
    mic: dict[str, Any]
    """The sent track's ``getSettings()`` (echoCancellation, noiseSuppression, ...)."""


def hear_chromium(
    browser_type: Any,
    url: str,
    mic_wav: Path,
    processing: str | None,
    hung_up: Callable[[], None] = lambda: None,
) -> ChromiumHearing:
    """Ask the question in ``mic_wav`` from the demo page's widget in headless Chromium
    (Playwright's sync ``browser_type``); what the service transcribed. ``processing``:
    the widget's ``audio-processing`` attribute (None: the widget's default);
    ``hung_up`` waits until the service closed the call (before the browser goes)."""
    browser = browser_type.launch(
        executable_path=str(CHROMIUM), args=chromium_args(mic_wav), headless=True
    )
    try:
        page = browser.new_page()
        page.goto(f"{url}/")
        page.evaluate(_LISTEN_JS, processing)
        page.locator("#avatar-widget").get_by_role("button", name="Talk to the avatar").click()
        page.wait_for_function(_HEARD_JS, timeout=TRANSCRIPT_TIMEOUT_S * 1000)
        events = page.evaluate("() => hearingLog")
        errors = [e["detail"] for e in events if e["type"] == "error"]
        if errors:
            raise RuntimeError(f"the widget failed: {errors}")
        heard = next(e["detail"]["text"] for e in events if e["type"] == "transcript")
        mic = page.evaluate(_MIC_SETTINGS_JS)
        page.locator("#avatar-widget").get_by_role("button", name="Hang up").click()
        hung_up()
        return ChromiumHearing(str(heard), dict(mic))
    finally:
        browser.close()


def wait_no_sessions(sessions: dict[str, Any], timeout_s: float = 20.0) -> None:
    """Wait until the service has closed every call (the next one must not be refused)."""
    deadline = time.monotonic() + timeout_s
    while sessions and time.monotonic() < deadline:
        time.sleep(0.1)


# ---------------------------------------------------------------- the benchmark


class _Loop:
    """An asyncio loop in a thread: the service and the aiortc peers run there."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The arguments, checked: bad ones print one line and exit with code 2."""
    parser = arg_parser(__doc__, __file__)
    parser.add_argument("--config", default="default")
    parser.add_argument("--voice", action="append", help="espeak-ng voice (repeatable)")
    parser.add_argument("--limit", type=non_negative_int, default=3, help="questions per voice")
    parser.add_argument(
        "--processing",
        action="append",
        help="the widget's audio-processing attribute for a Chromium run (repeatable; "
        "'default': leave it unset)",
    )
    parser.add_argument(
        "--rms", type=number_in_range(0.001, 0.5), default=SPEECH_RMS, help="speech level"
    )
    args = parser.parse_args(argv)
    args.app_config = config_arg(parser, args.config, SERVICE_OVERRIDES)
    if shutil.which("espeak-ng") is None:
        parser.error("espeak-ng is not installed (apt-get install espeak-ng)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Ask every question on every path and print the transcripts and WERs."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if not CHROMIUM.exists():
        out(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
        return 2
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    voices = args.voice or list(VOICES)
    questions = list(QUESTIONS[: args.limit or len(QUESTIONS)])
    processing = args.processing or ["default"]
    paths = ["aiortc"] + [f"chromium/{p}" for p in processing]
    cfg: AppConfig = args.app_config
    out(f"# machine: {machine()}")
    out(
        f"# config {args.config}: stt {cfg.stt.model} beam {cfg.stt.beam_size}; speech rms {args.rms}"
    )
    heard: dict[str, list[str]] = {p: [] for p in paths}
    refs: list[str] = []
    dropped = 0
    loop = _Loop()
    running = loop.run(_start(cfg))
    try:
        with sync_playwright() as pw, tempfile.TemporaryDirectory() as tmp:
            for voice in voices:
                for i, text in enumerate(questions):
                    pcm = espeak_question(text, voice, args.rms)
                    wav = write_mic_wav(Path(tmp) / f"{voice}-{i}.wav", pcm)
                    got: dict[str, str] = {}
                    for path in paths:
                        for _ in range(2):  # one retry: a loaded machine can miss a call
                            wait_no_sessions(running.sessions)
                            try:
                                got[path] = _hear(path, pw, loop, running, pcm, wav)
                                break
                            except (TimeoutError, RuntimeError, PlaywrightError) as exc:
                                out(f"{voice:15s} {path:30s} no transcript: {exc!r}"[:160])
                        else:
                            break
                        wer = word_error_rate([text], [got[path]])
                        out(f"{voice:15s} {path:30s} WER {wer * 100:5.1f}  {normalize(got[path])}")
                    if len(got) < len(paths):
                        dropped += 1  # compare paths on the same clips only
                        continue
                    refs.append(text)
                    for path in paths:
                        heard[path].append(got[path])
    finally:
        loop.run(running.stop())
        loop.close()
    out()
    out(f"{'path':32s} {'WER %':>6s}  ({len(refs)} clips, {len(voices)} voices; {dropped} dropped)")
    for path in paths:
        out(f"{path:32s} {word_error_rate(refs, heard[path]) * 100:6.1f}")
    return 0


def _hear(path: str, pw: Any, loop: _Loop, running: _Running, pcm: np.ndarray, wav: Path) -> str:
    """One call on ``path`` (``aiortc`` or ``chromium/<audio-processing>``): the transcript."""
    if path == "aiortc":
        return loop.run(hear_aiortc(running.url, pcm))
    value = path.split("/", 1)[1]
    return hear_chromium(
        pw.chromium,
        running.url,
        wav,
        None if value == "default" else value,
        lambda: wait_no_sessions(running.sessions),
    ).text


class _Running:
    """The service on 127.0.0.1 (its session table, to wait for calls to close)."""

    def __init__(self, runner: Any, url: str, sessions: dict[str, Any]) -> None:
        self.runner = runner
        self.url = url
        self.sessions = sessions

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.runner.cleanup()


async def _start(cfg: AppConfig) -> _Running:
    from aiohttp import web

    from streaming.engines import Engines
    from streaming.server import STATE_KEY, create_app

    engines = await asyncio.to_thread(Engines.load, cfg)
    app = create_app(cfg, engines=engines)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return _Running(runner, f"http://127.0.0.1:{runner.addresses[0][1]}", app[STATE_KEY].sessions)


if __name__ == "__main__":
    sys.exit(main())
