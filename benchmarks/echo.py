"""Echo mode (the avatar as the face of another voice agent): the added delay, the CPU
of one echo session, and how many echo sessions this machine holds.

Usage: python -m benchmarks.echo [--config default] [--clips 5] [--max-sessions 4]
                                 [--seconds 15]

First a CPU model, in process CPU time (other load on the machine barely changes it):
the echo's own work per second of the caller's audio (the live mouth drive and
playout), the world model step, and from benchmarks/capacity.py the render and VP8
encode per frame and Opus per 20 ms (counted twice: the caller's audio is decoded, the
echo encoded), so cores per echo session and sessions per core. Then it starts
``avatar serve`` as a subprocess on 127.0.0.1. One aiortc client sends a
Piper sentence ``--clips`` times into an echo session and measures, on what it
received, the delay from sending the first loud sample to receiving it back, and to
the first video frame whose mouth opens (the echo's own share is the configured
delay the session reports; the rest is the two aiortc hops: Opus, jitter buffers).
Then 1, 2, ... ``--max-sessions`` clients talk at once (speech 3/4 of the time) for
``--seconds`` each step; it prints the server's CPU (cores), the lowest received
video fps, dropped frames and how far echo delays grew, and stops adding once fps
falls under ``--min-fps`` (23.5: 25 fps, counted over a window). The clients run on the same machine (they decode the video too).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from avatar.analysis import mouth_opening  # noqa: E402
from benchmarks.common import arg_parser, config_arg, machine, pct  # noqa: E402
from benchmarks.conversation import _wait_ready, free_port, out, proc_cpu_seconds  # noqa: E402
from benchmarks.load import start_server, stop_server  # noqa: E402
from gwm_avatars.arguments import int_in_range, positive_float, positive_int  # noqa: E402
from models.assets import AssetResolver  # noqa: E402
from models.audio import resample  # noqa: E402
from models.tts import create_tts  # noqa: E402
from streaming.client import RATE, ClientPeer  # noqa: E402
from streaming.ice import use_host_addresses  # noqa: E402

LINE = "Thank you for calling. How can I help you today? I can check your order for you."
LOUD = 0.02


def load_avg() -> str:
    """The 1/5/15-minute load averages."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def agent_speech(config: Any) -> np.ndarray:
    """The agent's line, 48 kHz mono (Piper)."""
    tts = create_tts(config.tts, AssetResolver(config.assets))
    chunks = list(tts.synthesize(LINE))
    pcm = np.concatenate([c.pcm for c in chunks])
    return resample(pcm, chunks[0].sample_rate, RATE)


