"""``avatar render``: speech (text or an audio file) to an MP4 of the talking avatar.

``avatar render --text "Hello there." -o hello.mp4`` speaks the text with the
configured TTS; ``avatar render --audio speech.wav -o out.mp4`` animates any speech
recording (the mouth follows the sound itself). The video has ``round(duration *
fps)`` frames and its audio is the speech, so both streams last as long as it.
:func:`render_speech_to_mp4` is the same pipeline as a function.
"""

from __future__ import annotations

import argparse
import logging
import queue
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, cast

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from avatar.config import AvatarConfig, RenderConfig
from avatar.media import MediaError, Mp4Writer, read_audio
from avatar.motion import WorldModel
from avatar.state import AvatarState, Mode
from gwm_avatars.arguments import UsageError, int_in_range, number_in_range, size_type
from models.assets import AssetResolver
from models.audio import resample
from models.config import TtsConfig
from models.errors import InvalidAudioError
from models.types import Speech, Word
from streaming.config import AppConfig

log = logging.getLogger(__name__)

DEFAULT_PAD_S = 0.3
"""Silence before and after the speech, so the video starts and ends at rest."""
MODE_MARGIN_S = 0.3
"""The avatar is in speaking mode from this long before its speech until this long after."""


class FrameRenderer(Protocol):
    """What this command needs from a renderer (``avatar.render``)."""

    def render(self, state: AvatarState) -> npt.NDArray[np.uint8]: ...

    def render_batch(self, states: Sequence[AvatarState]) -> list[npt.NDArray[np.uint8]]: ...


@dataclass
class RenderResult:
    """What :func:`render_speech_to_mp4` produced, and where the time went."""

    path: Path
    frames: int
    fps: int
    duration: float
    """Seconds of audio (speech plus padding) = seconds of video within a frame."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Busy time per stage (``speech``: pulling the chunks, i.e. the TTS; ``motion``,
    ``render``, ``encode``) and the wall time of it all (``total``); the stages overlap."""
    states: list[AvatarState] = field(default_factory=list)

    @property
    def realtime_factor(self) -> float:
        """Seconds of video made per second of wall time."""
        total = self.seconds.get("total", 0.0)
        return self.duration / total if total > 0 else float("inf")


class _SpeechFeed:
    """Speech chunks produced in a worker thread (e.g. by the TTS), placed back to back.

    The timeline (at the first chunk's sample rate) is ``pad`` samples of silence, the
    chunks, and (once the producer is done) ``pad`` samples of silence again.
    """

    def __init__(self, pad_s: float) -> None:
        self._cond = threading.Condition()
        self._pad_s = max(0.0, pad_s)
        self.chunks: list[tuple[Speech, int]] = []
        """(chunk, start sample on the timeline), appended as they come."""
        self.rate = 0
        self.pad = 0
        self.known = 0
        """Timeline samples known so far (the lead-in and the chunks so far)."""
        self.done = False
        self.error: BaseException | None = None
        self.busy_s = 0.0

    @property
    def total(self) -> int:
        """Samples of the whole timeline (valid once ``done``)."""
        return self.known + self.pad

    def produce(self, chunks: Iterable[Speech], stop: threading.Event) -> None:
        """Pull chunks (runs the TTS) until exhausted or ``stop``; run in a thread."""
        it = iter(chunks)
        try:
            while not stop.is_set():
                t0 = time.perf_counter()
                chunk = next(it, None)
                self.busy_s += time.perf_counter() - t0
                if chunk is None:
                    break
                with self._cond:
                    if not self.rate:
                        self.rate = int(chunk.sample_rate)
                        self.pad = round(self._pad_s * self.rate)
                        self.known = self.pad
                    if chunk.sample_rate != self.rate:
                        pcm = resample(chunk.pcm, chunk.sample_rate, self.rate)
                        chunk = Speech(pcm, self.rate, chunk.text, chunk.phonemes)
                    self.chunks.append((chunk, self.known))
                    self.known += len(chunk.pcm)
                    self._cond.notify_all()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumers' threads
            self.error = exc
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()
            with self._cond:
                self.done = True
                self._cond.notify_all()

    def snapshot(self, since: int) -> tuple[list[tuple[Speech, int]], bool, int, int, int]:
        """Chunks from index ``since`` on, and (done, rate, pad, total) at this moment."""
        with self._cond:
            return self.chunks[since:], self.done, self.rate, self.pad, self.total

    def wait_for(self, t: float, stop: threading.Event) -> None:
        """Block until the timeline is known up to clock time ``t`` (or is complete)."""
        with self._cond:
            while not (self.done or stop.is_set() or (self.rate and self.known >= t * self.rate)):
                self._cond.wait(0.1)
        if self.error is not None:
            raise self.error

    def audio(self, lo: int, hi: int) -> npt.NDArray[np.float32]:
        """Timeline samples ``lo:hi`` (silence in the padding), as far as they are known."""
        with self._cond:
            end = self.total if self.done else self.known
            chunks = list(self.chunks)
        hi = min(hi, end)
        out = np.zeros(max(0, hi - lo), np.float32)
        for chunk, start in chunks:
            a, b = max(lo, start), min(hi, start + len(chunk.pcm))
            if a < b:
                out[a - lo : b - lo] = chunk.pcm[a - start : b - start]
        return out


