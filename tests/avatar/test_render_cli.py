"""``avatar render`` and the pixels it produces: lip sync, blinks, MP4 streams, bad input.

Lip sync is measured on what a viewer sees: the mouth opening read from the decoded
MP4's pixels against the loudness of the decoded MP4's audio. Renders are small
(256 px, 192 px for the minute of blinks) to keep the suite fast.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import jiwer
import numpy as np
import pytest

from avatar.analysis import (
    best_lag_correlation,
    blink_events,
    eye_closure,
    mask_boxes,
    mouth_opening,
    speech_envelope,
)
from avatar.config import AvatarConfig, RenderConfig
from avatar.identity import AvatarRig, load_rig
from avatar.media import (
    AudioFileNotFoundError,
    MediaError,
    NotAudioError,
    probe,
    read_audio,
    write_mp4,
)
from avatar.motion import MouthDrive, WorldModel
from avatar.render import Renderer, create_renderer
from avatar.state import NEUTRAL, Mode
from gwm_avatars.arguments import parse_size
from gwm_avatars.cli import main
from gwm_avatars.commands.render import render_speech_to_mp4
from models.assets import AssetResolver
from models.audio import resample
from models.config import AssetsConfig, SttConfig
from models.stt import SpeechRecognizer, create_stt
from models.types import Speech
from tests.avatar.speech_support import espeak_wav, say

SIZE = 256
FPS = 25
PAD = 1.0
TEXT = "Peter bought a bubble, and we all laughed about it for a while. How can I help you today?"
MARKDOWN = (
    "Tips for tonight:\n\n1. **Sleep** early.\n2. Drink _less_ coffee.\n\n"
    "```python\nprint('tips')\n```\n"
)
"""An LLM-style text: a numbered list, emphasis and a code block."""
MARKDOWN_SPOKEN = "tips for tonight sleep early drink less coffee"
TEXTS = [
    TEXT,
    "Could you send me the report before Friday? I want to read it over the weekend.",
    "Thanks for calling. Please hold the line while I look up your order.",
]
"""Piper's lip-sync sentences (two each). The motion model was not tuned on the last two."""
ESPEAK = [
    ("Hello, this is another voice. It reads a short sentence for the avatar.", "en-us"),
    ("Bob and Pam made a map of the bay, but the boat was too big to moor.", "en-gb+f3"),
    ("It is a quiet evening, and the children are already asleep upstairs.", "en-gb-scotland"),
]
"""espeak-ng lip-sync sentences and voices (the last two not used to tune anything)."""


@pytest.fixture(scope="module")
def small_rig(avatar_cache: Path) -> AvatarRig:
    """The default avatar at 256×256 (prepared into the test run's private cache)."""
    return load_rig(None, size=(SIZE, SIZE), cache_dir=avatar_cache)


@pytest.fixture(scope="module")
def small_renderer(small_rig: AvatarRig) -> Renderer:
    return create_renderer(small_rig, RenderConfig(size=SIZE))


@pytest.fixture
def cli(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., int]:
    """Run ``avatar`` with a private cache (avatars prepared by the CLI land there)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))

    def run(*args: str | Path) -> int:
        return main([str(a) for a in args])

    return run


def decode_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def check_lip_sync(
    mp4: Path, rig: AvatarRig, renderer: Renderer, pad: float, min_r: float = 0.8
) -> None:
    """Pixels of the MP4's mouth follow the loudness of its audio; silence is closed."""
    frames = decode_frames(mp4)
    pcm, rate = read_audio(mp4)
    envelope = speech_envelope(pcm, rate, FPS)
    n = min(len(frames), len(envelope))
    assert abs(len(frames) - len(envelope)) <= 1
    rest = renderer.render(NEUTRAL)
    box = rig.mouth_box()
    opening = np.array([mouth_opening(f, box, rest=rest) for f in frames[:n]])
    r, lag = best_lag_correlation(opening, envelope[:n], 3)
    assert r >= min_r, f"mouth pixels vs loudness: r={r:.2f} at lag {lag}"
    assert abs(lag) <= 1, f"best lag {lag} frames"
    # in every pause of the speech longer than 120 ms the mouth comes to rest
    quiet = envelope[:n] < 0.03 * float(envelope.max())
    edges = np.flatnonzero(np.diff(np.r_[0, quiet.astype(np.int8), 0]))
    runs = [(a, b) for a, b in zip(edges[::2], edges[1::2], strict=True) if (b - a) / FPS > 0.12]
    inner = [(a, b) for a, b in runs if a > 0 and b < n]
    for a, b in inner:
        low = float(opening[a:b].min())
        assert low < 0.1 * np.percentile(opening, 99), f"mouth open in the pause at {a / FPS:.2f} s"
    # in the padding (beyond 0.2 s of the speech: the mouth prepares and relaxes)
    # the mouth is closed
    margin = round((pad - 0.2) * FPS)
    silence = np.r_[0:margin, n - margin : n]
    closed = opening[silence] < 0.1 * np.percentile(opening, 99)
    assert closed.mean() >= 0.95, f"closed in {closed.mean():.0%} of the silent frames"


