"""How many concurrent sessions this machine holds, what saturates first, and how the
service answers bad inputs and injected faults.

Usage: python benchmarks/load.py [--max-sessions 4] [--turns 3] [--config default]

Starts ``avatar serve`` as a subprocess on 127.0.0.1 and adds aiortc clients one more
at a time, each holding ``--turns`` spoken turns, until received video drops under
24 fps or voice-to-voice p95 reaches 2 s. For each step it prints fps, voice-to-voice
p50/p95, LLM first-token p95 (which grows with the LLM lock queue) and the server's
CPU by thread group (event loop, render executor, LLM worker, STT/TTS/other), so the
first thing to saturate shows. Then it tries bad inputs and injected faults (an LLM
server that is down, a SIGKILL) and prints each with the observed outcome.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import aiohttp
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import arg_parser, config_arg, machine, pct  # noqa: E402
from benchmarks.conversation import (  # noqa: E402
    QUESTIONS,
    Question,
    RunResult,
    _wait_ready,
    free_port,
    one_client,
    out,
)
from benchmarks.spoken import speak  # noqa: E402
from gwm_avatars.arguments import positive_int  # noqa: E402
from models.assets import AssetResolver  # noqa: E402
from models.tts import create_tts  # noqa: E402
from streaming.client import ClientPeer  # noqa: E402
from streaming.ice import use_host_addresses  # noqa: E402

FPS_OK = 24.0
V2V_OK_S = 2.0


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of the process's main (event loop) thread and of all its other threads."""
    ticks = os.sysconf("SC_CLK_TCK")
    groups: dict[str, float] = defaultdict(float)
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", encoding="ascii", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        group = "event loop" if tid == str(pid) else "workers"
        groups[group] += (int(fields[11]) + int(fields[12])) / ticks
    return dict(groups)


async def dropped_frames(url: str) -> float:
    """Video frames the server skipped to keep up (counted as sessions close)."""
    async with aiohttp.ClientSession() as http:
        text = await (await http.get(f"{url}/metrics")).text()
    for line in text.splitlines():
        if line.startswith("gwm_dropped_video_frames_total "):
            return float(line.split()[1])
    return 0.0


def start_server(config: str, port: int, db: Path, extra: list[str]) -> subprocess.Popen[bytes]:
    """``avatar serve`` on 127.0.0.1:port."""
    sets = [
        "server.ice_host_addresses=[127.0.0.1]",
        f"server.database_url=sqlite:///{db}",
        *extra,
    ]
    args = [sys.executable, "-m", "gwm_avatars.cli", "--config", config]
    for s in sets:
        args += ["--set", s]
    args += ["serve", "--host", "127.0.0.1", "--port", str(port)]
    return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_server(proc: subprocess.Popen[bytes]) -> int | None:
    """SIGTERM (drain), then kill if needed; the exit code."""
    proc.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        return proc.wait(30)
    proc.kill()
    proc.wait(10)
    return None


async def run_sessions(url: str, clips: list[Question], n: int, turns: int) -> RunResult:
    """``n`` concurrent clients; their pooled measurements."""
    result = RunResult()
    questions = [clips[i % len(clips)] for i in range(turns)]
    await asyncio.gather(*(one_client(url, questions, result, keep_video=False) for _ in range(n)))
    return result


