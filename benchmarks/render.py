"""Renderer timings and sample frames.

Usage: python -m benchmarks.render [--frames-dir benchmarks/frames] [--repeat 40]
       [--sizes 512 1280x720] [--batches 1 8 32]

Prints the CPU renderer's time per frame (one OpenCV thread; run with
OPENBLAS_NUM_THREADS=1 for one core in all) at 512×512 and 1280×720
on a varied talking sequence, and the torch renderer's frames per second for batches of
1, 8 and 32 (on CUDA when available, else CPU). Saves a few frames of the default
avatar (neutral, jaw open, blink, head turned, ...) as PNGs to look at.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from avatar.identity import load_rig
from avatar.render import CpuRenderer
from avatar.state import AvatarState
from benchmarks.common import arg_parser, machine, summary
from gwm_avatars.arguments import non_negative_int, positive_int, size_type

FRAMES = {
    "neutral": AvatarState(),
    "jaw_open": AvatarState(jaw_open=1.0),
    "jaw_half_round": AvatarState(jaw_open=0.5, mouth_wide=-0.7),
    "ee_teeth": AvatarState(jaw_open=0.2, mouth_wide=0.8, teeth_show=1.0),
    "lips_pressed": AvatarState(lip_press=1.0),
    "blink": AvatarState(blink_left=1.0, blink_right=1.0),
    "gaze_right": AvatarState(gaze_x=1.0, gaze_y=0.3),
    "head_turned": AvatarState(head_yaw=0.15, head_roll=0.06, head_pitch=-0.04),
    "brows_talking": AvatarState(brow_raise=1.0, jaw_open=0.7, head_x=0.03, breath=1.0),
}


def out(line: str = "") -> None:
    """Print one result line."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def talking(n: int, seed: int = 0) -> list[AvatarState]:
    """A varied sequence of states like those of a talking avatar."""
    rng = np.random.default_rng(seed)
    return [
        AvatarState(
            jaw_open=float(rng.uniform(0, 1)),
            mouth_wide=float(rng.uniform(-1, 1)),
            lip_press=float(rng.uniform(0, 1) > 0.85),
            teeth_show=float(rng.uniform(0, 0.5)),
            blink_left=float(rng.uniform(0, 1) > 0.85),
            blink_right=float(rng.uniform(0, 1) > 0.85),
            gaze_x=float(rng.uniform(-0.5, 0.5)),
            gaze_y=float(rng.uniform(-0.3, 0.3)),
            brow_raise=float(rng.uniform(-0.3, 0.5)),
            head_yaw=float(rng.uniform(-0.1, 0.1)),
            head_pitch=float(rng.uniform(-0.05, 0.05)),
            head_roll=float(rng.uniform(-0.05, 0.05)),
            torso_x=float(rng.uniform(-0.02, 0.02)),
            breath=float(rng.uniform(0, 1)),
        )
        for _ in range(n)
    ]


def bench_cpu(size: tuple[int, int], repeat: int) -> None:
    """Milliseconds per frame of the CPU renderer on one thread."""
    cv2.setNumThreads(1)
    rig = load_rig(None, size=size)
    t0 = time.perf_counter()
    renderer = CpuRenderer(rig)
    build = time.perf_counter() - t0
    states = talking(repeat)
    renderer.render_batch(states[:3])
    wall, cpu = [], []
    for s in states:
        t, c = time.perf_counter(), time.process_time()
        renderer.render(s)
        wall.append((time.perf_counter() - t) * 1000.0)
        cpu.append((time.process_time() - c) * 1000.0)
    out(f"cpu {size[0]}x{size[1]}: per-rig setup {build:.2f} s")
    out(f"  wall ms/frame {summary(wall)}")
    out(f"  cpu  ms/frame {summary(cpu)}  (process time: insensitive to other load)")