def check_streams(mp4: Path, speech_s: float) -> None:
    """One H.264 and one AAC stream, both as long as the speech, round(d * fps) frames."""
    info = probe(mp4)
    assert info.video_codecs == ("h264",)
    assert info.audio_codecs == ("aac",)
    assert info.fps == FPS
    assert abs(info.audio_duration - speech_s) < 1.0 / FPS
    assert abs(info.video_duration - speech_s) <= 1.0 / FPS
    assert info.video_frames == round(speech_s * FPS)


@pytest.mark.models
@pytest.mark.parametrize("text", TEXTS, ids=["peter", "report", "calling"])
def test_render_text_lip_sync_and_streams(
    cli: Callable[..., int],
    tmp_path: Path,
    small_rig: AvatarRig,
    small_renderer: Renderer,
    text: str,
) -> None:
    out = tmp_path / "text.mp4"
    rc = cli("render", "--text", text, "-o", out, "--size", SIZE, "--pad", PAD, "--seed", 1)
    assert rc == 0
    duration = probe(out).audio_duration  # the speech (TTS timing varies run to run)
    check_streams(out, duration)
    assert duration > 2 * PAD + 3.0  # both sentences are in there
    check_lip_sync(out, small_rig, small_renderer, PAD, min_r=0.8)


@pytest.fixture(scope="module")
def whisper_stt() -> SpeechRecognizer:
    """Whisper base on the CPU (what the service hears with), to listen to a render."""
    return create_stt(SttConfig(device="cpu"), AssetResolver(AssetsConfig()))


@pytest.mark.models
def test_render_text_speaks_it_as_a_person_would(
    cli: Callable[..., int], tmp_path: Path, whisper_stt: SpeechRecognizer
) -> None:
    """``--text`` is shaped like a live reply: no list numbers, markup or code read out."""
    out = tmp_path / "markdown.mp4"
    assert cli("render", "--text", MARKDOWN, "-o", out, "--size", 128, "--no-progress") == 0
    pcm, rate = read_audio(out)
    heard = whisper_stt.transcribe(resample(pcm, rate, 16_000), 16_000).text
    words = re.sub(r"[^a-z ]", " ", heard.lower()).split()
    assert not {"one", "two", "first", "second", "print", "python", "star", "asterisk"} & set(
        words
    ), heard
    assert not re.search(r"\d", heard), heard
    assert jiwer.wer(MARKDOWN_SPOKEN, " ".join(words)) <= 0.3, heard


@pytest.mark.models
@pytest.mark.parametrize(("text", "voice"), ESPEAK, ids=[v for _, v in ESPEAK])
def test_render_foreign_audio_lip_sync(
    cli: Callable[..., int],
    tmp_path: Path,
    small_rig: AvatarRig,
    small_renderer: Renderer,
    text: str,
    voice: str,
) -> None:
    """Speech the avatar did not synthesize (espeak-ng) drives the mouth from its sound."""
    wav = espeak_wav(text, tmp_path / "espeak.wav", voice=voice)
    pcm, rate = read_audio(wav)
    out = tmp_path / "audio.mp4"
    assert cli("render", "--audio", wav, "-o", out, "--size", SIZE, "--pad", PAD) == 0
    check_streams(out, len(pcm) / rate + 2 * PAD)
    check_lip_sync(out, small_rig, small_renderer, PAD)


