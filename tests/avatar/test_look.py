"""The mouth as a viewer sees it, on portraits the renderer was not tuned on.

Three portraits: the astronaut (``skimage.data``, public domain; she shows her teeth),
Grace Hopper (matplotlib's sample data, a US Navy photo in the public domain; closed
lips, glasses) and the astronaut with her lips pressed together, re-prepared as a new
photo (a synthesized closed-mouth variant of a different face). Each rendered frame is
read back with the face mesh, as a person looking at it would: the inside of the
inner-lip contour it finds must look like a mouth (dark, with a band of teeth), "oo"
narrower than "ee", "m/b/p" shut, and a held vowel steady.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from avatar.config import AvatarConfig
from avatar.identity import AvatarRig, prepare_bundle, read_bundle
from avatar.identity import landmarks as L
from avatar.identity.bundle import locate_face
from avatar.identity.rig import polygon_mask
from avatar.motion import MouthDrive, WorldModel
from avatar.motion.visemes import Viseme, viseme_state
from avatar.render import CpuRenderer
from avatar.state import NEUTRAL, AvatarState
from models.types import PhonemeSpan

pytestmark = pytest.mark.models

SIZE = (512, 512)
CHEEKS = (205, 425)
"""Face-mesh points in the middle of each cheek."""


def luma(img: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    out: npt.NDArray[np.float32] = img.astype(np.float32) @ np.array(
        [0.299, 0.587, 0.114], np.float32
    )
    return out


@dataclass(frozen=True)
class MouthReading:
    """What the face mesh finds in a rendered frame."""

    inside: npt.NDArray[np.float32]
    """Luma of the pixels inside the inner-lip contour (1 px in from it)."""
    cheek: float
    """Median luma of the cheeks."""
    width: float
    """Mouth corner to corner (px)."""
    opening: float
    """Inner lips apart at the middle (px)."""

    @property
    def dark(self) -> float:
        """Share of the inside darker than a third of the cheeks."""
        return float(np.mean(self.inside < 0.33 * self.cheek)) if self.inside.size else 0.0

    @property
    def bright(self) -> float:
        """Share of the inside at least as bright as 80% of the cheeks (teeth)."""
        return float(np.mean(self.inside > 0.8 * self.cheek)) if self.inside.size else 0.0


def read_mouth(frame: npt.NDArray[np.uint8]) -> MouthReading:
    lm = locate_face(frame)
    size = (frame.shape[1], frame.shape[0])
    inner = polygon_mask(lm[list(L.LIPS_INNER_UPPER + L.LIPS_INNER_LOWER[::-1])], size)
    core = cv2.erode((inner > 0.5).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    y = luma(frame)
    cheek = np.zeros(y.shape, bool)
    for i in CHEEKS:
        cx, cy = (int(v) for v in np.round(lm[i]))
        cheek[cy - 4 : cy + 5, cx - 4 : cx + 5] = True
    return MouthReading(
        inside=y[core],
        cheek=float(np.median(y[cheek])),
        width=float(np.linalg.norm(lm[L.MOUTH_CORNERS[1]] - lm[L.MOUTH_CORNERS[0]])),
        opening=float(np.linalg.norm(lm[14] - lm[13])),
    )


@pytest.fixture(scope="session")
def portraits(
    default_rig: AvatarRig, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, CpuRenderer]:
    """Renderers of the three portraits (rigs prepared once per test session)."""
    matplotlib_cbook = pytest.importorskip("matplotlib.cbook")
    from PIL import Image

    tmp = tmp_path_factory.mktemp("portraits")
    path = matplotlib_cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    grace = np.asarray(Image.open(path).convert("RGB"))
    astronaut = CpuRenderer(default_rig)
    closed = astronaut.render(AvatarState(lip_press=1.0))
    rigs = {
        "astronaut": default_rig,
        "grace-hopper": read_bundle(prepare_bundle(grace, tmp / "grace", size=SIZE)),
        "astronaut-closed": read_bundle(prepare_bundle(closed, tmp / "closed", size=SIZE)),
    }
    return {name: CpuRenderer(rig) for name, rig in rigs.items()}


NAMES = ["astronaut", "grace-hopper", "astronaut-closed"]


def test_closed_mouth_portraits_show_no_opening(portraits: dict[str, CpuRenderer]) -> None:
    for name in ("grace-hopper", "astronaut-closed"):
        assert read_mouth(portraits[name].render(NEUTRAL)).opening < 2.0, name


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "state",
    [
        viseme_state(Viseme.AA),
        AvatarState(jaw_open=0.6),
        AvatarState(jaw_open=0.55, mouth_wide=0.4),
    ],
    ids=["aa", "jaw-0.6", "jaw-0.55-spread"],
)
def test_open_mouth_is_a_dark_cavity_with_a_band_of_teeth(
    portraits: dict[str, CpuRenderer], name: str, state: AvatarState
) -> None:
    m = read_mouth(portraits[name].render(state))
    assert m.inside.size > 150, f"the face mesh sees almost no opening ({m.inside.size} px)"
    assert float(np.mean(m.inside)) < 0.75 * m.cheek, "the opening is not darker than the cheeks"
    assert m.dark > 0.2, f"only {m.dark:.0%} of the opening is dark"
    assert 0.02 < m.bright < 0.5, f"teeth cover {m.bright:.0%} of the opening"


@pytest.mark.parametrize("name", NAMES)
def test_viseme_shapes_differ(portraits: dict[str, CpuRenderer], name: str) -> None:
    r = portraits[name]
    oo, ee = (
        read_mouth(r.render(viseme_state(Viseme.OU))),
        read_mouth(r.render(viseme_state(Viseme.EE))),
    )
    aa = read_mouth(r.render(viseme_state(Viseme.AA)))
    assert oo.width < 0.85 * ee.width, f"'oo' {oo.width:.0f} px wide vs 'ee' {ee.width:.0f} px"
    assert aa.opening > 1.08 * ee.opening > 0.0
    pp = read_mouth(r.render(viseme_state(Viseme.PP)))
    assert pp.opening < 2.0 and pp.inside.size < 20, f"'m/b/p' open by {pp.opening:.1f} px"


@pytest.mark.parametrize("name", NAMES)
def test_teeth_show_more_for_ee_than_oo(portraits: dict[str, CpuRenderer], name: str) -> None:
    """At the same jaw opening, spread lips bare more teeth than rounded ones."""
    r = portraits[name]
    spread = read_mouth(r.render(AvatarState(jaw_open=0.5, mouth_wide=0.6, teeth_show=0.5)))
    rounded = read_mouth(r.render(AvatarState(jaw_open=0.5, mouth_wide=-0.8)))
    n_spread = spread.bright * spread.inside.size
    n_round = rounded.bright * rounded.inside.size
    # the astronaut's own teeth (kept from the photo) show either way; synthesized
    # teeth follow the lips
    factor = 1.15 if name == "astronaut" else 1.5
    assert n_spread > factor * n_round, f"teeth px: spread {n_spread:.0f}, rounded {n_round:.0f}"


def test_held_vowel_does_not_flicker(portraits: dict[str, CpuRenderer]) -> None:
    """Frame to frame, the mouth of a held 'ah' changes far less than opening it does."""
    r = portraits["grace-hopper"]
    rig = r.rig
    spans = (PhonemeSpan("^", 0.0, 0.05), PhonemeSpan("ɑ", 0.05, 0.9), PhonemeSpan("$", 0.95, 0.05))
    drive = MouthDrive.from_phonemes(spans, 1.0)
    world = WorldModel(AvatarConfig(), 25, seed=3)
    world.schedule_speech(drive, 0.2)
    states = [world.step() for _ in range(30)]
    x0, y0, x1, y1 = rig.mouth_box()
    held = [luma(r.render(s)[y0:y1, x0:x1]) for s in states[12:25]]  # 0.48-0.96 s: held
    steps = [float(np.mean(np.abs(a - b))) for a, b in itertools.pairwise(held)]
    opened = float(np.mean(np.abs(held[0] - luma(r.render(NEUTRAL)[y0:y1, x0:x1]))))
    assert opened > 5.0
    assert max(steps) < 0.1 * opened, f"frame-to-frame change {max(steps):.2f} vs {opened:.2f}"


def test_portraits_have_their_own_mouth_colours(portraits: dict[str, CpuRenderer]) -> None:
    """The synthesized interior is tinted from each face, never one fill for all."""
    means = []
    for name in ("grace-hopper", "astronaut-closed"):
        r = portraits[name]
        frame = r.render(viseme_state(Viseme.AA))
        m = read_mouth(frame)
        assert m.inside.size > 150
        lm = locate_face(frame)
        size = (frame.shape[1], frame.shape[0])
        inner = polygon_mask(lm[list(L.LIPS_INNER_UPPER + L.LIPS_INNER_LOWER[::-1])], size) > 0.5
        px = frame[inner].astype(np.float32)
        dark = px[luma(frame)[inner] < 0.33 * m.cheek]
        assert len(dark) > 50
        # a cavity has depth: its dark part is not one flat colour
        assert float(np.std(luma(frame)[inner][luma(frame)[inner] < 0.33 * m.cheek])) > 2.0
        means.append(dark.mean(axis=0))
    assert float(np.abs(means[0] - means[1]).max()) > 3.0


def test_blink_closes_the_eyes_behind_the_glasses(portraits: dict[str, CpuRenderer]) -> None:
    """Grace Hopper wears glasses: a blink closes her lids, never moves their frames."""
    r = portraits["grace-hopper"]
    rig = r.rig
    lm = rig.landmarks
    fh = rig.face_height
    opened, closed = r.render(NEUTRAL), r.render(AvatarState(blink_left=1.0, blink_right=1.0))
    y_open, y_closed = luma(opened), luma(closed)
    cheek = float(np.median([y_open[int(lm[i][1]), int(lm[i][0])] for i in CHEEKS]))
    changed_eyes = []
    frame_px = np.zeros(y_open.shape, bool)
    for upper, lower in (
        (L.RIGHT_EYE_UPPER, L.RIGHT_EYE_LOWER),
        (L.LEFT_EYE_UPPER, L.LEFT_EYE_LOWER),
    ):
        up = lm[list(upper)]
        eye = polygon_mask(lm[list(upper + lower[::-1])], rig.size) > 0.5
        changed_eyes.append(float(np.mean(np.abs(y_closed - y_open)[eye])))
        # the frame's dark top bar: dark pixels over the eye, clear of the lid and lashes
        x0, x1 = int(up[:, 0].min()), int(up[:, 0].max())
        top = int(up[:, 1].min() - 0.03 * fh)
        band = np.zeros_like(frame_px)
        band[int(top - 0.12 * fh) : top, x0:x1] = True
        frame_px |= band & (y_open < 0.35 * cheek)
    assert frame_px.sum() > 100, "no glasses frame found above the eyes"
    assert min(changed_eyes) > 20.0, f"the lids hardly moved: {changed_eyes}"
    moved = np.abs(y_closed - y_open)[frame_px]
    assert float(np.mean(moved)) < 3.0, f"the glasses' frame moved by {np.mean(moved):.1f} levels"


@pytest.mark.parametrize("name", ["grace-hopper", "astronaut-closed"])
def test_th_shows_the_tongue_between_the_teeth(
    portraits: dict[str, CpuRenderer], name: str
) -> None:
    """'th' puts the tongue's tip in view: more of the opening is tongue-red than without it."""
    r = portraits[name]
    th = viseme_state(Viseme.TH)
    rig = r.rig
    x0, y0, x1, y1 = rig.mouth_box()

    def reddish(state: AvatarState) -> int:
        crop = r.render(state)[y0:y1, x0:x1].astype(int)
        rest = rig.portrait[y0:y1, x0:x1].astype(int)
        changed = np.abs(crop - rest).max(-1) > 12
        red = (crop[..., 0] - crop[..., 1] > 35) & (luma(crop.astype(np.uint8)) > 60)
        return int((changed & red).sum())

    with_tip, without = reddish(th), reddish(th.with_(tongue_show=0.0))
    assert with_tip > without + 40, f"tongue-red px: {with_tip} with the tip, {without} without"
