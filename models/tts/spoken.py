"""Spoken-text shaping: whatever an LLM writes, only what a person would say aloud.

Between the LLM and the TTS, a reply passes three stages:

1. :class:`MarkdownLines` works on the raw stream, line by line: fenced code blocks
   are dropped whole, list markers (``1.``, ``-``, ``*``, ``•``), heading ``#``\\ s and
   quote ``>`` at the start of a line go, and a line that ends without punctuation
   ends a sentence (a list item, a heading).
2. :class:`~models.tts.text.ClauseSplitter` cuts the running text into clauses.
3. :func:`spoken_clause` rewrites each clause: markdown emphasis, links, URLs, inline
   code and emoji go; numbers, units, currencies, percentages, times, ordinals and
   common abbreviations become the words people say ("3.5 km" → "three point five
   kilometres", "Dr." → "Doctor", "$20" → "twenty dollars").

:class:`SpokenClauses` chains the three with the same ``push``/``flush`` interface as
the splitter, so the text shown as a caption is exactly the text that is spoken.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from models.tts import numbers
from models.tts.text import ClauseSplitter

# --- stage 1: lines ------------------------------------------------------------------

_FENCE = re.compile(r"\s*(```|~~~)")
_MAYBE_FENCE = re.compile(r"\s*(`{1,2}|~{1,2})?")
_MARKER = re.compile(r"\s*(?:\d{1,2}[.)]|[-*+•·▪‣◦●]|#{1,6}|>+)\s")
_MAYBE_MARKER = re.compile(r"\s*(?:\d{1,2}[.)]?|[-*+•·▪‣◦●]|#{1,6}|>+)?")
_LINE_END_OK = frozenset(".!?…:;,")
_TRAILING_MARKUP = "*_`~\"'”’ \t"


class MarkdownLines:
    """Streaming markdown-to-running-text, line by line.

    :meth:`push` takes the next piece of the LLM's text and returns the text that is
    ready (the start of a line is held back until it is clear whether it is a list
    marker or a code fence); :meth:`flush` returns the rest at the end of the reply.
    State carries across pieces: a code block opened in one piece is dropped until
    its closing fence, however many pieces later.
    """

    def __init__(self) -> None:
        self._in_code = False
        self._head = ""  # the undecided start of the current line
        self._decided = False
        self._drop_line = False
        self._last = ""  # the last visible character written on this line
        self.next_item = 1
        """The list number expected next (after a line "2. ..." it is 3)."""

    @property
    def in_code(self) -> bool:
        """Whether the stream is inside a fenced code block."""
        return self._in_code

    def reset(self) -> None:
        """Forget everything (a new reply)."""
        self._in_code = False
        self._new_line()
        self.next_item = 1

    def _new_line(self) -> None:
        self._head, self._decided, self._drop_line, self._last = "", False, False, ""

    def push(self, piece: str) -> str:
        """Add a piece; return the running text it makes ready (maybe empty)."""
        out: list[str] = []
        for line, newline in _lines_of(piece):
            if line:
                out.append(self._text(line))
            if newline:
                out.append(self._end_line())
        return "".join(out)

    def flush(self) -> str:
        """The end of the reply: return what is held back (and a full stop if the last
        line has none). The list counter stays until :meth:`reset`."""
        text = "" if self._decided else self._decide(final=True)
        end = "." if self._last and self._last not in _LINE_END_OK else ""
        self._in_code = False
        self._new_line()
        return text + end

    def _text(self, text: str) -> str:
        if self._decided:
            return self._visible(text)
        self._head += text
        return self._decide(final=False)

    def _decide(self, *, final: bool) -> str:
        """Classify the held-back start of a line once it is unambiguous."""
        head = self._head
        if _FENCE.match(head):
            self._in_code = not self._in_code
            self._decided, self._drop_line = True, True
            return ""
        if not final and _MAYBE_FENCE.fullmatch(head):
            return ""  # "`" may become "```"
        if self._in_code:
            self._decided, self._drop_line = True, True
            return ""
        marker = _MARKER.match(head)
        if marker is None and not final and _MAYBE_MARKER.fullmatch(head):
            return ""  # "1" may become "1. ", "#" may become "## "
        if final and marker is not None and not head[marker.end() :].strip():
            marker = None  # a line that is only "4." is an answer, not a list
        self._decided = True
        number = re.match(r"\s*(\d+)", marker.group()) if marker else None
        if number:
            self.next_item = int(number.group(1)) + 1
        rest = head[marker.end() :] if marker else head
        return self._visible(rest.lstrip() if marker else rest)

    def _visible(self, text: str) -> str:
        if self._drop_line:
            return ""
        stripped = text.rstrip(_TRAILING_MARKUP)
        if stripped:
            self._last = stripped[-1]
        return text

    def _end_line(self) -> str:
        """A line break: end the sentence if the line did not, then start a new line."""
        text = "" if self._decided else self._decide(final=True)
        dropped = self._drop_line
        end = "." if self._last and self._last not in _LINE_END_OK else ""
        self._new_line()
        return "" if dropped else f"{text}{end}\n"


def _lines_of(piece: str) -> list[tuple[str, bool]]:
    """``piece`` as (text, ends with a newline) parts."""
    parts = piece.split("\n")
    return [(p, i < len(parts) - 1) for i, p in enumerate(parts)]


# --- stage 3: one clause ---------------------------------------------------------------

Sub = tuple[re.Pattern[str], "str | Callable[[re.Match[str]], str]"]

_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_SCALE = {
    "k": "thousand", "K": "thousand", "thousand": "thousand", "m": "million",
    "M": "million", "mn": "million", "million": "million", "b": "billion", "B": "billion",
    "bn": "billion", "billion": "billion", "t": "trillion", "T": "trillion",
    "trillion": "trillion",
}  # fmt: skip
_CURRENCY = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "€": ("euro", "euros", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "¥": ("yen", "yen", "", ""),
    "₹": ("rupee", "rupees", "paisa", "paise"),
}
_CURRENCY_CODES = {
    "USD": "US dollars", "EUR": "euros", "GBP": "pounds", "JPY": "yen", "INR": "rupees",
    "CAD": "Canadian dollars", "AUD": "Australian dollars",
}  # fmt: skip
_UNITS: dict[str, tuple[str, str]] = {
    "km/h": ("kilometre per hour", "kilometres per hour"),
    "kph": ("kilometre per hour", "kilometres per hour"),
    "mph": ("mile per hour", "miles per hour"),
    "m/s": ("metre per second", "metres per second"),
    "km²": ("square kilometre", "square kilometres"),
    "m²": ("square metre", "square metres"),
    "sq ft": ("square foot", "square feet"),
    "km": ("kilometre", "kilometres"),
    "cm": ("centimetre", "centimetres"),
    "mm": ("millimetre", "millimetres"),
    "m": ("metre", "metres"),
    "mi": ("mile", "miles"),
    "ft": ("foot", "feet"),
    "yd": ("yard", "yards"),
    "kg": ("kilogram", "kilograms"),
    "mg": ("milligram", "milligrams"),
    "g": ("gram", "grams"),
    "lb": ("pound", "pounds"),
    "lbs": ("pound", "pounds"),
    "oz": ("ounce", "ounces"),
    "ml": ("millilitre", "millilitres"),
    "mL": ("millilitre", "millilitres"),
    "l": ("litre", "litres"),
    "L": ("litre", "litres"),
    "kcal": ("kilocalorie", "kilocalories"),
    "cal": ("calorie", "calories"),
    "KB": ("kilobyte", "kilobytes"),
    "MB": ("megabyte", "megabytes"),
    "GB": ("gigabyte", "gigabytes"),
    "TB": ("terabyte", "terabytes"),
    "Hz": ("hertz", "hertz"),
    "kHz": ("kilohertz", "kilohertz"),
    "MHz": ("megahertz", "megahertz"),
    "GHz": ("gigahertz", "gigahertz"),
    "kW": ("kilowatt", "kilowatts"),
    "kWh": ("kilowatt hour", "kilowatt hours"),
    "W": ("watt", "watts"),
    "V": ("volt", "volts"),
    "mAh": ("milliamp hour", "milliamp hours"),
    "ms": ("millisecond", "milliseconds"),
    "sec": ("second", "seconds"),
    "secs": ("second", "seconds"),
    "min": ("minute", "minutes"),
    "mins": ("minute", "minutes"),
    "hr": ("hour", "hours"),
    "hrs": ("hour", "hours"),
    "h": ("hour", "hours"),
    "yr": ("year", "years"),
    "yrs": ("year", "years"),
    "°C": ("degree Celsius", "degrees Celsius"),
    "°F": ("degree Fahrenheit", "degrees Fahrenheit"),
    "ºC": ("degree Celsius", "degrees Celsius"),
    "ºF": ("degree Fahrenheit", "degrees Fahrenheit"),
    "°": ("degree", "degrees"),
    "x": ("times", "times"),
    **{code: (name, name) for code, name in _CURRENCY_CODES.items()},
}
_UNIT_RE = "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True))
_FRACTIONS = {2: ("half", "halves"), 4: ("quarter", "quarters")}
_YEAR_CUES = frozenset(
    {
        "in", "since", "by", "from", "until", "till", "of", "year", "before", "after",
        "around", "circa", "during", "born", "january", "february", "march", "april", "may",
        "june", "july", "august", "september", "october", "november", "december", "early",
        "late", "mid",
    }
)  # fmt: skip
_ABBREVIATIONS: tuple[tuple[str, str], ...] = (
    (r"\be\.\s?g\.?(?=[\s,;:]|$)", "for example"),
    (r"\bi\.\s?e\.?(?=[\s,;:]|$)", "that is"),
    (r"\betc\.?(?=[\s,;:)]|$)", "et cetera"),
    (r"\ba\.k\.a\.?|\baka\b", "also known as"),
    (r"\bvs\.?(?=\s)", "versus"),
    (r"\bapprox\.?(?=\s)", "approximately"),
    (r"\bincl\.?(?=\s)", "including"),
    (r"\besp\.(?=\s)", "especially"),
    (r"\bDr\.?(?=\s|$)", "Doctor"),
    (r"\bMrs\.?(?=\s)", "Missus"),
    (r"\bMr\.?(?=\s)", "Mister"),
    (r"\bMs\.(?=\s)", "Miz"),
    (r"\bProf\.(?=\s)", "Professor"),
    (r"\bJr\.?(?=[\s,]|$)", "Junior"),
    (r"\bSr\.(?=[\s,]|$)", "Senior"),
    (r"\bSt\.(?=\s+[A-Z])", "Saint"),
    (r"\bSt\.(?=[\s,]|$)", "Street"),
    (r"\bMt\.(?=\s)", "Mount"),
    (r"\bAve\.(?=[\s,]|$)", "Avenue"),
    (r"\b[Nn]o\.\s?(?=\d)", "number "),
    (r"(?<!\w)w/o(?=\s)", "without"),
    (r"\band/or\b", "and or"),
    (r"\b([CF])\+\+", r"\1 plus plus"),
    (r"\b([CF])#(?!\w)", r"\1 sharp"),
    (r"(?<!\w)w/(?=\s)", "with"),
)
_EMOJI = re.compile(
    "[\U0001f000-\U0001faff\u2600-\u27bf\u2300-\u23ff\u2b00-\u2bff\u2190-\u21ff"
    "\ufe0f\ufe0e\u200d\u20e3\U000e0020-\U000e007f\u00a9\u00ae\u2122]"
)
_EMOTICON = re.compile(
    r"(?<!\S)(?:[:;=][-']?[)(DPpOo3|\]\[*/\\]+|<3+|\^_*\^|[xX]D+)(?=\s|$|[.,!?])"
)
_URL = re.compile(
    r"(?:https?://|ftp://|www\.)[^\s<>()\[\]]*[^\s<>()\[\].,;:!?'\"]|<https?://[^>]*>"
)
_EMAIL = re.compile(r"\b([\w.+-]+)@([\w-]+(?:\.[\w-]+)+)\b")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_CODE_SPAN = re.compile(r"`+([^`]*)`+")
_CALL = re.compile(r"\b[A-Za-z_][\w.]*\([^()\s]*\)")
_WORDLIKE = re.compile(r"[\w .,'-]*")


def _code_span(m: re.Match[str]) -> str:
    inner = m.group(1).strip()
    return inner if _WORDLIKE.fullmatch(inner) and len(inner) <= 40 else ""


def _money(m: re.Match[str]) -> str:
    one, many, sub_one, sub_many = _CURRENCY[m.group("cur")]
    amount, scale = m.group("amount").replace(",", ""), m.group("scale")
    if scale:
        return f"{numbers.decimal(amount)} {_SCALE[scale]} {many}"
    whole, _, frac = amount.partition(".")
    units = int(whole or "0")
    unit_word = one if units == 1 else many
    if len(frac) == 2 and sub_one:
        cents = int(frac)
        cents_words = f"{numbers.cardinal(cents)} {sub_one if cents == 1 else sub_many}"
        if units == 0:
            return cents_words
        if cents == 0:
            return f"{numbers.cardinal(units)} {unit_word}"
        return f"{numbers.cardinal(units)} {unit_word} and {cents_words}"
    if frac:
        return f"{numbers.decimal(amount)} {many}"
    return f"{numbers.cardinal(units)} {unit_word}"


def _time(m: re.Match[str]) -> str:
    hour, minute = int(m.group("h")), int(m.group("m"))
    ampm = m.group("ampm")
    suffix = f" {ampm[0].lower()}.m." if ampm else ""
    if minute == 0:
        said = f"{numbers.cardinal(hour)} o'clock" if not suffix else numbers.cardinal(hour)
    elif minute < 10:
        said = f"{numbers.cardinal(hour)} oh {numbers.cardinal(minute)}"
    else:
        said = f"{numbers.cardinal(hour)} {numbers.cardinal(minute)}"
    return said + suffix


def _hour_ampm(m: re.Match[str]) -> str:
    return f"{numbers.cardinal(int(m.group('h')))} {m.group('ampm')[0].lower()}.m."


def _unit(m: re.Match[str]) -> str:
    amount = m.group("n").replace(",", "")
    one, many = _UNITS[m.group("unit")]
    if m.group("unit") == "x":
        return f"{numbers.decimal(amount)} times"
    said = f"{numbers.decimal(amount)} {one if amount == '1' else many}"
    per = m.group("per")
    if per:
        said += f" per {_UNITS[per][0] if per in _UNITS else per}"
    return said


def _fraction(m: re.Match[str]) -> str:
    top, bottom = int(m.group(1)), int(m.group(2))
    one, many = _FRACTIONS.get(bottom, (numbers.ordinal(bottom), numbers.ordinal(bottom) + "s"))
    return f"{numbers.cardinal(top)} {one if top == 1 else many}"


def _decade(m: re.Match[str]) -> str:
    digits = m.group(1)
    said = numbers.year(int(digits)) if len(digits) == 4 else numbers.cardinal(int(digits))
    head, _, last = said.rpartition(" ")
    tens, dash, last = last.rpartition("-")
    last = last[:-1] + "ies" if last.endswith("y") else last + "s"
    return (f"{head} " if head else "") + tens + dash + last


def _range(m: re.Match[str]) -> str:
    low, high = m.group(1), m.group(2)
    if re.fullmatch(r"1\d{3}|20\d{2}", low) and re.fullmatch(r"1\d{3}|20\d{2}", high):
        return f"{numbers.year(int(low))} to {numbers.year(int(high))}"
    return f"{low} to {high}"  # the numbers (and a unit after them) are said later


def _number(text: str, before: str) -> str:
    """A number token; four-digit years after a cue word ("in 1984") are said as years."""
    if re.fullmatch(r"1\d{3}|20\d{2}", text):
        prev = re.findall(r"[A-Za-z]+", before[-20:])
        if prev and prev[-1].lower() in _YEAR_CUES:
            return numbers.year(int(text))
    if len(text.replace(",", "").split(".")[0]) > 15:
        return numbers.digits(text)
    return numbers.decimal(text)


def _plain_number(m: re.Match[str]) -> str:
    sign = "minus " if m.group("neg") else ""
    gap = " " if m.string[m.end() : m.end() + 1].isalpha() else ""  # "3D" → "three D"
    return sign + _number(m.group("n"), m.string[: m.start()]) + gap


def _year_era(m: re.Match[str]) -> str:
    return f"{numbers.year(int(m.group(1)))} {m.group(2)}"


_SUBS: tuple[Sub, ...] = (
    # markup, code, links, URLs, emoji
    (_CODE_SPAN, _code_span),
    (re.compile(r"`+"), ""),
    (_LINK, r"\1"),
    (_URL, ""),
    (_EMAIL, lambda m: f"{m.group(1)} at {m.group(2).replace('.', ' dot ')}"),
    (_CALL, ""),
    (re.compile(r"\*\*|__|~~"), ""),
    (re.compile(r"(?<![\w*])\*(?=\S)|(?<=\S)\*(?![\w*])"), ""),
    (re.compile(r"(?<![\w_])_+(?=\S)|(?<=\S)_+(?![\w_])"), ""),
    (re.compile(r"(?<=[A-Za-z])_(?=[A-Za-z])"), " "),
    (re.compile(r"^\s*(?:#{1,6}\s+|>+\s*)"), ""),
    (re.compile(r"\[[ xX]\]\s*"), ""),
    (re.compile(r"(?:^|(?<=\s))[-*_=]{3,}(?=\s|$)"), ""),
    (re.compile(r"\s*\|\s*"), ", "),
    (re.compile(r"[→⇒]|->|=>"), " to "),
    (_EMOTICON, ""),
    (_EMOJI, ""),
    # bullets left inside a clause ("Tips: - sleep early"); numbers: SpokenClauses
    (re.compile(r"(^|[.!?:]\s+)[•·▪‣◦●-]\s+"), r"\1"),
    # abbreviations
    *((re.compile(p), r) for p, r in _ABBREVIATIONS),
    # numbers
    (
        re.compile(
            rf"(?P<cur>[$€£¥₹])\s?(?P<amount>{_NUM})(?:\s?(?P<scale>thousand|million|billion|"
            rf"trillion|bn|mn|[kKmMbBtT])\b)?"
        ),
        _money,
    ),
    (re.compile(r"(?<![\w.,])(\d{1,4}(?:\.\d+)?)\s?[-–—]\s?(\d{1,4}(?:\.\d+)?)(?![\w.])"), _range),
    (re.compile(rf"({_NUM})\s?%"), lambda m: f"{numbers.decimal(m.group(1))} percent"),
    (
        re.compile(
            r"\b(?P<h>[01]?\d|2[0-3]):(?P<m>[0-5]\d)(?:\s?(?P<ampm>[AaPp]\.?[Mm]\.?)(?![A-Za-z]))?"
        ),
        _time,
    ),
    (re.compile(r"\b(?P<h>1[0-2]|0?[1-9])\s?(?P<ampm>[AaPp]\.?[Mm]\.?)(?![A-Za-z])"), _hour_ampm),
    (re.compile(r"\b(\d{1,3}):(\d{1,3})\b"), r"\1 to \2"),  # a ratio (times are done)
    (re.compile(r"\b(\d+)(?:st|nd|rd|th)\b"), lambda m: numbers.ordinal(int(m.group(1)))),
    (re.compile(r"(?<![\d/])'?(\d{2}|1\d{3}|20\d{2})'?s\b"), _decade),
    (re.compile(r"\b(1\d{3}|20\d{2})\s?(BC|AD|BCE|CE)\b"), _year_era),
    (re.compile(r"(?<![\d/])([1-9])/([2-9]|10)(?![\d/])"), _fraction),
    (
        re.compile(rf"(?P<n>{_NUM})\s?(?P<unit>{_UNIT_RE})(?:/(?P<per>[A-Za-z]+))?(?![\w²])"),
        _unit,
    ),
    (re.compile(r"(?<=\d)\s?[x×*]\s?(?=\d)"), " times "),
    (re.compile(r"(?<=\d)\s?\+\s?(?=\d)"), " plus "),
    (re.compile(r"(?<=\d)\s?=\s?(?=\d)"), " equals "),
    (re.compile(r"(?<=\d) [-−] (?=\d)"), " minus "),
    (re.compile(r"#\s?(?=\d)"), "number "),
    (re.compile(rf"(?P<neg>(?<![\w.,])[-−])?(?<![\w.,])(?P<n>{_NUM})(?![\d])"), _plain_number),
    # symbols
    (re.compile(r"\s*&\s*"), " and "),
    (re.compile(r"(?<=[A-Za-z])/(?=[A-Za-z])"), " or "),
    (re.compile(r"[~≈]\s?(?=[a-z])"), "about "),
    (re.compile(r"%"), " percent"),
    (re.compile(r"@"), " at "),
    (re.compile(r"[#*_^\\{}<>=+|~•]"), " "),
    (re.compile(r"/"), " "),
    # tidy up what is left
    (re.compile(r"\(\s*\)|\[\s*\]"), ""),
    (re.compile(r"\s+"), " "),
    (re.compile(r"\s+([,.;:!?)\]])"), r"\1"),
    (re.compile(r"(?<!\.)\.\.(?!\.)"), "."),  # "five p.m." + the sentence's full stop
    (re.compile(r"([(\[])\s+"), r"\1"),
    (re.compile(r"[,;:]+\s*(?=[,;:.!?])"), ""),
    (re.compile(r"^[\s,;:.!?)\]–—-]+"), ""),
    (
        re.compile(r"(?<![ap]\.m)(?<!\.\.)([.!?]\s+)([a-z])"),
        lambda m: m.group(1) + m.group(2).upper(),
    ),
)
_SPEAKABLE = re.compile(r"[^\W_]")
_SENTENCE_END = frozenset(".!?…")
_LIST_NUMBER = re.compile(r"(?P<before>^|[.!?:]\s+)\(?(?P<n>\d{1,2})[.)](?:\s+|$)")


def spoken_clause(text: str) -> str:
    """One clause as it should be said and shown: no markup, numbers in words.

    Returns "" when nothing in it is worth saying (a bare list marker, a URL, emoji).
    """
    ended = text.rstrip(_TRAILING_MARKUP)[-1:] in _SENTENCE_END
    for pattern, repl in _SUBS:
        text = pattern.sub(repl, text)
    text = text.strip()
    if not _SPEAKABLE.search(text):
        return ""
    if ended and text.rstrip(_TRAILING_MARKUP)[-1:] not in _SENTENCE_END:
        text += "."  # an abbreviation or a URL took the sentence's full stop with it
    return text


class SpokenClauses:
    """An LLM's text stream in, speakable clauses out (for TTS and captions alike).

    The same interface as :class:`~models.tts.text.ClauseSplitter`: :meth:`push` each
    piece as it arrives and get the clauses it completes, already shaped by
    :func:`spoken_clause`; :meth:`flush` at the end of the reply. Clauses with nothing
    to say are left out.
    """

    def __init__(self, splitter: ClauseSplitter | None = None) -> None:
        self._lines = MarkdownLines()
        self._splitter = splitter if splitter is not None else ClauseSplitter()
        self._sentence_start = True

    @property
    def pending(self) -> str:
        """Text received but not returned yet (after the line stage)."""
        return self._splitter.pending

    def push(self, piece: str) -> list[str]:
        """Add the next piece of the reply; return the spoken clauses it completes."""
        text = self._lines.push(piece)
        return self._shape(self._splitter.push(text)) if text else []

    def flush(self) -> list[str]:
        """End of the reply: the remaining spoken clauses; then start afresh."""
        text = self._lines.flush()
        clauses = self._splitter.push(text) if text else []
        spoken = self._shape(clauses + self._splitter.flush())
        self.reset()
        return spoken

    def _shape(self, clauses: list[str]) -> list[str]:
        out = []
        for clause in clauses:
            spoken = spoken_clause(self._drop_list_numbers(clause))
            if not spoken:
                continue
            if self._sentence_start:
                spoken = spoken[0].upper() + spoken[1:]
            self._sentence_start = spoken.rstrip(_TRAILING_MARKUP)[-1:] in _SENTENCE_END
            out.append(spoken)
        return out

    def _drop_list_numbers(self, clause: str) -> str:
        """Remove list numbers inside a clause ("Sure! 1. Sleep early. 2."), keeping
        numbers that only look like one: a number is a list marker when it is 1 or the
        one after the last marker (state across clauses and lines)."""

        def marker(m: re.Match[str]) -> str:
            n = int(m.group("n"))
            whole = not m.group("before") and m.end() == len(clause)
            if whole or n not in (1, self._lines.next_item):
                return m.group()
            self._lines.next_item = n + 1
            return m.group("before")

        return _LIST_NUMBER.sub(marker, clause)

    def reset(self) -> None:
        """Drop everything buffered (a cancelled reply)."""
        self._lines.reset()
        self._splitter.reset()
        self._sentence_start = True


def speakable(text: str) -> str:
    """A whole text as it should be spoken: :class:`SpokenClauses` in one go."""
    clauses = SpokenClauses(ClauseSplitter(1, 2 * len(text) + 2, clauses=False))
    return " ".join(clauses.push(text) + clauses.flush())
