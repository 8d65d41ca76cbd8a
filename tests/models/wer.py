"""Word error rate for the tests: the benchmarks' helper (``benchmarks/wer.py``), shared."""

from __future__ import annotations

from benchmarks.wer import normalize, word_error_rate

__all__ = ["normalize", "word_error_rate"]
