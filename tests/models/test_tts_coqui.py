"""Coqui TTS backend on tiny random-weight models built in the test (no downloads).

The weights are random, so the speech is noise-like; what is checked is what the
service relies on: one float32 mono ``Speech`` per sentence at the model's rate,
real (non-silent) audio without Coqui's padding, a token timeline that tiles the
audio exactly and spells the sentence, streaming, and cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections.abc import AsyncGenerator
from pathlib import Path

import numpy as np
import pytest

from models.assets import AssetResolver
from models.config import CoquiConfig, TtsConfig
from models.errors import AssetNotFoundError, InvalidTextError, TTSError
from models.types import Speech

try:
    from TTS.api import TTS  # noqa: F401  (skip the module when the package cannot load)
except (ImportError, OSError) as exc:  # OSError: torchaudio's CUDA libraries on CPU torch
    pytest.skip(
        f"coqui-tts is not importable ({type(exc).__name__}: {exc}); it is an optional "
        "extra: pip install -e .[coqui] && bash scripts/install_coqui.sh",
        allow_module_level=True,
    )

from models.tts import TextToSpeech, create_tts
from models.tts.coqui import CoquiTTS

VITS_RATE = 16_000
HOP = 256
TWO = "Hello there. How are you today?"


def build_tiny_vits(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """A random-weight character VITS (~1.3M parameters) saved as model.pth + config.json.

    Its (noise-like, quiet) audio would be cut by Coqui's silence trimming, so the
    config turns it off; ``test_vits_trimming_clips_timeline`` turns it back on.
    """
    import torch
    from TTS.tts.configs.vits_config import VitsConfig
    from TTS.tts.models.vits import Vits, VitsArgs

    args = VitsArgs(
        hidden_channels=16,
        hidden_channels_ffn_text_encoder=32,
        num_heads_text_encoder=2,
        num_layers_text_encoder=1,
        num_layers_posterior_encoder=1,
        num_layers_flow=1,
        resblock_kernel_sizes_decoder=[3],
        resblock_dilation_sizes_decoder=[[1, 3, 5]],
        upsample_rates_decoder=[8, 8, 4],  # product = hop length
        upsample_initial_channel_decoder=32,
        upsample_kernel_sizes_decoder=[16, 16, 8],
        init_discriminator=False,
    )
    config = VitsConfig(
        model_args=args, use_phonemes=False, text_cleaner="basic_cleaners", add_blank=True
    )
    config.audio.sample_rate = VITS_RATE
    config.audio.hop_length = HOP
    config.audio.win_length = 1024
    config.audio.fft_size = 1024
    config.audio.do_trim_silence = False
    torch.manual_seed(seed)
    model = Vits(config)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict()}, folder / "model.pth")
    config.save_json(str(folder / "config.json"))
    return folder / "model.pth", folder / "config.json"


@pytest.fixture(scope="module")
def vits_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The tiny VITS checkpoint and config."""
    return build_tiny_vits(tmp_path_factory.mktemp("tiny-vits"))


def vits_config(files: tuple[Path, Path], length_scale: float = 1.0) -> TtsConfig:
    model, config = files
    return TtsConfig(
        backend="coqui",
        device="cpu",
        length_scale=length_scale,
        coqui=CoquiConfig(model_path=model, config_path=config),
    )


@pytest.fixture(scope="module")
def vits(vits_files: tuple[Path, Path], resolver: AssetResolver) -> CoquiTTS:
    """The tiny VITS loaded through the factory, as the service loads it."""
    tts = create_tts(vits_config(vits_files), resolver)
    assert isinstance(tts, CoquiTTS)
    return tts


def check_speech(speech: Speech, rate: int) -> None:
    assert speech.sample_rate == rate
    assert speech.pcm.dtype == np.float32
    assert speech.pcm.ndim == 1
    assert len(speech.pcm) > HOP
    assert np.isfinite(speech.pcm).all()
    assert np.abs(speech.pcm).max() <= 1.0
    assert float(np.sqrt(np.mean(speech.pcm**2))) > 1e-4, "silent audio"


def test_vits_one_speech_per_sentence(vits: CoquiTTS) -> None:
    assert isinstance(vits, TextToSpeech)
    assert vits.sample_rate == VITS_RATE
    assert not vits.is_xtts
    speeches = list(vits.synthesize(TWO))
    assert [s.text for s in speeches] == ["Hello there.", "How are you today?"]
    for s in speeches:
        check_speech(s, VITS_RATE)
        # No trailing padding: VITS audio is a whole number of decoder frames.
        assert len(s.pcm) % HOP == 0
        assert np.any(s.pcm[-HOP:] != 0.0)