def bench_torch(size: tuple[int, int], batches: list[int], repeat: int, threads: int) -> None:
    """Frames per second of the torch renderer for several batch sizes."""
    import torch

    from avatar.render.torch_renderer import TorchRenderer

    if threads:
        torch.set_num_threads(threads)
    rig = load_rig(None, size=size)
    renderer = TorchRenderer(rig, device="auto", max_batch=max(batches))
    out(f"torch {size[0]}x{size[1]} on {renderer.device} ({torch.get_num_threads()} threads)")
    for b in batches:
        states = talking(b, seed=b)
        renderer.render_batch(states)  # warm-up
        n = max(2, repeat // b)
        t, c = time.perf_counter(), time.process_time()
        for _ in range(n):
            renderer.render_batch(states)
        dt, dc = time.perf_counter() - t, time.process_time() - c
        out(
            f"  batch {b:3d}: {n * b / dt:7.1f} frames/s ({dt / n * 1000:.1f} ms per batch; "
            f"{dc / (n * b) * 1000:.1f} ms of CPU time per frame)"
        )


def save_frames(folder: Path) -> None:
    """Render the sample states of the default avatar at 512×512 into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    renderer = CpuRenderer(load_rig(None, size=(512, 512)))
    for name, state in FRAMES.items():
        Image.fromarray(renderer.render(state)).save(folder / f"{name}.png")
    out(f"saved {len(FRAMES)} frames to {folder}")


OFFLINE_TEXT = (
    "Thanks for asking! Our avatar listens, thinks and answers in real time. "
    "It hears you with a speech recognizer, writes a reply with a small language model, "
    "and speaks it with a neural voice. "
    "At the same time a world model moves the lips, the eyes and the head, frame by frame, "
    "in sync with the sound. "
    "Everything you see is rendered from one photo, so the face never drifts. "
    "It runs on an ordinary laptop, and on a GPU it can serve many people at once."
)


def bench_offline(size: tuple[int, int], tmp: Path) -> None:
    """Offline render of a ~20 s reply (TTS + world model + render + H.264/AAC encode)."""
    from avatar.config import RenderConfig
    from avatar.render import create_renderer
    from gwm_avatars.commands.render import offline_tts_config, render_speech_to_mp4
    from models.assets import AssetResolver
    from models.config import TtsConfig
    from models.tts import create_tts

    tts = create_tts(offline_tts_config(TtsConfig()), AssetResolver())  # as `avatar render`
    rig = load_rig(None, size=size)
    renderer = create_renderer(rig, RenderConfig(size=size[1], width=size[0]))
    list(tts.synthesize("Warm up."))
    t = time.perf_counter()
    result = render_speech_to_mp4(tts.synthesize(OFFLINE_TEXT), tmp / "offline.mp4", renderer)
    wall = time.perf_counter() - t
    dur = result.duration
    stages = ", ".join(f"{k} {v:.1f}s" for k, v in result.seconds.items())
    out(f"  busy time per stage: {stages}")
    out(
        f"offline render {size[0]}x{size[1]}: {dur:.1f} s of speech in {wall:.1f} s "
        f"= {dur / wall:.1f}x real time (TTS, motion, render and encode overlapped)"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The arguments, checked: bad ones print one line and exit with code 2."""
    parser = arg_parser(__doc__, __file__)
    parser.add_argument("--frames-dir", type=Path, default=Path(__file__).parent / "frames")
    parser.add_argument("--repeat", type=positive_int, default=40)
    parser.add_argument(
        "--sizes",
        nargs="+",
        type=size_type,
        default=[(512, 512), (1280, 720)],
        metavar="WxH",
        help="frame sizes, e.g. 512 (= 512x512) 1280x720",
    )
    parser.add_argument("--batches", nargs="+", type=positive_int, default=[1, 8, 32])
    parser.add_argument(
        "--torch-threads", type=non_negative_int, default=0, help="0: torch's default"
    )
    args = parser.parse_args(argv)
    if args.frames_dir.exists() and not args.frames_dir.is_dir():
        parser.error(f"--frames-dir {args.frames_dir} exists and is not a folder")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the renderer benchmarks."""
    args = parse_args(argv)
    out(f"{machine()}; load average {os.getloadavg()[0]:.1f}")
    save_frames(args.frames_dir)
    sizes: list[tuple[int, int]] = args.sizes
    for size in sizes:
        bench_cpu(size, args.repeat)
    for size in sizes:
        bench_torch(size, args.batches, args.repeat, args.torch_threads)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        bench_offline((512, 512), Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
