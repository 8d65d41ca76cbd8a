"""Piper TTS: phoneme timelines, sentence streaming, cancellation, and the clause splitter."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
import time

import numpy as np
import pytest

from models.assets import AssetResolver
from models.config import TtsConfig
from models.errors import AssetNotFoundError, InvalidTextError, UnknownAssetError
from models.tts import ClauseSplitter, PiperTTS, TextToSpeech, create_tts, split_sentences
from models.types import PhonemeSpan, Speech

log = logging.getLogger(__name__)

VOWELS = set("aeiouæɐɑɒɔəɚɛɜɪʊʌ")
THREE = (
    "The morning light came through the tall kitchen windows. "
    "My grandmother was already baking bread for the whole family. "
    "We sat together at the long wooden table and waited."
)
EIGHT = " ".join(f"This is sentence number {n} of a rather long reply." for n in range(1, 9))


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if len(x) else 0.0


def _span_audio(speech: Speech, span: PhonemeSpan) -> np.ndarray:
    sr = speech.sample_rate
    return speech.pcm[round(span.start * sr) : round(span.end * sr)]


def test_one_chunk_per_sentence_with_an_exact_phoneme_timeline(piper_tts: PiperTTS) -> None:
    assert isinstance(piper_tts, TextToSpeech)
    chunks = list(piper_tts.synthesize(THREE))
    assert [c.text for c in chunks] == split_sentences(THREE)
    assert len(chunks) == 3
    for c in chunks:
        sr = c.sample_rate
        assert sr == piper_tts.sample_rate == 22050
        assert c.pcm.dtype == np.float32
        assert c.pcm.ndim == 1
        assert 1.0 < c.duration < 6.0
        assert np.abs(c.pcm).max() <= 1.0
        spans = c.phonemes
        assert spans is not None
        assert spans[0].phoneme == "^"
        assert spans[-1].phoneme == "$"
        # The timeline tiles the audio exactly, in whole samples.
        assert spans[0].start == 0.0
        assert sum(round(s.duration * sr) for s in spans) == len(c.pcm)
        assert sum(s.duration for s in spans) == pytest.approx(len(c.pcm) / sr, abs=1e-9)
        assert spans[-1].end == pytest.approx(c.duration, abs=1e-12)
        for a, b in itertools.pairwise(spans):
            assert b.start == pytest.approx(a.end, abs=1e-12)
            assert a.duration >= 0.0

        # And it is the real alignment: vowels are loud, the start/end markers quiet.
        vowels = [_span_audio(c, s) for s in spans if s.phoneme in VOWELS]
        markers = [_span_audio(c, s) for s in spans if s.phoneme in {"^", "$"}]
        assert _rms(np.concatenate(vowels)) > 4 * _rms(np.concatenate(markers))


def test_length_scale_and_a_voice_given_by_path(resolver: AssetResolver) -> None:
    folder = resolver.resolve("piper-joe-medium").path
    normal = PiperTTS(TtsConfig(voice=str(folder / "en_US-joe-medium.onnx")), resolver)
    slow = PiperTTS(TtsConfig(voice=str(folder), length_scale=1.6), resolver)
    text = "Slow and steady wins the race."
    a = sum(c.duration for c in normal.synthesize(text))
    b = sum(c.duration for c in slow.synthesize(text))
    assert b > 1.3 * a


async def test_stream_yields_the_first_sentence_before_the_rest(piper_tts: PiperTTS) -> None:
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    before = piper_tts.sentences_synthesized
    arrivals: list[float] = []
    done_at_first: int | None = None
    audio_s = 0.0
    t0 = time.perf_counter()
    try:
        async for speech in piper_tts.stream(THREE):
            arrivals.append(time.perf_counter() - t0)
            audio_s += speech.duration
            if done_at_first is None:
                done_at_first = piper_tts.sentences_synthesized - before
    finally:
        stop.set()
        await tick
    total = time.perf_counter() - t0
    log.info(
        "Piper stream: first chunk %.3f s, all 3 sentences %.3f s, RTF %.3f",
        arrivals[0],
        total,
        total / audio_s,
    )
    assert len(arrivals) == 3
    assert done_at_first is not None and done_at_first < 3
    assert arrivals[0] < 0.75 * arrivals[-1]
    assert max(gaps) < 0.25, f"event loop blocked for {max(gaps):.2f} s"


def _stream_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "tts-stream" and t.is_alive()]


async def test_closing_the_stream_stops_synthesis(piper_tts: PiperTTS) -> None:
    before = piper_tts.sentences_synthesized
    stream = piper_tts.stream(EIGHT)
    async with contextlib.aclosing(stream):
        first = await anext(stream)
    assert first.text.startswith("This is sentence number 1")
    done = piper_tts.sentences_synthesized - before
    assert done <= 4  # the first, at most two ahead, and one in flight
    assert not _stream_threads()
    await asyncio.sleep(0.5)
    assert piper_tts.sentences_synthesized - before == done


@pytest.mark.parametrize("closing", [True, False], ids=["aclose", "plain-async-for"])
async def test_cancelling_the_consumer_stops_synthesis(piper_tts: PiperTTS, closing: bool) -> None:
    before = piper_tts.sentences_synthesized
    got: list[str] = []
    first = asyncio.Event()

    async def speak() -> None:
        stream = piper_tts.stream(EIGHT)
        try:
            async for speech in stream:
                got.append(speech.text)
                first.set()
                await asyncio.sleep(10)  # "playing" the sentence
        finally:
            if closing:
                await stream.aclose()

    task = asyncio.create_task(speak())
    await asyncio.wait_for(first.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    if not closing:
        # An abandoned async generator is closed by the event loop's finalizer, soon.
        for _ in range(100):
            if not _stream_threads():
                break
            await asyncio.sleep(0.01)
    done = piper_tts.sentences_synthesized - before
    assert got == [split_sentences(EIGHT)[0]]
    assert done <= 4
    assert not _stream_threads()
    await asyncio.sleep(0.5)
    assert piper_tts.sentences_synthesized - before == done


@pytest.mark.timeout(10)
@pytest.mark.parametrize("text", ["", "   \n\t ", "x" * 4001], ids=["empty", "blank", "huge"])
def test_bad_text_is_rejected_at_once(piper_tts: PiperTTS, text: str) -> None:
    t0 = time.perf_counter()
    with pytest.raises(InvalidTextError):
        piper_tts.synthesize(text)  # no iteration needed
    with pytest.raises(InvalidTextError):
        piper_tts.stream(text)
    assert time.perf_counter() - t0 < 0.5


@pytest.mark.timeout(10)
def test_unknown_voices_are_typed_errors(resolver: AssetResolver, tmp_path) -> None:
    with pytest.raises(UnknownAssetError):
        create_tts(TtsConfig(voice="no-such-voice"), resolver)
    with pytest.raises(AssetNotFoundError):
        create_tts(TtsConfig(voice=str(tmp_path / "missing.onnx")), resolver)


# --- the clause splitter -------------------------------------------------------------


def _tokens(text: str) -> list[str]:
    """Split like an LLM tokenizer often does: words with their leading space."""
    words = text.split(" ")
    return [words[0]] + [" " + w for w in words[1:]]


def _run_splitter(splitter: ClauseSplitter, text: str) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for i, tok in enumerate(_tokens(text)):
        out.extend((i, clause) for clause in splitter.push(tok))
    out.extend((len(_tokens(text)), clause) for clause in splitter.flush())
    return out


def test_clause_splitter_cuts_a_token_stream_as_early_as_possible() -> None:
    text = (
        "Sure, I can help. Dr. Smith said the dose is 2.5 mg, e.g. twice a day! "
        "When the weather is warm and the garden is in full bloom, we like to sit outside; "
        "it is lovely. Really?"
    )
    got = _run_splitter(ClauseSplitter(min_clause_chars=40), text)
    clauses = [c for _, c in got]
    assert clauses == [
        "Sure, I can help.",  # a short comma clause stays whole
        "Dr. Smith said the dose is 2.5 mg, e.g. twice a day!",
        "When the weather is warm and the garden is in full bloom,",  # long: cut at comma
        "we like to sit outside; it is lovely.",
        "Really?",
    ]
    assert " ".join(clauses) == " ".join(text.split())
    # Each clause comes out with the token right after its boundary.
    toks = _tokens(text)
    for index, clause in got[:-1]:
        assert "".join(toks[:index]).strip().endswith(clause)


def test_clause_splitter_handles_newlines_long_runs_and_reset() -> None:
    splitter = ClauseSplitter(min_clause_chars=10, max_clause_chars=60)
    assert splitter.push("First line without a stop\n") == []
    assert splitter.push("second") == ["First line without a stop"]
    run_on = " and then" * 12
    out = splitter.push(run_on)
    assert out and all(len(c) <= 60 for c in out)
    assert splitter.pending
    splitter.reset()
    assert splitter.flush() == []
    assert splitter.push("Yes. ") == []  # a period at the end waits for the next word
    assert splitter.push("No") == ["Yes."]
    assert splitter.flush() == ["No"]
    with pytest.raises(ValueError):
        ClauseSplitter(min_clause_chars=50, max_clause_chars=10)


def test_split_sentences() -> None:
    assert split_sentences("Hello there! How are you? I'm fine.") == [
        "Hello there!",
        "How are you?",
        "I'm fine.",
    ]
    assert split_sentences("Mr. Brown paid $3.50 for it. Then he left") == [
        "Mr. Brown paid $3.50 for it.",
        "Then he left",
    ]
    assert split_sentences('She said "stop." Then silence.') == [
        'She said "stop."',
        "Then silence.",
    ]
    assert split_sentences("   ") == []


def test_first_clause_may_end_early_to_start_speaking_sooner() -> None:
    splitter = ClauseSplitter(first_clause_chars=12)
    out: list[str] = []
    for piece in ["Well, ", "the capital ", "of France, ", "as you may know, ", "is Paris. "]:
        out += splitter.push(piece)
    out += splitter.flush()
    assert out[0] == "Well, the capital of France,"
    # Later clauses keep the normal minimum: no cut at the short "as you may know,".
    assert out[1:] == ["as you may know, is Paris."]


def _stream(splitter: ClauseSplitter, text: str) -> list[str]:
    """Feed ``text`` word by word, as an LLM streams it."""
    out: list[str] = []
    for word in text.split(" "):
        out += splitter.push(word + " ")
    return out + splitter.flush()


def test_a_one_sentence_reply_starts_at_a_phrase_break() -> None:
    def split(text: str) -> list[str]:
        return _stream(ClauseSplitter(first_clause_chars=12, first_phrase_words=4), text)

    assert split("Paris is the capital of France.") == ["Paris is the capital", "of France."]
    # Only the first clause breaks early; later ones wait for punctuation.
    assert split("The weather in Paris in the spring is mild and sunny. It rains in May.") == [
        "The weather in Paris",
        "in the spring is mild and sunny.",
        "It rains in May.",
    ]
    # Too few words before the opener, or no opener: the sentence stays whole.
    assert split("Two plus two is four.") == ["Two plus two is four."]
    assert split("Go to the end of it.") == ["Go to the end", "of it."]
    # A word that merely starts like an opener ("often") is not a break.
    assert split("People in Paris very often walk.") == ["People in Paris very often walk."]
    # Without first_phrase_words nothing changes.
    assert _stream(ClauseSplitter(first_clause_chars=12), "Paris is the capital of France.") == [
        "Paris is the capital of France."
    ]


def test_the_phrase_break_waits_for_the_whole_word() -> None:
    splitter = ClauseSplitter(first_clause_chars=12, first_phrase_words=4)
    assert splitter.push("Paris is the capital o") == []
    assert splitter.push("f") == []  # "of" might still become "often"
    assert splitter.push(" France") == ["Paris is the capital"]


def test_an_eager_first_clause_ends_with_its_word_not_one_token_later() -> None:
    def first(pieces: list[str], eager: bool = True) -> tuple[int, str]:
        """The piece after which the first clause came out, and the clause."""
        splitter = ClauseSplitter(first_clause_chars=12, first_phrase_words=4, eager_first=eager)
        for i, piece in enumerate(pieces):
            if out := splitter.push(piece):
                return i, out[0]
        return len(pieces), splitter.flush()[0]

    assert first(["Hi", "!", " It's", " lovely"]) == (1, "Hi!")
    assert first(["Hi", "!", " It's", " lovely"], eager=False) == (2, "Hi!")
    assert first(["Sure", ", that", " is", " easy", ","]) == (4, "Sure, that is easy,")
    assert first(["It", " is", " Paris", "."]) == (3, "It is Paris.")
    # What may go on is waited for: a number, an abbreviation, an initial.
    assert first(["It", " costs", " 3", ".", "5", " euros", ".", " Yes"]) == (
        6,
        "It costs 3.5 euros.",
    )
    assert first(["Ask", " Dr", ".", " Brown", " today", ".", " Bye"])[1] == "Ask Dr. Brown today."
    assert first(["I", " met", " J", ".", " Smith", " there", ".", " Bye"])[1] == (
        "I met J. Smith there."
    )
    assert first(["About", " 1", ",", "000", " people", ",", " maybe"])[1] == "About 1,000 people,"
    # Only the first clause is eager; later ones wait as before.
    splitter = ClauseSplitter(eager_first=True)
    assert splitter.push("Yes!") == ["Yes!"]
    assert splitter.push(" It is.") == []