@dataclass
class _Clock:
    motion: float = 0.0
    render: float = 0.0
    encode: float = 0.0


_END = object()
_Batch = tuple[list[AvatarState], list[npt.NDArray[np.uint8]]]


def render_speech_to_mp4(
    chunks: Iterable[Speech],
    out: str | Path,
    renderer: FrameRenderer,
    *,
    avatar_config: AvatarConfig | None = None,
    render_config: RenderConfig | None = None,
    fps: int | None = None,
    seed: int | None = None,
    pad_s: float = DEFAULT_PAD_S,
    words: Sequence[Word] | None = None,
    progress: bool = False,
    keep_states: bool = False,
) -> RenderResult:
    """Animate ``chunks`` of speech (played back to back) and encode an MP4.

    ``chunks`` may be a lazy iterable (``tts.synthesize(text)``): a worker thread
    pulls it while a second thread steps the world model and renders, and this
    thread encodes, so synthesis, rendering and encoding overlap. Each chunk drives
    the mouth from its phoneme timeline and loudness, or from its audio alone when
    it has no timeline (``words``, STT timings relative to the first chunk, refine
    that). ``pad_s`` seconds of silence go before and after. The video has
    ``round(duration * fps)`` frames for ``duration`` seconds of audio.
    """
    avatar_config = avatar_config or AvatarConfig()
    render_config = render_config or RenderConfig()
    fps = int(fps or render_config.fps)
    world = WorldModel(avatar_config, fps, seed=avatar_config.seed if seed is None else seed)
    batch = max(1, render_config.max_batch if render_config.backend == "torch" else 1)
    feed = _SpeechFeed(pad_s)
    stop = threading.Event()
    frames_q: queue.Queue[object] = queue.Queue(maxsize=max(8, 2 * batch))
    clock = _Clock()
    result = RenderResult(path=Path(out), frames=0, fps=fps, duration=0.0)
    ahead = max(avatar_config.lookahead_ms / 1000.0, 1.0 / fps) + 0.05

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                frames_q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def make_frames() -> None:
        try:
            n = scheduled = 0
            while not stop.is_set():
                feed.wait_for((n + batch - 1) / fps + ahead, stop)
                new, done, rate, pad, total = feed.snapshot(scheduled)
                for chunk, start in new:
                    drive = world.make_drive(chunk, _chunk_words(chunk, start, pad, rate, words))
                    world.schedule_speech(drive, start / rate)
                scheduled += len(new)
                if done and not rate:
                    break
                n_frames = max(1, round(total / rate * fps)) if done else None
                count = batch if n_frames is None else min(batch, n_frames - n)
                if count <= 0:
                    break
                t0 = time.perf_counter()
                states = []
                for _ in range(count):
                    speech_end = (feed.known / rate) if done else float("inf")
                    world.set_mode(render_mode(world.time, pad / rate, speech_end, world.mode))
                    states.append(world.step())
                t1 = time.perf_counter()
                images = (
                    [renderer.render(states[0])] if count == 1 else renderer.render_batch(states)
                )
                clock.motion += t1 - t0
                clock.render += time.perf_counter() - t1
                if not put((states, images)):
                    return
                n += count
        except BaseException as exc:  # noqa: BLE001 - re-raised in the encoding thread
            put(exc)
            return
        put(_END)

    start = time.perf_counter()
    workers = [
        threading.Thread(target=feed.produce, args=(chunks, stop), name="render-speech"),
        threading.Thread(target=make_frames, name="render-frames"),
    ]
    for worker in workers:
        worker.daemon = True
        worker.start()
    bar = tqdm(total=None, unit="frame", desc="render", file=sys.stderr, disable=not progress)
    writer: Mp4Writer | None = None
    audio_pos = 0
    try:
        while True:
            item = frames_q.get()
            if item is _END:
                break
            if isinstance(item, BaseException):
                raise item
            states, images = cast(_Batch, item)
            t0 = time.perf_counter()
            for image in images:
                if writer is None:
                    h, w = image.shape[:2]
                    writer = Mp4Writer(
                        result.path,
                        (w, h),
                        fps,
                        feed.rate,
                        crf=render_config.encoder_crf,
                        preset=render_config.encoder_preset,
                        x264_params=render_config.encoder_params,
                    )
                writer.write_frame(image)
                until = round(writer.frames * feed.rate / fps)
                chunk = feed.audio(audio_pos, until)
                writer.write_audio(chunk)
                audio_pos += len(chunk)
            clock.encode += time.perf_counter() - t0
            if keep_states:
                result.states.extend(states)
            if bar.total is None and feed.done and feed.rate:
                bar.total = max(1, round(feed.total / feed.rate * fps))
            bar.update(len(images))
        if feed.error is not None:
            raise feed.error
        if writer is None:
            raise InvalidAudioError("there is no speech to render")
        t0 = time.perf_counter()
        writer.write_audio(feed.audio(audio_pos, feed.total))
        writer.close()
        clock.encode += time.perf_counter() - t0
    finally:
        stop.set()
        bar.close()
        for worker in workers:
            worker.join()
        if writer is not None:
            writer.close()
    total = time.perf_counter() - start
    result.frames = writer.frames
    result.duration = feed.total / feed.rate
    result.seconds = {
        "speech": feed.busy_s,
        "motion": clock.motion,
        "render": clock.render,
        "encode": clock.encode,
        "total": total,
    }
    log.info(
        "rendered %s: %d frames, %.2f s in %.2f s (%.1fx real time)",
        result.path,
        result.frames,
        result.duration,
        total,
        result.realtime_factor,
    )
    return result


