"""The renderers, judged on pixels: stillness, fidelity, mouth, eyes, agreement, speed."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage.metrics import structural_similarity

from avatar.config import RenderConfig
from avatar.identity import AvatarRig, prepare_bundle, read_bundle
from avatar.render import CpuRenderer, Renderer, create_renderer
from avatar.state import NEUTRAL, AvatarState

MOVES = {
    "head turned": AvatarState(head_yaw=0.15, head_roll=0.06, head_pitch=-0.05, head_x=0.03),
    "jaw open": AvatarState(jaw_open=1.0, mouth_wide=-0.3),
    "torso sway": AvatarState(torso_x=0.04, breath=1.0, head_y=0.02),
    "blink and gaze": AvatarState(blink_left=1.0, blink_right=0.6, gaze_x=-0.8, gaze_y=0.4),
    "everything": AvatarState(
        jaw_open=0.6,
        mouth_wide=0.5,
        teeth_show=0.5,
        lip_press=0.2,
        blink_left=0.3,
        gaze_x=0.5,
        brow_raise=0.8,
        head_yaw=-0.1,
        head_roll=-0.05,
        head_pitch=0.08,
        torso_x=-0.03,
        breath=0.5,
    ),
}


@pytest.fixture(scope="module")
def torch_renderer(default_rig: AvatarRig, cpu_renderer: CpuRenderer) -> Renderer:
    """A torch renderer on the CPU sharing the CPU renderer's precomputed model."""
    from avatar.render.torch_renderer import TorchRenderer

    return TorchRenderer(default_rig, device="cpu", model=cpu_renderer.model)


