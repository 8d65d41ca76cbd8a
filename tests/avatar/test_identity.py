"""Preparing a portrait into a rig: framing, landmarks, masks, bundles, and bad photos."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from avatar.identity import (
    AvatarRig,
    BundleError,
    FaceTooSmallError,
    IdentityError,
    ImageDecodeError,
    ImageTooLargeError,
    ImageTooSmallError,
    NoFaceError,
    default_photo,
    load_rig,
    prepare_bundle,
    read_bundle,
)
from avatar.identity import landmarks as L
from gwm_avatars.cli import main as avatar_main

# ---------------------------------------------------------------- the default rig


def test_default_rig_is_framed_for_lip_reading(default_rig: AvatarRig) -> None:
    rig = default_rig
    w, h = rig.size
    assert rig.portrait.shape == (h, w, 3) and rig.portrait.dtype == np.uint8
    assert rig.landmarks.shape == (478, 2) and rig.landmarks.dtype == np.float32
    # the face is large (40-50 % of the height), centred, and wholly in the frame
    assert 0.38 * h <= rig.face_height <= 0.5 * h
    x0, y0, x1, y1 = rig.face_box()
    assert x0 > 0 and x1 < w and y0 > 0 and y1 < h
    assert abs((x0 + x1) / 2 - w / 2) < 0.08 * w
    # head and shoulders: the person reaches the bottom edge, the top corners are background
    assert rig.person[-1].mean() > 0.3
    assert rig.person[0, 0] == 0.0 and rig.person[0, -1] == 0.0


def test_default_rig_masks_match_the_landmarks(default_rig: AvatarRig) -> None:
    rig = default_rig
    for m in (rig.person, rig.face, rig.mouth, rig.eyes):
        assert m.dtype == np.float32 and m.shape == rig.portrait.shape[:2]
        assert m.min() >= 0.0 and m.max() <= 1.0
    lm = rig.landmarks
    for iris in (L.RIGHT_IRIS[0], L.LEFT_IRIS[0]):
        x, y = np.rint(lm[iris]).astype(int)
        assert rig.eyes[y, x] > 0.5 and rig.face[y, x] > 0.5
    nose = np.rint(lm[L.NOSE_TIP]).astype(int)
    assert rig.face[nose[1], nose[0]] == pytest.approx(1.0)
    assert rig.person[rig.face > 0.5].min() > 0.9  # the face is inside the person
    # the astronaut smiles with her teeth: the opening between her lips is not empty
    assert rig.mouth.sum() > 50
    mx0, my0, mx1, my1 = rig.mouth_box()
    cx, cy = rig.mouth_center()
    assert mx0 < cx < mx1 and my0 < cy < my1
    assert mx1 - mx0 < 0.7 * rig.face_height


def test_default_rig_colours_are_sampled_from_the_photo(default_rig: AvatarRig) -> None:
    c = default_rig.colors
    assert sum(c.teeth) > sum(c.skin) > sum(c.cavity)
    assert c.lip[0] / c.lip[1] > c.skin[0] / c.skin[1]  # lips are redder than skin
    assert sum(c.sclera) > sum(c.cavity)


def test_bundle_folder_is_complete_and_loads_back(
    default_bundle: Path, default_rig: AvatarRig
) -> None:
    for name in (
        "portrait.png",
        "landmarks.json",
        "rig.json",
        "preview.png",
        "source.png",
        "person.png",
        "face.png",
        "mouth.png",
        "eyes.png",
    ):
        assert (default_bundle / name).is_file(), name
    doc = json.loads((default_bundle / "rig.json").read_text())
    assert doc["size"] == [512, 512] and doc["source_size"] == [512, 512]
    assert set(doc["colors"]) >= {"skin", "lip", "teeth", "cavity", "tongue", "sclera"}
    assert doc["framing"]["scale"] > 1.0  # the astronaut's face was enlarged
    with Image.open(default_bundle / "preview.png") as im:
        assert im.size == (512, 512)
    rig = read_bundle(default_bundle)
    assert np.array_equal(rig.portrait, default_rig.portrait)
    np.testing.assert_allclose(rig.landmarks, default_rig.landmarks, atol=1e-3)
    np.testing.assert_allclose(rig.person, default_rig.person, atol=1 / 255)


def test_bundle_is_reframed_for_another_output_size(default_bundle: Path, tmp_path: Path) -> None:
    rig = load_rig(default_bundle, size=(640, 360), cache_dir=tmp_path)
    assert rig.size == (640, 360)
    assert 0.38 * 360 <= rig.face_height <= 0.5 * 360
    again = load_rig(default_bundle, size=(640, 360), cache_dir=tmp_path)
    assert np.array_equal(rig.portrait, again.portrait)
    assert len(list(tmp_path.iterdir())) == 1  # one cache entry, reused


def test_photo_file_is_prepared_once_into_the_cache(tmp_path: Path) -> None:
    photo = tmp_path / "me.jpg"
    Image.fromarray(default_photo()).save(photo, quality=92)
    cache = tmp_path / "cache"
    rig = load_rig(photo, size=(256, 256), cache_dir=cache)
    assert rig.size == (256, 256) and rig.name == "me"
    (entry,) = list(cache.iterdir())
    stamp = (entry / "rig.json").stat().st_mtime_ns
    again = load_rig(photo, size=(256, 256), cache_dir=cache)
    assert (entry / "rig.json").stat().st_mtime_ns == stamp
    assert np.array_equal(again.portrait, rig.portrait)


def test_prepare_cli_writes_a_bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photo = tmp_path / "astronaut.png"
    Image.fromarray(default_photo()).save(photo)
    out = tmp_path / "bundle"
    voice = ["--voice", "piper-joe-medium"]
    assert avatar_main(["prepare", str(photo), "-o", str(out), "--size", "320x240", *voice]) == 0
    assert "bundle written" in capsys.readouterr().out
    rig = read_bundle(out)
    assert rig.size == (320, 240) and rig.name == "astronaut"
    # The avatar's voice is kept in rig.json, and when re-framed for another size.
    assert rig.voice == "piper-joe-medium"
    assert load_rig(out, size=(256, 256), cache_dir=tmp_path / "cache").voice == rig.voice
    doc = json.loads((out / "rig.json").read_text())
    (out / "rig.json").write_text(json.dumps({**doc, "voice": "../voices/x.onnx"}))
    with pytest.raises(BundleError, match="voice"):
        read_bundle(out)
    # A voice name that is a path is refused in one line.
    bad = ["prepare", str(photo), "-o", str(tmp_path / "b2"), "--voice", "/tmp/x.onnx"]
    assert avatar_main(bad) == 2
    assert "voice" in capsys.readouterr().err


# ---------------------------------------------------------------- bad photos


def _png_with_header_size(path: Path, width: int, height: int) -> None:
    """A valid tiny PNG whose header claims ``width`` × ``height`` (no pixel data for it)."""
    Image.new("1", (8, 8)).save(path)
    data = bytearray(path.read_bytes())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))


def _two_tiny_faces(path: Path) -> None:
    head = default_photo()[50:200, 150:300]
    small = np.asarray(Image.fromarray(head).resize((40, 40), Image.Resampling.LANCZOS))
    canvas = np.full((600, 600, 3), 128, np.uint8)
    canvas[100:140, 100:140] = small
    canvas[300:340, 350:390] = small
    Image.fromarray(canvas).save(path)


def _bad_photo(kind: str, path: Path) -> None:
    if kind == "grey":
        Image.fromarray(np.full((400, 400, 3), 128, np.uint8)).save(path)
    elif kind == "tiny-faces":
        _two_tiny_faces(path)
    elif kind == "one-pixel":
        Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(path)
    elif kind == "text":
        path.write_text("this is not a picture of anybody\n", encoding="utf-8")
    elif kind == "huge":
        _png_with_header_size(path, 20_000, 20_000)


BAD = [
    ("grey", NoFaceError, "no face"),
    ("tiny-faces", FaceTooSmallError, "px tall"),
    ("one-pixel", ImageTooSmallError, "1x1"),
    ("text", ImageDecodeError, "not a readable image"),
    ("huge", ImageTooLargeError, "limit"),
]


@pytest.mark.parametrize(("kind", "error", "words"), BAD, ids=[b[0] for b in BAD])
def test_bad_photos_raise_typed_errors(
    kind: str, error: type[IdentityError], words: str, tmp_path: Path
) -> None:
    photo = tmp_path / ("photo.jpg" if kind == "text" else "photo.png")
    _bad_photo(kind, photo)
    with pytest.raises(error, match=words) as info:
        prepare_bundle(photo, tmp_path / "bundle")
    assert isinstance(info.value, ValueError)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "bundle" / "rig.json").exists()


@pytest.mark.parametrize("kind", ["grey", "text", "huge", "one-pixel"])
def test_prepare_cli_refuses_bad_photos_in_one_line(
    kind: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    photo = tmp_path / "photo.png"
    _bad_photo(kind, photo)
    assert avatar_main(["prepare", str(photo), "-o", str(tmp_path / "b")]) == 2
    # one line on the real stderr: MediaPipe's native chatter is kept out of it
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("avatar prepare: error:")


def test_missing_photo_and_bad_size_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert avatar_main(["prepare", str(tmp_path / "nope.jpg"), "-o", str(tmp_path / "b")]) == 2
    assert "not found" in capsys.readouterr().err
    photo = tmp_path / "p.png"
    Image.fromarray(default_photo()).save(photo)
    assert avatar_main(["prepare", str(photo), "-o", str(tmp_path / "b"), "--size", "big"]) == 2
    assert "--size" in capsys.readouterr().err


def test_huge_array_is_refused_before_work() -> None:
    big = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (8000, 8000, 3))
    with pytest.raises(ImageTooLargeError):
        prepare_bundle(big, Path("unused"), max_pixels=10_000_000)
