"""Live video while the avatar idles or listens: frames whose state barely moved are
the last frame again (not rendered), yet the video keeps every frame on the media clock,
still blinks and moves, and speech video is exactly what the renderer draws.

The real world model, CPU renderer and outbound video track run on a fake clock (the
track's due times are reached at once, so 10 s of video take about a second).
"""

from __future__ import annotations

import asyncio
import itertools

import numpy as np
import pytest

from avatar.config import AvatarConfig, RenderConfig
from avatar.identity import AvatarRig
from avatar.motion import WorldModel
from avatar.render import CpuRenderer
from avatar.render.reuse import FrameReuse, frame_reuse
from avatar.state import AvatarState, Mode
from streaming.clock import MediaClock
from streaming.tracks import AvatarVideoTrack

FPS = 25
SECONDS = 10
BELOW_PX = RenderConfig().reuse_below_px


def luma(frame: np.ndarray) -> np.ndarray:
    """Gray levels of an RGB frame."""
    return frame.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


NOD_AT = 120
"""The frame at which the listener is asked to nod (the user paused)."""


async def _video(
    renderer: CpuRenderer, mode: Mode, reuse: FrameReuse | None, seed: int = 7
) -> tuple[list[np.ndarray], list[int], list[AvatarState], AvatarVideoTrack]:
    """``SECONDS`` of the track's frames (images, pts) and the states they show; the
    listener nods at frame :data:`NOD_AT`."""
    now = [100.0]
    clock = MediaClock(fps=FPS, now=lambda: now[0])
    world = WorldModel(AvatarConfig(), fps=FPS, seed=seed)
    world.set_mode(mode)
    states: list[AvatarState] = []
    track = AvatarVideoTrack(clock, world, renderer, None, on_state=states.append, reuse=reuse)
    images, pts = [], []
    for n in range(SECONDS * FPS):
        now[0] = 100.0 + n / FPS  # frame n is due now: no sleep, nothing skipped
        if n == NOD_AT:
            world.backchannel()
        frame = await track.recv()
        images.append(frame.to_ndarray(format="rgb24"))
        pts.append(int(frame.pts))
    track.stop()
    return images, pts, states[: len(images)], track


def _run(renderer: CpuRenderer, mode: Mode, reuse: FrameReuse | None):  # type: ignore[no-untyped-def]
    return asyncio.run(_video(renderer, mode, reuse))


def test_listening_video_reuses_frames_yet_blinks_moves_and_keeps_the_clock(
    default_rig: AvatarRig, cpu_renderer: CpuRenderer
) -> None:
    reuse = FrameReuse(cpu_renderer.model, BELOW_PX)
    images, pts, states, track = _run(cpu_renderer, Mode.LISTENING, reuse)
    # every frame is sent, on the one media clock (25 fps, 90 kHz pts)
    assert pts == [n * 90_000 // FPS for n in range(SECONDS * FPS)]
    assert track.stats.dropped_frames == 0
    # frames were reused: a good share of the renders is saved
    assert track.stats.reused_frames >= 0.3 * len(images)
    same = [np.array_equal(a, b) for a, b in itertools.pairwise(images)]
    assert sum(same) == track.stats.reused_frames
    # the avatar still moves: never more than a few frames in a row are the same
    longest, run = 0, 0
    for s in same:
        run = run + 1 if s else 0
        longest = max(longest, run)
    assert longest <= 8, f"{longest} identical frames in a row ({longest / FPS:.2f} s)"
    # it still blinks: every frame of a blink is drawn (eyes closed on the frame itself)
    eyes = default_rig.eyes > 0.5
    open_ = luma(images[0])[eyes]
    blinking = [i for i, s in enumerate(states) if max(s.blink_left, s.blink_right) > 0.9]
    assert blinking, "no blink in 10 s of listening (seed)"
    for i in blinking:
        assert np.abs(luma(images[i])[eyes] - open_).mean() > 8.0
    # it nods when asked: the head's motion is drawn frame by frame
    pitch = [s.head_pitch for s in states[NOD_AT : NOD_AT + FPS]]
    assert max(pitch) - min(pitch) > 0.02
    assert sum(same[NOD_AT : NOD_AT + FPS // 2]) <= 2
    # a reused frame is what a fresh render of its state would show, up to a sub-pixel
    # lag (consecutive fresh frames differ by ~0.25 gray levels on average)
    for i in range(1, len(images)):
        if same[i - 1]:
            diff = np.abs(luma(images[i]) - luma(cpu_renderer.render(states[i])))
            assert diff.mean() < 1.0 and np.percentile(diff, 99.9) < 32, i


def test_speech_video_is_exactly_what_the_renderer_draws(cpu_renderer: CpuRenderer) -> None:
    reuse = FrameReuse(cpu_renderer.model, BELOW_PX)
    images, _, states, track = _run(cpu_renderer, Mode.SPEAKING, reuse)
    assert all(s.mode is Mode.SPEAKING for s in states)
    assert track.stats.reused_frames == 0
    for i in range(0, len(images), 10):
        assert np.array_equal(images[i], cpu_renderer.render(states[i]))


def test_reuse_is_decided_from_the_state_not_from_pixels(cpu_renderer: CpuRenderer) -> None:
    reuse = FrameReuse(cpu_renderer.model, BELOW_PX)
    base = AvatarState(mode=Mode.LISTENING)
    image = cpu_renderer.render(base)
    reuse.remember(base, image)
    assert reuse.lookup(base.with_(breath=0.01)) is image  # 0.03 px of chest rise
    assert reuse.lookup(base.with_(head_yaw=0.02)) is None  # ~2 px of head turn
    assert reuse.displacement_px(base, base.with_(head_yaw=0.02)) > BELOW_PX
    assert reuse.lookup(base.with_(blink_left=0.05)) is None  # a blink starts: draw it
    assert reuse.lookup(base.with_(gaze_x=0.01)) is None
    assert reuse.lookup(base.with_(jaw_open=0.01)) is None
    assert reuse.lookup(base.with_(breath=0.01, mode=Mode.SPEAKING)) is None


def test_reuse_is_off_at_zero_or_for_a_renderer_without_a_rig_model(
    cpu_renderer: CpuRenderer,
) -> None:
    assert frame_reuse(cpu_renderer, 0.0) is None
    assert frame_reuse(object(), BELOW_PX) is None
    assert isinstance(frame_reuse(cpu_renderer, BELOW_PX), FrameReuse)
    with pytest.raises(ValueError):
        FrameReuse(cpu_renderer.model, 0.0)
