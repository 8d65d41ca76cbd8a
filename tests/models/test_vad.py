"""Silero and webrtcvad on a constructed signal: silence, speech, pause, speech, silence."""

from __future__ import annotations

import numpy as np
import pytest

from models.assets import AssetResolver
from models.config import AssetsConfig, VadConfig
from models.errors import InvalidAudioError
from models.types import VadEvent, VadEventKind
from models.vad import SileroModel, SileroVad, VoiceActivityDetector, WebRtcVad, create_vad

RATE = 16000
TOL_S = 0.10
FIRST = "Turn on the kitchen lights please."
SECOND = "What time does the bakery open tomorrow?"


def _speech_bounds(pcm: np.ndarray, frame: int = 160, level: float = 0.02) -> tuple[int, int]:
    """First and last sample of the frames whose RMS exceeds ``level``."""
    n = len(pcm) // frame
    rms = np.sqrt(np.mean(pcm[: n * frame].reshape(n, frame) ** 2, axis=1))
    loud = np.flatnonzero(rms > level)
    return int(loud[0] * frame), int((loud[-1] + 1) * frame)


@pytest.fixture(scope="module")
def signal(say_16k) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """The test signal and the true (start, end) in seconds of its two utterances."""
    parts = [np.zeros(int(0.6 * RATE), np.float32)]
    truth = []
    offset = len(parts[0])
    for i, text in enumerate((FIRST, SECOND)):
        speech = say_16k(text)
        lo, hi = _speech_bounds(speech)
        truth.append(((offset + lo) / RATE, (offset + hi) / RATE))
        parts.append(speech)
        gap = np.zeros(int((1.2 if i == 0 else 0.9) * RATE), np.float32)
        parts.append(gap)
        offset += len(speech) + len(gap)
    return np.concatenate(parts), truth


def _run(vad: VoiceActivityDetector, pcm: np.ndarray, frame: int) -> list[tuple[VadEvent, int]]:
    """Feed ``pcm`` in ``frame``-sample chunks; each event with the stream position it came at."""
    out: list[tuple[VadEvent, int]] = []
    for i in range(0, len(pcm), frame):
        chunk = pcm[i : i + frame]
        out.extend((e, i + len(chunk)) for e in vad.process(chunk))
    out.extend((e, len(pcm)) for e in vad.flush())
    return out


def _make(backend: str, silero_model: SileroModel, config: VadConfig | None = None):
    config = config or VadConfig.model_validate({"backend": backend})
    if backend == "silero":
        return SileroVad(silero_model, config)
    return WebRtcVad(config)


