"""Frame-wise speech features for the audio-driven mouth.

Loudness (RMS in dBFS), voicing (normalized autocorrelation at pitch lags), spectral
centroid (rounded vowels are darker, spread vowels brighter), high-band energy ratio
(fricatives) and a VAD-like gate with hysteresis, all on a fixed hop. A feature at
time ``t`` uses the audio in ``[t - window/2, t + window/2]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.fft as sfft

from models.types import FloatAudio

F32 = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]

SILENCE_DB = -80.0


@dataclass(frozen=True)
class SpeechFeatures:
    """Per-hop features of one clip; index ``i`` is centred at ``i * hop`` seconds."""

    hop: float
    db: F32
    """RMS level in dBFS."""
    voicing: F32
    """0..1, peak normalized autocorrelation in the 70-400 Hz pitch range."""
    centroid: F32
    """Spectral centroid (Hz) of the 100-5000 Hz band."""
    high_ratio: F32
    """0..1, share of the energy above 3.5 kHz."""
    gate: BoolArray
    """True where there is speech (energy gate with hysteresis and hangover)."""
    threshold_db: float
    """The level at which the gate opens."""
    reference_db: float
    """A loud speech level of the clip (95th percentile of gated frames)."""


def _frames(pcm: FloatAudio, sample_rate: int, hop: float, window: float) -> F32:
    """Centred, Hann-windowed frames: shape (n_hops, window_samples)."""
    win = max(16, round(window * sample_rate))
    hop_n = hop * sample_rate
    n = int(np.ceil(len(pcm) / hop_n)) + 1
    half = win // 2
    padded = np.concatenate(
        [np.zeros(half, np.float32), pcm.astype(np.float32), np.zeros(win + half, np.float32)]
    )
    starts = np.round(np.arange(n) * hop_n).astype(np.int64)
    idx = starts[:, None] + np.arange(win)[None, :]
    frames = padded[idx]
    return frames


def _gate(db: F32, open_db: float, close_db: float, hangover: int, min_run: int) -> BoolArray:
    """Hysteresis gate: opens above ``open_db``, closes below ``close_db`` after a hangover."""
    out = np.zeros(len(db), dtype=bool)
    is_open = False
    below = 0
    for i, level in enumerate(db.tolist()):
        if is_open:
            if level < close_db:
                below += 1
                if below > hangover:
                    is_open = False
            else:
                below = 0
        elif level >= open_db:
            is_open = True
            below = 0
        out[i] = is_open
    # drop runs shorter than min_run (clicks)
    if min_run > 1 and out.any():
        edges = np.flatnonzero(np.diff(np.concatenate([[0], out.astype(np.int8), [0]])))
        for start, end in zip(edges[::2], edges[1::2], strict=True):
            if end - start < min_run:
                out[start:end] = False
    return out


GATE_HYSTERESIS_DB = 5.0
"""The gate closes this far below the level at which it opens."""
GATE_HANGOVER_S = 0.04
"""The gate stays open this long below its closing level."""


def gate_threshold(db: F32) -> float:
    """The level at which the speech gate opens, from the levels of a clip (or of a
    stream's recent past): relative to its noise floor and peak, never below -58 dBFS."""
    floor_db = float(np.percentile(db, 10))
    peak_db = float(np.percentile(db, 99))
    return max(floor_db + 12.0, peak_db - 38.0, -58.0)


def reference_level(gated_db: F32, open_db: float) -> float:
    """A loud speech level: the 95th percentile of the gated levels (``open_db + 30``
    without any), at least 6 dB above the gate."""
    ref_db = float(np.percentile(gated_db, 95)) if len(gated_db) else open_db + 30.0
    return max(ref_db, open_db + 6.0)


def frame_features(frames: F32, sample_rate: int) -> tuple[F32, F32, F32, F32]:
    """Level (dBFS), voicing, spectral centroid and high-band ratio of each row of
    ``frames`` (one analysis window of samples each, as :func:`speech_features` cuts
    them); a row depends on its own samples only, so a stream can compute them hop by hop."""
    rms = np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1) + 1e-12)
    db = (20.0 * np.log10(rms + 1e-9)).astype(np.float32)
    db = np.maximum(db, SILENCE_DB).astype(np.float32)

    win = frames.shape[1]
    lo = max(1, int(sample_rate / 400.0))
    hi = min(win - 1, int(sample_rate / 70.0))
    taper = np.hanning(win).astype(np.float32)
    x = (frames - frames.mean(axis=1, keepdims=True)) * taper
    # long enough that circular autocorrelation is exact up to the longest pitch lag
    nfft = 1 << int(np.ceil(np.log2(win + hi + 1)))
    spec = sfft.rfft(x, n=nfft, axis=1)
    power = spec.real**2 + spec.imag**2
    # voicing: autocorrelation (inverse FFT of the power spectrum) at pitch lags
    ac = sfft.irfft(power, n=nfft, axis=1)
    energy0 = ac[:, 0] + 1e-12
    voicing = np.clip(ac[:, lo : hi + 1].max(axis=1) / energy0, 0.0, 1.0).astype(np.float32)
    # spectral centroid of the speech band, and the high-band share
    freqs = np.fft.rfftfreq(nfft, 1.0 / sample_rate)
    band = (freqs >= 100.0) & (freqs <= 5000.0)
    pb = power[:, band]
    centroid = ((pb * freqs[band]).sum(axis=1) / (pb.sum(axis=1) + 1e-12)).astype(np.float32)
    total = power[:, freqs >= 100.0].sum(axis=1) + 1e-12
    high_ratio = (power[:, freqs >= 3500.0].sum(axis=1) / total).astype(np.float32)
    return db, voicing, centroid, high_ratio


def speech_features(
    pcm: FloatAudio, sample_rate: int, *, hop: float = 0.005, window: float = 0.025
) -> SpeechFeatures:
    """Compute the features of a mono clip (float32 in [-1, 1])."""
    frames = _frames(pcm, sample_rate, hop, window)
    db, voicing, centroid, high_ratio = frame_features(frames, sample_rate)

    open_db = gate_threshold(db)
    gate = _gate(
        db, open_db, open_db - GATE_HYSTERESIS_DB, round(GATE_HANGOVER_S / hop), round(0.03 / hop)
    )
    ref_db = reference_level(db[gate], open_db)
    return SpeechFeatures(
        hop=hop,
        db=db,
        voicing=voicing,
        centroid=centroid,
        high_ratio=high_ratio,
        gate=gate,
        threshold_db=open_db,
        reference_db=ref_db,
    )
