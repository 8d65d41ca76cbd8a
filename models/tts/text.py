"""Cutting text (or an LLM's token stream) into speakable sentences and clauses."""

from __future__ import annotations

import re

ABBREVIATIONS = frozenset(
    {
        "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "etc", "e.g", "i.e",
        "approx", "no", "fig", "inc", "ltd", "co", "jan", "feb", "mar", "apr", "jun", "jul",
        "aug", "sep", "sept", "oct", "nov", "dec",
    }
)  # fmt: skip
"""Words whose trailing period does not end a sentence (lower case, no final period)."""

# A sentence end: terminators, closing quotes/brackets, then whitespace (or the end).
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s|$)")
_CLAUSE_END = re.compile(r"[,;:]+(?=\s|$)")
_NEWLINES = re.compile(r"\n\s*")
_INITIALS = re.compile(r"(?:[^\W\d_]\.)+[^\W\d_]")
_LIST_MARKER = re.compile(r"(?:^\s*|(?<=[.!?:])\s+)\(?\d{1,2}\.$")
"""A list number ending at a period: at the start, or after a sentence end."""
_WORDS = re.compile(r"\S+")
PHRASE_OPENERS = frozenset(
    {
        "and", "but", "or", "so", "because", "which", "that", "who", "when", "where",
        "while", "if", "of", "in", "on", "at", "for", "with", "from", "by", "about",
        "than", "as", "into", "after", "before", "since", "until",
    }
)  # fmt: skip
"""Words a phrase starts with: a first clause may end just before one (a natural break)."""


def _is_abbreviation(text: str, dot: int) -> bool:
    """True when the period at ``dot`` closes an abbreviation or an initial."""
    if text[dot] != ".":
        return False
    start = dot
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    word = text[start:dot].lstrip("\"'“‘([").lower()
    if not word:
        return False
    if word in ABBREVIATIONS:
        return True
    # an initial ("J. Smith") or dotted initials ("J.D. Salinger", "U.S. Navy")
    return (len(word) == 1 and word.isalpha()) or _INITIALS.fullmatch(word) is not None


