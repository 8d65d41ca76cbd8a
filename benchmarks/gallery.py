"""A gallery of the avatar: a contact sheet of mouth shapes and a short spoken clip.

Usage: python -m benchmarks.gallery [--out-dir docs/gallery] [--text "..."]

Renders, with the CPU renderer:

* ``visemes.png``: rest, "ah", "ee", "oo", "m/b/p", "f/v" and "th" on three portraits:
  the built-in astronaut (``skimage.data.astronaut``, public domain), Grace Hopper
  (matplotlib's sample data, a US Navy photo in the public domain; closed lips, so
  the whole inside of her mouth is synthesized) and the cameraman
  (``skimage.data.camera``, CC0; a turned, black-and-white face);
* ``speaking.webp``: the astronaut and Grace Hopper speaking a sentence (Piper's
  voice drives both, as in ``avatar render --text``), an animated WebP without sound.

Prints each file's size; both stay well under 1 MB.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

from avatar.config import AvatarConfig
from avatar.identity import AvatarRig, load_rig, prepare_bundle, read_bundle
from avatar.motion import WorldModel
from avatar.motion.visemes import Viseme, viseme_state
from avatar.render import CpuRenderer
from avatar.state import Mode
from benchmarks.common import arg_parser, machine
from gwm_avatars.arguments import int_in_range

log = logging.getLogger(__name__)

U8 = npt.NDArray[np.uint8]
SIZE = (512, 512)
TILE = 176
COLUMNS = (
    ("rest", None),
    ("ah", Viseme.AA),
    ("ee", Viseme.EE),
    ("oo", Viseme.OU),
    ("m b p", Viseme.PP),
    ("f v", Viseme.FF),
    ("th", Viseme.TH),
)
TEXT = "Hello! I'm your avatar. Ask me anything, and I will answer you right away."


def out(line: str = "") -> None:
    """Print one result line."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def portraits(work: Path) -> dict[str, AvatarRig]:
    """The built-in portrait and two more from installed packages' sample data."""
    from skimage import data

    rigs = {"astronaut (built-in)": load_rig(None, size=SIZE, cache_dir=work / "cache")}
    try:
        from matplotlib import cbook

        path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
        grace = np.asarray(Image.open(str(path)).convert("RGB"))
        rigs["Grace Hopper"] = read_bundle(prepare_bundle(grace, work / "grace", size=SIZE))
    except ImportError:
        log.warning("matplotlib is not installed: no Grace Hopper portrait")
    camera = np.ascontiguousarray(np.stack([data.camera()] * 3, axis=-1))
    rigs["cameraman"] = read_bundle(prepare_bundle(camera, work / "camera", size=SIZE))
    return rigs


def face_crop(rig: AvatarRig, frame: U8, side: int) -> U8:
    """A square around the face (brows to chin), resized to ``side`` pixels."""
    x0, y0, x1, y1 = rig.face_box()
    fh = rig.face_height
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0 + 0.08 * fh
    half = 0.6 * fh
    h, w = frame.shape[:2]
    a, b = int(max(0, cx - half)), int(max(0, cy - half))
    c, d = int(min(w, cx + half)), int(min(h, cy + half))
    crop = frame[b:d, a:c]
    return np.asarray(cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA), np.uint8)


def label(img: U8, text: str, scale: float = 0.5) -> U8:
    """``img`` with a caption on a dark strip at its top."""
    out_img = img.copy()
    cv2.rectangle(out_img, (0, 0), (img.shape[1], 20), (20, 20, 20), -1)
    cv2.putText(
        out_img, text, (6, 15), cv2.FONT_HERSHEY_SIMPLEX, scale, (240, 240, 240), 1, cv2.LINE_AA
    )
    return out_img


def contact_sheet(rigs: dict[str, AvatarRig]) -> U8:
    """Rows of portraits, columns of mouth shapes."""
    rows = []
    for name, rig in rigs.items():
        renderer = CpuRenderer(rig)
        tiles = []
        for i, (cap, vis) in enumerate(COLUMNS):
            tile = face_crop(rig, renderer.render(viseme_state(vis)), TILE)
            tiles.append(label(tile, f"{name}: {cap}" if i == 0 else cap, 0.42))
        rows.append(np.concatenate(tiles, axis=1))
    return np.concatenate(rows, axis=0)


def speaking_frames(rigs: list[AvatarRig], text: str, side: int) -> tuple[list[U8], int]:
    """Frames of the portraits side by side speaking ``text`` (Piper), and the fps."""
    from models.assets import AssetResolver
    from models.config import AssetsConfig, TtsConfig
    from models.tts import create_tts

    tts = create_tts(TtsConfig(), AssetResolver(AssetsConfig()))
    fps = 25
    pad = 0.3
    worlds = [WorldModel(AvatarConfig(), fps, seed=7 + i) for i in range(len(rigs))]
    start = pad
    for chunk in tts.synthesize(text):
        for world in worlds:
            world.schedule_speech(world.make_drive(chunk), start)
        start += chunk.duration
    n = round((start + pad) * fps)
    renderers = [CpuRenderer(rig) for rig in rigs]
    frames = []
    for _ in range(n):
        row = []
        for world, rig, renderer in zip(worlds, rigs, renderers, strict=True):
            speaking = pad - 0.2 <= world.time < start + 0.2
            world.set_mode(Mode.SPEAKING if speaking else Mode.IDLE)
            row.append(face_crop(rig, renderer.render(world.step()), side))
        frames.append(np.concatenate(row, axis=1))
    return frames, fps


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The arguments, checked: bad ones print one line and exit with code 2."""
    parser = arg_parser(__doc__, __file__)
    parser.add_argument("--out-dir", type=Path, default=Path("docs/gallery"))
    parser.add_argument("--text", default=TEXT, help="the sentence of the animated clip")
    parser.add_argument(
        "--side", type=int_in_range(64, 1024), default=200, help="pixels per face in the clip"
    )
    args = parser.parse_args(argv)
    if not args.text.strip():
        parser.error("--text: empty")
    if args.out_dir.exists() and not args.out_dir.is_dir():
        parser.error(f"--out-dir {args.out_dir} exists and is not a folder")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Render the gallery; print what was written."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="gallery-") as tmp:
        rigs = portraits(Path(tmp))
        sheet = contact_sheet(rigs)
        sheet_path = args.out_dir / "visemes.png"
        Image.fromarray(sheet).quantize(colors=256, dither=Image.Dither.NONE).save(
            sheet_path, optimize=True
        )
        out(f"{sheet_path}: {sheet.shape[1]}x{sheet.shape[0]}, {sheet_path.stat().st_size} bytes")
        clip_rigs = [r for name, r in rigs.items() if name != "cameraman"]
        frames, fps = speaking_frames(clip_rigs, args.text, args.side)
    clip_path = args.out_dir / "speaking.webp"
    images = [Image.fromarray(f) for f in frames]
    images[0].save(
        clip_path,
        save_all=True,
        append_images=images[1:],
        duration=round(1000 / fps),
        loop=0,
        quality=50,
        method=4,
    )
    out(
        f"{clip_path}: {len(frames)} frames at {fps} fps, {frames[0].shape[1]}x"
        f"{frames[0].shape[0]}, {clip_path.stat().st_size} bytes"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
