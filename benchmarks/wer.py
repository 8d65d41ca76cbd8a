"""Word error rate on text normalized for case and punctuation (benchmarks and tests)."""

from __future__ import annotations

import re

import jiwer

_NOT_WORD = re.compile(r"[^a-z0-9' ]+")


def normalize(text: str) -> str:
    """Lower case, punctuation removed (apostrophes kept), hyphens as spaces."""
    text = text.lower().replace("-", " ")
    text = _NOT_WORD.sub(" ", text)
    return " ".join(text.split())


def word_error_rate(references: list[str], hypotheses: list[str]) -> float:
    """Overall WER of ``hypotheses`` against ``references`` after :func:`normalize`."""
    return float(jiwer.wer([normalize(r) for r in references], [normalize(h) for h in hypotheses]))
