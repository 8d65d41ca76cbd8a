"""The prompts of the reply eval and the automatic checks of each reply (no models).

A reply is checked twice: the raw model text (did the model itself write for speech?)
and the spoken text after :mod:`models.tts.spoken` (what the avatar actually says).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from models.tts.text import split_sentences

MAX_SENTENCES = 3
MAX_WORDS = 45
LONG_MAX_SENTENCES = 10
LONG_MAX_WORDS = 120
"""Limits for prompts that ask for more (a poem, a story, a list of steps)."""


@dataclass(frozen=True)
class Prompt:
    """One typed prompt: ``keywords`` (any one of them, case-insensitive, whole words)
    make it a fact prompt; ``history`` are earlier user turns, answered by the model first."""

    kind: str
    text: str
    keywords: tuple[str, ...] = ()
    long_ok: bool = False
    history: tuple[str, ...] = ()


PROMPTS: tuple[Prompt, ...] = (
    # greetings
    Prompt("greeting", "Hi!"),
    Prompt("greeting", "Good morning, how are you?"),
    Prompt("greeting", "Hello, nice to meet you."),
    Prompt("greeting", "Hey, what's up?"),
    # who the avatar is
    Prompt("persona", "What's your name?", ("nova",)),
    Prompt("persona", "Are you a robot?"),
    Prompt("persona", "Who made you?"),
    # small talk
    Prompt("small talk", "What do you like to do for fun?"),
    Prompt("small talk", "It's raining again today."),
    Prompt("small talk", "I just got back from a run."),
    Prompt("small talk", "Do you like music?"),
    Prompt("small talk", "What's your favourite season?"),
    # simple facts with known answers
    Prompt("fact", "Which planet is closest to the sun?", ("mercury",)),
    Prompt("fact", "What is the capital of France?", ("paris",)),
    Prompt("fact", "How do I say thank you in Spanish?", ("gracias",)),
    Prompt("fact", "How many legs does a spider have?", ("eight", "8")),
    Prompt("fact", "What is the largest ocean on Earth?", ("pacific",)),
    Prompt("fact", "Who wrote Romeo and Juliet?", ("shakespeare",)),
    Prompt("fact", "At what temperature does water boil in Celsius?", ("100", "hundred")),
    Prompt("fact", "How many days are in a leap year?", ("366", "sixty-six", "sixty six")),
    Prompt("fact", "What is the chemical symbol for gold?", ("au",)),
    Prompt("fact", "What colour do you get when you mix blue and yellow?", ("green",)),
    Prompt("fact", "What is the capital of Japan?", ("tokyo",)),
    Prompt("fact", "How many continents are there?", ("seven", "7")),
    Prompt("fact", "What is the tallest mountain in the world?", ("everest",)),
    Prompt("fact", "What gas do plants take in from the air?", ("carbon dioxide", "co2")),
    Prompt("fact", "What is seven times eight?", ("56", "fifty-six", "fifty six")),
    Prompt("fact", "In which country are the pyramids of Giza?", ("egypt",)),
    # advice
    Prompt("advice", "Could you recommend a book for a long flight?"),
    Prompt("advice", "How can I sleep better?"),
    Prompt("advice", "Any tips for a job interview?"),
    Prompt("advice", "What should I cook for dinner tonight?"),
    # requests for lists
    Prompt("list", "Give me three tips for sleeping better."),
    Prompt("list", "List five fruits."),
    Prompt("list", "What are the steps to make a cup of tea?", long_ok=True),
    Prompt("list", "Name three famous painters."),
    # poems and stories
    Prompt("poem", "Write a short poem about the sea.", long_ok=True),
    Prompt("poem", "Tell me a very short story about a cat.", long_ok=True),
    Prompt("poem", "Can you write a haiku about autumn?", long_ok=True),
    # emotional remarks
    Prompt("emotional", "I'm feeling really lonely today."),
    Prompt("emotional", "I just got a new job!"),
    Prompt("emotional", "My dog died last week."),
    Prompt("emotional", "I'm so nervous about my exam tomorrow."),
    # follow-ups that need the history
    Prompt("follow-up", "What's my name?", ("priya",), history=("Hi, my name is Priya.",)),
    Prompt(
        "follow-up",
        "What language do people speak there?",
        ("japanese",),
        history=("What is the capital of Japan?",),
    ),
    Prompt("follow-up", "What's my cat called?", ("milo",), history=("I have a cat called Milo.",)),
    Prompt(
        "follow-up",
        "What is its capital city?",
        ("rome",),
        history=("Let's talk about Italy.",),
    ),
)

_EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\ufe0f]")
_PROBLEMS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "markdown",
        re.compile(r"\*\*|__|~~|^\s*#{1,6}\s|^\s*>\s|\[[^\]]*\]\([^)]*\)|\|\s*-{3}", re.M),
    ),
    (
        "list numbering",
        re.compile(r"^\s*(?:\d{1,2}[.)]|[-*•])\s|(?:^|[.!?:]\s+)\d{1,2}[.)]\s+[A-Z]", re.M),
    ),
    ("emoji", _EMOJI),
    ("url", re.compile(r"https?://|www\.\w", re.I)),
    ("code", re.compile(r"`|\b[A-Za-z_]\w*\([^()]*\)(?=[\s;.,]|$)|;\s*$|\{\s*$", re.M)),
)
_PERSONA_BREAK = re.compile(
    r"\bas an ai\b|\blanguage model\b|\bi(?:'m| am) (?:just )?(?:an? )?(?:ai|artificial|"
    r"virtual assistant|chatbot|computer program|bot)\b|\ban ai\b|\bqwen\b|\balibaba\b|"
    r"\bopenai\b|\banthropic\b",
    re.I,
)


@dataclass
class Check:
    """The verdict on one reply."""

    problems: list[str] = field(default_factory=list)
    sentences: int = 0
    words: int = 0

    @property
    def ok(self) -> bool:
        """Speakable: no problem at all."""
        return not self.problems


def check_speakable(text: str, long_ok: bool = False) -> Check:
    """Markup, list numbering, emoji, URLs, code and length problems of ``text``."""
    check = Check()
    for name, pattern in _PROBLEMS:
        if pattern.search(text):
            check.problems.append(name)
    check.sentences = len(split_sentences(" ".join(text.split()))) if text.strip() else 0
    check.words = len(text.split())
    max_s, max_w = (LONG_MAX_SENTENCES, LONG_MAX_WORDS) if long_ok else (MAX_SENTENCES, MAX_WORDS)
    if check.sentences > max_s:
        check.problems.append(f"{check.sentences} sentences")
    if check.words > max_w:
        check.problems.append(f"{check.words} words")
    if not text.strip():
        check.problems.append("empty")
    return check


def facts_right(prompt: Prompt, *texts: str) -> bool | None:
    """Whether any expected keyword is in any of ``texts``; None for a prompt without facts."""
    if not prompt.keywords:
        return None
    joined = " ".join(texts).lower()
    return any(re.search(rf"(?<!\w){re.escape(k)}(?!\w)", joined) for k in prompt.keywords)


def in_persona(text: str) -> bool:
    """No "As an AI", "language model", "I'm a chatbot", or the model's maker's name."""
    return not _PERSONA_BREAK.search(text)
