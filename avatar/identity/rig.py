"""The avatar rig: a framed portrait with its landmarks, masks and sampled colours."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from avatar.identity import landmarks as L
from avatar.identity.framing import Framing

RIG_VERSION = 2
JAW_DROP = 0.11
"""How far the lower lip drops at ``jaw_open = 1``, as a fraction of the face height."""

Color = tuple[int, int, int]
FloatMask = npt.NDArray[np.float32]


@dataclass(frozen=True)
class RigColors:
    """Colours sampled from the photo (RGB), used to synthesize what the photo lacks."""

    skin: Color
    lip: Color
    teeth: Color
    cavity: Color
    tongue: Color
    sclera: Color

    def as_dict(self) -> dict[str, list[int]]:
        """JSON-friendly form."""
        return {k: list(getattr(self, k)) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: dict[str, list[int]]) -> RigColors:
        """Inverse of :meth:`as_dict`."""
        return cls(**{k: _color(data[k]) for k in cls.__dataclass_fields__})


def _color(v: object) -> Color:
    seq = [int(np.clip(round(float(x)), 0, 255)) for x in v]  # type: ignore[attr-defined]
    return (seq[0], seq[1], seq[2])


@dataclass(frozen=True, eq=False)
class AvatarRig:
    """Everything the renderer needs about one identity, at the output size.

    ``portrait`` is H×W×3 uint8 RGB, already framed; ``landmarks`` are the 478 face-mesh
    points in its pixels (pixel centres at integers); the masks are float32 H×W in [0, 1]:
    ``person`` (foreground), ``face`` (face oval), ``mouth`` (the opening between the
    inner lips at rest, often empty) and ``eyes`` (both eye openings).
    """

    portrait: npt.NDArray[np.uint8]
    landmarks: npt.NDArray[np.float32]
    person: FloatMask
    face: FloatMask
    mouth: FloatMask
    eyes: FloatMask
    colors: RigColors
    framing: Framing | None = None
    source_size: tuple[int, int] | None = None
    name: str = "avatar"
    voice: str | None = None
    """The voice this avatar speaks with unless a session names one (None: the
    service's configured voice)."""
    meta: dict[str, object] = field(default_factory=dict)

    @property
    def size(self) -> tuple[int, int]:
        """Output size (width, height)."""
        return int(self.portrait.shape[1]), int(self.portrait.shape[0])

    @property
    def face_height(self) -> float:
        """Height of the face mesh (forehead to chin) in pixels."""
        ys = self.landmarks[:468, 1]
        return float(ys.max() - ys.min())

    def face_box(self) -> tuple[int, int, int, int]:
        """Pixel box (x0, y0, x1, y1), end-exclusive, around the face mesh."""
        return _box(self.landmarks[:468], self.size)

    def mouth_center(self) -> tuple[float, float]:
        """Centre (x, y) of the lips at rest."""
        pts = self.landmarks[list(L.LIPS_OUTER_UPPER + L.LIPS_OUTER_LOWER)]
        c = pts.mean(axis=0)
        return float(c[0]), float(c[1])

    def mouth_box(self) -> tuple[int, int, int, int]:
        """Pixel box (x0, y0, x1, y1), end-exclusive, around the lips.

        It spans the lips at rest with a small margin and reaches down by the jaw's full
        travel, so an open mouth (head at rest) stays inside it. Pixel-based lip-sync
        measures (e.g. the mean brightness of this box) read the mouth here.
        """
        pts = self.landmarks[list(L.LIPS_OUTER_UPPER + L.LIPS_OUTER_LOWER)]
        (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
        fh = self.face_height
        mx = 0.1 * (x1 - x0)
        box = np.array([[x0 - mx, y0 - 0.02 * fh], [x1 + mx, y1 + (JAW_DROP + 0.02) * fh]])
        return _box(box, self.size)


def _box(pts: npt.NDArray[np.floating], size: tuple[int, int]) -> tuple[int, int, int, int]:
    w, h = size
    (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
    return (
        int(np.clip(np.floor(x0), 0, w - 1)),
        int(np.clip(np.floor(y0), 0, h - 1)),
        int(np.clip(np.ceil(x1) + 1, 1, w)),
        int(np.clip(np.ceil(y1) + 1, 1, h)),
    )


# ---------------------------------------------------------------- building a rig


def polygon_mask(
    pts: npt.NDArray[np.floating], size: tuple[int, int], *, feather: float = 0.0
) -> FloatMask:
    """Anti-aliased filled polygon as a float mask (optionally feathered by a blur)."""
    w, h = size
    shift = 4
    img = np.zeros((h, w), np.uint8)
    poly = np.round(np.asarray(pts, np.float64) * (1 << shift)).astype(np.int32)
    cv2.fillPoly(img, [poly], (255.0,), lineType=cv2.LINE_AA, shift=shift)
    mask = img.astype(np.float32) / 255.0
    if feather > 0:
        mask = np.asarray(cv2.GaussianBlur(mask, (0, 0), feather), np.float32)
    return mask


def _median_color(img: npt.NDArray[np.uint8], mask: npt.NDArray[np.bool_], default: Color) -> Color:
    if int(mask.sum()) < 8:
        return default
    return _color(np.median(img[mask].astype(np.float32), axis=0))


def clean_person_mask(raw: FloatMask, face: FloatMask) -> FloatMask:
    """Binarize the segmentation, keep the face inside it, and soften the edge by ~1 px."""
    hard = (raw > 0.5) | (cv2.dilate(face, np.ones((9, 9), np.uint8)) > 0.5)
    # keep only the component(s) touching the face: stray blobs are background
    n, labels = cv2.connectedComponents(hard.astype(np.uint8))
    if n > 2:
        keep = np.unique(labels[(face > 0.5) & hard])
        hard = np.isin(labels, keep[keep > 0])
    soft = cv2.GaussianBlur(hard.astype(np.float32), (0, 0), 0.8)
    soft[soft < 0.02] = 0.0
    return np.clip(soft, 0.0, 1.0).astype(np.float32)


def sample_colors(
    portrait: npt.NDArray[np.uint8], lm: npt.NDArray[np.float32], face: FloatMask
) -> RigColors:
    """Skin, lip, teeth, mouth-cavity, tongue and sclera colours from the portrait."""
    size = (portrait.shape[1], portrait.shape[0])
    outer = polygon_mask(lm[list(L.LIPS_OUTER_UPPER + L.LIPS_OUTER_LOWER[::-1])], size)
    inner = polygon_mask(lm[list(L.LIPS_INNER_UPPER + L.LIPS_INNER_LOWER[::-1])], size)
    eyes = polygon_mask(lm[list(L.RIGHT_EYE_UPPER + L.RIGHT_EYE_LOWER[::-1])], size)
    eyes += polygon_mask(lm[list(L.LEFT_EYE_UPPER + L.LEFT_EYE_LOWER[::-1])], size)
    # skin: the face minus features, below the eyes and beside the nose (the cheeks)
    feats = cv2.dilate(np.clip(outer + eyes, 0, 1), np.ones((15, 15), np.uint8))
    eye_y = lm[list(L.RIGHT_EYE_LOWER + L.LEFT_EYE_LOWER), 1].max()
    mouth_y = lm[list(L.LIPS_OUTER_UPPER), 1].min()
    rows = np.arange(size[1])[:, None]
    cheek = (cv2.erode(face, np.ones((9, 9), np.uint8)) > 0.5) & (feats < 0.1)
    cheek &= (rows > eye_y) & (rows < mouth_y)
    skin = _median_color(portrait, cheek, (200, 160, 140))
    lips = (outer > 0.5) & (inner < 0.5)
    lip = _median_color(portrait, lips, (170, 90, 90))
    # teeth: the bright, unsaturated part of the opening between the lips, if any
    hsv = cv2.cvtColor(portrait, cv2.COLOR_RGB2HSV)
    opening = inner > 0.5
    skin_v = float(np.mean(skin))
    teeth = _color(np.array([232.0, 226.0, 214.0]) * min(1.0, 0.6 + skin_v / 400.0))
    fh = float(np.ptp(lm[:468, 1]))
    if opening.sum() >= max(20.0, 0.002 * fh * fh):  # the photo shows the teeth
        v, sat = hsv[:, :, 2], hsv[:, :, 1]
        bright = opening & (v > np.percentile(v[opening], 60)) & (v > 120) & (sat < 60)
        if bright.sum() >= 20:
            teeth = _median_color(portrait, bright, teeth)
    lip_a = np.array(lip, np.float32)
    cavity = _color(lip_a * 0.22 + np.array([6.0, 0.0, 0.0]))
    tongue = _color(lip_a * 0.55 + np.array([60.0, 22.0, 24.0]))
    # sclera: bright pixels of the eye openings
    eye_px = eyes > 0.5
    if eye_px.sum() >= 8:
        v = hsv[:, :, 2]
        sel = eye_px & (v >= np.percentile(v[eye_px], 75))
        sclera = _median_color(portrait, sel, (220, 215, 210))
    else:
        sclera = (220, 215, 210)
    return RigColors(skin=skin, lip=lip, teeth=teeth, cavity=cavity, tongue=tongue, sclera=sclera)


def feature_masks(
    lm: npt.NDArray[np.float32], size: tuple[int, int]
) -> tuple[FloatMask, FloatMask, FloatMask]:
    """Face-oval, mouth-opening and eye-opening masks from the landmarks."""
    face = polygon_mask(lm[list(L.FACE_OVAL)], size, feather=1.0)
    mouth = polygon_mask(lm[list(L.LIPS_INNER_UPPER + L.LIPS_INNER_LOWER[::-1])], size)
    eyes = polygon_mask(lm[list(L.RIGHT_EYE_UPPER + L.RIGHT_EYE_LOWER[::-1])], size)
    eyes = np.maximum(eyes, polygon_mask(lm[list(L.LEFT_EYE_UPPER + L.LEFT_EYE_LOWER[::-1])], size))
    return face, mouth, eyes


def build_rig(
    portrait: npt.NDArray[np.uint8],
    landmarks: npt.NDArray[np.float32],
    person_raw: FloatMask,
    *,
    framing: Framing | None = None,
    source_size: tuple[int, int] | None = None,
    name: str = "avatar",
    voice: str | None = None,
    colors: RigColors | None = None,
    clean_person: bool = True,
) -> AvatarRig:
    """Assemble a rig from a framed portrait, its landmarks and a person mask.

    ``clean_person`` binarizes and softens a raw segmentation; a mask loaded from a
    bundle is already clean.
    """
    size = (portrait.shape[1], portrait.shape[0])
    lm = np.ascontiguousarray(landmarks, dtype=np.float32)
    face, mouth, eyes = feature_masks(lm, size)
    person = clean_person_mask(person_raw, face) if clean_person else person_raw
    return AvatarRig(
        portrait=_frozen(portrait),
        landmarks=_frozen(lm),
        person=_frozen(person),
        face=_frozen(face),
        mouth=_frozen(mouth),
        eyes=_frozen(eyes),
        colors=colors if colors is not None else sample_colors(portrait, lm, face),
        framing=framing,
        source_size=source_size,
        name=name,
        voice=voice,
    )


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.flags.writeable = False
    return a
