"""The plugin in a real pipecat pipeline against the stand-in echo service (fast).

The real service is in test_with_service.py; here the plugin's own work is checked:
speech out at the pipeline's rate and back at 48 kHz on one timeline with the video,
interruptions, a service that vanishes, one that cannot be reached or refuses.
"""

from __future__ import annotations

import asyncio

import numpy as np
from pipecat.frames.frames import EndFrame, InterruptionFrame
from pipecat.pipeline.worker import PipelineWorker

from gwm_avatars_pipecat import GWMAvatarVideoService, SessionOptions
from gwm_avatars_pipecat.clip import assemble, find_offset, trim
from tests.conftest import API_KEY
from tests.fake_echo import FakeEchoService
from tests.pipeline_support import run_pipeline

FPS = 25
FAST = SessionOptions(connect_timeout_s=5.0, media_timeout_s=1.0, end_tail_s=0.3)


def _loudness_per_frame(pcm: np.ndarray, rate: int) -> np.ndarray:
    spf = rate // FPS
    n = len(pcm) // spf
    x = pcm[: n * spf].astype(np.float64).reshape(n, spf)
    return np.sqrt((x * x).mean(axis=1))


def _best_r(a: np.ndarray, b: np.ndarray, max_lag: int = 3) -> tuple[float, int]:
    best = (-1.0, 0)
    n = min(len(a), len(b))
    for lag in range(-max_lag, max_lag + 1):
        x = a[max(0, lag) : n + min(0, lag)]
        y = b[max(0, -lag) : n - max(0, lag)]
        r = float(np.corrcoef(x, y)[0, 1])
        best = max(best, (r, lag))
    return best


async def test_speech_comes_back_with_a_face_on_one_timeline(
    fake_service: FakeEchoService, speech16k: np.ndarray
) -> None:
    avatar = GWMAvatarVideoService(url=fake_service.url, api_key=API_KEY, options=FAST)
    run = await run_pipeline(avatar, speech16k, 16_000)
    assert not run.errors
    rec = run.recording
    # only the avatar's audio went on, not the TTS audio as well
    assert set(rec.audio_types) == {"SpeechOutputAudioRawFrame"}
    clip = assemble(rec, FPS)
    offset = find_offset(clip, speech16k, 16_000)
    assert 0.0 <= offset < 0.5, f"echo delay {offset:.3f} s"
    cut = trim(clip, offset, len(speech16k) / 16_000)
    # the same speech, as long as what was sent
    assert abs(len(cut.pcm) / cut.sample_rate - len(speech16k) / 16_000) < 1e-3
    same, shift = _best_r(
        _loudness_per_frame(cut.pcm, cut.sample_rate), _loudness_per_frame(speech16k, 16_000), 2
    )
    assert same > 0.8, f"not the speech sent: loudness r={same:.2f} at {shift} frames"
    # the stand-in's "mouth" (its brightness) follows the speech it returns, on time
    brightness = np.array([float(f[0, 0, 0]) for f in cut.frames])
    r, lag = _best_r(brightness, _loudness_per_frame(cut.pcm, cut.sample_rate))
    assert r >= 0.8, f"r={r:.2f}"
    assert abs(lag) <= 1, f"lag {lag} frames"
    assert avatar.session is None  # hung up at the end


async def test_an_interruption_drops_the_buffered_speech(
    fake_service: FakeEchoService, speech16k: np.ndarray
) -> None:
    """The TTS runs 4× faster than real time: most of the speech waits in the plugin."""

    async def interrupt_then_end(worker: PipelineWorker) -> None:
        await worker.queue_frame(InterruptionFrame())
        await asyncio.sleep(1.0)
        await worker.queue_frame(EndFrame())

    avatar = GWMAvatarVideoService(url=fake_service.url, api_key=API_KEY, options=FAST)
    run = await run_pipeline(
        avatar, speech16k, 16_000, speed=4.0, at=0.9, action=interrupt_then_end, end_when_done=False
    )
    assert not run.errors
    assert {"type": "interrupt"} in fake_service.events
    rec = run.recording
    (cut_ns,) = rec.interruptions
    clip = assemble(rec, FPS)
    delay_ns = round(find_offset(clip, speech16k, 16_000) * 1e9)  # what was on its way
    loud = [pts for pts, pcm in rec.audio if np.abs(pcm).max() > 300]
    assert loud and loud[0] < cut_ns, "no speech came back before the interruption"
    late = [(pts - cut_ns) / 1e9 for pts in loud if pts > cut_ns + delay_ns + 200_000_000]
    assert not late, (
        f"speech {late[0]:.2f} s after the interruption (echo delay {delay_ns / 1e9:.2f} s)"
    )
    # uninterrupted, the speech would have gone on for another second or more
    assert (cut_ns - loud[0]) / 1e9 < 2.5 - 1.0


async def test_a_service_that_vanishes_is_an_error_frame_and_a_clean_end(
    fake_service: FakeEchoService, speech16k: np.ndarray
) -> None:
    async def kill(worker: PipelineWorker) -> None:
        await fake_service.kill()

    avatar = GWMAvatarVideoService(url=fake_service.url, api_key=API_KEY, options=FAST)
    run = await run_pipeline(avatar, speech16k, 16_000, at=0.8, action=kill, limit_s=20)
    assert len(run.errors) == 1
    assert "no audio" in run.errors[0].error or "no video" in run.errors[0].error
    assert run.errors[0].processor is avatar and not avatar.is_usable
    # the agent kept its voice: the TTS audio went on once the face was gone
    assert run.recording.audio_types["TTSAudioRawFrame"] > 0
    assert avatar.session is None and not avatar._tasks
    assert run.seconds < 2.5 + FAST.media_timeout_s + 3.0


async def test_an_unreachable_service_is_an_error_frame_not_a_hang(speech16k: np.ndarray) -> None:
    stopped = FakeEchoService()
    await stopped.start()
    url = stopped.url
    await stopped.stop()
    avatar = GWMAvatarVideoService(url=url, options=FAST)
    run = await run_pipeline(avatar, speech16k[:8000], 16_000, limit_s=20)
    assert len(run.errors) == 1
    assert "cannot reach" in run.errors[0].error
    assert run.recording.audio_types["TTSAudioRawFrame"] > 0


async def test_a_refused_session_says_why(
    fake_service: FakeEchoService, speech16k: np.ndarray
) -> None:
    avatar = GWMAvatarVideoService(url=fake_service.url, api_key="wrong", options=FAST)
    run = await run_pipeline(avatar, speech16k[:8000], 16_000, limit_s=20)
    assert len(run.errors) == 1
    assert "401 unauthorized" in run.errors[0].error
