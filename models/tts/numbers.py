"""Numbers as English words, the way people say them ("3.5" → "three point five")."""

from __future__ import annotations

_ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
    "eighteen", "nineteen",
)  # fmt: skip
_TENS = (
    "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
)  # fmt: skip
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL_WORDS = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
    "nine": "ninth", "twelve": "twelfth",
}  # fmt: skip
MAX_CARDINAL = 10**15 - 1
"""Larger integers are read digit by digit."""


def _below_thousand(n: int) -> str:
    words: list[str] = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        words.append(f"{_ONES[hundreds]} hundred")
    if rest or not words:
        if rest < 20:
            words.append(_ONES[rest])
        else:
            tens, ones = divmod(rest, 10)
            words.append(_TENS[tens] + (f"-{_ONES[ones]}" if ones else ""))
    return " ".join(words)


def cardinal(n: int) -> str:
    """``n`` in words: 21 → "twenty-one", -5 → "minus five", 1200 → "one thousand two hundred"."""
    if n < 0:
        return "minus " + cardinal(-n)
    if n > MAX_CARDINAL:
        return digits(str(n))
    words: list[str] = []
    for size, name in _SCALES:
        if n >= size:
            count, n = divmod(n, size)
            words.append(f"{_below_thousand(count)} {name}")
    if n or not words:
        words.append(_below_thousand(n))
    return " ".join(words)


def ordinal(n: int) -> str:
    """``n`` as an ordinal: 1 → "first", 22 → "twenty-second", 100 → "one hundredth"."""
    head, _, last = cardinal(n).rpartition(" ")
    tens, dash, last = last.rpartition("-")
    if last in _ORDINAL_WORDS:
        last = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return (f"{head} " if head else "") + tens + dash + last


def digits(text: str) -> str:
    """Each digit of ``text`` as a word: "007" → "zero zero seven"."""
    return " ".join(_ONES[int(c)] for c in text if c.isdigit())


def year(n: int) -> str:
    """A year the way it is said: 1984 → "nineteen eighty-four", 2005 → "two thousand five"."""
    if not 1000 <= n <= 9999:
        return cardinal(n)
    high, low = divmod(n, 100)
    if low == 0 and high % 10 == 0:
        return cardinal(n)  # 2000 → "two thousand"
    if 2000 <= n < 2010:
        return cardinal(n)
    if low == 0:
        return f"{cardinal(high)} hundred"
    if low < 10:
        return f"{cardinal(high)} oh {_ONES[low]}"
    return f"{cardinal(high)} {cardinal(low)}"


def decimal(text: str) -> str:
    """A decimal written with digits: "3.50" → "three point five zero", "1,200" → "one thousand
    two hundred". Integers with a leading zero are read digit by digit ("007")."""
    whole, _, frac = text.replace(",", "").partition(".")
    if len(whole) > 1 and whole.startswith("0"):
        head = digits(whole)
    else:
        head = cardinal(int(whole)) if whole else "zero"
    if not frac:
        return head
    return f"{head} point {digits(frac)}"