def render_mode(t: float, speech_start: float, speech_end: float, current: Mode) -> Mode:
    """The mode of a rendered frame at ``t``: speaking from ``MODE_MARGIN_S`` before the
    speech until that long after it, idle after that (the mode of a live call comes
    from its conversation)."""
    if speech_start - MODE_MARGIN_S <= t < speech_end + MODE_MARGIN_S:
        return Mode.SPEAKING
    return Mode.IDLE if t >= speech_end + MODE_MARGIN_S else current


def _chunk_words(
    chunk: Speech, start: int, pad: int, rate: int, words: Sequence[Word] | None
) -> list[Word] | None:
    """``words`` (timings from the speech's start) relative to a chunk at timeline
    sample ``start``; None when there are none or the chunk has a phoneme timeline."""
    if words is None or chunk.phonemes:
        return None
    offset = (start - pad) / rate
    return [Word(w.text, w.start - offset, w.end - offset, w.probability) for w in words]


# ---------------------------------------------------------------- the command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``avatar render``."""
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", help="text to speak (with the configured TTS voice)")
    src.add_argument("--audio", type=Path, help="a speech recording to animate (WAV, MP3, ...)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the MP4 to write")
    parser.add_argument(
        "--avatar",
        type=Path,
        default=None,
        help="avatar bundle folder or a photo (default: built-in)",
    )
    parser.add_argument(
        "--fps", type=int_in_range(1, 60), default=None, help="frames per second (default: config)"
    )
    parser.add_argument(
        "--size",
        type=size_type,
        default=None,
        metavar="WxH",
        help="frame size, e.g. 512 or 1280x720 (default: config)",
    )
    parser.add_argument(
        "--preset",
        choices=("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow"),
        default=None,
        help="x264 preset: faster ones make bigger files (default: config, veryfast)",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed of the idle motion")
    parser.add_argument(
        "--pad",
        type=number_in_range(0.0, 10.0),
        default=DEFAULT_PAD_S,
        help="seconds of silence before and after (0..10)",
    )
    parser.add_argument(
        "--stt-words",
        action="store_true",
        help="with --audio: refine the mouth with the speech recognizer's word timings",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _size(args: argparse.Namespace, config: RenderConfig) -> tuple[int, int]:
    if args.size is not None:
        return cast(tuple[int, int], args.size)
    return (config.width or config.size, config.size)


def _speech_from_audio(path: Path) -> Speech:
    try:
        pcm, rate = read_audio(path)
    except (MediaError, InvalidAudioError) as exc:
        raise UsageError(str(exc)) from exc
    if len(pcm) < rate // 50:
        raise UsageError(f"{path} is too short to animate ({len(pcm) / rate * 1000:.0f} ms)")
    return Speech(pcm=pcm, sample_rate=rate, text="", phonemes=None)


def _stt_words(speech: Speech, config: AppConfig, resolver: AssetResolver) -> list[Word]:
    from models.stt import STT_SAMPLE_RATE, create_stt

    # stt.max_utterance_s bounds a live turn; word timings of a recording may need more.
    longest = min(600.0, max(config.stt.max_utterance_s, len(speech.pcm) / speech.sample_rate + 1))
    stt = create_stt(config.stt.model_copy(update={"max_utterance_s": longest}), resolver)
    pcm16 = resample(speech.pcm, speech.sample_rate, STT_SAMPLE_RATE)
    return list(stt.transcribe(pcm16).words)


def sized_config(config: RenderConfig, size: tuple[int, int], fps: int) -> RenderConfig:
    """``config`` with the output size and frame rate replaced."""
    w, h = size
    return config.model_copy(update={"size": h, "width": None if w == h else w, "fps": fps})


def _load_renderer(avatar: Path | None, config: RenderConfig) -> FrameRenderer:
    from avatar.identity import IdentityError, load_rig
    from avatar.identity.quiet import quiet_native_stderr
    from avatar.render import create_renderer, render_size

    if avatar is not None and not avatar.exists():
        raise UsageError(f"--avatar {avatar}: no such file or folder")
    try:
        with quiet_native_stderr(verbose=log.isEnabledFor(logging.DEBUG)):
            rig = load_rig(avatar, size=render_size(config))
    except IdentityError as exc:
        raise UsageError(f"--avatar {avatar if avatar else '(default)'}: {exc}") from exc
    renderer: FrameRenderer = create_renderer(rig, config)
    return renderer


def _spoken_text(text: str) -> str:
    """``--text`` as a live reply is spoken (models/tts/spoken.py): no list numbers,
    markdown, emoji, URLs or code read out; numbers and units as people say them."""
    from models.tts.spoken import speakable  # models.tts loads Piper: only for --text

    spoken = speakable(text)
    if not spoken:
        raise UsageError("--text has nothing to say aloud (only markup, code, emoji or links)")
    return spoken


def offline_tts_config(tts: TtsConfig) -> TtsConfig:
    """The voice for an offline render: one thread unless ``tts.threads`` says otherwise.

    Offline, sentences are synthesized while earlier ones render and encode, so the
    voice's throughput matters, not its latency; a second onnxruntime thread only
    competes with the renderer and the encoder for the cores (~4.6x -> ~5x real time
    on 2 cores).
    """
    return tts if tts.threads is not None else tts.model_copy(update={"threads": 1})


def run(args: argparse.Namespace, config: AppConfig) -> int:
    """Render the speech to ``--output``; exit 0, or 2 for bad input."""
    fps = int(args.fps) if args.fps is not None else config.render.fps
    size = _size(args, config.render)
    render_config = sized_config(config.render, size, fps)
    if args.preset is not None:
        render_config = render_config.model_copy(update={"encoder_preset": args.preset})
    if args.output.suffix.lower() != ".mp4":
        raise UsageError(f"--output must be an .mp4 file, got {args.output}")
    resolver = AssetResolver(config.assets)
    t0 = time.perf_counter()
    words: list[Word] | None = None
    chunks: Iterable[Speech]
    if args.audio is not None:
        speech = _speech_from_audio(args.audio)
        renderer = _load_renderer(args.avatar, render_config)
        if args.stt_words:
            words = _stt_words(speech, config, resolver)
        chunks = [speech]
    else:
        from models.tts import create_tts

        text = _spoken_text(args.text)
        renderer = _load_renderer(args.avatar, render_config)
        # lazy: sentences are synthesized while the first ones are rendered
        chunks = create_tts(offline_tts_config(config.tts), resolver).synthesize(text)
    result = render_speech_to_mp4(
        chunks,
        args.output,
        renderer,
        avatar_config=config.avatar,
        render_config=render_config,
        fps=fps,
        seed=args.seed,
        pad_s=args.pad,
        words=words,
        progress=not args.no_progress,
    )
    total = time.perf_counter() - t0
    sys.stdout.write(
        f"{result.path}: {result.frames} frames at {fps} fps ({size[0]}x{size[1]}), "
        f"{result.duration:.2f} s, made in {result.seconds['total']:.1f} s "
        f"({result.realtime_factor:.1f}x real time; {total:.1f} s with loading the models)\n"
    )
    return 0
