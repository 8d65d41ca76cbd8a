"""Avatar bundles: a folder a person can inspect, and the cache of prepared avatars.

A bundle holds ``portrait.png``, ``landmarks.json``, the masks (``person.png``,
``face.png``, ``mouth.png``, ``eyes.png``), ``rig.json`` (framing, colours, version,
source size, and optionally ``voice``: the voice the avatar speaks with unless a
session names one), ``preview.png`` (landmarks drawn) and ``source.png`` (the photo, at
most 2048 px, so the avatar can be re-framed at another output size).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

from avatar.identity import landmarks as L
from avatar.identity.detect import detect_faces, face_landmarks, person_mask
from avatar.identity.errors import BundleError, FaceTooSmallError, IdentityError, NoFaceError
from avatar.identity.framing import Framing, apply_framing, plan_framing
from avatar.identity.image import MAX_PIXELS, load_image
from avatar.identity.rig import RIG_VERSION, AvatarRig, RigColors, build_rig
from models.assets import default_cache_dir

log = logging.getLogger(__name__)

MIN_FACE_PX = 64
"""Smallest accepted face (detector box height in photo pixels)."""
SOURCE_MAX_SIDE = 2048
DEFAULT_SIZE = (512, 512)
DEFAULT_NAME = "default"
BUNDLE_FILES = ("portrait.png", "landmarks.json", "rig.json", "person.png")
VOICE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
"""A voice name a bundle may hold (an asset name such as ``piper-joe-medium``)."""


def avatar_cache_dir() -> Path:
    """Where prepared avatars are cached: ``<cache>/gwm-avatars/avatars``."""
    return default_cache_dir() / "avatars"


def default_photo() -> npt.NDArray[np.uint8]:
    """The default portrait: ``skimage.data.astronaut()`` (public domain, offline)."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[:, :, :3])