def test_idle_minute_blinks_on_pixels(avatar_cache: Path) -> None:
    """A minute of idle video blinks 8-30 times, 80-400 ms each, read from eye pixels."""
    rig = load_rig(None, size=(192, 192), cache_dir=avatar_cache)
    renderer = create_renderer(rig, RenderConfig(size=192))
    world = WorldModel(AvatarConfig(), FPS, seed=11)
    states = [world.step() for _ in range(60 * FPS)]
    closed = renderer.render(NEUTRAL.with_(blink_left=1.0, blink_right=1.0))
    closure = eye_closure((renderer.render(s) for s in states), closed, mask_boxes(rig.eyes))
    events = blink_events(closure, FPS, threshold=0.5)
    assert 8 <= len(events) <= 30, len(events)
    assert all(0.08 <= e.duration_s <= 0.4 for e in events), [e.duration_s for e in events]
    # the pixels agree with the model: the same blinks, at the same frames
    truth = blink_events([s.blink_left for s in states], FPS, threshold=0.4)
    assert abs(len(truth) - len(events)) <= 1
    starts = np.array([e.start_frame for e in truth])
    assert all(np.abs(starts - e.start_frame).min() <= 2 for e in events)


def test_same_seed_same_frames_different_seed_different_motion(small_renderer: Renderer) -> None:
    speech = say("Hi there.")
    assert speech.phonemes

    def frames(seed: int) -> np.ndarray:
        world = WorldModel(AvatarConfig(), FPS, seed=seed)
        world.set_mode(Mode.SPEAKING)
        world.schedule_speech(MouthDrive.from_speech(speech), 0.4)
        return np.stack([small_renderer.render(world.step()) for _ in range(2 * FPS)])

    a, b, c = frames(4), frames(4), frames(5)
    assert np.array_equal(a, b)
    changed = np.abs(a.astype(np.int16) - c.astype(np.int16)).max(axis=(1, 2, 3))
    assert (changed > 20).mean() > 0.5  # idle motion differs in most frames


def test_render_function_frame_count_at_other_fps(tmp_path: Path, small_renderer: Renderer) -> None:
    speech = say("Hi there.")
    chunks = [speech, Speech(speech.pcm, speech.sample_rate, "again", None)]  # 2nd: from audio
    result = render_speech_to_mp4(
        chunks, tmp_path / "30.mp4", small_renderer, fps=30, pad_s=0.2, keep_states=True
    )
    duration = 2 * speech.duration + 0.4
    assert result.duration == pytest.approx(duration, abs=1e-3)
    assert result.frames == round(duration * 30) == len(result.states)
    info = probe(result.path)
    assert info.video_frames == result.frames and info.fps == 30
    assert abs(info.audio_duration - duration) < 1 / 30
    # both chunks moved the mouth
    jaw = np.array([s.jaw_open for s in result.states])
    half = round((0.2 + speech.duration) * 30)
    assert jaw[:half].max() > 0.3 and jaw[half:].max() > 0.3


def _tone_wav(path: Path, seconds: float = 0.5) -> Path:
    rate = 16000
    t = np.arange(round(seconds * rate)) / rate
    pcm = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    write_wav(path, pcm, rate)
    return path


def write_wav(path: Path, pcm: np.ndarray, rate: int) -> None:
    import wave

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(pcm, -1, 1) * 32767).astype("<i2").tobytes())


def _blank_png(path: Path) -> Path:
    import cv2

    cv2.imwrite(str(path), np.full((400, 400, 3), 128, np.uint8))
    return path


def _tiny_face_png(path: Path) -> Path:
    import cv2
    from skimage import data

    canvas = np.full((1400, 1400, 3), 235, np.uint8)
    canvas[600:664, 700:764] = cv2.resize(data.astronaut(), (64, 64), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(path), canvas[:, :, ::-1])
    return path