async def capacity(url: str, clips: list[Question], pid: int, top: int, turns: int) -> None:
    """Add sessions one at a time; print one row per step and what saturated first."""
    cores = os.cpu_count() or 1
    out(
        f"{'sessions':>8} {'fps min':>8} {'v2v p50':>8} {'v2v p95':>8} {'llm 1st p95':>11} "
        f"{'stt p95':>8} {'dropped':>7} {'cpu':>5}  (cpu: % of all {cores} cores; "
        "event loop / worker threads in % of one core)"
    )
    held_fps = held_both = 0
    llm_first: list[float] = []
    verdict = "nothing: the last step still held"
    for n in range(1, top + 1):
        before, t0, drop0 = thread_cpu(pid), time.monotonic(), await dropped_frames(url)
        res = await run_sessions(url, clips, n, turns)
        after, dt = thread_cpu(pid), time.monotonic() - t0
        groups = {k: (after.get(k, 0) - before.get(k, 0)) / dt * 100 for k in after}
        total = sum(groups.values()) / cores
        fps = min(res.fps) if res.fps else 0.0
        p95 = pct(res.v2v(), 95)
        llm = pct(res.stage("llm_first_token_ms"), 95)
        stt = pct(res.stage("stt_ms"), 95)
        dropped = await dropped_frames(url) - drop0
        llm_first.append(llm)
        shares = " / ".join(f"{groups.get(k, 0):.0f}" for k in ("event loop", "workers"))
        out(
            f"{n:>8} {fps:>8.1f} {pct(res.v2v(), 50):>8.2f} {p95:>8.2f} {llm:>9.0f}ms "
            f"{stt:>6.0f}ms {dropped:>7.0f} {total:>4.0f}%  ({shares})"
            + (f"  errors: {res.errors}" if res.errors else "")
        )
        if fps >= FPS_OK and not res.errors:
            held_fps = n
            if p95 < V2V_OK_S:
                held_both = n
        if fps < FPS_OK or dropped > 0 or total >= 90 or llm > 2 * llm_first[0] + 500:
            reasons = []
            if total >= 90:
                reasons.append(f"CPU ({total:.0f}% of {cores} cores)")
            if fps < FPS_OK or dropped > 0:
                reasons.append(f"the render executor (fps {fps:.1f}, {dropped:.0f} frames dropped)")
            if llm > 2 * llm_first[0] + 500:
                reasons.append(f"the LLM lock queue (first token p95 {llm:.0f} ms)")
            verdict = f"at {n} session(s): " + ", ".join(reasons)
            if fps < 20 or res.errors:
                break
    out(
        f"\nholds {held_fps} session(s) at >= {FPS_OK:.0f} fps; {held_both} also with v2v p95 < 2 s"
    )
    out(f"saturated first: {verdict}")


async def _post(url: str, body: bytes, ctype: str = "application/json") -> str:
    async with aiohttp.ClientSession() as http:
        resp = await http.post(f"{url}/v1/sessions", data=body, headers={"Content-Type": ctype})
        try:
            code = (await resp.json())["error"]["code"]
        except (ValueError, KeyError, TypeError, aiohttp.ContentTypeError):
            code = "?"
        return f"{resp.status} {code}"


async def _alive(peer: ClientPeer) -> str:
    peer.send({"type": "text", "text": "Say yes."})
    try:
        final = await peer.wait_event("assistant_text", 60, pred=lambda m: m["final"])
    except TimeoutError:
        return "no answer"
    return f"still answers ({final['text'][:40]!r})"


async def bad_inputs(url: str) -> list[tuple[str, str]]:
    """Bad requests and data channel messages; the outcome of each."""
    rows: list[tuple[str, str]] = []
    rows.append(("POST /v1/sessions: not JSON", await _post(url, b"{nope")))
    rows.append(("POST /v1/sessions: missing sdp", await _post(url, b'{"type":"offer"}')))
    rows.append(
        ("POST /v1/sessions: sdp 'hello'", await _post(url, b'{"sdp":"hello","type":"offer"}'))
    )
    rows.append(("POST /v1/sessions: 400 kB body", await _post(url, b"x" * 400_000)))
    rows.append(("POST /v1/sessions: form body", await _post(url, b"a=1", "text/plain")))
    async with aiohttp.ClientSession() as http:
        resp = await http.get(f"{url}/v1/sessions/nope/transcript")
        rows.append(("GET transcript of unknown id", f"{resp.status}"))
    peer = ClientPeer(url, keep_video=False)
    if await peer.connect() is None:
        await peer.wait_open()
        for raw in ["not json", json.dumps({"type": "text", "text": ""}), "x" * 20_000]:
            peer.channel.send(raw)
        await asyncio.sleep(0.5)
        codes = [e["code"] for e in peer.received.events_of("error")]
        rows.append(
            ("data channel: garbage, empty text, 20 kB", f"errors {codes}; " + await _alive(peer))
        )
        flooder = ClientPeer(url, keep_video=False)
        if await flooder.connect() is None:
            await flooder.wait_open()
            for _ in range(200):
                flooder.send({"type": "interrupt"})
            await asyncio.sleep(2.0)
            rows.append(
                (
                    "data channel: 200 msgs at once",
                    f"flooder {flooder.pc.connectionState}; other " + await _alive(peer),
                )
            )
            await flooder.close()
        await peer.hangup()
    return rows