def test_vits_timeline_tiles_audio_and_spells_text(vits: CoquiTTS) -> None:
    for speech in vits.synthesize(TWO):
        spans = speech.phonemes
        assert spans is not None
        assert spans[0].start == 0.0
        for a, b in itertools.pairwise(spans):
            assert b.start == pytest.approx(a.end, abs=1e-9)
            assert a.duration >= 0.0
        assert spans[-1].end == pytest.approx(speech.duration, abs=1e-9)
        # Every span is a whole number of frames; blanks between the characters.
        for s in spans:
            assert (s.duration * VITS_RATE / HOP) == pytest.approx(
                round(s.duration * VITS_RATE / HOP), abs=1e-6
            )
        symbols = [s.phoneme for s in spans]
        assert symbols[0] == "_" and symbols[1::2] == list(speech.text.lower())
        assert set(symbols[0::2]) == {"_"}


def test_length_scale_slows_speech(
    vits: CoquiTTS, vits_files: tuple[Path, Path], resolver: AssetResolver
) -> None:
    import torch

    slow = CoquiTTS(vits_config(vits_files, length_scale=2.5), resolver)
    text = "One two three four five six seven."
    torch.manual_seed(1)  # the same duration noise for both
    normal = sum(len(s.pcm) for s in vits.synthesize(text))
    torch.manual_seed(1)
    slower = sum(len(s.pcm) for s in slow.synthesize(text))
    assert slower > 1.6 * normal  # 2.0–2.2 measured (durations are rounded up to frames)


def test_vits_trimming_clips_timeline(
    vits_files: tuple[Path, Path], tmp_path: Path, resolver: AssetResolver
) -> None:
    """With ``audio.do_trim_silence`` Coqui cuts the audio at its first 0.8 s of
    near-silence (here: early, the random voice is quiet); the timeline is cut with it."""
    model, config = vits_files
    trimmed_config = tmp_path / "config.json"
    text = config.read_text().replace('"do_trim_silence": false', '"do_trim_silence": true')
    assert text != config.read_text()
    trimmed_config.write_text(text)
    tts = CoquiTTS(
        TtsConfig(
            backend="coqui",
            device="cpu",
            coqui=CoquiConfig(model_path=model, config_path=trimmed_config),
        ),
        resolver,
    )
    long = "A fairly long sentence to average the random durations over many tokens."
    (speech,) = tts.synthesize(long)
    spans = speech.phonemes
    assert spans is not None
    assert speech.duration < 3.0  # untrimmed it lasts ~4.8 s
    assert spans[-1].end == pytest.approx(speech.duration, abs=1e-9)
    assert len(spans) < 2 * len(long) + 1


async def test_vits_stream_yields_each_sentence(vits: CoquiTTS) -> None:
    got = [s async for s in vits.stream(TWO)]
    assert [s.text for s in got] == ["Hello there.", "How are you today?"]
    for s in got:
        check_speech(s, VITS_RATE)


async def assert_worker_stops() -> None:
    """The stream's worker thread ends soon (a live one would wait for room forever).

    Waits on the event loop: an iterator abandoned by a cancelled task is closed by
    the loop's async-generator finalizer, which needs the loop to run.
    """
    deadline = time.monotonic() + 5.0
    while any(t.name == "coqui-tts" and t.is_alive() for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the synthesis thread kept running after cancel"
        await asyncio.sleep(0.02)


async def test_vits_stream_cancel_stops_synthesis(vits: CoquiTTS) -> None:
    text = " ".join(
        f"This is sentence number {w}."
        for w in ("one", "two", "three", "four", "five", "six", "seven", "eight")
    )
    before = vits.sentences_synthesized
    stream = vits.stream(text)
    assert isinstance(stream, AsyncGenerator)
    async with contextlib.aclosing(stream):
        first = await anext(stream)
        assert first.text == "This is sentence number one."
    await assert_worker_stops()
    done = vits.sentences_synthesized - before
    await asyncio.sleep(0.3)
    assert vits.sentences_synthesized - before == done
    assert done <= 4  # the first, at most two ahead, and the one in progress


async def test_vits_task_cancel_stops_synthesis(vits: CoquiTTS) -> None:
    text = " ".join(
        f"Sentence {w} of many."
        for w in ("one", "two", "three", "four", "five", "six", "seven", "eight")
    )
    before = vits.sentences_synthesized
    got: list[Speech] = []
    first = asyncio.Event()

    async def consume() -> None:
        async for s in vits.stream(text):
            got.append(s)
            first.set()
            await asyncio.sleep(10)  # a slow consumer, cancelled below

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 10)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await assert_worker_stops()
    done = vits.sentences_synthesized - before
    await asyncio.sleep(0.3)
    assert vits.sentences_synthesized - before == done <= 4
    assert len(got) == 1


