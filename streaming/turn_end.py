"""When is the user's turn over? The silence still needed, from the words said so far.

A fixed silence is either slow (every answer waits for it) or rude (a pause to think
mid-sentence is taken for the end). :class:`TurnEndPolicy` decides from the transcript
of the utterance so far: :class:`WordEndPolicy` (the default, no weights) looks at how
the words end; a model-based predictor (an LLM's end-of-turn probability) can take its
place behind the same interface.
"""

from __future__ import annotations

import re
from typing import Protocol

from streaming.config import EndOfTurnConfig

UNFINISHED_WORDS = frozenset(
    """
    and or but because if when while although than whether unless until nor
    to of at for with from about into onto between during without within across against
    toward towards per via
    the a an my your our their its every
    very like
    um uh uhm umm erm er hmm ah eh mm
    i we they he she i'm i'd i'll i've we're they're let's
    """.split()
)
"""Words a finished statement hardly ends on: conjunctions, prepositions that are not
also adverbs ("come in", "seen it before" end fine), articles and possessives, fillers
and subject pronouns. A question mark overrides them ("Where are you from?")."""

_WORD = re.compile(r"[a-z']+")
_FINAL_PUNCT = (".", "?", "!")


class TurnEndPolicy(Protocol):
    """Decides how much silence ends the user's turn, from what they said."""

    @property
    def guess_after_s(self) -> float:
        """Silence after which the words so far are transcribed (the guess)."""
        ...

    @property
    def longest_s(self) -> float:
        """The silence that ends the turn whatever was said."""
        ...

    def silence_needed(self, text: str | None) -> float:
        """Seconds of silence after the user's last speech that end the turn, given the
        transcript so far (``None``: not known yet, which waits for it)."""
        ...


class WordEndPolicy:
    """The default policy: how the transcript ends (punctuation and the last word)."""

    def __init__(self, config: EndOfTurnConfig) -> None:
        self._config = config

    @property
    def guess_after_s(self) -> float:
        """Silence after which the words so far are transcribed."""
        return self._config.guess_after_ms / 1000

    @property
    def longest_s(self) -> float:
        """The silence that ends the turn whatever was said."""
        return self._config.unfinished_ms / 1000

    def silence_needed(self, text: str | None) -> float:
        """``complete_ms`` after a finished sentence, ``unfinished_ms`` after words that
        stop mid-phrase (or while the words are unknown), ``unsure_ms`` otherwise."""
        c = self._config
        if text is None:
            return c.unfinished_ms / 1000
        return {"complete": c.complete_ms, "unfinished": c.unfinished_ms, "unsure": c.unsure_ms}[
            ending(text)
        ] / 1000


def ending(text: str) -> str:
    """How ``text`` ends: ``complete``, ``unfinished`` or ``unsure``.

    Unfinished: nothing said, a trailing ellipsis, dash or comma, or a last word from
    :data:`UNFINISHED_WORDS` (Whisper often writes "I want to go to." with a period).
    Complete: a question mark, or a sentence mark (. !) after any other word. Unsure:
    no mark at all.
    """
    stripped = text.strip()
    words = _WORD.findall(stripped.lower())
    if not words or stripped.endswith(("...", "…", "-", "—", ",")):
        return "unfinished"
    if stripped.endswith("?"):
        return "complete"
    if words[-1] in UNFINISHED_WORDS:
        return "unfinished"
    return "complete" if stripped.endswith(_FINAL_PUNCT) else "unsure"
