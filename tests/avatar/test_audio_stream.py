"""The live audio-driven mouth: the same targets as the clip path, from audio that
arrives 20 ms at a time, never looking further ahead than its latency."""

from __future__ import annotations

import numpy as np
import pytest

from avatar.motion.audio_stream import AudioDriveStream
from avatar.motion.drive import HOP, MouthDrive

RATE = 16_000


def syllables(seconds: float, seed: int = 0) -> np.ndarray:
    """Voiced syllables (three a second, varying pitch and loudness) with pauses, and a
    little noise: speech-like enough for the features."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    envelope = np.clip(np.sin(2 * np.pi * 3 * t), 0.0, None) ** 0.7
    envelope *= 0.6 + 0.4 * np.sin(2 * np.pi * 0.7 * t) ** 2
    pitch = 140 + 40 * np.sin(2 * np.pi * 0.5 * t)
    voice = np.sin(2 * np.pi * np.cumsum(pitch) / RATE) + 0.3 * np.sin(
        4 * np.pi * np.cumsum(pitch) / RATE
    )
    pcm = 0.3 * envelope * voice + 0.002 * rng.standard_normal(len(t))
    pad = np.zeros(RATE // 2)
    return np.concatenate([pad, pcm, pad]).astype(np.float32)


def stream_targets(stream: AudioDriveStream, pcm: np.ndarray, step: int = 320) -> np.ndarray:
    rows = [stream.feed(pcm[i : i + step]) for i in range(0, len(pcm), step)]
    return np.concatenate([r.targets for r in rows if r is not None])


def test_streamed_mouth_matches_the_clip_path() -> None:
    pcm = syllables(3.0)
    stream = AudioDriveStream(RATE, lookahead_ms=60)
    live = stream_targets(stream, pcm)
    clip, _ = MouthDrive.from_audio(pcm, RATE, lookahead_ms=60).sample(np.arange(len(live)) * HOP)
    assert len(live) >= len(pcm) / RATE / HOP - 12  # all but the last latency's worth
    jaw_r = np.corrcoef(live[:, 0], clip[:, 0])[0, 1]
    assert jaw_r >= 0.98, jaw_r
    # once the stream has heard a second of speech its level scale is the clip's
    settled = int(1.5 / HOP)
    assert np.abs(live[settled:, 0] - clip[settled:, 0]).max() < 0.02
    # silence before the speech: closed
    assert np.abs(live[: int(0.4 / HOP)]).max() == 0.0


def test_a_target_uses_no_audio_beyond_the_latency() -> None:
    pcm = syllables(2.0, seed=1)
    other = pcm.copy()
    cut = int(1.2 * RATE)
    other[cut:] = syllables(2.0, seed=2)[cut:] * 3.0  # a different future
    a = stream_targets(AudioDriveStream(RATE, 60), pcm)
    b = stream_targets(AudioDriveStream(RATE, 60), other)
    stream = AudioDriveStream(RATE, 60)
    assert stream.latency <= 0.06 + 1e-9
    # rows before cut - latency only saw audio before the cut
    known = int((cut / RATE - stream.latency) / HOP)
    np.testing.assert_array_equal(a[:known], b[:known])
    assert not np.array_equal(a[known : known + 40], b[known : known + 40])


def test_reset_closes_the_mouth_at_once() -> None:
    pcm = syllables(2.0)
    stream = AudioDriveStream(RATE, 60)
    stream_targets(stream, pcm[: int(1.05 * RATE)])
    stream.reset()
    after = stream.feed(np.zeros(320, np.float32))
    assert after is not None
    assert float(after.targets[:, 0].max()) < 0.3


def test_bad_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="sample_rate"):
        AudioDriveStream(0, 60)
