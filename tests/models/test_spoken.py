"""Spoken-text shaping on nasty LLM outputs (no models: fast)."""

from __future__ import annotations

import random
import re

import pytest

from models.tts import numbers
from models.tts.spoken import MarkdownLines, SpokenClauses, speakable, spoken_clause
from models.tts.text import ClauseSplitter

# What must never reach the TTS.
UNSPEAKABLE = re.compile(
    r"[*#`_|~<>\[\]{}\\]|https?://|www\.|\d|[\U0001F000-\U0001FAFF\u2600-\u27BF]"
    r"|(?:^|[.!?:]\s)\s*(?:[-•]|\d+[.)])\s"
)


def _stream(text: str, seed: int, live: bool = True) -> list[str]:
    """``text`` fed in random pieces of 1-6 characters, as an LLM streams it."""
    splitter = (
        ClauseSplitter(first_clause_chars=12, first_phrase_words=4) if live else ClauseSplitter()
    )
    shaper = SpokenClauses(splitter)
    rnd = random.Random(seed)
    out: list[str] = []
    i = 0
    while i < len(text):
        j = i + rnd.randint(1, 6)
        out += shaper.push(text[i:j])
        i = j
    return out + shaper.flush()


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        (
            "1. Make a bed with a good mattress. 2. Use pillows and blankets. 3. Keep it dark.",
            "Make a bed with a good mattress. Use pillows and blankets. Keep it dark.",
        ),
        (
            "Here are three tips:\n\n1. **Go to bed** at the same time\n2. Avoid *caffeine*\n"
            "3. Keep your room cool\n",
            "Here are three tips: Go to bed at the same time. Avoid caffeine. Keep your room cool.",
        ),
        ("- Paris\n- London\n* Rome\n• Oslo", "Paris. London. Rome. Oslo."),
        ("## Sleep better\nKeep a schedule.", "Sleep better. Keep a schedule."),
        ("> Be kind.\n\n---\nThat's it!", "Be kind. That's it!"),
        (
            "Sure! Here is the code:\n```python\nfor i in range(3):\n    print(i)\n```\n"
            "It prints three numbers.",
            "Sure! Here is the code: It prints three numbers.",
        ),
        ("Read [the guide](https://example.com/guide) first.", "Read the guide first."),
        ("See https://example.com/a?b=1 for details.", "See for details."),
        ("Go to www.example.org.", "Go to."),
        ("I love it! 😊🎉 ✨", "I love it!"),
        ("Thanks :) <3", "Thanks."),
        ("Call `print` to show it.", "Call print to show it."),
        ("Use len(items) to count.", "Use to count."),
        ("| City | Pop |\n|---|---|\n| Oslo | 7 |", "City, Pop. Oslo, seven."),
    ],
)
def test_markup_lists_code_links_emoji_are_not_spoken(raw: str, said: str) -> None:
    assert speakable(raw) == said
    for seed in range(5):  # the same however the stream is cut
        assert " ".join(_stream(raw, seed)) == said


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        ("The trail is 3.5 km long.", "The trail is three point five kilometres long."),
        ("It is 1 km away.", "It is one kilometre away."),
        ("Tickets cost $20.", "Tickets cost twenty dollars."),
        ("It costs $1.", "It costs one dollar."),
        ("It was $3.50.", "It was three dollars and fifty cents."),
        ("Only $0.99!", "Only ninety-nine cents!"),
        ("A $1.5 million house.", "A one point five million dollars house."),
        ("About €1,200 or £5.", "About one thousand two hundred euros or five pounds."),
        ("Save 50% today.", "Save fifty percent today."),
        ("Growth was 3.5%.", "Growth was three point five percent."),
        ("Meet at 3:30 p.m.", "Meet at three thirty p.m."),
        ("Wake at 7am.", "Wake at seven a.m."),
        ("Lunch at 12:00.", "Lunch at twelve o'clock."),
        ("At 10:05 PM sharp.", "At ten oh five p.m. sharp."),
        ("The 21st century.", "The twenty-first century."),
        ("My 2nd and 3rd tries.", "My second and third tries."),
        ("Built in 1889.", "Built in eighteen eighty-nine."),
        ("Since 2005, and in 2024.", "Since two thousand five, and in twenty twenty-four."),
        ("Music of the 1980s and 90s.", "Music of the nineteen eighties and nineties."),
        ("It has 1,234 pages.", "It has one thousand two hundred thirty-four pages."),
        ("It is -5 outside.", "It is minus five outside."),
        ("Water boils at 100°C.", "Water boils at one hundred degrees Celsius."),
        ("It's 72°F.", "It's seventy-two degrees Fahrenheit."),
        (
            "Drive 60 mph or 100 km/h.",
            "Drive sixty miles per hour or one hundred kilometres per hour.",
        ),
        ("Wait 5-10 minutes.", "Wait five to ten minutes."),
        ("Add 1/2 cup and 3/4 tsp.", "Add one half cup and three quarters tsp."),
        ("It is 2x faster.", "It is two times faster."),
        ("What is 2+2? 4.", "What is two plus two? Four."),
        ("4.", "Four."),
        ("I'm 25. That's young.", "I'm twenty-five. That's young."),
        ("Agent 007.", "Agent zero zero seven."),
        ("Pi is 3.14159.", "Pi is three point one four one five nine."),
        (
            "A 500 GB disk and 16 GB of RAM.",
            "A five hundred gigabytes disk and sixteen gigabytes of RAM.",
        ),
        ("He was #1.", "He was number one."),
        ("A 3D film on a 4K screen.", "A three D film on a four K screen."),
        ("Mix them 1:3.", "Mix them one to three."),
    ],
)
def test_numbers_units_money_times_are_said_in_words(raw: str, said: str) -> None:
    assert speakable(raw) == said


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        ("Dr. Smith will see you.", "Doctor Smith will see you."),
        ("Ask Mr. and Mrs. Jones.", "Ask Mister and Missus Jones."),
        ("Fruit, e.g. apples, is good.", "Fruit, for example apples, is good."),
        ("Eat fruit, i.e. apples.", "Eat fruit, that is apples."),
        ("Apples, pears, etc.", "Apples, pears, et cetera."),
        ("Cats vs. dogs.", "Cats versus dogs."),
        ("St. Louis is on Main St. today.", "Saint Louis is on Main Street today."),
        ("It is approx. 5 km.", "It is approximately five kilometres."),
        ("Salt & pepper.", "Salt and pepper."),
        ("Coffee w/ milk and/or sugar.", "Coffee with milk and or sugar."),
        ("I code in C++ and C#.", "I code in C plus plus and C sharp."),
    ],
)
def test_abbreviations_and_symbols_are_expanded(raw: str, said: str) -> None:
    assert speakable(raw) == said