def locate_face(photo: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """Landmarks (478×2, photo pixels) of the largest face, or a typed error."""
    faces = detect_faces(photo)
    if not faces:
        raise NoFaceError("no face found in the photo; use a clear, front-facing portrait")
    largest = faces[0]
    if largest.height < MIN_FACE_PX:
        many = f"{len(faces)} faces found; the largest" if len(faces) > 1 else "the face"
        raise FaceTooSmallError(
            f"{many} is only {largest.height:.0f} px tall; at least {MIN_FACE_PX} px is "
            "needed — use a closer or larger photo"
        )
    return face_landmarks(photo, largest)


def rig_from_photo(
    photo: npt.NDArray[np.uint8],
    size: tuple[int, int],
    *,
    name: str = "avatar",
    voice: str | None = None,
    photo_landmarks: npt.NDArray[np.float32] | None = None,
    colors: RigColors | None = None,
) -> tuple[AvatarRig, npt.NDArray[np.float32]]:
    """Frame a photo into a rig at ``size`` (W, H); also return the photo's landmarks."""
    lm_photo = locate_face(photo) if photo_landmarks is None else photo_landmarks
    framing = plan_framing((photo.shape[1], photo.shape[0]), lm_photo, size)
    portrait = apply_framing(photo, framing)
    lm = framing.apply(lm_photo)
    rig = build_rig(
        portrait,
        lm,
        person_mask(portrait),
        framing=framing,
        source_size=(photo.shape[1], photo.shape[0]),
        name=name,
        voice=voice,
        colors=colors,
    )
    return rig, lm_photo


# ---------------------------------------------------------------- writing


def _png(path: Path, img: np.ndarray) -> None:
    Image.fromarray(img).save(path, optimize=False, compress_level=3)


def _mask_png(path: Path, mask: npt.NDArray[np.float32]) -> None:
    _png(path, np.round(np.clip(mask, 0, 1) * 255).astype(np.uint8))


def draw_preview(rig: AvatarRig) -> npt.NDArray[np.uint8]:
    """The portrait with landmarks, feature contours, face and mouth boxes drawn."""
    img = np.ascontiguousarray(rig.portrait.copy())
    lm = rig.landmarks
    for x, y in lm[:468]:
        cv2.circle(img, (round(x), round(y)), 1, (0, 255, 0), -1, cv2.LINE_AA)
    contours = [
        (L.LIPS_OUTER_UPPER + L.LIPS_OUTER_LOWER[::-1], (255, 60, 60)),
        (L.LIPS_INNER_UPPER + L.LIPS_INNER_LOWER[::-1], (255, 200, 0)),
        (L.RIGHT_EYE_UPPER + L.RIGHT_EYE_LOWER[::-1], (0, 200, 255)),
        (L.LEFT_EYE_UPPER + L.LEFT_EYE_LOWER[::-1], (0, 200, 255)),
        (L.FACE_OVAL, (255, 255, 255)),
    ]
    for idx, col in contours:
        pts = np.round(lm[list(idx)]).astype(np.int32)
        cv2.polylines(img, [pts], True, col, 1, cv2.LINE_AA)
    for c, r in ((lm[468], lm[469]), (lm[473], lm[474])):
        rad = max(1, round(float(np.linalg.norm(r - c))))
        cv2.circle(img, (round(c[0]), round(c[1])), rad, (255, 0, 255), 1, cv2.LINE_AA)
    for (x0, y0, x1, y1), col in ((rig.face_box(), (255, 255, 0)), (rig.mouth_box(), (255, 0, 0))):
        cv2.rectangle(img, (x0, y0), (x1 - 1, y1 - 1), col, 1)
    edge = cv2.Canny(np.round(rig.person * 255).astype(np.uint8), 60, 180) > 0
    img[edge] = (0, 120, 255)
    return img


def write_bundle(
    rig: AvatarRig,
    out_dir: Path,
    *,
    source: npt.NDArray[np.uint8],
    source_landmarks: npt.NDArray[np.float32],
    source_name: str,
) -> Path:
    """Write ``rig`` (and the photo it came from) as a bundle folder."""
    out_dir.mkdir(parents=True, exist_ok=True)
    h, w = source.shape[:2]
    k = min(1.0, SOURCE_MAX_SIDE / max(h, w))
    if k < 1.0:
        size = (round(w * k), round(h * k))
        source = np.asarray(cv2.resize(source, size, interpolation=cv2.INTER_AREA), np.uint8)
        sx, sy = source.shape[1] / w, source.shape[0] / h
        source_landmarks = (source_landmarks + 0.5) * np.array([sx, sy], np.float32) - 0.5
    _png(out_dir / "portrait.png", rig.portrait)
    _png(out_dir / "source.png", source)
    for name in ("person", "face", "mouth", "eyes"):
        _mask_png(out_dir / f"{name}.png", getattr(rig, name))
    _png(out_dir / "preview.png", draw_preview(rig))
    lm_doc = {
        "format": "mediapipe-face-mesh-478",
        "convention": "pixel x, y; pixel centres at integers",
        "portrait": np.round(rig.landmarks, 3).tolist(),
        "source": np.round(source_landmarks, 3).tolist(),
    }
    (out_dir / "landmarks.json").write_text(json.dumps(lm_doc), encoding="utf-8")
    fr = rig.framing
    doc = {
        "version": RIG_VERSION,
        "name": rig.name,
        "size": list(rig.size),
        "source": source_name,
        "source_size": [w, h],
        "source_png_size": [source.shape[1], source.shape[0]],
        "framing": None if fr is None else {"scale": fr.scale, "x0": fr.x0, "y0": fr.y0},
        "face_height": round(rig.face_height, 2),
        "face_box": list(rig.face_box()),
        "mouth_box": list(rig.mouth_box()),
        "colors": rig.colors.as_dict(),
    }
    if rig.voice is not None:
        doc["voice"] = rig.voice
    (out_dir / "rig.json").write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return out_dir


def prepare_bundle(
    photo: Path | np.ndarray,
    out_dir: Path,
    *,
    size: tuple[int, int] = DEFAULT_SIZE,
    name: str | None = None,
    voice: str | None = None,
    max_pixels: int = MAX_PIXELS,
) -> Path:
    """Detect, frame and rig a photo; write the bundle to ``out_dir`` and return it.

    ``voice`` names the voice the avatar speaks with (kept in ``rig.json``); a session
    that names none uses it.

    Raises an :class:`~avatar.identity.errors.IdentityError` subclass for a photo that
    is unreadable, too large or small, or has no usable face.
    """
    img = load_image(photo, max_pixels=max_pixels)
    src_name = Path(photo).name if isinstance(photo, (str, Path)) else "array"
    rig_name = name or (Path(photo).stem if isinstance(photo, (str, Path)) else "avatar")
    if voice is not None and not VOICE_RE.fullmatch(voice):
        raise BundleError(f"voice {voice!r} is not a voice name (letters, digits, . _ -)")
    rig, lm_photo = rig_from_photo(img, size, name=rig_name, voice=voice)
    log.info("prepared %s: face %.0f px in a %dx%d frame", rig_name, rig.face_height, *size)
    return write_bundle(
        rig, Path(out_dir), source=img, source_landmarks=lm_photo, source_name=src_name
    )


# ---------------------------------------------------------------- reading


def _read_png(path: Path, mode: str) -> np.ndarray:
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert(mode))
    except (OSError, ValueError) as exc:
        raise BundleError(f"bundle file {path} is unreadable: {exc}") from exc


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BundleError(f"bundle file {path} is unreadable: {exc}") from exc
    if not isinstance(doc, dict):
        raise BundleError(f"bundle file {path} must hold a JSON object")
    return doc