def luma(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def crop(img: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    return img[y0:y1, x0:x1]


def test_neutral_frame_is_the_portrait(default_rig: AvatarRig, cpu_renderer: CpuRenderer) -> None:
    frame = cpu_renderer.render(NEUTRAL)
    assert frame.shape == default_rig.portrait.shape and frame.dtype == np.uint8
    face = default_rig.face_box()
    ssim = structural_similarity(
        crop(frame, face), crop(default_rig.portrait, face), channel_axis=2, data_range=255
    )
    assert ssim >= 0.99
    # a barely-moving mouth takes the mouth path and still reproduces the photo
    nearly = cpu_renderer.render(AvatarState(jaw_open=1e-6, gaze_x=1e-6))
    assert np.abs(nearly.astype(int) - default_rig.portrait.astype(int)).max() <= 1


@pytest.mark.parametrize("name", list(MOVES))
def test_background_never_moves(
    name: str, default_rig: AvatarRig, cpu_renderer: CpuRenderer, torch_renderer: Renderer
) -> None:
    state = MOVES[name]
    background = default_rig.person == 0.0
    assert background.mean() > 0.2
    for renderer in (cpu_renderer, torch_renderer):
        frame = renderer.render(state)
        diff = np.abs(frame.astype(int) - default_rig.portrait.astype(int)).max(-1)
        assert diff[background].max() == 0, type(renderer).__name__
        assert diff[default_rig.face > 0.5].mean() > 0.5  # but the face did change


def test_open_jaw_darkens_the_mouth_box(default_rig: AvatarRig, cpu_renderer: CpuRenderer) -> None:
    box = default_rig.mouth_box()
    levels = [
        luma(crop(cpu_renderer.render(AvatarState(jaw_open=j)), box)).mean()
        for j in (0.0, 0.5, 1.0)
    ]
    assert levels[0] - levels[2] > 8.0
    assert levels[0] > levels[1] > levels[2]
    # the opening is dark inside: many more very dark pixels than with the mouth closed
    closed = (luma(crop(cpu_renderer.render(NEUTRAL), box)) < 60).mean()
    opened = (luma(crop(cpu_renderer.render(AvatarState(jaw_open=1.0)), box)) < 60).mean()
    assert opened > closed + 0.05


def test_pressed_lips_hide_the_teeth(default_rig: AvatarRig, cpu_renderer: CpuRenderer) -> None:
    mouth = default_rig.mouth > 0.5  # the astronaut shows her teeth at rest

    def teeth(frame: np.ndarray) -> float:
        """Share of the rest opening that looks like teeth."""
        return float(teeth_like(frame)[mouth].mean())

    shown = teeth(cpu_renderer.render(NEUTRAL))
    assert shown > 0.25
    assert teeth(cpu_renderer.render(AvatarState(lip_press=1.0))) < 0.3 * shown


def teeth_like(frame: np.ndarray) -> np.ndarray:
    """Bright, unsaturated pixels (teeth)."""
    sat = frame.max(-1).astype(int) - frame.min(-1)
    return np.asarray((luma(frame) > 170) & (sat < 45))


def test_closed_mouth_photo_opens_onto_synthesized_teeth(
    default_rig: AvatarRig, cpu_renderer: CpuRenderer, tmp_path: Path
) -> None:
    # a portrait with closed lips: the astronaut with her lips pressed, prepared anew
    photo = cpu_renderer.render(AvatarState(lip_press=1.0))
    rig = read_bundle(prepare_bundle(photo, tmp_path / "closed"))
    assert rig.mouth.sum() < 0.3 * default_rig.mouth.sum()
    renderer = CpuRenderer(rig)
    box = rig.mouth_box()
    closed = crop(renderer.render(NEUTRAL), box)
    opened = crop(renderer.render(AvatarState(jaw_open=1.0)), box)
    # a band of teeth (a minority of the opening: see test_look.py)
    assert teeth_like(opened).mean() > teeth_like(closed).mean() + 0.01
    assert (luma(opened) < 60).mean() > (luma(closed) < 60).mean() + 0.05


def test_blink_covers_the_eyes(default_rig: AvatarRig, cpu_renderer: CpuRenderer) -> None:
    eyes = default_rig.eyes > 0.5
    open_ = luma(cpu_renderer.render(NEUTRAL))
    shut = luma(cpu_renderer.render(AvatarState(blink_left=1.0, blink_right=1.0)))
    assert np.abs(shut - open_)[eyes].mean() > 15.0
    # the dark irises are covered by the (skin-coloured) lids
    yy, xx = np.mgrid[0 : eyes.shape[0], 0 : eyes.shape[1]]
    for centre, edge in ((468, 469), (473, 474)):
        c, r = default_rig.landmarks[centre], default_rig.landmarks[edge]
        iris = np.hypot(xx - c[0], yy - c[1]) < 0.6 * np.hypot(*(r - c))
        assert open_[iris].mean() < 90 and shut[iris].mean() > open_[iris].mean() + 40
    # one eye only: the other is untouched
    left = luma(cpu_renderer.render(AvatarState(blink_left=1.0)))
    w = default_rig.size[0]
    right_half = np.zeros_like(eyes)
    right_half[:, : w // 2] = True  # the subject's right eye is on the image's left
    assert np.abs(left - open_)[eyes & right_half].max() == 0
    assert np.abs(left - open_)[eyes & ~right_half].mean() > 15.0


def iris_x(frame: np.ndarray, rig: AvatarRig) -> float:
    """x-centroid of the dark (iris) pixels inside the eye openings."""
    dark = (luma(frame) < 80) & (rig.eyes > 0.5)
    return float(np.nonzero(dark)[1].mean())


def test_gaze_moves_the_iris(default_rig: AvatarRig, cpu_renderer: CpuRenderer) -> None:
    left = iris_x(cpu_renderer.render(AvatarState(gaze_x=-1.0)), default_rig)
    right = iris_x(cpu_renderer.render(AvatarState(gaze_x=1.0)), default_rig)
    center = iris_x(cpu_renderer.render(NEUTRAL), default_rig)
    assert left < center < right
    assert right - left > 3.0


def test_head_yaw_shifts_the_face(default_rig: AvatarRig, cpu_renderer: CpuRenderer) -> None:
    lm = default_rig.landmarks
    # the inner face (eyes to mouth): the features turn, the outline stays put
    (x0, y0), (x1, y1) = lm[[33, 263, 159, 386, 17]].min(0), lm[[33, 263, 159, 386, 17]].max(0)
    face = (int(x0), int(y0) - 5, int(x1), int(y1) + 5)
    base = luma(crop(cpu_renderer.render(NEUTRAL), face))
    for sign in (1.0, -1.0):
        turned = luma(crop(cpu_renderer.render(AvatarState(head_yaw=0.15 * sign)), face))
        (dx, dy), _ = cv2.phaseCorrelate(base.astype(np.float64), turned.astype(np.float64))
        assert dx * sign > 3.0 and abs(dy) < 2.0


def test_frames_are_deterministic(default_rig: AvatarRig, cpu_renderer: CpuRenderer) -> None:
    state = MOVES["everything"]
    a = cpu_renderer.render(state)
    assert np.array_equal(a, cpu_renderer.render(state))
    assert np.array_equal(a, CpuRenderer(default_rig, model=cpu_renderer.model).render(state))
    # no drift: a frame after many others is the same as a fresh one
    for s in MOVES.values():
        cpu_renderer.render(s)
    assert np.array_equal(a, cpu_renderer.render(state))


def test_cpu_and_torch_agree(cpu_renderer: CpuRenderer, torch_renderer: Renderer) -> None:
    states = [
        NEUTRAL,
        *MOVES.values(),
        AvatarState(teeth_show=1.0, mouth_wide=1.0),
        AvatarState(jaw_open=0.3, teeth_show=0.6, tongue_show=1.0),
    ]
    for s, a, b in zip(
        states, cpu_renderer.render_batch(states), torch_renderer.render_batch(states), strict=True
    ):
        diff = np.abs(a.astype(np.float32) - b.astype(np.float32))
        assert diff.mean() < 2.0, s
        assert np.percentile(diff, 99) < 10.0, s


def test_torch_batch_equals_single_renders(torch_renderer: Renderer) -> None:
    rng = np.random.default_rng(7)
    states = [
        AvatarState(
            jaw_open=float(rng.uniform(0, 1)),
            mouth_wide=float(rng.uniform(-1, 1)),
            blink_left=float(rng.uniform(0, 1)),
            gaze_x=float(rng.uniform(-1, 1)),
            head_yaw=float(rng.uniform(-0.1, 0.1)),
            breath=float(rng.uniform(0, 1)),
        )
        for _ in range(8)
    ]
    batch = torch_renderer.render_batch(states)
    assert len(batch) == 8
    for s, frame in zip(states, batch, strict=True):
        assert np.array_equal(frame, torch_renderer.render(s))


def test_create_renderer_follows_the_config(default_rig: AvatarRig) -> None:
    cpu = create_renderer(default_rig, RenderConfig(backend="cpu"))
    assert isinstance(cpu, CpuRenderer) and isinstance(cpu, Renderer)
    assert cpu.size == (512, 512)
    torch_r = create_renderer(default_rig, RenderConfig(backend="torch", device="cpu"))
    assert isinstance(torch_r, Renderer) and torch_r.size == (512, 512)
    frame = torch_r.render(AvatarState(jaw_open=0.5))
    assert frame.shape == (512, 512, 3) and frame.dtype == np.uint8


def test_cpu_renderer_is_fast_enough(cpu_renderer: CpuRenderer) -> None:
    """A loose guard (the machine is shared): a talking frame well under a 25 fps budget."""
    states = [
        AvatarState(jaw_open=j, mouth_wide=0.3, blink_left=b, head_yaw=0.05, breath=0.5)
        for j, b in ((0.2, 0.0), (0.7, 0.0), (0.5, 1.0), (0.9, 0.3))
    ] * 3
    cpu_renderer.render(states[0])
    times = []
    for s in states:
        t = time.perf_counter()
        cpu_renderer.render(s)
        times.append(time.perf_counter() - t)
    assert float(np.median(times)) < 0.04