def test_bad_text_and_config_fail_with_typed_errors(
    vits: CoquiTTS, tmp_path: Path, resolver: AssetResolver
) -> None:
    with pytest.raises(InvalidTextError):
        vits.synthesize("   ")
    with pytest.raises(InvalidTextError):
        vits.stream("")
    with pytest.raises(AssetNotFoundError):
        CoquiTTS(
            TtsConfig(backend="coqui", coqui=CoquiConfig(model_path=tmp_path / "none.pth")),
            resolver,
        )
    with pytest.raises(TTSError, match="exactly one"):
        CoquiTTS(TtsConfig(backend="coqui"), resolver)
    with pytest.raises(TTSError, match="unknown Coqui model"):  # checked before any download
        CoquiTTS(
            TtsConfig(backend="coqui", coqui=CoquiConfig(model_name="tts_models/xx/none/vits")),
            resolver,
        )
    (tmp_path / "model.pth").write_bytes(b"not a checkpoint")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(TTSError):
        CoquiTTS(
            TtsConfig(backend="coqui", coqui=CoquiConfig(model_path=tmp_path / "model.pth")),
            resolver,
        )


# -- XTTS: a tiny random GPT (1 layer) with XTTS's fixed HiFi-GAN decoder and speaker
# encoder (~22.7M parameters in all), a character tokenizer, and a synthetic voice.

XTTS_RATE = 24_000


def build_tiny_xtts(folder: Path) -> Path:
    """A random-weight XTTS folder (model.pth, config.json, vocab.json) and ref.wav."""
    import soundfile
    import torch
    from tokenizers import Tokenizer
    from tokenizers.models import BPE
    from tokenizers.pre_tokenizers import Whitespace
    from TTS.tts.configs.xtts_config import XttsConfig
    from TTS.tts.layers.xtts.tokenizer import VoiceBpeTokenizer
    from TTS.tts.models.xtts import Xtts, XttsArgs

    folder.mkdir(parents=True, exist_ok=True)
    special = ["[STOP]", "[UNK]", "[SPACE]", "[START]", "[en]"]
    vocab = {t: i for i, t in enumerate([*special, *"abcdefghijklmnopqrstuvwxyz'.,!?-"])}
    tokenizer = Tokenizer(BPE(vocab, [], unk_token="[UNK]"))
    tokenizer.pre_tokenizer = Whitespace()
    tokenizer.add_special_tokens(special)
    tokenizer.save(str(folder / "vocab.json"))
    args = XttsArgs(
        gpt_layers=1,
        gpt_n_model_channels=64,
        gpt_n_heads=2,
        decoder_input_dim=64,
        gpt_max_audio_tokens=10,  # random weights rarely stop: cap the audio
        gpt_max_text_tokens=200,
        gpt_num_audio_tokens=258,
        gpt_start_audio_token=256,
        gpt_stop_audio_token=257,
    )
    config = XttsConfig(
        model_args=args, languages=["en"], gpt_cond_len=3, gpt_cond_chunk_len=3, max_ref_len=3
    )
    torch.manual_seed(0)
    model = Xtts(config)
    model.tokenizer = VoiceBpeTokenizer(str(folder / "vocab.json"))
    model.init_models()
    torch.save({"model": model.state_dict()}, folder / "model.pth")
    config.save_json(str(folder / "config.json"))
    t = np.arange(2 * 22_050) / 22_050
    voice = 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2
    soundfile.write(folder / "ref.wav", np.stack([voice, voice * 0.5], axis=1), 22_050)
    return folder


@pytest.fixture(scope="module")
def xtts(tmp_path_factory: pytest.TempPathFactory, resolver: AssetResolver) -> CoquiTTS:
    """The tiny XTTS, cloning ref.wav, streaming 4 audio tokens per chunk."""
    folder = build_tiny_xtts(tmp_path_factory.mktemp("tiny-xtts"))
    config = TtsConfig(
        backend="coqui",
        device="cpu",
        coqui=CoquiConfig(model_path=folder, speaker_wav=folder / "ref.wav", language="en"),
    )
    return CoquiTTS(config, resolver, stream_chunk_tokens=4)


@pytest.mark.slow
async def test_xtts_sentences_and_streamed_chunks(xtts: CoquiTTS) -> None:
    import torch

    assert xtts.is_xtts
    assert xtts.sample_rate == XTTS_RATE
    text = "Hello there. How are you?"
    torch.manual_seed(0)  # sampling from a random GPT: keep it reproducible
    speeches = list(xtts.synthesize(text))
    assert [s.text for s in speeches] == ["Hello there.", "How are you?"]
    for s in speeches:
        check_speech(s, XTTS_RATE)
        assert s.phonemes is None
    torch.manual_seed(0)
    chunks = [s async for s in xtts.stream(text)]
    assert len(chunks) > 2, "XTTS should stream sub-sentence chunks"
    for c in chunks:
        assert c.pcm.dtype == np.float32 and c.sample_rate == XTTS_RATE and len(c.pcm) > 0
    # Each sentence's first chunk carries its text; the others carry "".
    assert [c.text for c in chunks if c.text] == ["Hello there.", "How are you?"]
    assert chunks[0].text == "Hello there."
    assert sum(len(c.pcm) for c in chunks) == pytest.approx(
        sum(len(s.pcm) for s in speeches), rel=0.5
    )
