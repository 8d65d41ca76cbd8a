"""Voice-to-voice latency, A/V sync, fps and CPU of real conversations on loopback.

Usage: python benchmarks/conversation.py [--turns 10] [--sessions 1 2 3] [--config default]

Starts ``avatar serve`` as a subprocess on 127.0.0.1, then for each session count runs
that many aiortc clients at once, each holding ``--turns`` spoken turns (questions
synthesized with Piper and sent as microphone audio). Prints, per run:
voice-to-voice latency (end of the user's speech in the sent audio → first reply audio
received) p50/p95 with the server's per-stage breakdown, the audio/video offset seen
at the client (mouth opening of received frames cross-correlated with the received
audio envelope, by arrival time), received fps, and server CPU per session.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from avatar.analysis import mouth_opening  # noqa: E402
from avatar.identity import load_rig  # noqa: E402
from benchmarks.common import arg_parser, config_arg, machine, pct  # noqa: E402
from gwm_avatars.arguments import positive_int  # noqa: E402
from models.assets import AssetResolver  # noqa: E402
from models.audio import resample  # noqa: E402
from models.tts import create_tts  # noqa: E402
from streaming.client import ClientPeer  # noqa: E402
from streaming.config import load_config  # noqa: E402
from streaming.ice import use_host_addresses  # noqa: E402

QUESTIONS = [
    "What is the capital of France?",
    "How many legs does a spider have?",
    "What color is the sky on a clear day?",
    "Can you name a fruit that is yellow?",
    "What is two plus three?",
    "Which animal says moo?",
    "What do bees make?",
    "How many days are in a week?",
    "What is the opposite of hot?",
    "Where does the sun rise?",
    "What is frozen water called?",
    "Name a planet in our solar system.",
]
LOUD = 0.02
PAD_S = 0.4
MIC_TIMEOUT_S = 30.0
"""A question the call has not started sending by then means the call is gone."""


def out(line: str = "") -> None:
    """Print one result line."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu_seconds(pid: int) -> float:
    """User+system CPU seconds of a process (Linux /proc)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def av_offset_ms(peer: ClientPeer, box: tuple[int, int, int, int]) -> float:
    """Lag (ms) of the mouth behind the audio at the client; positive: video late."""
    vt = np.array([t for t, img in peer.received.video if img.size])
    vo = np.array([mouth_opening(img, box) for _, img in peer.received.video if img.size])
    at = np.array([t for t, _ in peer.received.audio])
    ae = np.array([float(np.sqrt(np.mean(a**2))) for _, a in peer.received.audio])
    if len(vt) < 50 or len(at) < 100:
        return float("nan")
    grid = np.arange(max(vt[0], at[0]), min(vt[-1], at[-1]), 0.005)
    v = np.interp(grid, vt, vo)
    a = np.interp(grid, at, ae)
    v = (v - v.mean()) / (v.std() + 1e-9)
    a = (a - a.mean()) / (a.std() + 1e-9)
    best, best_lag = -2.0, 0
    for lag in range(-40, 41):  # ±200 ms in 5 ms steps
        if lag >= 0:
            r = float(np.mean(a[: len(a) - lag] * v[lag:]))
        else:
            r = float(np.mean(a[-lag:] * v[: len(v) + lag]))
        if r > best:
            best, best_lag = r, lag
    return best_lag * 5.0


def new_results() -> dict:  # type: ignore[type-arg]
    """An empty pool of measurements for :func:`one_client`."""
    return {"v2v": [], "stages": {}, "fps": [], "errors": [], "peers": []}


async def one_client(
    url: str,
    clips: list[np.ndarray],
    turns: int,
    results: dict,  # type: ignore[type-arg]
    *,
    keep_video: bool = True,
) -> None:
    """Hold ``turns`` spoken turns; append measurements to ``results``.

    ``keep_video=False`` counts frames without decoding them (for load runs, where the
    client shares the CPU with the server).
    """
    peer = ClientPeer(url, keep_video=keep_video)
    failed = await peer.connect()
    if failed is not None:
        results["errors"].append(f"refused {failed.status}")
        return
    try:
        await peer.wait_open()
        await asyncio.sleep(1.0)
        t_first = time.monotonic()
        for i in range(turns):
            clip = clips[i % len(clips)]
            clips_sent = len(peer.mic.sent_log)
            peer.mic.say(clip)
            sending = time.monotonic()
            while len(peer.mic.sent_log) == clips_sent:
                if time.monotonic() - sending > MIC_TIMEOUT_S:  # the call died: stop, don't hang
                    results["errors"].append(f"microphone not read ({peer.pc.connectionState})")
                    return
                await asyncio.sleep(0.01)
            t_speech_end = peer.mic.sent_log[-1][0] + len(clip) / 48_000 - PAD_S
            try:
                metrics = await peer.wait_event("turn_metrics", 90)
            except TimeoutError:
                results["errors"].append("turn timed out")
                continue
            await asyncio.sleep(0.8)
            loud = [
                t
                for t, a in peer.received.audio
                if t > t_speech_end and float(np.sqrt(np.mean(a**2))) > LOUD
            ]
            if loud:
                results["v2v"].append(loud[0] - t_speech_end)
            for k, v in metrics.items():
                if k.endswith("_ms"):
                    results["stages"].setdefault(k, []).append(v)
        dur = time.monotonic() - t_first
        results["fps"].append(len([t for t, _ in peer.received.video if t >= t_first]) / dur)
        results["errors"].extend(e["code"] for e in peer.received.events_of("error"))
        results["peers"].append(peer)
    finally:
        await peer.hangup()


async def run_sessions(url: str, clips: list[np.ndarray], n: int, turns: int, pid: int) -> dict:  # type: ignore[type-arg]
    """``n`` concurrent clients; returns their pooled measurements."""
    results = new_results()
    cpu0, t0 = proc_cpu_seconds(pid), time.monotonic()
    await asyncio.gather(*(one_client(url, clips, turns, results) for _ in range(n)))
    results["cpu_per_session"] = (proc_cpu_seconds(pid) - cpu0) / (time.monotonic() - t0) / n
    return results


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The arguments, checked: bad ones print one line and exit with code 2."""
    parser = arg_parser(__doc__, __file__)
    parser.add_argument("--config", default="default")
    parser.add_argument("--turns", type=positive_int, default=10)
    parser.add_argument("--sessions", type=positive_int, nargs="+", default=[1, 2, 3])
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        help="config override for the server",
    )
    args = parser.parse_args(argv)
    args.app_config = config_arg(parser, args.config, args.overrides)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Start the server, run the sessions, print the numbers."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    use_host_addresses(["127.0.0.1"])
    cfg = load_config(args.config)
    resolver = AssetResolver(cfg.assets)
    tts = create_tts(cfg.tts, resolver)
    pad = np.zeros(int(PAD_S * 48_000), np.float32)
    clips = []
    for q in QUESTIONS:
        pcm = np.concatenate([c.pcm for c in tts.synthesize(q)])
        clips.append(np.concatenate([pad, resample(pcm, tts.sample_rate, 48_000), pad]))
    rig = load_rig(cfg.avatar.bundle, size=(cfg.render.width or cfg.render.size, cfg.render.size))
    box = rig.mouth_box()
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gwm_avatars.cli",
            "--config",
            args.config,
            "--set",
            "server.ice_host_addresses=[127.0.0.1]",
            "--set",
            f"server.max_sessions={max(args.sessions)}",
            *[a for o in args.overrides for a in ("--set", o)],
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(_wait_ready(url))
        out(f"machine: {machine()}")
        out(
            f"config: {args.config} {' '.join(args.overrides)}; {args.turns} turns per session; "
            f"server pid {server.pid}"
        )
        for n in args.sessions:
            res = asyncio.run(run_sessions(url, clips, n, args.turns, server.pid))
            v2v = res["v2v"]
            out(f"\n== {n} concurrent session(s)")
            if v2v:
                out(
                    f"voice-to-voice s: p50 {pct(v2v, 50):.2f}  p95 {pct(v2v, 95):.2f}  (n={len(v2v)})"
                )
            for stage, vals in sorted(res["stages"].items()):
                out(f"  {stage:22} p50 {pct(vals, 50):7.0f} ms  p95 {pct(vals, 95):7.0f} ms")
            offsets = [av_offset_ms(p, box) for p in res["peers"]]
            out(
                "A/V offset at client (ms, + = video late): "
                + ", ".join(f"{o:.0f}" for o in offsets)
            )
            out("received fps: " + ", ".join(f"{f:.1f}" for f in res["fps"]))
            out(f"server CPU per session: {res['cpu_per_session'] * 100:.0f}% of one core")
            if res["errors"]:
                out(f"errors: {res['errors']}")
    finally:
        server.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(10)
        if server.poll() is None:
            server.kill()
    return 0


async def _wait_ready(url: str, timeout: float = 120.0) -> None:
    t = time.monotonic()
    async with aiohttp.ClientSession() as http:
        while time.monotonic() - t < timeout:
            with contextlib.suppress(aiohttp.ClientError):
                r = await http.get(f"{url}/readyz")
                if r.status == 200:
                    return
            await asyncio.sleep(0.5)
    raise RuntimeError("server did not become ready")


if __name__ == "__main__":
    raise SystemExit(main())