def read_bundle(bundle: Path) -> AvatarRig:
    """Load a bundle folder written by :func:`prepare_bundle`."""
    bundle = Path(bundle)
    missing = [f for f in BUNDLE_FILES if not (bundle / f).is_file()]
    if missing:
        raise BundleError(f"{bundle} is not an avatar bundle (missing {', '.join(missing)})")
    doc = _read_json(bundle / "rig.json")
    lm_doc = _read_json(bundle / "landmarks.json")
    portrait = _read_png(bundle / "portrait.png", "RGB").astype(np.uint8)
    h, w = portrait.shape[:2]
    lm = np.asarray(lm_doc.get("portrait", []), dtype=np.float32)
    if lm.shape != (L.N_LANDMARKS, 2):
        raise BundleError(f"{bundle}/landmarks.json must hold {L.N_LANDMARKS} portrait points")
    person = _read_png(bundle / "person.png", "L").astype(np.float32) / 255.0
    if person.shape != (h, w):
        raise BundleError(f"{bundle}/person.png does not match the portrait size")
    fr = doc.get("framing")
    framing = (
        None if not fr else Framing(float(fr["scale"]), float(fr["x0"]), float(fr["y0"]), w, h)
    )
    src = doc.get("source_size")
    try:
        colors = RigColors.from_dict(doc["colors"]) if "colors" in doc else None
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{bundle}/rig.json has invalid colours: {exc}") from exc
    voice = _bundle_voice(bundle, doc)
    # the feature masks are rebuilt from the landmarks; person.png is the segmentation
    return build_rig(
        portrait,
        lm,
        person,
        framing=framing,
        source_size=(int(src[0]), int(src[1])) if src else None,
        name=str(doc.get("name", bundle.name)),
        voice=voice,
        colors=colors,
        clean_person=False,
    )


def _bundle_ok(path: Path, size: tuple[int, int]) -> bool:
    if not all((path / f).is_file() for f in BUNDLE_FILES):
        return False
    try:
        doc = json.loads((path / "rig.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(doc.get("version") == RIG_VERSION and list(doc.get("size", [])) == list(size))


_Maker = Callable[
    [], tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32] | None, RigColors | None, str]
]


def _bundle_voice(bundle: Path, doc: dict[str, Any]) -> str | None:
    """The voice a bundle's ``rig.json`` names, if any (a typed error if it is invalid)."""
    voice = doc.get("voice")
    if voice is not None and not (isinstance(voice, str) and VOICE_RE.fullmatch(voice)):
        raise BundleError(f"{bundle}/rig.json has an invalid voice: {voice!r}")
    return voice