def test_a_list_started_in_one_clause_goes_on_in_the_next() -> None:
    shaper = SpokenClauses(ClauseSplitter(first_clause_chars=12, first_phrase_words=4))
    got = shaper.push("Sure! 1. Sleep eight hours every night. ")
    got += shaper.push("2. Skip late coffee. 3. Dim the lights")
    got += shaper.flush()
    assert got == [
        "Sure!",
        "Sleep eight hours every night.",
        "Skip late coffee.",
        "Dim the lights.",
    ]


def test_numbers_that_only_look_like_list_markers_are_kept() -> None:
    # "4." after a question is an answer, not the fourth item of a list.
    assert speakable("How many legs has a cat? 4. Unless it is hurt.") == (
        "How many legs has a cat? Four. Unless it is hurt."
    )
    assert speakable("The score: 3. Great game!") == "The score: three. Great game!"


def test_a_code_block_split_across_pieces_is_dropped_until_it_closes() -> None:
    lines = MarkdownLines()
    out = lines.push("Try this:\n`")
    out += lines.push("``py")
    assert lines.in_code
    out += lines.push("thon\nx = 1\n")
    out += lines.push("print(x)\n``")
    out += lines.push("`\nDone")
    out += lines.flush()
    assert not lines.in_code
    assert out == "Try this:\nDone."


def test_an_unclosed_code_block_says_nothing_more() -> None:
    assert _stream("Here you go:\n```js\nconsole.log('hi');\n", 0) == ["Here you go:"]


