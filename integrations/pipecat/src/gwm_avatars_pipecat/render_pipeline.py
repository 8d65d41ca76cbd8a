"""The render demo's pipeline: a WAV through a real pipecat pipeline to an MP4.

The pipeline is ``WavSpeechSource`` (the WAV as TTS audio frames, in real time) →
``GWMAvatarVideoService`` (an echo session with the service) → ``MediaRecorder``; the
recording, cut to where the speech came back, becomes an H.264 + AAC MP4. Bad
arguments, an unreachable service or a refused session: one line, exit code 2; a
session lost on the way: exit code 1 (``RenderError.exit_code``). The command is
:mod:`gwm_avatars_pipecat.render`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import aiohttp
from loguru import logger
from pipecat.frames.frames import ErrorFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.workers.runner import WorkerRunner

from gwm_avatars_pipecat.clip import (
    ClipError,
    assemble,
    echo_end_s,
    find_offset,
    trim,
    write_mp4,
)
from gwm_avatars_pipecat.config import RATE, SessionOptions
from gwm_avatars_pipecat.recorder import MediaRecorder, Recording
from gwm_avatars_pipecat.service import GWMAvatarVideoService
from gwm_avatars_pipecat.wav_source import WavError, WavSpeechSource, read_wav

FPS = 25
"""The service's video rate; the MP4's."""
PROBE_TIMEOUT_S = 5.0
TAIL_S = 0.1
"""Kept after the last loud sound when the echo outlasts the speech's length."""


class RenderError(RuntimeError):
    """The render failed; ``exit_code`` says whose fault (2: input or service, 1: on the way)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class RenderResult:
    """What was written."""

    path: Path
    duration_s: float
    echo_delay_s: float
    """Where the speech started in what came back (the service's look-ahead + network)."""


async def probe(url: str) -> None:
    """The service answers ``/healthz``; else a :class:`RenderError` (exit 2)."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S)) as http,
            http.get(f"{url}/healthz") as resp,
        ):
            if resp.status != 200:
                raise RenderError(f"the avatar service at {url} is not healthy: {resp.status}", 2)
    except (aiohttp.ClientError, TimeoutError) as exc:
        reason = str(exc) or type(exc).__name__
        raise RenderError(f"cannot reach the avatar service at {url}: {reason}", 2) from exc


async def run_pipeline(
    avatar: GWMAvatarVideoService, source: WavSpeechSource
) -> tuple[Recording, list[ErrorFrame]]:
    """Run source → avatar → recorder until the source ends it (or the avatar fails)."""
    recorder = MediaRecorder()
    worker = PipelineWorker(
        Pipeline([source, avatar, recorder]),
        params=PipelineParams(audio_out_sample_rate=RATE),
        idle_timeout_secs=None,
        enable_rtvi=False,
    )
    errors: list[ErrorFrame] = []

    @worker.event_handler("on_pipeline_error")
    async def on_pipeline_error(worker: PipelineWorker, frame: ErrorFrame) -> None:
        errors.append(frame)
        await worker.cancel(reason=frame.error)

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await runner.run()
    return recorder.recording, errors


async def render(
    server: str,
    audio: Path,
    output: Path,
    *,
    api_key: str | None = None,
    avatar: str | None = None,
    options: SessionOptions | None = None,
) -> RenderResult:
    """Speak ``audio`` through the avatar; write what came back to ``output``."""
    try:
        pcm, rate = read_wav(audio)
    except (WavError, OSError) as exc:
        raise RenderError(str(exc), 2) from exc
    await probe(server)
    service = GWMAvatarVideoService(url=server, api_key=api_key, avatar=avatar, options=options)
    recording, errors = await run_pipeline(service, WavSpeechSource(pcm, rate))
    if errors:
        opened = bool(recording.audio)
        raise RenderError(errors[0].error, 1 if opened else 2)
    try:
        clip = assemble(recording, FPS)
        offset = find_offset(clip, pcm, rate)
        level = (options or SessionOptions()).quiet_level
        end = echo_end_s(clip, offset, len(pcm) / rate, level, TAIL_S)
        cut = trim(clip, offset, end - offset)
        write_mp4(cut, output)
    except ClipError as exc:
        raise RenderError(str(exc), 1) from exc
    logger.info(f"wrote {output}: {cut.duration_s:.2f} s; the echo came back {offset:.3f} s later")
    return RenderResult(output, cut.duration_s, offset)
