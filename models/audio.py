"""Validation and conversion of PCM audio shared by the engines."""

from __future__ import annotations

from math import gcd

import numpy as np
import numpy.typing as npt
from scipy.signal import resample_poly

from models.errors import InvalidAudioError
from models.types import FloatAudio


def as_float_mono(pcm: npt.ArrayLike, *, name: str = "audio") -> FloatAudio:
    """Return ``pcm`` as contiguous float32 mono in [-1, 1].

    Accepts float arrays in [-1, 1] or int16 arrays. Raises InvalidAudioError for
    empty, multi-dimensional, non-finite or non-numeric input.
    """
    arr = np.asarray(pcm)
    if arr.ndim != 1:
        raise InvalidAudioError(f"{name} must be 1-D mono PCM, got shape {arr.shape}")
    if arr.size == 0:
        raise InvalidAudioError(f"{name} is empty")
    if arr.dtype == np.int16:
        out = arr.astype(np.float32) / 32768.0
    elif np.issubdtype(arr.dtype, np.floating):
        out = arr.astype(np.float32, copy=False)
        if not np.all(np.isfinite(out)):
            raise InvalidAudioError(f"{name} contains NaN or infinite samples")
    else:
        raise InvalidAudioError(f"{name} must be float32 or int16 PCM, got dtype {arr.dtype}")
    return np.ascontiguousarray(np.clip(out, -1.0, 1.0))


def check_rate(sample_rate: int, expected: int, *, name: str = "audio") -> None:
    """Raise InvalidAudioError unless ``sample_rate`` equals ``expected``."""
    if int(sample_rate) != int(expected):
        raise InvalidAudioError(
            f"{name} must be {expected} Hz, got {sample_rate} Hz (resample it first)"
        )


def resample(pcm: FloatAudio, src_rate: int, dst_rate: int) -> FloatAudio:
    """Resample mono float PCM with a polyphase filter."""
    if src_rate <= 0 or dst_rate <= 0:
        raise InvalidAudioError(f"sample rates must be positive, got {src_rate} -> {dst_rate}")
    if src_rate == dst_rate:
        return pcm.astype(np.float32, copy=False)
    g = gcd(int(src_rate), int(dst_rate))
    out = resample_poly(pcm, dst_rate // g, src_rate // g)
    return np.asarray(out, dtype=np.float32)


def to_int16(pcm: FloatAudio) -> npt.NDArray[np.int16]:
    """Convert float PCM in [-1, 1] to int16."""
    return (np.clip(pcm, -1.0, 1.0) * 32767.0).astype(np.int16)
