"""Speech for the avatar tests: one Piper voice per test run, espeak-ng clips on demand.

Piper is loaded once per process (the avatar test modules share it through
:func:`piper`); sentences are synthesized once and cached per text.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from models.assets import AssetResolver
from models.config import AssetsConfig, TtsConfig
from models.tts import create_tts
from models.tts.base import TextToSpeech
from models.types import PhonemeSpan, Speech


@functools.cache
def piper() -> TextToSpeech:
    """The default Piper voice (loaded once per test process)."""
    return create_tts(TtsConfig(), AssetResolver(AssetsConfig()))


@functools.cache
def say(text: str) -> Speech:
    """``text`` spoken by Piper as one ``Speech`` (sentences joined, timelines shifted)."""
    chunks = list(piper().synthesize(text))
    pcm: list[np.ndarray] = []
    spans: list[PhonemeSpan] = []
    offset = 0.0
    for c in chunks:
        for p in c.phonemes or ():
            spans.append(PhonemeSpan(p.phoneme, p.start + offset, p.duration))
        pcm.append(c.pcm)
        offset += c.duration
    return Speech(
        pcm=np.concatenate(pcm).astype(np.float32),
        sample_rate=chunks[0].sample_rate,
        text=text,
        phonemes=tuple(spans),
    )


def padded(speech: Speech, before: float, after: float) -> np.ndarray:
    """The speech's PCM with ``before`` / ``after`` seconds of silence around it."""
    sr = speech.sample_rate
    return np.concatenate(
        [
            np.zeros(round(before * sr), np.float32),
            speech.pcm,
            np.zeros(round(after * sr), np.float32),
        ]
    )


def espeak_wav(text: str, path: Path, voice: str = "en-us", speed: int = 150) -> Path:
    """``text`` spoken by the espeak-ng program into a WAV file (skips if it is missing)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("espeak-ng is not installed (apt-get install -y espeak-ng)")
    subprocess.run(
        [exe, "-v", voice, "-s", str(speed), "-w", str(path), text],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return path
