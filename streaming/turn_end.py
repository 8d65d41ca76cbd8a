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
    [
        "and",
        "or",
        "but",
        "because",
        "if",
        "when",
        "while",
        "although",
        "than",
        "whether",
        "unless",
        "until",
        "nor",
        "to",
        "of",
        "at",
        "for",
        "with",
        "from",
        "about",
        "into",
        "onto",
        "between",
        "during",
        "without",
        "within",
        "across",
        "against",
        "toward",
        "towards",
        "per",
        "via",
        "the",
        "a",
        "an",
        "my",
        "your",
        "our",
        "their",
        "its",
        "every",
        "very",
        "like",
        "um",
        "uh",
        "uhm",
        "umm",
        "erm",
        "er",
        "hmm",
        "ah",
        "eh",
        "mm",
        "i",
        "we",
        "they",
        "he",
        "she",
        "i'm",
        "i'd",
        "i'll",
        "i've",
        "we're",
        "they're",
        "let's",
    ]
)
"""Words a finished statement hardly ends on: conjunctions, prepositions that are not
also adverbs ("come in", "seen it before" end fine), articles and possessives, fillers
and subject pronouns. After one of them a question mark makes a statement's wait
("Where are you from?" and Whisper's "Can you tell me about?" look the same)."""

WH_WORDS = frozenset(["what", "which", "who", "whom", "whose", "where", "when", "why", "how"])
"""First words of a wh-question (it has asked once its verb is said: "What do you think?")."""

AUXILIARIES = frozenset(
    [
        "is",
        "are",
        "was",
        "were",
        "do",
        "does",
        "did",
        "can",
        "could",
        "would",
        "will",
        "should",
        "shall",
        "may",
        "might",
        "have",
        "has",
    ]
)
"""First words of a yes/no question."""

QUESTION_WORDS = WH_WORDS | AUXILIARIES
"""First words of a question: it is one even when Whisper ends it with a full stop."""

FRAME_VERBS = frozenset(
    [
        "tell",
        "show",
        "explain",
        "describe",
        "know",
        "remind",
        "teach",
        "ask",
        "say",
        "guess",
        "wonder",
        "recommend",
        "suggest",
        "imagine",
    ]
)
"""Verbs that introduce the question itself as their object: "Could you tell me | what
the capital is?", "Do you know | where…", "Can you explain | why…". A yes/no question
that stops on one has usually not asked anything yet; nor has any question that stops
on a verb of telling and "me"/"us" (:data:`OBJECT_FRAME_VERBS`)."""

FRAME_OBJECTS = frozenset(["me", "us"])
"""The listener-side objects between a frame verb and its question ("tell me | what…")..."""

OBJECT_FRAME_VERBS = frozenset(["tell", "show", "teach", "remind", "ask"])
"""...after these verbs of telling only ("Do you know me?" has asked already). "What
can you tell me?" waits a statement's silence too: the price of never answering
"Could you tell me | …" (which Whisper may write "What do you tell me?") at the pause."""

_WORD = re.compile(r"[a-z']+")


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
        """``question_ms`` after a question, ``unfinished_ms`` after words that stop
        mid-phrase (or while the words are unknown), ``statement_ms`` otherwise."""
        c = self._config
        if text is None:
            return c.unfinished_ms / 1000
        waits = {
            "question": c.question_ms,
            "statement": c.statement_ms,
            "unfinished": c.unfinished_ms,
        }
        return waits[ending(text)] / 1000


def ending(text: str) -> str:
    """How ``text`` ends: ``question``, ``unfinished`` or ``statement``.

    Question: a question mark, or a first word from :data:`QUESTION_WORDS` (Whisper
    often ends a question with a full stop), not after an unfinished word, and not one
    that stops on the verb that introduces what is asked ("Could you tell me?", "Do you
    know?": :data:`FRAME_VERBS`), which is a statement. Unfinished:
    nothing said, a trailing ellipsis, dash or comma, or a last word from
    :data:`UNFINISHED_WORDS` (Whisper often writes "I want to go to." with a period).
    Statement: anything else. A statement's full stop is weak evidence: Whisper
    completes what it hears ("I would like to go to" came out as "I would like to know
    too." on an espeak-ng voice), so it waits longer than a question.
    """
    stripped = text.strip()
    words = _WORD.findall(stripped.lower())
    if not words or stripped.endswith(("...", "…", "-", "—", ",")):
        return "unfinished"
    if words[-1] in UNFINISHED_WORDS:
        # "Where are you from?" is a question, but Whisper writes "Can you tell me
        # about?" for a pause after "about": neither fast nor the longest wait
        return "statement" if stripped.endswith("?") else "unfinished"
    if _ends_on_a_frame(words, yes_no=words[0] in AUXILIARIES):
        # "Could you tell me?" is what Whisper writes for a pause before "what…" (or
        # "What do you tell me?": it mishears the first word too): a statement's wait
        return "statement"
    if stripped.endswith("?"):
        return "question"
    return "question" if words[0] in QUESTION_WORDS else "statement"


def _ends_on_a_frame(words: list[str], *, yes_no: bool) -> bool:
    """Whether the words stop on a verb of telling and its "me"/"us" ("…tell me"), or,
    in a yes/no question, on a frame verb ("Do you know"): a wh-question that stops on
    its verb has asked already ("What do you think?")."""
    if words[-1] in FRAME_OBJECTS and len(words) > 1:
        return words[-2] in OBJECT_FRAME_VERBS
    return yes_no and words[-1] in FRAME_VERBS
