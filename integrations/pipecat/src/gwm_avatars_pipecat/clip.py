"""From a recording to a clip: one timeline, aligned to the speech that was sent, as MP4.

:func:`assemble` lays the recorded audio and images on one timeline from their
``pts`` (gaps are silence; each video frame shows the image due at its time).
:func:`find_offset` finds where the sent speech starts in what came back (the echo's
delay: the service's look-ahead plus the network), by cross-correlating loudness;
:func:`echo_end_s` finds where it ends (later than the speech's length when the
delay grew on the way); :func:`trim` cuts the clip to it; :func:`write_mp4` encodes H.264 + AAC.
"""

from __future__ import annotations

import fractions
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from gwm_avatars_pipecat.audio import I16
from gwm_avatars_pipecat.recorder import Recording

_NS = 1_000_000_000
ENVELOPE_HZ = 1000
"""Resolution of the alignment: loudness per millisecond."""
SMOOTH_MS = 10
"""Loudness is averaged over this much (longer than a voice's pitch period)."""
AAC_FRAME = 1024


class ClipError(ValueError):
    """The recording cannot make a clip (nothing came back)."""


@dataclass(frozen=True)
class Clip:
    """Audio and video on one timeline: sample 0 and frame 0 at ``start_ns``."""

    pcm: I16
    sample_rate: int
    frames: list[npt.NDArray[np.uint8]]
    fps: int
    start_ns: int

    @property
    def duration_s(self) -> float:
        """Length of the audio."""
        return len(self.pcm) / self.sample_rate


def assemble(rec: Recording, fps: int) -> Clip:
    """The recording's audio and video on one timeline starting at the earliest frame."""
    if not rec.audio or not rec.video:
        raise ClipError(
            f"nothing to write: {len(rec.audio)} audio and {len(rec.video)} video frames came back"
        )
    rate = rec.sample_rate
    start = min(rec.audio[0][0], rec.video[0][0])
    end = max(pts + round(len(pcm) * _NS / rate) for pts, pcm in rec.audio)
    pcm = np.zeros(round((end - start) * rate / _NS), dtype=np.int16)
    for pts, chunk in rec.audio:
        i = round((pts - start) * rate / _NS)
        n = min(len(chunk), len(pcm) - i)
        pcm[i : i + n] = chunk[:n]
    times = np.array([pts for pts, _ in rec.video])
    order = np.argsort(times, kind="stable")
    times = times[order]
    images = [rec.video[i][1] for i in order]
    n_frames = round(len(pcm) / rate * fps)
    frames = []
    for k in range(n_frames):
        due = start + round((k + 0.5) * _NS / fps)  # the image shown during frame k
        j = max(0, int(np.searchsorted(times, due, side="right")) - 1)
        frames.append(images[j])
    return Clip(pcm, rate, frames, fps, start)


def envelope(pcm: npt.ArrayLike, rate: int) -> npt.NDArray[np.float64]:
    """Loudness every 1/ENVELOPE_HZ s: mean absolute amplitude over SMOOTH_MS around it."""
    a = np.abs(np.asarray(pcm, dtype=np.float64))
    hop = rate / ENVELOPE_HZ
    n = int(len(a) / hop)
    if n == 0:
        return np.zeros(0)
    edges = np.round(np.arange(n + 1) * hop).astype(int)
    per_hop = np.add.reduceat(a, edges[:-1]) / np.maximum(np.diff(edges), 1)
    width = SMOOTH_MS * ENVELOPE_HZ // 1000
    return np.convolve(per_hop, np.ones(width) / width, mode="same")


def find_offset(received: Clip, sent: I16, sent_rate: int) -> float:
    """Seconds into ``received`` where ``sent`` begins (best loudness correlation)."""
    got = envelope(received.pcm, received.sample_rate)
    ref = envelope(sent, sent_rate)
    if len(got) == 0 or len(ref) == 0 or not got.any() or not ref.any():
        raise ClipError("no speech came back to align with what was sent")
    got = got - got.mean()
    ref = ref - ref.mean()
    size = 1 << int(np.ceil(np.log2(len(got) + len(ref))))
    corr = np.fft.irfft(np.fft.rfft(got, size) * np.conj(np.fft.rfft(ref, size)), size)
    lags = corr[: len(got)]  # non-negative lags only: the echo comes after the speech
    return float(np.argmax(lags)) / ENVELOPE_HZ


def echo_end_s(clip: Clip, offset_s: float, sent_s: float, level: int, tail_s: float) -> float:
    """Where the echo of ``sent_s`` of speech from ``offset_s`` ends in the clip.

    At least ``offset_s + sent_s``; later when loud audio (peak over ``level``) came
    after that (the service's delay grows when the caller's audio comes late), up to
    ``tail_s`` past the last of it, within the clip.
    """
    loud = np.flatnonzero(np.abs(clip.pcm) > level)
    end = offset_s + sent_s
    if len(loud):
        end = max(end, float(loud[-1]) / clip.sample_rate + tail_s)
    return min(end, clip.duration_s)


def trim(clip: Clip, offset_s: float, duration_s: float) -> Clip:
    """``duration_s`` of the clip from ``offset_s`` (silence / the last image past its end)."""
    i = round(offset_s * clip.sample_rate)
    n = round(duration_s * clip.sample_rate)
    pcm = np.zeros(n, dtype=np.int16)
    piece = clip.pcm[i : i + n]
    pcm[: len(piece)] = piece
    first = round(offset_s * clip.fps)
    count = round(duration_s * clip.fps)
    frames = [clip.frames[min(first + k, len(clip.frames) - 1)] for k in range(count)]
    return Clip(pcm, clip.sample_rate, frames, clip.fps, clip.start_ns + round(offset_s * _NS))


def write_mp4(clip: Clip, path: Path) -> None:
    """H.264 (yuv420p) + AAC (mono, the clip's rate) MP4."""
    if not clip.frames:
        raise ClipError("no video frames to write")
    h, w = clip.frames[0].shape[:2]
    with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as out:
        video = out.add_stream("libx264", rate=fractions.Fraction(clip.fps, 1))
        video.width, video.height = w - w % 2, h - h % 2
        video.pix_fmt = "yuv420p"
        video.options = {"crf": "20", "preset": "veryfast"}
        audio = out.add_stream("aac", rate=clip.sample_rate)
        audio.layout = "mono"
        for k, rgb in enumerate(clip.frames):
            frame = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(rgb[: video.height, : video.width]), format="rgb24"
            )
            frame.pts = k
            frame.time_base = fractions.Fraction(1, clip.fps)
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        resampler = av.AudioResampler(
            format="fltp", layout="mono", rate=clip.sample_rate, frame_size=AAC_FRAME
        )
        pcm = av.AudioFrame.from_ndarray(clip.pcm.reshape(1, -1), format="s16", layout="mono")
        pcm.sample_rate = clip.sample_rate
        pcm.pts = 0
        pcm.time_base = fractions.Fraction(1, clip.sample_rate)
        for chunk in [*resampler.resample(pcm), *resampler.resample(None)]:
            for packet in audio.encode(chunk):
                out.mux(packet)
        for packet in audio.encode(None):
            out.mux(packet)