def echo_cpu_ms(clip: np.ndarray, fps: int) -> tuple[float, float]:
    """CPU ms per second of audio of the echo part (drive, playout, scheduling, with
    the world model stepped at ``fps`` as the video track does), and of the world
    model's steps alone."""
    from avatar.config import AvatarConfig
    from avatar.motion import WorldModel
    from streaming.clock import MediaClock
    from streaming.config import EchoConfig
    from streaming.echo import Echo
    from streaming.playout import AudioPlayout
    from streaming.speaker import Speaker

    t = {"now": 0.0}
    clock = MediaClock(now=lambda: t["now"], fps=fps)
    clock.start()
    playout = AudioPlayout(RATE)
    world = WorldModel(AvatarConfig(), fps=fps, seed=0)
    echo = Echo(
        Speaker(clock, playout, world),
        playout,
        world,
        clock,
        None,
        lambda e: None,  # type: ignore[arg-type]
        EchoConfig(),
        now=clock.now,
    )
    audio = np.concatenate([clip, np.zeros(RATE // 2, np.float32)] * 3)
    pcm16 = resample(audio, RATE, 16_000)
    frames = len(audio) // 960

    def run() -> None:
        for k in range(frames):
            t["now"] = (k + 1) * 0.02
            echo.feed_audio(audio[k * 960 : (k + 1) * 960], pcm16[k * 320 : (k + 1) * 320])
            playout.pull(k * 960, 960)
            while world.time <= t["now"] + 2 / fps:
                world.step()

    async def go() -> float:
        c = time.process_time()
        run()
        used = time.process_time() - c
        await echo.close()
        return used

    total = asyncio.run(go())
    world2 = WorldModel(AvatarConfig(), fps=fps, seed=0)
    c = time.process_time()
    for _ in range(frames * fps // 50):
        world2.step()
    steps = time.process_time() - c
    seconds = frames * 0.02
    return total / seconds * 1000.0, steps / seconds * 1000.0


def cpu_model(clip: np.ndarray, fps: int, frames: int) -> None:
    """Cores per echo session from per-stage CPU time, and sessions per core."""
    from benchmarks.capacity import HEADROOM, opus_cost, video_costs

    echo_ms, step_ms = echo_cpu_ms(clip, fps)
    render_ms, vp8_ms = video_costs((512, 512), frames)
    opus_ms = opus_cost()
    video = (render_ms + vp8_ms) * fps / 1000.0
    audio = 2 * opus_ms / 20.0
    echo = echo_ms / 1000.0
    cores = video + audio + echo
    out(
        f"CPU model (process CPU time): echo part {echo_ms:.1f} ms per s of audio "
        f"(idle world model steps alone: {step_ms:.1f} ms); render {render_ms:.1f} ms + VP8 "
        f"{vp8_ms:.1f} ms per 512x512 frame; Opus {opus_ms:.2f} ms per 20 ms"
    )
    out(
        f"-> {cores:.2f} cores per echo session at {fps} fps (video {video:.2f}, Opus in+out "
        f"{audio:.2f}, echo {echo:.3f}): {1 / cores:.1f} sessions per core, "
        f"{HEADROOM * (os.cpu_count() or 1) / cores:.1f} on this machine at 70% load"
    )


async def _echo_peer(url: str, *, keep_video: bool) -> ClientPeer | None:
    peer = ClientPeer(url, keep_video=keep_video)
    if await peer.connect(mode="echo") is not None:
        return None
    await peer.wait_open()
    return peer


async def _sessions(url: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http:
        body = await (await http.get(f"{url}/v1/sessions")).json()
    return list(body["sessions"])


async def delays(url: str, clip: np.ndarray, clips: int, box: tuple[int, ...]) -> None:
    """One session: audio in -> audio out, and -> the mouth, per clip."""
    peer = await _echo_peer(url, keep_video=True)
    if peer is None:
        out("could not open an echo session")
        return
    first = int(np.flatnonzero(np.abs(clip) > LOUD)[0]) / RATE
    to_audio: list[float] = []
    to_mouth: list[float] = []
    try:
        await asyncio.sleep(1.5)
        rest = np.median([img for _, img in peer.received.video[-10:]], axis=0).astype(np.uint8)
        for _ in range(clips):
            n_sent = len(peer.mic.sent_log)
            peer.mic.say(clip)
            await asyncio.sleep(len(clip) / RATE + 1.5)
            t_in = peer.mic.sent_log[n_sent][0] + first
            audio = [t for t, a in peer.received.audio if t >= t_in and np.abs(a).max() > LOUD]
            opening = [
                (t, mouth_opening(img, box, rest=rest))
                for t, img in peer.received.video
                if t >= t_in - 0.5 and img.size
            ]
            top = max(o for _, o in opening)
            moved = [t for t, o in opening if o > 0.3 * top and t >= t_in]
            if audio and moved:
                to_audio.append(audio[0] - 0.02 - t_in)  # a frame arrives once it is whole
                to_mouth.append(moved[0] - t_in)
        info = (await _sessions(url))[0]
    finally:
        await peer.hangup()
    out(
        f"echo delay set by the service: {info['echo']['delay_s'] * 1000:.0f} ms; "
        f"grown by late audio: {info['echo']['late_s'] * 1000:.0f} ms in all"
    )
    out(
        f"audio in -> audio out at the client: p50 {pct(to_audio, 50) * 1000:.0f} ms, "
        f"max {max(to_audio, default=float('nan')) * 1000:.0f} ms (n={len(to_audio)})"
    )
    out(
        f"audio in -> mouth opens at the client: p50 {pct(to_mouth, 50) * 1000:.0f} ms, "
        f"max {max(to_mouth, default=float('nan')) * 1000:.0f} ms (n={len(to_mouth)})"
    )


async def _talker(peer: ClientPeer, clip: np.ndarray, until: float) -> None:
    pause = np.zeros(int(len(clip) / 3), np.float32)
    while time.monotonic() < until:
        peer.mic.say(np.concatenate([clip, pause]))
        await asyncio.sleep((len(clip) + len(pause)) / RATE)


async def capacity(
    url: str, clip: np.ndarray, pid: int, top: int, seconds: float, min_fps: float
) -> None:
    """Add echo sessions one at a time while all of them talk."""
    cores = os.cpu_count() or 1
    out(
        f"{'sessions':>8} {'server cores':>12} {'per session':>11} {'fps min':>8} "
        f"{'dropped':>8} {'delay grew max':>14} {'load':>14}"
    )
    t0, c0 = time.monotonic(), proc_cpu_seconds(pid)
    await asyncio.sleep(3.0)
    idle = (proc_cpu_seconds(pid) - c0) / (time.monotonic() - t0)
    out(f"{0:8d} {idle:12.2f} {'':>11} {'':>8} {'':>8} {'':>14} {load_avg():>14}")
    for n in range(1, top + 1):
        peers = [p for p in [await _echo_peer(url, keep_video=False) for _ in range(n)] if p]
        try:
            if len(peers) < n:
                out(f"{n:8d} refused")
                break
            await asyncio.sleep(1.5)
            until = time.monotonic() + seconds
            talkers = [asyncio.ensure_future(_talker(p, clip, until)) for p in peers]
            frames0 = [len(p.received.video) for p in peers]
            t0, c0 = time.monotonic(), proc_cpu_seconds(pid)
            await asyncio.gather(*talkers)
            wall = time.monotonic() - t0
            used = (proc_cpu_seconds(pid) - c0) / wall
            fps = [
                (len(p.received.video) - f0) / wall for p, f0 in zip(peers, frames0, strict=True)
            ]
            infos = await _sessions(url)
            dropped = sum(int(s.get("dropped_frames", 0)) for s in infos)
            grew = max(float(s["echo"]["late_s"]) for s in infos if "echo" in s)
        finally:
            for p in peers:
                with contextlib.suppress(Exception):
                    await p.hangup()
        out(
            f"{n:8d} {used:12.2f} {(used - idle) / n:11.2f} {min(fps):8.1f} {dropped:8d} "
            f"{grew * 1000:12.0f}ms {load_avg():>14}"
        )
        if min(fps) < min_fps or used > 0.95 * cores:
            out(f"-> {n - 1} echo session(s) held {min_fps:g}+ fps on this machine")
            return
        await asyncio.sleep(2.0)
    out(f"-> all {top} held {min_fps:g}+ fps (raise --max-sessions)")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The arguments, checked: bad ones print one line and exit with code 2."""
    parser = arg_parser(__doc__, __file__)
    parser.add_argument("--config", default="default")
    parser.add_argument("--clips", type=int_in_range(1, 100), default=5)
    parser.add_argument("--max-sessions", type=int_in_range(1, 64), default=4)
    parser.add_argument("--seconds", type=positive_float, default=15.0)
    parser.add_argument(
        "--min-fps", type=positive_float, default=23.5, help="a session holds 25 fps above this"
    )
    parser.add_argument("--port", type=positive_int, default=None)
    parser.add_argument("--frames", type=positive_int, default=100, help="for the CPU model")
    parser.add_argument("--skip-live", action="store_true", help="the CPU model only")
    args = parser.parse_args(argv)
    args.app_config = config_arg(parser, args.config)
    return args


async def run(args: argparse.Namespace) -> None:
    """Start the server, measure, stop it."""
    cfg = args.app_config
    clip = agent_speech(cfg)
    use_host_addresses(["127.0.0.1"])
    port = args.port or free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        extra = [f"server.max_sessions={args.max_sessions}", "server.idle_timeout_s=600"]
        proc = start_server(args.config, port, Path(tmp) / "sessions.db", extra)
        try:
            await _wait_ready(url, timeout=300)
            from avatar.identity import load_rig

            size = cfg.render.size
            box = tuple(int(v) for v in load_rig(None, size=(size, size)).mouth_box())
            await delays(url, clip, args.clips, box)
            await capacity(url, clip, proc.pid, args.max_sessions, args.seconds, args.min_fps)
        finally:
            stop_server(proc)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and print."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    out(f"machine: {machine()}; load average at start: {load_avg()}")
    cfg = args.app_config
    out(
        f"config: {args.config}; {cfg.render.size}px at {cfg.render.fps} fps; "
        f"lookahead {cfg.avatar.lookahead_ms} ms"
    )
    cpu_model(agent_speech(cfg), cfg.render.fps, args.frames)
    if not args.skip_live:
        asyncio.run(run(args))
    out(f"load average at the end: {load_avg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
