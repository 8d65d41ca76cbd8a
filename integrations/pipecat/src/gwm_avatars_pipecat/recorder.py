"""A pipeline sink that keeps the avatar's audio and video with their timestamps."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from pipecat.frames.frames import (
    Frame,
    InterruptionFrame,
    OutputAudioRawFrame,
    OutputImageRawFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from gwm_avatars_pipecat.audio import I16, mono_int16


@dataclass
class Recording:
    """What reached the end of the pipeline, on the pipeline clock (ns)."""

    sample_rate: int = 0
    audio: list[tuple[int, I16]] = field(default_factory=list)
    """(pts, mono int16 samples) per audio frame."""
    video: list[tuple[int, np.ndarray]] = field(default_factory=list)
    """(pts, H×W×3 uint8 RGB) per image."""
    interruptions: list[int] = field(default_factory=list)
    """Pipeline clock time of each interruption that reached the sink."""
    audio_types: Counter[str] = field(default_factory=Counter)
    """How many audio frames of each class arrived (the avatar's, or the TTS's)."""


class MediaRecorder(FrameProcessor):
    """Records timestamped audio and images; audio without ``pts`` is only counted."""

    def __init__(self) -> None:
        super().__init__()
        self.recording = Recording()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Keep the media; pass every frame on."""
        await super().process_frame(frame, direction)
        rec = self.recording
        if isinstance(frame, OutputAudioRawFrame) and direction == FrameDirection.DOWNSTREAM:
            rec.audio_types[type(frame).__name__] += 1
            if frame.pts is not None:
                if rec.sample_rate and frame.sample_rate != rec.sample_rate:
                    raise ValueError(f"{frame}: the sample rate changed from {rec.sample_rate}")
                rec.sample_rate = frame.sample_rate
                pcm = mono_int16(frame.audio, frame.num_channels).copy()
                rec.audio.append((frame.pts, pcm))
        elif isinstance(frame, OutputImageRawFrame) and direction == FrameDirection.DOWNSTREAM:
            if frame.pts is None:
                raise ValueError(f"{frame} has no pts: the recorder needs timestamped images")
            if frame.format != "RGB":
                raise ValueError(f"{frame}: format {frame.format}, expected RGB")
            w, h = frame.size
            rgb = np.frombuffer(frame.image, dtype=np.uint8).reshape(h, w, 3)
            rec.video.append((frame.pts, rgb))
        elif isinstance(frame, InterruptionFrame):
            rec.interruptions.append(self.get_clock().get_time())
        await self.push_frame(frame, direction)
