"""Media files with PyAV: write an MP4 (H.264 + AAC) and read audio files.

:func:`write_mp4` streams frames in (nothing holds the whole video), interleaving
the audio as it goes; :func:`read_audio` decodes any audio FFmpeg knows into float32
mono; :func:`probe` reports what a file holds (for tests and the CLI).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import numpy.typing as npt

from models.audio import as_float_mono
from models.errors import EngineError, InvalidAudioError
from models.types import FloatAudio

log = logging.getLogger(__name__)

MP4_AUDIO_RATE = 48000
"""AAC in the MP4 is always 48 kHz (short AAC frames: 21 ms of padding at most)."""
_AAC_FRAME = 1024
X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)
"""The x264 presets, fastest first."""
# BT.601 limited range (what swscale and browsers assume for yuv420p): chroma of RGB
_RGB_TO_UV = np.array(
    [[-0.1482, -0.2910, 0.4392, 128.0], [0.4392, -0.3678, -0.0714, 128.0]], np.float32
)


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


class Mp4Writer:
    """An H.264 (yuv420p) + AAC (48 kHz mono) MP4, written as frames and audio come.

    ``write_frame`` and ``write_audio`` may be called in any order and amounts; the
    muxer interleaves the packets by time. Use it as a context manager, or call
    :meth:`close` (which flushes both encoders) when done. Width and height must be
    even. The index goes at the front of the file (``faststart``), so browsers start
    playing before the whole file has arrived. ``preset`` and ``crf`` are x264's;
    ``x264_params`` adds x264 options (``"me=dia:subme=1"``); ``threads`` is x264's
    thread count (0: x264 picks): one thread costs the least CPU per frame, which is
    what counts when the renderer runs beside the encoder.
    """

    def __init__(
        self,
        path: str | Path,
        size: tuple[int, int],
        fps: int,
        sample_rate: int,
        *,
        crf: int = 20,
        preset: str = "veryfast",
        x264_params: str = "",
        threads: int = 1,
    ) -> None:
        w, h = int(size[0]), int(size[1])
        if w <= 0 or h <= 0 or w % 2 or h % 2:
            raise MediaError(f"frame size {w}x{h} must be positive and even for H.264 yuv420p")
        if sample_rate <= 0 or fps <= 0:
            raise MediaError(f"invalid fps {fps} or sample rate {sample_rate}")
        if preset not in X264_PRESETS:
            raise MediaError(f"unknown x264 preset {preset!r} (one of {', '.join(X264_PRESETS)})")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.size = (w, h)
        self.fps = int(fps)
        self.sample_rate = int(sample_rate)
        self.frames = 0
        self.audio_samples = 0
        """Samples (at ``sample_rate``) written so far."""
        self._closed = False
        try:
            self._container = av.open(
                str(self.path), mode="w", format="mp4", options={"movflags": "+faststart"}
            )
            video = self._container.add_stream("libx264", rate=Fraction(self.fps, 1))
            video.pix_fmt = "yuv420p"
            video.width, video.height = w, h
            options: dict[str, object] = {
                "crf": str(crf),
                "preset": preset,
                "threads": str(max(0, threads)),
            }
            if x264_params:
                options["x264-params"] = x264_params
            video.options = options
            video.codec_context.time_base = Fraction(1, self.fps)
            audio = self._container.add_stream("aac", rate=MP4_AUDIO_RATE)
            audio.layout = "mono"
        except av.error.FFmpegError as exc:
            raise MediaError(f"could not open {self.path} for writing: {exc}") from exc
        self._video = video
        self._audio = audio
        self._resampler = av.AudioResampler(
            format="fltp", layout="mono", rate=MP4_AUDIO_RATE, frame_size=_AAC_FRAME
        )

    def write_frame(self, rgb: npt.NDArray[np.uint8]) -> None:
        """Append one H×W×3 uint8 RGB frame."""
        if rgb.shape != (self.size[1], self.size[0], 3) or rgb.dtype != np.uint8:
            raise MediaError(
                f"frame must be {self.size[1]}x{self.size[0]}x3 uint8, got {rgb.shape} {rgb.dtype}"
            )
        yuv = rgb_to_yuv420p(np.ascontiguousarray(rgb))
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts = self.frames
        self._mux(self._video.encode(frame))
        self.frames += 1

    def write_audio(self, pcm: npt.ArrayLike) -> None:
        """Append mono PCM (float in [-1, 1] or int16) at ``sample_rate``."""
        arr = np.asarray(pcm)
        if arr.size == 0:
            return
        audio = as_float_mono(arr, name="mp4 audio").reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio), format="flt", layout="mono")
        frame.sample_rate = self.sample_rate
        frame.pts = self.audio_samples
        frame.time_base = Fraction(1, self.sample_rate)
        self.audio_samples += audio.shape[1]
        self._encode_audio(frame)

    def _encode_audio(self, frame: av.AudioFrame | None) -> None:
        for out in self._resampler.resample(frame):
            self._mux(self._audio.encode(out))

    def _mux(self, packets: list[av.Packet]) -> None:
        try:
            for packet in packets:
                self._container.mux(packet)
        except av.error.FFmpegError as exc:
            raise MediaError(f"could not write {self.path}: {exc}") from exc

    def close(self) -> None:
        """Flush the encoders and finish the file (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._mux(self._video.encode(None))
            self._encode_audio(None)
            self._mux(self._audio.encode(None))
        finally:
            self._container.close()
        log.debug(
            "wrote %s: %d frames, %.2f s of audio",
            self.path,
            self.frames,
            self.audio_samples / self.sample_rate,
        )

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def rgb_to_yuv420p(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """An H×W×3 RGB frame (even sizes) as planar BT.601 limited-range YUV 4:2:0.

    Returns the (3H/2)×W array of the Y, U and V planes. Luma comes from OpenCV's
    ``RGB2YUV_I420``; chroma from the 2×2 average of the pixels (OpenCV alone takes one
    pixel of four), as swscale does, within a level or two of it and several times
    faster.
    """
    h, w = rgb.shape[:2]
    out = np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420), np.uint8)
    half = cv2.resize(rgb, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    u, v = cv2.split(cv2.transform(half, _RGB_TO_UV))
    flat = out.reshape(-1)
    n = u.size
    flat[h * w : h * w + n] = u.reshape(-1)
    flat[h * w + n :] = v.reshape(-1)
    return out


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
    is interleaved as the video advances. Width and height must be even (yuv420p).
    Returns the number of frames written.
    """
    audio = as_float_mono(pcm, name="mp4 audio")
    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise MediaError("no frames to write")
    h, w = first.shape[:2]
    with Mp4Writer(path, (w, h), fps, sample_rate, crf=crf, preset=preset) as writer:
        pos = 0
        for rgb in itertools.chain([first], it):
            writer.write_frame(rgb)
            until = min(len(audio), round(writer.frames * sample_rate / fps))
            writer.write_audio(audio[pos:until])
            pos = max(pos, until)
        writer.write_audio(audio[pos:])
        return writer.frames