def _prepare_into_cache(
    target: Path, size: tuple[int, int], make: _Maker, name: str, voice: str | None = None
) -> AvatarRig:
    """Build a bundle in a temporary folder beside ``target`` and move it into place."""
    if _bundle_ok(target, size):
        return read_bundle(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        img, lm_photo, colors, src_name = make()
        rig, lm_photo = rig_from_photo(
            img, size, name=name, voice=voice, photo_landmarks=lm_photo, colors=colors
        )
        write_bundle(rig, tmp, source=img, source_landmarks=lm_photo, source_name=src_name)
        os.chmod(tmp, 0o755)
        if _bundle_ok(target, size):  # another process prepared it meanwhile
            return read_bundle(target)
        if target.exists():  # a stale entry (older version): move it aside, then drop it
            stale = Path(tempfile.mkdtemp(prefix=f".{target.name}-stale-", dir=target.parent))
            try:
                os.replace(target, stale / "old")
            except OSError:
                log.debug("could not move the stale cache entry %s aside", target)
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:  # another process won the race: use its bundle
            log.debug("cache entry %s appeared meanwhile", target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return read_bundle(target) if _bundle_ok(target, size) else rig


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.hexdigest()[:16]


def load_rig(
    bundle_or_photo: Path | str | None = None,
    *,
    size: tuple[int, int] = DEFAULT_SIZE,
    cache_dir: Path | None = None,
) -> AvatarRig:
    """The avatar to animate, at ``size`` (W, H).

    ``None`` gives the default avatar (``skimage.data.astronaut()``, prepared once into
    the cache); a photo file is prepared on the fly into the cache (keyed by its bytes);
    a bundle folder is loaded as it is, or re-framed from its ``source.png`` (into the
    cache) when it was prepared at another size or by an older version.
    """
    root = Path(cache_dir) if cache_dir is not None else avatar_cache_dir()
    tag = f"{size[0]}x{size[1]}"
    if bundle_or_photo is None:

        def make_default() -> tuple[np.ndarray, None, None, str]:
            return default_photo(), None, None, "skimage.data.astronaut"

        return _prepare_into_cache(root / f"{DEFAULT_NAME}-{tag}", size, make_default, DEFAULT_NAME)
    path = Path(bundle_or_photo)
    if path.is_dir():
        if _bundle_ok(path, size):
            return read_bundle(path)
        doc = _read_json(path / "rig.json") if (path / "rig.json").is_file() else {}
        if not (path / "source.png").is_file() or not doc:
            raise BundleError(f"{path} is not an avatar bundle (no rig.json / source.png)")
        lm_doc = _read_json(path / "landmarks.json")
        src_lm = np.asarray(lm_doc.get("source", []), dtype=np.float32)
        if src_lm.shape != (L.N_LANDMARKS, 2):
            raise BundleError(f"{path}/landmarks.json has no source landmarks")
        digest = _digest((path / "rig.json").read_bytes(), (path / "source.png").read_bytes())
        try:
            colors = RigColors.from_dict(doc["colors"]) if "colors" in doc else None
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{path}/rig.json has invalid colours: {exc}") from exc

        def make_reframe() -> tuple[np.ndarray, np.ndarray, RigColors | None, str]:
            img = _read_png(path / "source.png", "RGB").astype(np.uint8)
            return img, src_lm, colors, str(doc.get("source", "source.png"))

        name = str(doc.get("name", path.name))
        voice = _bundle_voice(path, doc)
        return _prepare_into_cache(root / f"{digest}-{tag}", size, make_reframe, name, voice)
    if not path.is_file():
        raise IdentityError(f"avatar not found: {path} (give a photo or a bundle folder)")
    digest = _digest(path.read_bytes())

    def make_photo() -> tuple[np.ndarray, None, None, str]:
        return load_image(path), None, None, path.name

    return _prepare_into_cache(root / f"{digest}-{tag}", size, make_photo, path.stem)