async def _fallback_check(url: str) -> str:
    peer = ClientPeer(url, keep_video=False)
    if (refused := await peer.connect()) is not None:
        return f"refused {refused.status}"
    await peer.wait_open()
    results = []
    for q in ["Hello?", "Are you there?"]:
        t = time.monotonic()
        peer.send({"type": "text", "text": q})
        try:
            final = await peer.wait_event("assistant_text", 60, pred=lambda m: m["final"])
            results.append(f"{final['text'][:30]!r} after {time.monotonic() - t:.1f}s")
        except TimeoutError:
            results.append("no answer")
    await peer.hangup()
    return "; ".join(results)


async def _transcript_turns(url: str, sid: str) -> str:
    async with aiohttp.ClientSession() as http:
        resp = await http.get(f"{url}/v1/sessions/{sid}/transcript")
        if resp.status != 200:
            return f"{resp.status}"
        return f"{len((await resp.json())['turns'])} turns read back"


async def _two_turns(url: str) -> str:
    peer = ClientPeer(url, keep_video=False)
    assert await peer.connect() is None
    await peer.wait_open()
    for q in ["Say hi.", "Say bye."]:
        peer.send({"type": "text", "text": q})
        await peer.wait_event("turn_metrics", 90)
    await peer.close()
    assert peer.session_id
    return peer.session_id


def faults(config: str, tmp: Path) -> list[tuple[str, str]]:
    """Injected faults, each on a fresh server; the outcome of each."""
    rows: list[tuple[str, str]] = []
    port = free_port()
    proc = start_server(
        config,
        port,
        tmp / "down.db",
        [
            "llm.backend=openai",
            f"llm.openai.base_url=http://127.0.0.1:{free_port()}/v1",
            "llm.first_token_timeout_s=2",
        ],
    )
    url = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(_wait_ready(url))
        rows.append(("LLM server down (connection refused)", asyncio.run(_fallback_check(url))))
    finally:
        rows.append(("SIGTERM with no session", f"exit code {stop_server(proc)}"))
    port = free_port()
    db = tmp / "kill.db"
    proc = start_server(config, port, db, [])
    url = f"http://127.0.0.1:{port}"
    asyncio.run(_wait_ready(url))
    sid = asyncio.run(_two_turns(url))
    proc.kill()
    proc.wait(10)
    port = free_port()
    proc = start_server(config, port, db, [])
    url = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(_wait_ready(url))
        rows.append(("SIGKILL after 2 turns, restart", asyncio.run(_transcript_turns(url, sid))))
    finally:
        stop_server(proc)
    return rows


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The arguments, checked: bad ones print one line and exit with code 2."""
    parser = arg_parser(__doc__, __file__)
    parser.add_argument("--config", default="default")
    parser.add_argument("--turns", type=positive_int, default=3)
    parser.add_argument("--max-sessions", type=positive_int, default=4)
    parser.add_argument("--skip-faults", action="store_true")
    args = parser.parse_args(argv)
    args.app_config = config_arg(parser, args.config)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the capacity steps, the bad inputs and the faults; print the tables."""
    args = parse_args(argv)
    cfg = args.app_config
    logging.basicConfig(level=logging.WARNING)
    use_host_addresses(["127.0.0.1"])
    tts = create_tts(cfg.tts, AssetResolver(cfg.assets))

    def piper(text: str) -> tuple[np.ndarray, int]:
        return np.concatenate([c.pcm for c in tts.synthesize(text)]), tts.sample_rate

    clips = [Question(q, "piper", *speak(q, piper, pause_s=0.0)) for q in QUESTIONS]
    tmp = Path(tempfile.mkdtemp(prefix="gwm-load-"))
    port = free_port()
    proc = start_server(
        args.config, port, tmp / "load.db", [f"server.max_sessions={args.max_sessions}"]
    )
    url = f"http://127.0.0.1:{port}"
    out(f"machine: {machine()}")
    out(f"config: {args.config}; {args.turns} spoken turns per session; server pid {proc.pid}\n")
    try:
        asyncio.run(_wait_ready(url))
        asyncio.run(capacity(url, clips, proc.pid, args.max_sessions, args.turns))
        rows = asyncio.run(bad_inputs(url))
    finally:
        code = stop_server(proc)
    if not args.skip_faults:
        rows += faults(args.config, tmp)
    rows.append(("SIGTERM after the load run", f"exit code {code}"))
    width = max(len(r[0]) for r in rows)
    out(f"\n{'input or fault':<{width}}  outcome")
    for what, outcome in rows:
        out(f"{what:<{width}}  {outcome}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
