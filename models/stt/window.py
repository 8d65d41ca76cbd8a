"""Whisper on an encoder window that fits the utterance instead of 30 s.

faster-whisper pads every input to Whisper's 30 s window, so its encoder costs the same
for a 2 s question as for 30 s of speech (≈ 75 % of a short utterance's time on the
CPU, benchmarks/RESULTS.md "Voice-to-voice: the hearing side"). CTranslate2 accepts
fewer mel frames: :class:`WindowDecoder` encodes the utterance padded to a shorter
window and decodes greedily without timestamps. Its output is checked the way Whisper's
temperature fallback checks it (repetition, low confidence); when it looks wrong the
caller decodes the utterance again on the full window.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_ctranslate2_storage, get_suppressed_tokens

from models.types import FloatAudio

FULL_WINDOW_S = 30.0
"""Whisper's own window."""
TAIL_MARGIN_S = 0.5
"""Room kept after the speech in the window: an utterance fits when it leaves this much."""
MAX_COMPRESSION = 2.4
"""Whisper's threshold for repetitive output (its temperature fallback's)."""
MIN_AVG_LOGPROB = -1.0
"""Whisper's threshold for an unsure decode (its temperature fallback's)."""


@dataclass(frozen=True)
class WindowResult:
    """The text of one windowed decode and whether it passed the checks."""

    text: str
    avg_logprob: float
    compression_ratio: float

    @property
    def plausible(self) -> bool:
        """Not repetitive and not unsure (else decode again on the full window)."""
        return self.compression_ratio <= MAX_COMPRESSION and self.avg_logprob >= MIN_AVG_LOGPROB


def compression_ratio(text: str) -> float:
    """How well the text compresses: repetitive output compresses well."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


class WindowDecoder:
    """Greedy/beam decode of one utterance on a ``window_s`` encoder window."""

    def __init__(
        self, model: WhisperModel, *, window_s: float, language: str, beam_size: int
    ) -> None:
        self._model = model
        self._frames = int(window_s * model.frames_per_second)
        self._fit_samples = int((window_s - TAIL_MARGIN_S) * model.feature_extractor.sampling_rate)
        self._beam_size = beam_size
        self._tokenizer = Tokenizer(
            model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=language
        )
        self._suppress = list(get_suppressed_tokens(self._tokenizer, (-1,)) or ())
        self._max_length = model.max_length

    def fits(self, samples: int) -> bool:
        """Whether an utterance of ``samples`` (16 kHz) fits in the window."""
        return 0 < samples <= self._fit_samples

    def decode(
        self, audio: FloatAudio, prompt: str = "", abandoned: Callable[[], bool] = lambda: False
    ) -> WindowResult | None:
        """Transcribe ``audio`` (it must fit) with ``prompt`` as the previous text; None
        when ``abandoned()`` says, after the encoder, that nobody waits any more."""
        tok = self._tokenizer
        features = self._model.feature_extractor(audio)[:, : self._frames]
        if features.shape[1] < self._frames:
            features = np.pad(features, ((0, 0), (0, self._frames - features.shape[1])))
        encoded = self._model.model.encode(
            get_ctranslate2_storage(np.ascontiguousarray(features[np.newaxis]))
        )
        if abandoned():
            return None
        tokens: list[int] = []
        if prompt.strip():
            tokens = [
                tok.sot_prev,
                *tok.encode(" " + prompt.strip())[-(self._max_length // 2 - 1) :],
            ]
        tokens += [*tok.sot_sequence, tok.no_timestamps]
        result = self._model.model.generate(
            encoded,
            [tokens],
            beam_size=self._beam_size,
            max_length=self._max_length,
            return_scores=True,
            suppress_blank=True,
            suppress_tokens=self._suppress,
        )[0]
        ids = [t for t in result.sequences_ids[0] if t < tok.eot]
        text = tok.decode(ids).strip()
        # the score is the sum of log-probabilities over the length (length penalty 1)
        avg = float(result.scores[0]) * len(ids) / (len(ids) + 1) if ids else -math.inf
        return WindowResult(text, avg, compression_ratio(text))