@pytest.mark.parametrize("backend", ["silero", "webrtc"])
@pytest.mark.parametrize("frame_ms", [20, 32])
def test_finds_the_speech_segments(backend, frame_ms, silero_model, signal) -> None:
    pcm, truth = signal
    config = VadConfig.model_validate({"backend": backend})
    vad = _make(backend, silero_model, config)
    got = _run(vad, pcm, RATE * frame_ms // 1000)
    kinds = [e.kind for e, _ in got]
    assert kinds == [VadEventKind.SPEECH_START, VadEventKind.SPEECH_END] * 2, got
    for k, (start, end) in enumerate(truth):
        ev_start, ev_end = got[2 * k][0], got[2 * k + 1][0]
        assert ev_start.time == pytest.approx(start, abs=TOL_S), (backend, k, "start")
        assert ev_end.time == pytest.approx(end, abs=TOL_S), (backend, k, "end")
        assert ev_start.time == ev_start.sample / RATE
    # Events come out promptly: a start within min_speech + a window + a frame, an end
    # within min_silence + a window + a frame of the boundary.
    slack = vad.window_samples + RATE * frame_ms // 1000
    for event, position in got:
        starts = event.kind is VadEventKind.SPEECH_START
        wait = config.min_speech_ms if starts else config.min_silence_ms
        assert 0 <= position - event.sample <= RATE * wait // 1000 + slack + RATE * 0.05
    assert not vad.speaking


def test_chunking_does_not_change_silero_events(silero_model, signal) -> None:
    pcm, _ = signal
    runs = []
    for frame in (320, 512, 4000, len(pcm)):
        runs.append([e for e, _ in _run(SileroVad(silero_model), pcm, frame)])
    rng = np.random.default_rng(0)
    vad = SileroVad(silero_model)
    events, i = [], 0
    while i < len(pcm):
        step = int(rng.integers(1, 1500))
        events.extend(vad.process(pcm[i : i + step]))
        i += step
    runs.append(events + vad.flush())
    assert all(r == runs[0] for r in runs)


def test_streams_sharing_a_model_keep_their_own_state(silero_model, signal) -> None:
    pcm, _ = signal
    other = np.concatenate([np.zeros(RATE, np.float32), pcm[: len(pcm) // 2] * 0.5])
    alone_a = [e for e, _ in _run(SileroVad(silero_model), pcm, 320)]
    alone_b = [e for e, _ in _run(SileroVad(silero_model), other, 320)]
    a, b = SileroVad(silero_model), SileroVad(silero_model)
    got_a, got_b = [], []
    for i in range(0, max(len(pcm), len(other)), 320):
        got_a.extend(a.process(pcm[i : i + 320]))
        got_b.extend(b.process(other[i : i + 320]))
    assert got_a + a.flush() == alone_a
    assert got_b + b.flush() == alone_b


@pytest.mark.parametrize("backend", ["silero", "webrtc"])
def test_speaking_probability_flush_and_reset(backend, silero_model, signal) -> None:
    pcm, truth = signal
    vad = _make(backend, silero_model)
    assert vad.sample_rate == RATE
    # Stop in the middle of the second utterance: speaking, high probability.
    cut = int((truth[1][0] + 0.8) * RATE)
    events = []
    for i in range(0, cut, 320):
        events.extend(vad.process(pcm[i : min(i + 320, cut)]))
    assert [e.kind for e in events] == [
        VadEventKind.SPEECH_START,
        VadEventKind.SPEECH_END,
        VadEventKind.SPEECH_START,
    ]
    assert vad.speaking
    # Flush ends the open speech at the end of the stream, then starts afresh.
    (end,) = vad.flush()
    assert end.kind is VadEventKind.SPEECH_END
    assert end.time == pytest.approx(cut / RATE, abs=0.1)
    assert not vad.speaking
    assert vad.probability == 0.0
    # After a reset the clock starts from zero again.
    vad.process(pcm[: RATE // 2])
    vad.reset()
    again = [e for e, _ in _run(vad, pcm, 512)]
    assert again[0].time == pytest.approx(truth[0][0], abs=TOL_S)


def test_silero_probability_tracks_speech(silero_model, signal) -> None:
    pcm, truth = signal
    vad = SileroVad(silero_model)
    probs_speech, probs_silence = [], []
    for i in range(0, len(pcm), 512):
        vad.process(pcm[i : i + 512])
        t = (i + 512) / RATE
        if any(s + 0.2 < t < e - 0.1 for s, e in truth):
            probs_speech.append(vad.probability)
        elif all(t < s - 0.1 or t > e + 0.3 for s, e in truth):
            probs_silence.append(vad.probability)
    assert np.median(probs_speech) > 0.8
    assert max(probs_silence) < 0.3


def test_min_speech_drops_short_blips(say_16k) -> None:
    speech = say_16k(FIRST)
    lo, _ = _speech_bounds(speech)
    blip = speech[lo + 1600 : lo + 1600 + int(0.09 * RATE)]  # 90 ms of speech
    pcm = np.concatenate([np.zeros(RATE // 2, np.float32), blip, np.zeros(RATE, np.float32)])
    strict = WebRtcVad(VadConfig(backend="webrtc", min_speech_ms=250))
    assert [e for e, _ in _run(strict, pcm, 320)] == []
    eager = WebRtcVad(VadConfig(backend="webrtc", min_speech_ms=0, min_silence_ms=100))
    kinds = [e.kind for e, _ in _run(eager, pcm, 320)]
    assert kinds == [VadEventKind.SPEECH_START, VadEventKind.SPEECH_END]


def test_speech_pad_widens_segments(silero_model, signal) -> None:
    pcm, _ = signal
    plain = [e for e, _ in _run(SileroVad(silero_model), pcm, 512)]
    padded = [e for e, _ in _run(SileroVad(silero_model, VadConfig(speech_pad_ms=100)), pcm, 512)]
    for p, q in zip(plain, padded, strict=True):
        shift = -0.1 if p.kind is VadEventKind.SPEECH_START else 0.1
        assert q.time == pytest.approx(p.time + shift, abs=1e-9)


def test_create_vad_builds_each_backend(resolver, silero_model) -> None:
    silero = create_vad(VadConfig(), resolver, model=silero_model)
    webrtc = create_vad(VadConfig(backend="webrtc"), resolver)
    assert isinstance(silero, SileroVad)
    assert isinstance(webrtc, WebRtcVad)
    loaded = create_vad(VadConfig(min_silence_ms=300), resolver)  # loads its own model
    assert isinstance(loaded, SileroVad)
    for vad in (silero, webrtc, loaded):
        assert isinstance(vad, VoiceActivityDetector)


def test_create_vad_falls_back_to_webrtc_without_silero(tmp_path) -> None:
    broken = tmp_path / "silero.onnx"
    broken.write_bytes(b"not an onnx model")
    for path in (broken, tmp_path / "missing.onnx"):
        resolver = AssetResolver(AssetsConfig(paths={"silero-vad": path}))
        assert isinstance(create_vad(VadConfig(), resolver), WebRtcVad)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("backend", ["silero", "webrtc"])
@pytest.mark.parametrize(
    "pcm",
    [
        pytest.param(np.full(320, np.nan, np.float32), id="nan"),
        pytest.param(np.zeros((2, 320), np.float32), id="2d"),
        pytest.param(np.zeros(320, np.int32), id="int32"),
        pytest.param(np.array(["a"] * 320), id="strings"),
    ],
)
def test_bad_input_is_rejected(backend, pcm, silero_model) -> None:
    vad = _make(backend, silero_model)
    with pytest.raises(InvalidAudioError):
        vad.process(pcm)
    assert vad.process(np.zeros(0, np.float32)) == []


def test_trailing_silence_grows_in_a_pause_and_resets_when_speech_resumes(
    silero_model: SileroModel, say_16k
) -> None:
    speech = say_16k(FIRST)
    lo, hi = _speech_bounds(speech)
    voiced = speech[lo:hi]
    vad = SileroVad(silero_model, VadConfig(min_silence_ms=600))
    vad.process(np.zeros(RATE // 2, np.float32))
    vad.process(voiced)
    assert vad.speaking
    vad.process(np.zeros(int(0.3 * RATE), np.float32))
    assert vad.speaking  # not an end of turn yet: 600 ms are needed
    assert 0.15 <= vad.trailing_silence <= 0.4
    # Speech again: the silence resets on its first voiced window. (Not necessarily at
    # the end of this half second: Piper samples its timing, and a gap between two
    # words may fall there.)
    seen = []
    for i in range(0, RATE // 2, 512):
        vad.process(voiced[i : i + 512])
        seen.append(vad.trailing_silence)
    assert vad.speaking and min(seen) == 0.0, seen
    assert seen.index(0.0) <= 3, seen  # within ~0.1 s of the first voiced sample
    vad.process(np.zeros(RATE, np.float32))
    assert not vad.speaking
    assert vad.trailing_silence == 0.0