@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("missing-audio", "not found"),
        ("text-as-audio", "not an audio file"),
        ("text-as-avatar", "avatar"),
        ("missing-avatar", "no such file"),
        ("no-face", "face"),
        ("tiny-face", "face"),
        ("bad-size", "--size"),
        ("markup-only-text", "nothing to say aloud"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(
    cli: Callable[..., int],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
    expect: str,
) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("just some words, not audio and not a picture\n")
    wav = _tone_wav(tmp_path / "tone.wav")
    out = tmp_path / "out.mp4"
    args: dict[str, list[str | Path]] = {
        "missing-audio": ["--audio", tmp_path / "nope.wav"],
        "text-as-audio": ["--audio", text],
        "text-as-avatar": ["--audio", wav, "--avatar", text],
        "missing-avatar": ["--audio", wav, "--avatar", tmp_path / "nobody.png"],
        "no-face": ["--audio", wav, "--avatar", _blank_png(tmp_path / "blank.png")],
        "tiny-face": ["--audio", wav, "--avatar", _tiny_face_png(tmp_path / "tiny.png")],
        "bad-size": ["--audio", wav, "--size", "65x64"],
        "markup-only-text": ["--text", "```\nprint('hi')\n```\n🙂"],
    }
    rc = cli("render", *args[case], "-o", out, "--no-progress")
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err and err[-1].startswith("avatar render: error:"), err
    assert expect in err[-1].lower(), err[-1]
    assert not out.exists()


def test_read_audio_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(AudioFileNotFoundError):
        read_audio(tmp_path / "missing.wav")
    text = tmp_path / "a.txt"
    text.write_text("hello")
    with pytest.raises(NotAudioError):
        read_audio(text)
    pcm = np.sin(np.arange(8000) / 5.0).astype(np.float32) * 0.5
    write_wav(tmp_path / "ok.wav", pcm, 8000)
    back, rate = read_audio(tmp_path / "ok.wav")
    assert rate == 8000 and len(back) == 8000
    assert np.abs(back - pcm).max() < 1e-3


def test_write_mp4_rejects_odd_sizes(tmp_path: Path) -> None:
    frames = (np.zeros((65, 64, 3), np.uint8) for _ in range(3))
    with pytest.raises(MediaError, match="even"):
        write_mp4(tmp_path / "odd.mp4", frames, np.zeros(1600, np.float32), 16000, 25)


def test_mp4_keeps_colours_and_plays_while_downloading(tmp_path: Path) -> None:
    """Decoded frames match the RGB written (chroma planes in place, BT.601 as players
    assume), and the index precedes the media (``faststart``, for browsers)."""
    rng = np.random.default_rng(3)
    noise = rng.integers(0, 256, (66, 98, 3), dtype=np.uint8)
    base = np.asarray(cv2.GaussianBlur(noise, (0, 0), 4), np.uint8)
    base[10:30, 10:40] = (220, 30, 30)  # red: a swapped U/V plane turns it blue
    base[36:60, 50:90] = (30, 60, 210)
    frames = [np.roll(base, 2 * i, axis=1) for i in range(8)]
    path = tmp_path / "colours.mp4"
    write_mp4(path, frames, np.zeros(5120, np.float32), 16000, 25)
    decoded = decode_frames(path)
    assert len(decoded) == len(frames)
    for sent, got in zip(frames, decoded, strict=True):
        diff = np.abs(sent.astype(np.int16) - got.astype(np.int16))
        assert diff.mean() < 3.0 and np.median(diff[12:28, 14:36]) < 6
    data = path.read_bytes()
    boxes, pos = [], 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        boxes.append(data[pos + 4 : pos + 8])
        pos += size if size >= 8 else len(data)
    assert boxes.index(b"moov") < boxes.index(b"mdat"), boxes


def test_parse_size() -> None:
    assert parse_size("512") == (512, 512)
    assert parse_size("1280x720") == (1280, 720)
