"""Run the plugin in a real pipecat pipeline for the tests: source → avatar → recorder."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np
from pipecat.frames.frames import ErrorFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.workers.runner import WorkerRunner

from gwm_avatars_pipecat.config import RATE
from gwm_avatars_pipecat.recorder import MediaRecorder, Recording
from gwm_avatars_pipecat.service import GWMAvatarVideoService
from gwm_avatars_pipecat.wav_source import WavSpeechSource

Action = Callable[[PipelineWorker], Awaitable[None]]


@dataclass
class Run:
    """What a pipeline run left: the recording, the errors, how long it took."""

    recording: Recording
    errors: list[ErrorFrame] = field(default_factory=list)
    seconds: float = 0.0


async def run_pipeline(
    avatar: GWMAvatarVideoService,
    pcm: np.ndarray,
    rate: int,
    *,
    at: float | None = None,
    action: Action | None = None,
    end_when_done: bool = True,
    speed: float = 1.0,
    limit_s: float = 60.0,
) -> Run:
    """Speak ``pcm`` through ``avatar``; ``action(worker)`` ``at`` seconds after the start."""
    source = WavSpeechSource(pcm, rate, speed=speed, end_when_done=end_when_done)
    recorder = MediaRecorder()
    worker = PipelineWorker(
        Pipeline([source, avatar, recorder]),
        params=PipelineParams(audio_out_sample_rate=RATE),
        idle_timeout_secs=None,
        enable_rtvi=False,
    )
    run = Run(recorder.recording)

    @worker.event_handler("on_pipeline_error")
    async def _on_error(worker: PipelineWorker, frame: ErrorFrame) -> None:
        run.errors.append(frame)

    started = asyncio.Event()

    @worker.event_handler("on_pipeline_started")
    async def _on_started(worker: PipelineWorker, frame: object) -> None:
        started.set()

    async def _act() -> None:
        await started.wait()
        await asyncio.sleep(at or 0.0)
        assert action is not None
        await action(worker)

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    helper = asyncio.ensure_future(_act()) if action is not None else None
    try:
        async with asyncio.timeout(limit_s):
            await runner.run()
    finally:
        if helper is not None:
            helper.cancel()
    run.seconds = loop.time() - t0
    return run


def speechlike(seconds: float, rate: int = 16_000, seed: int = 0) -> np.ndarray:
    """Syllable-like bursts (voiced harmonics, 80–220 ms, random loudness) with pauses."""
    rng = np.random.default_rng(seed)
    out = np.zeros(round(seconds * rate), dtype=np.float64)
    t = 0.15
    while t < seconds - 0.3:
        dur = rng.uniform(0.08, 0.22)
        n = round(dur * rate)
        i = round(t * rate)
        tt = np.arange(n) / rate
        f0 = rng.uniform(100, 180)
        tone = sum(np.sin(2 * np.pi * f0 * h * tt) / h for h in range(1, 6))
        window = np.sin(np.pi * np.arange(n) / n) ** 2
        out[i : i + n] += rng.uniform(0.2, 0.6) * tone * window
        t += dur + rng.uniform(0.05, 0.25)
    return (np.clip(out, -1, 1) * 32767).astype(np.int16)
