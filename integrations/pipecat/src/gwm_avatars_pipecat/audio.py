"""PCM conversions between pipecat frames (16-bit bytes) and the call's audio frames."""

from __future__ import annotations

import av
import numpy as np
import numpy.typing as npt

I16 = npt.NDArray[np.int16]


def mono_int16(audio: bytes, num_channels: int) -> I16:
    """Interleaved 16-bit PCM bytes with ``num_channels`` channels as one mono channel."""
    if num_channels < 1:
        raise ValueError(f"num_channels must be >= 1, got {num_channels}")
    pcm = np.frombuffer(audio, dtype=np.int16)
    if num_channels == 1:
        return pcm
    usable = len(pcm) - len(pcm) % num_channels
    mixed = pcm[:usable].reshape(-1, num_channels).astype(np.int32).mean(axis=1)
    return mixed.astype(np.int16)


def frame_mono_int16(frame: av.AudioFrame) -> I16:
    """A received audio frame (aiortc decodes Opus to packed s16) as mono 16-bit PCM."""
    if frame.format.name != "s16":
        raise ValueError(f"expected packed s16 audio, got {frame.format.name}")
    channels = len(frame.layout.channels)
    return mono_int16(frame.to_ndarray().tobytes(), channels)
