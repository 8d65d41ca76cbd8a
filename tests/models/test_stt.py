"""Whisper (faster-whisper) on real Piper speech."""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np
import pytest

from models.assets import AssetResolver
from models.config import AssetsConfig, SttConfig
from models.errors import AssetNotFoundError, InvalidAudioError
from models.stt import SpeechRecognizer, create_stt
from tests.models.wer import normalize, word_error_rate

log = logging.getLogger(__name__)

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please remind me to call my sister tomorrow morning.",
    "I would like a cup of coffee with milk and sugar.",
    "The train to the city leaves from platform number four.",
    "Could you tell me a short story about a friendly dragon?",
]
LEAD_S = 0.4
TAIL_S = 0.3


def _padded(pcm: np.ndarray) -> np.ndarray:
    lead = np.zeros(int(LEAD_S * 16000), np.float32)
    tail = np.zeros(int(TAIL_S * 16000), np.float32)
    return np.concatenate([lead, pcm, tail])


def test_transcribes_piper_speech_with_low_wer(whisper_stt: SpeechRecognizer, say_16k) -> None:
    hyps = []
    latencies = []
    durations = []
    for sentence in SENTENCES:
        clip = _padded(say_16k(sentence))
        t0 = time.perf_counter()
        result = whisper_stt.transcribe(clip)
        latencies.append(time.perf_counter() - t0)
        durations.append(len(clip) / 16000)
        hyps.append(result.text)

        assert result.language == "en"
        assert result.duration == pytest.approx(len(clip) / 16000)
        assert 0.0 < result.confidence <= 1.0
        assert result.words, f"no words for {sentence!r}"
        # Word timings: in order, inside the clip, covering the speech.
        prev_end = 0.0
        for w in result.words:
            assert 0.0 <= w.start <= w.end <= result.duration
            assert w.start >= prev_end - 1e-6
            prev_end = w.end
        speech_end = LEAD_S + len(say_16k(sentence)) / 16000
        assert result.words[-1].end > speech_end - 0.6
        assert normalize(" ".join(w.text for w in result.words)) == normalize(result.text)

    wer = word_error_rate(SENTENCES, hyps)
    log.info(
        "STT latency per utterance: mean %.2f s, max %.2f s; RTF %.3f; WER %.3f",
        float(np.mean(latencies)),
        max(latencies),
        sum(latencies) / sum(durations),
        wer,
    )
    assert wer <= 0.10, list(zip(SENTENCES, hyps, strict=True))


async def test_atranscribe_runs_off_the_event_loop(whisper_stt: SpeechRecognizer, say_16k) -> None:
    clip_a = _padded(say_16k(SENTENCES[0]))
    clip_b = _padded(say_16k(SENTENCES[1]))
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    try:
        a, b = await asyncio.gather(
            whisper_stt.atranscribe(clip_a), whisper_stt.atranscribe(clip_b)
        )
    finally:
        stop.set()
        await tick
    # Two concurrent calls (serialized inside) each get their own right answer.
    assert word_error_rate([SENTENCES[0], SENTENCES[1]], [a.text, b.text]) <= 0.10
    assert len(gaps) > 10
    assert max(gaps) < 0.3, f"event loop blocked for {max(gaps):.2f} s"


def test_silence_gives_no_confident_words(whisper_stt: SpeechRecognizer) -> None:
    result = whisper_stt.transcribe(np.zeros(16000, np.float32))
    assert result.duration == pytest.approx(1.0)
    assert len(result.words) <= 3


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("pcm", "rate"),
    [
        pytest.param(np.zeros(0, np.float32), 16000, id="empty"),
        pytest.param(np.zeros(16000, np.float32), 22050, id="wrong-rate"),
        pytest.param(np.full(16000, np.nan, np.float32), 16000, id="nan"),
        pytest.param(np.zeros((2, 16000), np.float32), 16000, id="stereo-2d"),
        pytest.param(np.zeros(16000, np.int32), 16000, id="int32"),
        pytest.param(np.zeros(600 * 16000, np.float32), 16000, id="ten-minutes"),
    ],
)
def test_bad_audio_is_rejected_at_once(whisper_stt: SpeechRecognizer, pcm, rate) -> None:
    t0 = time.perf_counter()
    with pytest.raises(InvalidAudioError):
        whisper_stt.transcribe(pcm, rate)
    assert time.perf_counter() - t0 < 1.0


@pytest.mark.timeout(20)
async def test_bad_audio_is_rejected_before_the_worker_thread(
    whisper_stt: SpeechRecognizer,
) -> None:
    with pytest.raises(InvalidAudioError):
        await asyncio.wait_for(whisper_stt.atranscribe(np.zeros(0, np.float32)), 1.0)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("model", ["definitely-not-a-model", "large-v3"])
def test_unavailable_model_is_a_typed_error(model: str) -> None:
    offline = AssetResolver(AssetsConfig(allow_download=False))
    with pytest.raises(AssetNotFoundError):
        create_stt(SttConfig(model=model, device="cpu"), offline)


@pytest.fixture(scope="module")
def live_stt(resolver: AssetResolver) -> SpeechRecognizer:
    """The recognizer as a live session uses it: no word timings, the short window."""
    return SpeechRecognizer(SttConfig(device="cpu"), resolver, word_timestamps=False)


def test_the_short_window_hears_as_well_as_whispers_30_s(
    whisper_stt: SpeechRecognizer, live_stt: SpeechRecognizer, say_16k
) -> None:
    clips = [_padded(say_16k(s)) for s in SENTENCES]
    full = [whisper_stt.transcribe(c).text for c in clips]
    windowed = [live_stt.transcribe(c) for c in clips]
    assert all(
        t.duration == pytest.approx(len(c) / 16000) for t, c in zip(windowed, clips, strict=True)
    )
    assert all(0.0 < t.confidence <= 1.0 and t.language == "en" for t in windowed)
    wer = word_error_rate(SENTENCES, [t.text for t in windowed])
    assert wer <= word_error_rate(SENTENCES, full) + 0.05, [t.text for t in windowed]
    assert wer <= 0.10


def test_a_prompt_helps_and_one_that_derails_whisper_is_dropped(
    live_stt: SpeechRecognizer, say_16k
) -> None:
    clip = _padded(say_16k(SENTENCES[2]))
    # "and then" x 400: over Whisper's prompt length, and it makes it repeat "and"
    for prompt in ("We were talking about breakfast.", "and then " * 400):
        result = live_stt.transcribe(clip, prompt=prompt)
        assert word_error_rate([SENTENCES[2]], [result.text]) <= 0.15, result.text
        assert "talking" not in result.text and "then" not in result.text  # not read out
