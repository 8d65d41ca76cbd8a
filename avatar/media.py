"""Media files with PyAV: write an MP4 (H.264 + AAC) and read audio files.

:func:`write_mp4` streams frames in (nothing holds the whole video), interleaving
the audio as it goes; :func:`read_audio` decodes any audio FFmpeg knows into float32
mono; :func:`probe` reports what a file holds (for tests and the CLI).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from models.audio import as_float_mono, resample
from models.errors import EngineError, InvalidAudioError
from models.types import FloatAudio

log = logging.getLogger(__name__)

MP4_AUDIO_RATE = 48000
"""AAC in the MP4 is always 48 kHz (short AAC frames: 21 ms of padding at most)."""
_AAC_FRAME = 1024


class MediaError(EngineError):
    """A media file could not be read or written."""


class AudioFileNotFoundError(MediaError, InvalidAudioError, FileNotFoundError):
    """The audio file does not exist."""


class NotAudioError(MediaError, InvalidAudioError):
    """The file exists but holds no decodable audio."""


def read_audio(path: str | Path) -> tuple[FloatAudio, int]:
    """Decode an audio file (WAV, MP3, FLAC, OGG, the audio of a video...) to mono.

    Returns ``(pcm float32 in [-1, 1], sample_rate)`` at the file's own rate.
    Raises AudioFileNotFoundError for a missing file and NotAudioError for a file
    that is not audio, or is empty.
    """
    p = Path(path)
    if not p.is_file():
        raise AudioFileNotFoundError(f"audio file not found: {p}")
    chunks: list[npt.NDArray[np.float32]] = []
    try:
        with av.open(str(p), mode="r") as container:
            if not container.streams.audio:
                raise NotAudioError(f"{p} holds no audio stream")
            stream = container.streams.audio[0]
            rate = int(stream.codec_context.sample_rate or stream.rate or 0)
            if rate <= 0:
                raise NotAudioError(f"{p}: audio stream has no sample rate")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1).astype(np.float32, copy=False))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1).astype(np.float32, copy=False))
    except av.error.FFmpegError as exc:
        raise NotAudioError(f"{p} is not an audio file FFmpeg can decode ({exc})") from exc
    if not chunks or sum(len(c) for c in chunks) == 0:
        raise NotAudioError(f"{p} holds no audio samples")
    pcm = np.concatenate(chunks)
    return as_float_mono(np.nan_to_num(pcm), name=str(p)), rate


@dataclass(frozen=True)
class MediaInfo:
    """What a media file holds."""

    video_codecs: tuple[str, ...]
    audio_codecs: tuple[str, ...]
    width: int
    height: int
    fps: float
    video_frames: int
    video_duration: float
    audio_duration: float
    sample_rate: int


def probe(path: str | Path) -> MediaInfo:
    """Streams, codecs, frame count and durations of a media file.

    The video duration is the number of decoded frames over the frame rate; the audio
    duration is the stream's (its edit list leaves out the AAC encoder's priming and
    padding), or the decoded samples over the rate where the stream has none.
    """
    p = Path(path)
    if not p.is_file():
        raise MediaError(f"media file not found: {p}")
    try:
        with av.open(str(p), mode="r") as container:
            vs = container.streams.video
            aus = container.streams.audio
            width = height = frames = 0
            fps = 0.0
            if vs:
                v = vs[0]
                width, height = int(v.codec_context.width), int(v.codec_context.height)
                fps = float(v.average_rate or v.base_rate or 0)
                frames = sum(1 for _ in container.decode(v))
            audio_duration, rate = 0.0, 0
            if aus:
                container.seek(0)
                a = aus[0]
                rate = int(a.codec_context.sample_rate)
                if a.duration is not None and a.time_base is not None:
                    audio_duration = float(a.duration * a.time_base)
                else:
                    samples = sum(frame.samples for frame in container.decode(a))
                    audio_duration = samples / rate if rate else 0.0
    except av.error.FFmpegError as exc:
        raise MediaError(f"{p} is not a readable media file ({exc})") from exc
    return MediaInfo(
        video_codecs=tuple(s.codec_context.name for s in vs),
        audio_codecs=tuple(s.codec_context.name for s in aus),
        width=width,
        height=height,
        fps=fps,
        video_frames=frames,
        video_duration=frames / fps if fps else 0.0,
        audio_duration=audio_duration,
        sample_rate=rate,
    )


def write_mp4(
    path: str | Path,
    frames: Iterable[npt.NDArray[np.uint8]],
    pcm: npt.ArrayLike,
    sample_rate: int,
    fps: int,
    *,
    crf: int = 20,
    preset: str = "veryfast",
) -> int:
    """Encode ``frames`` (H×W×3 uint8 RGB) and ``pcm`` into an H.264/AAC MP4.

    Frames are consumed one at a time (the iterable may be a generator); the audio
    (mono, resampled to 48 kHz) is interleaved as the video advances. Width and
    height must be even (yuv420p). Returns the number of frames written.
    """
    audio = resample(as_float_mono(pcm, name="mp4 audio"), int(sample_rate), MP4_AUDIO_RATE)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    try:
        with av.open(str(out), mode="w", format="mp4") as container:
            video = container.add_stream("libx264", rate=Fraction(int(fps), 1))
            video.pix_fmt = "yuv420p"
            video.options = {"crf": str(crf), "preset": preset}
            video.codec_context.time_base = Fraction(1, int(fps))
            astream = container.add_stream("aac", rate=MP4_AUDIO_RATE)
            astream.layout = "mono"
            apos = 0
            for count, rgb in enumerate(frames, start=1):
                if count == 1:
                    h, w = rgb.shape[:2]
                    if h % 2 or w % 2:
                        raise MediaError(f"frame size {w}x{h} must be even for H.264 yuv420p")
                    video.width, video.height = w, h
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
                vf.pts = count - 1
                for packet in video.encode(vf):
                    container.mux(packet)
                # audio up to the end of this frame, in whole AAC frames
                until = int(count * MP4_AUDIO_RATE / fps)
                apos = _encode_audio(container, astream, audio, apos, until, final=False)
            for packet in video.encode(None):
                container.mux(packet)
            _encode_audio(container, astream, audio, apos, len(audio), final=True)
    except av.error.FFmpegError as exc:
        raise MediaError(f"could not write {out}: {exc}") from exc
    log.debug("wrote %s: %d frames, %.2f s of audio", out, count, len(audio) / MP4_AUDIO_RATE)
    return count


def _encode_audio(
    container: av.container.OutputContainer,
    stream: av.audio.stream.AudioStream,
    audio: FloatAudio,
    pos: int,
    until: int,
    *,
    final: bool,
) -> int:
    """Encode ``audio[pos:until]`` in AAC-sized frames; return the new position."""
    until = min(until, len(audio))
    while until - pos >= _AAC_FRAME or (final and pos < until):
        n = min(_AAC_FRAME, until - pos)
        chunk = audio[pos : pos + n].reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(chunk), format="fltp", layout="mono"
        )
        frame.sample_rate = MP4_AUDIO_RATE
        frame.pts = pos
        frame.time_base = Fraction(1, MP4_AUDIO_RATE)
        for packet in stream.encode(frame):
            container.mux(packet)
        pos += n
    if final:
        for packet in stream.encode(None):
            container.mux(packet)
    return pos
