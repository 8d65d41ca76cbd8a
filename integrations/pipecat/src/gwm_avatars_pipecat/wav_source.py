"""A pipeline source that speaks a WAV file as a TTS would: TTS audio frames in real time."""

from __future__ import annotations

import asyncio
import time
import wave
from pathlib import Path

import numpy as np
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    EndWorkerFrame,
    Frame,
    InterruptionFrame,
    StartFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from gwm_avatars_pipecat.audio import I16, mono_int16

CHUNK_MS = 20


class WavError(ValueError):
    """The file is not a readable 16-bit PCM WAV."""


def read_wav(path: Path) -> tuple[I16, int]:
    """A 16-bit PCM WAV as mono int16 samples and its sample rate."""
    try:
        with wave.open(str(path), "rb") as wav:
            if wav.getsampwidth() != 2:
                raise WavError(f"{path}: {8 * wav.getsampwidth()}-bit samples; need 16-bit PCM")
            rate, channels = wav.getframerate(), wav.getnchannels()
            data = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise WavError(f"{path}: not a PCM WAV file ({exc})") from exc
    pcm = mono_int16(data, channels)
    if pcm.size == 0:
        raise WavError(f"{path}: no audio in it")
    return pcm, rate


class WavSpeechSource(FrameProcessor):
    """Emits a WAV as ``TTSAudioRawFrame``s, 20 ms every 20 ms, then ends the pipeline.

    ``speed`` > 1 emits faster than real time, as most TTS engines do (the avatar
    service plays it in real time: the plugin buffers it). An ``InterruptionFrame``
    stops the speech (as it stops a TTS); the pipeline is then ended by whoever
    interrupted it.
    """

    def __init__(
        self, pcm: I16, sample_rate: int, *, speed: float = 1.0, end_when_done: bool = True
    ) -> None:
        super().__init__()
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self._speed = speed
        self._pcm = np.ascontiguousarray(pcm, dtype=np.int16)
        self._rate = sample_rate
        self._end_when_done = end_when_done
        self._task: asyncio.Task[None] | None = None
        self.started_at_ns: int | None = None
        """Pipeline clock time of the first speech frame pushed."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Start speaking after the StartFrame; stop on interruption, end or cancel."""
        await super().process_frame(frame, direction)
        if isinstance(frame, (InterruptionFrame, EndFrame, CancelFrame)):
            await self._stop()
        await self.push_frame(frame, direction)
        if isinstance(frame, StartFrame):
            self._task = self.create_task(self._speak())

    async def cleanup(self) -> None:
        """Stop speaking (idempotent)."""
        await super().cleanup()
        await self._stop()

    async def _stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await self.cancel_task(task)

    async def _speak(self) -> None:
        step = self._rate * CHUNK_MS // 1000
        await self.push_frame(TTSStartedFrame())
        self.started_at_ns = self.get_clock().get_time()
        t0 = time.monotonic()
        for k, start in enumerate(range(0, len(self._pcm), step)):
            delay = t0 + k * CHUNK_MS / 1000 / self._speed - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            chunk = self._pcm[start : start + step]
            await self.push_frame(
                TTSAudioRawFrame(audio=chunk.tobytes(), sample_rate=self._rate, num_channels=1)
            )
        await self.push_frame(TTSStoppedFrame())
        if self._end_when_done:
            await self.push_frame(EndWorkerFrame(), FrameDirection.UPSTREAM)