def test_clauses_with_nothing_to_say_are_left_out() -> None:
    assert _stream("😊\n\nhttps://example.com\n", 1) == []
    assert spoken_clause("**") == ""
    assert spoken_clause("1.") == "one."


def test_a_reset_forgets_a_half_read_reply() -> None:
    shaper = SpokenClauses()
    shaper.push("```\nsecret code")
    shaper.reset()
    assert shaper.push("Hello there. ") + shaper.flush() == ["Hello there."]


NASTY = [
    "**Sure!** Here are 5 tips:\n\n1. **Sleep** 7-9 hrs 😴\n2. Avoid screens (blue light!)\n"
    "3. Visit https://sleep.org\n4. Try `melatonin`\n5. Exercise ~30 min/day 💪",
    "### Answer\n> The capital of France is **Paris** 🇫🇷.\n\n---\n*Hope this helps!*",
    "```\ncode only\n```",
    "Step 1: Preheat to 180°C. Step 2: Bake 25-30 mins. Enjoy! 🍰 #baking",
    "Costs: $5, $10.99 and 15% tip; see [menu](http://x.y/z) or email a@b.co.",
    "- [ ] task one\n- [x] task two\n  - nested 3.5 km\n",
    "Roses are red,\nviolets are blue,\n1 + 1 = 2,\nand I love you. ❤️",
]


@pytest.mark.parametrize("raw", NASTY)
def test_nothing_unspeakable_reaches_the_voice(raw: str) -> None:
    for seed in range(4):
        for clause in _stream(raw, seed) + _stream(raw, seed, live=False):
            assert clause.strip() == clause and clause
            assert not UNSPEAKABLE.search(clause), (raw, clause)


def test_caption_text_is_the_spoken_text_however_the_stream_is_cut() -> None:
    raw = NASTY[0]
    runs = {" ".join(_stream(raw, seed)) for seed in range(8)}
    assert len(runs) == 1
    assert runs.pop() == (
        "Sure! Here are five tips: Sleep seven to nine hours. Avoid screens (blue light!). "
        "Visit. Try melatonin. Exercise about thirty minutes per day."
    )


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "zero"),
        (13, "thirteen"),
        (40, "forty"),
        (99, "ninety-nine"),
        (101, "one hundred one"),
        (1_000_001, "one million one"),
        (2_500_000_000, "two billion five hundred million"),
    ],
)
def test_cardinals(n: int, words: str) -> None:
    assert numbers.cardinal(n) == words


@pytest.mark.parametrize(
    ("n", "words"),
    [(1, "first"), (2, "second"), (3, "third"), (5, "fifth"), (12, "twelfth"), (20, "twentieth"),
     (22, "twenty-second"), (100, "one hundredth"), (101, "one hundred first")],
)  # fmt: skip
def test_ordinals(n: int, words: str) -> None:
    assert numbers.ordinal(n) == words


@pytest.mark.parametrize(
    ("n", "words"),
    [(1066, "ten sixty-six"), (1900, "nineteen hundred"), (1905, "nineteen oh five"),
     (2000, "two thousand"), (2009, "two thousand nine"), (2024, "twenty twenty-four")],
)  # fmt: skip
def test_years(n: int, words: str) -> None:
    assert numbers.year(n) == words


def test_a_splitter_keeps_a_list_number_with_its_item() -> None:
    splitter = ClauseSplitter(1, 200, clauses=False)
    got = splitter.push("Tips: 1. Sleep well. 2. Eat well. ") + splitter.flush()
    assert got == ["Tips:", "1. Sleep well.", "2. Eat well."]


def test_dotted_initials_do_not_end_a_sentence() -> None:
    splitter = ClauseSplitter(1, 200, clauses=False)
    got = splitter.push("Read J.D. Salinger. It is good. ") + splitter.flush()
    assert got == ["Read J.D. Salinger.", "It is good."]


def test_an_abbreviation_at_the_end_keeps_one_full_stop() -> None:
    assert speakable("Bye! See **you** at 5pm 👋") == "Bye! See you at five p.m."
    assert speakable("Wait... then go.") == "Wait... then go."