class ClauseSplitter:
    """Splits a stream of text pieces into speakable clauses as soon as they are complete.

    Sentences end at ``. ! ?`` (or ``…``) followed by whitespace; a period does not end
    a sentence after common abbreviations and initials, or before a lower-case word or
    a digit. A clause also ends at ``, ; :`` followed by whitespace
    once it holds at least ``min_clause_chars`` characters, and at a line break. Text
    that runs past ``max_clause_chars`` with no such boundary is cut at its last space.
    A boundary at the very end of the buffered text waits for the next piece (it may
    be "3." of "3.5"); :meth:`flush` releases what remains. ``first_clause_chars``
    (default: ``min_clause_chars``) lets the first clause end sooner, so a reply
    starts speaking before its first long clause is complete; with
    ``first_phrase_words`` the first clause may also end at a phrase break, just before
    a conjunction or preposition (:data:`PHRASE_OPENERS`) that follows at least that
    many words ("Paris is the capital | of France."), so a one-sentence reply need not
    be complete before its first words are spoken. With ``eager_first`` the first
    clause ends at a boundary at the very end of the text received so far, without
    waiting for the next piece, when what precedes it is a word ("Hi!", "Sure,",
    "The capital is Paris." — not "3." of "3.5", "1," of "1,000" nor "Dr."): a reply's
    first words are spoken one token sooner.
    """

    def __init__(
        self,
        min_clause_chars: int = 40,
        max_clause_chars: int = 250,
        *,
        clauses: bool = True,
        first_clause_chars: int | None = None,
        first_phrase_words: int | None = None,
        eager_first: bool = False,
    ) -> None:
        if min_clause_chars < 1 or max_clause_chars < min_clause_chars:
            raise ValueError("need 1 <= min_clause_chars <= max_clause_chars")
        first = min_clause_chars if first_clause_chars is None else first_clause_chars
        if not 1 <= first <= max_clause_chars:
            raise ValueError("need 1 <= first_clause_chars <= max_clause_chars")
        if first_phrase_words is not None and first_phrase_words < 1:
            raise ValueError("need first_phrase_words >= 1")
        self._first_min = first
        self._phrase_words = first_phrase_words
        self._eager_first = eager_first
        self._first = True
        self._later_min = min_clause_chars
        self._min = first
        self._max = max_clause_chars
        self._clauses = clauses
        self._buf = ""

    @property
    def pending(self) -> str:
        """Text received but not returned yet."""
        return self._buf

    def push(self, piece: str) -> list[str]:
        """Add the next piece of text; return the clauses it completes (maybe none)."""
        self._buf += piece
        out: list[str] = []
        while (cut := self._next_cut()) is not None:
            clause = self._buf[:cut].strip()
            self._buf = self._buf[cut:]
            if clause:
                out.append(clause)
                self._min = self._later_min
                self._first = False
        return out

    def flush(self) -> list[str]:
        """End of the text: return the remaining clause, if any, and start afresh."""
        rest = self._buf.strip()
        self._buf = ""
        self._min = self._first_min
        self._first = True
        return [rest] if rest else []

    def reset(self) -> None:
        """Drop buffered text (e.g. when the reply is cancelled)."""
        self._buf = ""

    def _next_cut(self) -> int | None:
        """Index just past the first complete boundary in the buffer, or None."""
        buf = self._buf
        n = len(buf)
        best: int | None = None
        for m in _SENTENCE_END.finditer(buf):
            if m.end() >= n:  # nothing after it yet: wait for the next piece ...
                if self._eager_end(buf, m.start()):  # ... unless it ends a word
                    best = m.end()
                break
            if "." in m.group() and not any(c in m.group() for c in "!?…"):
                following = buf[m.end() :].lstrip()
                if not following:  # is the next word lower case? wait and see
                    break
                if following[0].islower() or following[0].isdigit():
                    continue
                if _is_abbreviation(buf, m.start()):
                    continue
                marker = _LIST_MARKER.search(buf, 0, m.end())
                if marker is not None:  # "1. Sleep early" is an item, not a sentence "1."
                    if buf[: marker.start()].strip():
                        best = marker.start()  # cut before an item that starts mid-text
                        break
                    continue
            best = m.end()
            break
        for m in _NEWLINES.finditer(buf):
            if best is not None and m.start() >= best:
                break
            if m.end() < n and buf[: m.start()].strip():
                best = m.start()
                break
        if self._clauses:
            for m in _CLAUSE_END.finditer(buf):
                if best is not None and m.end() >= best:
                    break
                if m.end() >= n and not self._eager_end(buf, m.start()):
                    break
                if len(buf[: m.end()].strip()) >= self._min:
                    best = m.end()
                    break
        if best is None and self._first and self._phrase_words is not None:
            best = self._phrase_break(buf)
        if best is None and n > self._max:
            space = buf.rfind(" ", 0, self._max)
            if space > 0 and buf[:space].strip():
                best = space
        return best

    def _eager_end(self, buf: str, at: int) -> bool:
        """Whether the first clause may end at the punctuation at ``at`` (the end of the
        text so far) without seeing what follows: it closes a plain word of two or more
        letters that is no abbreviation (never a number, an initial or "Dr.")."""
        if not (self._first and self._eager_first):
            return False
        start = at
        while start > 0 and buf[start - 1].isalpha():
            start -= 1
        word = buf[start:at]
        if len(word) < 2 or (
            start > 0 and not buf[start - 1].isspace() and buf[start - 1] not in "\"'“‘("
        ):
            return False
        return not (buf[at] == "." and word.lower() in ABBREVIATIONS)

    def _phrase_break(self, buf: str) -> int | None:
        """Start of the first complete phrase opener after enough words, or None."""
        assert self._phrase_words is not None
        for i, word in enumerate(_WORDS.finditer(buf)):
            if word.end() >= len(buf):  # the word may still grow ("of" → "often")
                return None
            if i < self._phrase_words or word.group().lower() not in PHRASE_OPENERS:
                continue
            if len(buf[: word.start()].strip()) >= self._min:
                return word.start()
        return None


def split_sentences(text: str) -> list[str]:
    """Split ``text`` into sentences (no clause splitting), stripped and non-empty."""
    splitter = ClauseSplitter(1, max(len(text), 1), clauses=False)
    return splitter.push(text) + splitter.flush()
