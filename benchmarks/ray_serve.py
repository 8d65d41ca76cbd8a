"""Ray Serve backend vs local engines: STT and TTS latency, render batch throughput.

Usage: python benchmarks/ray_serve.py [--config default] [--rounds 2] [--frames 96]
Starts a local Ray instance (loopback, no dashboard, files under a temporary folder),
runs the app with one replica per stage, and prints per-request latency of STT and
TTS through Ray and locally, then render throughput with 1, 4 and 8 concurrent
callers (the render deployment batches up to 8 frames) against the local renderer.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from avatar.identity import load_rig
from avatar.render import create_renderer
from avatar.state import NEUTRAL, Mode
from benchmarks.common import arg_parser, config_arg, machine, summary
from benchmarks.engines import UTTERANCES
from gwm_avatars.arguments import positive_float, positive_int
from models.assets import AssetResolver
from models.audio import resample
from models.stt import SpeechRecognizer
from models.tts import create_tts, split_sentences
from streaming.config import load_config

log = logging.getLogger("bench")

SENTENCES = [
    "Paris is the capital of France.",
    "Sure, I can help with that.",
    "The weather tomorrow looks sunny and warm, with a light breeze in the afternoon.",
]


def out(line: str = "") -> None:
    """Print one result line."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def timed(fn, *args):  # type: ignore[no-untyped-def]
    """(seconds, result) of one call."""
    t = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - t, result


def bench_render(renderer, local, states, callers: int, frames: int, serving) -> None:  # type: ignore[no-untyped-def]
    """Throughput of ``frames`` frames rendered by ``callers`` threads at once."""
    before = serving.stats()["render"]["batch_sizes"]
    latencies: list[float] = []
    lock = threading.Lock()

    def caller(k: int) -> None:
        for i in range(k, frames, callers):
            dt, _ = timed(renderer.render, states[i % len(states)])
            with lock:
                latencies.append(dt)

    t = time.perf_counter()
    with ThreadPoolExecutor(callers) as pool:
        list(pool.map(caller, range(callers)))
    wall = time.perf_counter() - t
    after = serving.stats()["render"]["batch_sizes"]
    new = {s: n - before.get(s, 0) for s, n in after.items() if n > before.get(s, 0)}
    mean_batch = sum(s * n for s, n in new.items()) / max(1, sum(new.values()))
    out(
        f"render via Ray, {callers} caller(s): {frames / wall:.1f} frames/s, "
        f"latency {summary(latencies)}, mean batch {mean_batch:.1f} {dict(sorted(new.items()))}"
    )
    t = time.perf_counter()
    with ThreadPoolExecutor(callers) as pool:
        list(pool.map(local.render, [states[i % len(states)] for i in range(frames)]))
    wall = time.perf_counter() - t
    out(f"render locally, {callers} thread(s): {frames / wall:.1f} frames/s")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The arguments, checked: bad ones print one line and exit with code 2."""
    parser = arg_parser(__doc__, __file__)
    parser.add_argument("--config", default="default")
    parser.add_argument("--rounds", type=positive_int, default=2)
    parser.add_argument("--frames", type=positive_int, default=96)
    parser.add_argument("--replica-cpus", type=positive_float, default=0.5)
    args = parser.parse_args(argv)
    args.app_config = config_arg(parser, args.config)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the Ray Serve benchmarks."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))  # no ~/.ray/auth_token

    cpus = min(2, os.cpu_count() or 2)
    ray_version = importlib.metadata.version("ray")  # not imported yet: it must stay on loopback
    out(f"{machine()}; load average {os.getloadavg()[0]:.1f}; ray {ray_version}")
    with tempfile.TemporaryDirectory(prefix="ray-bench-") as tmp:
        overrides = [
            "serving.backend=ray",
            f"serving.ray.num_cpus={cpus}",
            "serving.ray.object_store_mb=300",
            f"serving.ray.temp_dir={tmp}",
            "serving.ray.render.max_batch_size=8",
            "serving.ray.render.batch_wait_timeout_s=0.005",
        ] + [f"serving.ray.{s}.num_cpus={args.replica_cpus}" for s in ("stt", "tts", "render")]
        config = load_config(args.config, overrides=overrides)
        r = config.serving.ray
        out(
            f"settings: local Ray {cpus} CPUs, 1 replica per stage ({args.replica_cpus} CPU each), "
            f"render batch ≤ {r.render.max_batch_size} / wait {r.render.batch_wait_timeout_s * 1000:.0f}"
            f" ms, render {config.render.backend} {config.render.size}px, stt {config.stt.model} "
            f"({config.stt.compute_type}, {config.stt.cpu_threads} threads), tts {config.tts.voice}"
        )
        resolver = AssetResolver(config.assets)
        stt = SpeechRecognizer(config.stt, resolver, word_timestamps=False)
        tts = create_tts(config.tts, resolver)
        rig = load_rig(
            config.avatar.bundle,
            size=(config.render.width or config.render.size, config.render.size),
        )
        local_renderer = create_renderer(rig, config.render)

        from streaming.ray_serve import deploy_local

        dt, serving = timed(deploy_local, config)
        out(f"Ray start + app deploy: {dt:.1f} s")
        try:
            assert serving.stt is not None and serving.tts is not None
            clips = []
            for text in UTTERANCES:
                pcm = np.concatenate([c.pcm for c in tts.synthesize(text)])
                clips.append(resample(pcm, tts.sample_rate, 16_000))
            serving.stt.transcribe(clips[0])  # warm both paths
            stt.transcribe(clips[0])
            ray_stt, local_stt = [], []
            for _ in range(args.rounds):
                for clip in clips:
                    ray_stt.append(timed(serving.stt.transcribe, clip)[0])
                    local_stt.append(timed(stt.transcribe, clip)[0])
            secs = [len(c) / 16_000 for c in clips]
            out(f"STT ({min(secs):.1f}-{max(secs):.1f} s utterances) via Ray: {summary(ray_stt)}")
            out(f"STT locally:                        {summary(local_stt)}")
            overhead = [a - b for a, b in zip(ray_stt, local_stt, strict=True)]
            out(f"STT Ray overhead per request: median {statistics.median(overhead) * 1000:.0f} ms")

            ray_tts, local_tts = [], []
            list(serving.tts.synthesize(SENTENCES[0]))
            for _ in range(args.rounds):
                for s in SENTENCES:
                    for sentence in split_sentences(s):
                        ray_tts.append(
                            timed(lambda x: list(serving.tts.synthesize(x)), sentence)[0]
                        )
                        local_tts.append(timed(lambda x: list(tts.synthesize(x)), sentence)[0])
            out(f"TTS per sentence via Ray: {summary(ray_tts)}")
            out(f"TTS per sentence locally: {summary(local_tts)}")

            renderer = serving.renderer(config.avatar.bundle, rig, config.render)
            assert renderer is not None
            states = [
                NEUTRAL.with_(jaw_open=(i % 10) / 10, head_yaw=0.01 * (i % 7), mode=Mode.SPEAKING)
                for i in range(32)
            ]
            renderer.render(states[0])
            dt = [timed(local_renderer.render, states[i % 32])[0] for i in range(40)]
            out(f"local CPU renderer, one frame: {summary(dt)}")
            for callers in (1, 4, 8):
                bench_render(renderer, local_renderer, states, callers, args.frames, serving)
            if renderer.local_frames:
                out(f"note: {renderer.local_frames} frames fell back to the local renderer")
        finally:
            dt, _ = timed(serving.close)
            out(f"Ray shutdown: {dt:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
