"""Face detection, face mesh and person segmentation with MediaPipe 0.10.21 (offline).

The legacy ``mp.solutions`` graphs carry their models inside the wheel, so nothing is
downloaded. Faces are found with the full-range detector, on the whole image and, when
that finds nothing, on overlapping tiles (small faces in big photos); landmarks come
from the face mesh with iris refinement (478 points) run on a crop around the face.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from avatar.identity.errors import NoFaceError
from avatar.identity.landmarks import N_LANDMARKS

log = logging.getLogger(__name__)

DETECT_MAX_SIDE = 1280
MESH_MAX_SIDE = 768


@dataclass(frozen=True)
class FaceBox:
    """A detected face: pixel box (x0, y0, x1, y1) and detector score."""

    x0: float
    y0: float
    x1: float
    y1: float
    score: float

    @property
    def height(self) -> float:
        """Box height in pixels."""
        return self.y1 - self.y0

    @property
    def center(self) -> tuple[float, float]:
        """Box center (x, y) in pixels."""
        return (self.x0 + self.x1) / 2.0, (self.y0 + self.y1) / 2.0


def _mp() -> Any:
    import mediapipe as mp  # heavy import, only when preparing

    return mp


def _run_detector(detector: Any, img: npt.NDArray[np.uint8]) -> list[FaceBox]:
    h, w = img.shape[:2]
    res = detector.process(np.ascontiguousarray(img))
    out = []
    for det in res.detections or []:
        b = det.location_data.relative_bounding_box
        out.append(
            FaceBox(
                b.xmin * w,
                b.ymin * h,
                (b.xmin + b.width) * w,
                (b.ymin + b.height) * h,
                float(det.score[0]),
            )
        )
    return out


def _tiles(h: int, w: int, n: int) -> list[tuple[int, int, int, int]]:
    th, tw = min(h, int(h / n * 1.5)), min(w, int(w / n * 1.5))
    ys = np.linspace(0, h - th, n).astype(int)
    xs = np.linspace(0, w - tw, n).astype(int)
    return [(int(y), int(x), th, tw) for y in ys for x in xs]


def _dedupe(boxes: list[FaceBox]) -> list[FaceBox]:
    kept: list[FaceBox] = []
    for box in sorted(boxes, key=lambda b: -b.score):
        cx, cy = box.center
        if all(
            abs(cx - k.center[0]) > 0.5 * k.height or abs(cy - k.center[1]) > 0.5 * k.height
            for k in kept
        ):
            kept.append(box)
    return kept


def detect_faces(img: npt.NDArray[np.uint8], *, min_score: float = 0.5) -> list[FaceBox]:
    """All faces in an RGB image, largest first (empty when there are none)."""
    h, w = img.shape[:2]
    scale = min(1.0, DETECT_MAX_SIDE / max(h, w))
    small = img
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = np.asarray(cv2.resize(img, size, interpolation=cv2.INTER_AREA), np.uint8)
    sh, sw = small.shape[:2]
    mp = _mp()
    boxes: list[FaceBox] = []
    with mp.solutions.face_detection.FaceDetection(
        model_selection=1, min_detection_confidence=min_score
    ) as detector:
        boxes = _run_detector(detector, small)
        if not boxes:
            for n in (2, 3):
                for y, x, th, tw in _tiles(sh, sw, n):
                    for b in _run_detector(detector, small[y : y + th, x : x + tw]):
                        boxes.append(FaceBox(b.x0 + x, b.y0 + y, b.x1 + x, b.y1 + y, b.score))
    found = _dedupe(
        [FaceBox(b.x0 / scale, b.y0 / scale, b.x1 / scale, b.y1 / scale, b.score) for b in boxes]
    )
    found.sort(key=lambda b: -b.height)
    log.debug("detected %d face(s): %s", len(found), found)
    return found


def face_landmarks(img: npt.NDArray[np.uint8], box: FaceBox) -> npt.NDArray[np.float32]:
    """The 478 face-mesh landmarks of the face in ``box``.

    Pixel coordinates with pixel centers at integers (the OpenCV ``remap`` convention).
    """
    cx, cy = box.center
    side = 2.4 * max(box.height, box.x1 - box.x0)
    x0, y0 = round(cx - side / 2), round(cy - side / 2)
    n = max(1, round(side))
    scale = min(1.0, MESH_MAX_SIDE / n)
    out = max(1, round(n * scale))
    # crop with replicated borders so a face at the photo's edge still sits mid-crop
    m = np.array([[scale, 0.0, -x0 * scale], [0.0, scale, -y0 * scale]], dtype=np.float64)
    crop = cv2.warpAffine(
        img,
        m,
        (out, out),
        flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    mp = _mp()
    with mp.solutions.face_mesh.FaceMesh(
        static_image_mode=True,
        refine_landmarks=True,
        max_num_faces=1,
        min_detection_confidence=0.3,
    ) as mesh:
        res = mesh.process(np.ascontiguousarray(crop))
    if not res.multi_face_landmarks:
        raise NoFaceError("a face was detected but its landmarks could not be found")
    lms = res.multi_face_landmarks[0].landmark
    if len(lms) != N_LANDMARKS:
        raise NoFaceError(f"face mesh returned {len(lms)} landmarks, expected {N_LANDMARKS}")
    pts = np.array([[p.x * out, p.y * out] for p in lms], dtype=np.float64)
    pts = (pts - 0.5) / scale + np.array([x0, y0])
    return pts.astype(np.float32)


def person_mask(img: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """Soft person/background segmentation (1 = person) at the image's size.

    The square model suits square-ish frames; the landscape model wide ones.
    """
    mp = _mp()
    landscape = img.shape[1] > 1.3 * img.shape[0]
    with mp.solutions.selfie_segmentation.SelfieSegmentation(
        model_selection=1 if landscape else 0
    ) as seg:
        res = seg.process(np.ascontiguousarray(img))
    mask = np.asarray(res.segmentation_mask, dtype=np.float32)
    if mask.shape != img.shape[:2]:
        mask = np.asarray(
            cv2.resize(mask, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR),
            np.float32,
        )
    return np.clip(mask, 0.0, 1.0)
