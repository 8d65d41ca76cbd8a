"""Questions spoken by voices the service never heard (espeak-ng) or by Piper, as the
48 kHz microphone clips the conversation benchmarks send.

A voice is ``piper`` (the profile's own TTS) or an espeak-ng spec ``voice[:speed[:pitch]]``
(``en-gb+f3:150:60``: words per minute, pitch 0..99). A question may carry a pause
mid-sentence (``"Could you tell me | what bees make?"``): its two halves are spoken
separately and joined by exactly that much silence, the way a person stops to think.
Every clip is trimmed to its speech and padded with :data:`PAD_S` of silence on each
side, so the end of speech in a clip is known to the sample.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.audio import resample

RATE = 48_000
PAD_S = 0.4
"""Silence before and after the speech in every clip."""
SILENT = 0.01
"""Samples quieter than this at either end of a synthesized phrase are trimmed."""
PAUSE_MARK = "|"
"""Where a question is split by a pause."""
ESPEAK_MIN_SPEED, ESPEAK_MAX_SPEED = 80, 450


@dataclass(frozen=True)
class Voice:
    """A voice spec: ``piper`` or espeak-ng's ``name`` with speed and pitch."""

    name: str
    speed: int = 160
    pitch: int = 50

    @property
    def piper(self) -> bool:
        """The profile's own TTS voice."""
        return self.name == "piper"

    def __str__(self) -> str:
        return "piper" if self.piper else f"{self.name}:{self.speed}:{self.pitch}"


def parse_voice(spec: str) -> Voice:
    """``piper`` or ``voice[:speed[:pitch]]``; ValueError on a bad spec."""
    parts = spec.strip().split(":")
    if not parts[0] or len(parts) > 3:
        raise ValueError(f"bad voice {spec!r} (piper or voice[:speed[:pitch]])")
    if parts[0] == "piper":
        if len(parts) > 1:
            raise ValueError("piper takes no speed or pitch")
        return Voice("piper")
    try:
        speed = int(parts[1]) if len(parts) > 1 else 160
        pitch = int(parts[2]) if len(parts) > 2 else 50
    except ValueError:
        raise ValueError(f"bad voice {spec!r}: speed and pitch are integers") from None
    if not ESPEAK_MIN_SPEED <= speed <= ESPEAK_MAX_SPEED:
        raise ValueError(f"speed {speed} out of {ESPEAK_MIN_SPEED}..{ESPEAK_MAX_SPEED}")
    if not 0 <= pitch <= 99:
        raise ValueError(f"pitch {pitch} out of 0..99")
    return Voice(parts[0], speed, pitch)


def espeak_available() -> bool:
    """Whether the espeak-ng program is installed."""
    return shutil.which("espeak-ng") is not None


def espeak(text: str, voice: Voice) -> tuple[np.ndarray, int]:
    """``text`` spoken by espeak-ng: float32 mono PCM and its sample rate."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "clip.wav"
        cmd = ["espeak-ng", "-v", voice.name, "-s", str(voice.speed), "-p", str(voice.pitch)]
        subprocess.run([*cmd, "-w", str(wav), text], check=True, capture_output=True)
        with wave.open(str(wav), "rb") as fh:
            rate = fh.getframerate()
            raw = fh.readframes(fh.getnframes())
    return np.frombuffer(raw, np.int16).astype(np.float32) / 32768.0, rate


def trim(pcm: np.ndarray) -> np.ndarray:
    """``pcm`` without the silence at either end."""
    loud = np.flatnonzero(np.abs(pcm) > SILENT)
    return pcm[loud[0] : loud[-1] + 1] if len(loud) else pcm[:0]


Synth = Callable[[str], tuple[np.ndarray, int]]
"""Text in, (float32 mono PCM, sample rate) out."""


def speak(text: str, synth: Synth, pause_s: float) -> tuple[np.ndarray, float]:
    """A microphone clip (48 kHz, padded) of ``text`` and the seconds of speech in it.

    A :data:`PAUSE_MARK` in ``text`` becomes ``pause_s`` of silence between its halves.
    """
    pieces: list[np.ndarray] = []
    for i, part in enumerate(p.strip() for p in text.split(PAUSE_MARK)):
        pcm, rate = synth(part)
        if i:
            pieces.append(np.zeros(int(pause_s * RATE), np.float32))
        pieces.append(trim(resample(pcm.astype(np.float32), rate, RATE)))
    speech = np.concatenate(pieces)
    pad = np.zeros(int(PAD_S * RATE), np.float32)
    return np.concatenate([pad, speech, pad]), len(speech) / RATE


def plain(text: str) -> str:
    """The question as said, without the pause mark."""
    return " ".join(text.replace(PAUSE_MARK, " ").split())
