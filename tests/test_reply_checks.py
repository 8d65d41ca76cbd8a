"""The reply eval's automatic checks (benchmarks/reply_checks.py), without models."""

from __future__ import annotations

import pytest

from benchmarks.reply_checks import PROMPTS, Prompt, check_speakable, facts_right, in_persona


def test_the_eval_has_every_kind_of_prompt() -> None:
    kinds = {p.kind for p in PROMPTS}
    assert len(PROMPTS) >= 40
    assert {"greeting", "small talk", "fact", "advice", "list", "poem", "emotional"} <= kinds
    assert any(p.history for p in PROMPTS)
    assert sum(bool(p.keywords) for p in PROMPTS) >= 15


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("1. Make a bed. 2. Use pillows.", "list numbering"),
        ("Tips:\n- sleep\n- eat", "list numbering"),
        ("This is **important**.", "markdown"),
        ("## Title\nText.", "markdown"),
        ("See [docs](http://a.b).", "markdown"),
        ("Visit https://example.com now.", "url"),
        ("Great job! 🎉", "emoji"),
        ("Run `ls` first.", "code"),
        ("Call print(x) to see it.", "code"),
        ("One. Two. Three. Four.", "4 sentences"),
        (" ".join(["word"] * 46) + ".", "46 words"),
    ],
)
def test_unspeakable_replies_are_caught(text: str, problem: str) -> None:
    assert problem in check_speakable(text).problems


def test_a_spoken_reply_passes_and_long_ones_pass_when_asked_for() -> None:
    assert check_speakable("Paris is the capital of France. It is lovely in spring!").ok
    poem = " ".join(["The sea is wide and blue."] * 6)
    assert not check_speakable(poem).ok
    assert check_speakable(poem, long_ok=True).ok


def test_facts_and_persona() -> None:
    spider = Prompt("fact", "How many legs?", ("eight", "8"))
    assert facts_right(spider, "A spider has 8 legs.")
    assert facts_right(spider, "", "A spider has eight legs.")
    assert not facts_right(spider, "A spider has eighty legs.")
    assert facts_right(Prompt("fact", "gold?", ("au",)), "Its symbol is Au.")
    assert facts_right(Prompt("greeting", "Hi!"), "Hello!") is None
    assert in_persona("I'm Nova, nice to meet you.")
    broken_ones = ("As an AI, I have no feelings.", "I am a language model.", "I'm an AI.")
    for broken in (*broken_ones, "I'm Nova, an AI created by Anthropic."):
        assert not in_persona(broken)
    assert not in_persona("I was made by Alibaba Cloud.")
