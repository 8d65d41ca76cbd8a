"""Session-wide real engines for the model tests (each loaded once per test run).

Other test packages may reuse these fixtures: ``resolver``, ``piper_tts``,
``whisper_stt``, ``silero_model`` and ``say_16k`` (Piper speech at 16 kHz, cached).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from models.assets import AssetResolver
from models.audio import resample
from models.config import AssetsConfig, SttConfig, TtsConfig
from models.stt import SpeechRecognizer, create_stt
from models.tts import PiperTTS
from models.types import FloatAudio
from models.vad import SileroModel


@pytest.fixture(scope="session")
def resolver() -> AssetResolver:
    """The asset resolver with the default assets config."""
    return AssetResolver(AssetsConfig())


@pytest.fixture(scope="session")
def piper_tts(resolver: AssetResolver) -> PiperTTS:
    """The default Piper voice (en_US-joe-medium, 22,050 Hz)."""
    return PiperTTS(TtsConfig(), resolver)


@pytest.fixture(scope="session")
def whisper_stt(resolver: AssetResolver) -> SpeechRecognizer:
    """Whisper base on the CPU, int8, English."""
    return create_stt(SttConfig(device="cpu"), resolver)


@pytest.fixture(scope="session")
def silero_model(resolver: AssetResolver) -> SileroModel:
    """The shared Silero VAD session."""
    return SileroModel.from_resolver(resolver)


@pytest.fixture(scope="session")
def say_16k(piper_tts: PiperTTS) -> Callable[[str], FloatAudio]:
    """``say(text)``: Piper speech of ``text`` resampled to 16 kHz (cached per text)."""
    cache: dict[str, FloatAudio] = {}

    def say(text: str) -> FloatAudio:
        if text not in cache:
            chunks = list(piper_tts.synthesize(text))
            pcm = np.concatenate([c.pcm for c in chunks])
            cache[text] = resample(pcm, piper_tts.sample_rate, 16000)
        return cache[text]

    return say
