"""Command-line parsing shared by ``avatar`` and the benchmark scripts.

Bad input on a command line is reported in one line on stderr with exit code 2 and no
traceback: :class:`ArgumentParser` prints argparse's own errors that way, and the value
parsers here (:func:`parse_size`, :func:`positive_int`, ...) reject bad values with a
sentence that says what is expected. Light on purpose: no numpy, torch or pydantic.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import NoReturn

MIN_SIDE = 64
MAX_WIDTH = 3840
MAX_HEIGHT = 2160
_SIZE_RE = re.compile(r"^\s*(\d+)\s*(?:[xX×]\s*(\d+))?\s*$")


class UsageError(Exception):
    """Bad input from the user: reported in one line, exit code 2."""


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line: ``prog: error: ... (see prog -h)``.

    Subparsers made from it are of this class too (argparse uses the parent's class).
    """

    def error(self, message: str) -> NoReturn:
        """Print one line on stderr and exit with code 2."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parse_size(text: str) -> tuple[int, int]:
    """``"512"`` -> (512, 512); ``"1280x720"`` -> (1280, 720); :class:`UsageError` if invalid.

    Sides are 64..3840 wide and 64..2160 high, and even (H.264 needs even sides).
    """
    m = _SIZE_RE.match(text)
    if not m:
        raise UsageError(f"a frame size looks like 512 or 1280x720, got {text!r}")
    w = int(m.group(1))
    h = int(m.group(2)) if m.group(2) else w
    if not (MIN_SIDE <= w <= MAX_WIDTH and MIN_SIDE <= h <= MAX_HEIGHT):
        raise UsageError(
            f"frame size {w}x{h} is out of range "
            f"({MIN_SIDE}..{MAX_WIDTH} x {MIN_SIDE}..{MAX_HEIGHT})"
        )
    if w % 2 or h % 2:
        raise UsageError(f"frame size {w}x{h}: width and height must be even (H.264)")
    return w, h


def size_type(text: str) -> tuple[int, int]:
    """:func:`parse_size` as an argparse ``type``."""
    try:
        return parse_size(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _checked(
    text: str, convert: Callable[[str], float], what: str, ok: Callable[[float], bool]
) -> float:
    """``convert(text)`` if it succeeds and ``ok`` holds, else ArgumentTypeError."""
    try:
        value = convert(text)
    except ValueError:
        value = float("nan")
    if value != value or not ok(value):  # not a number (NaN), or out of range
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (argparse ``type``)."""
    return int(_checked(text, int, "an integer >= 1", lambda v: v >= 1))


def non_negative_int(text: str) -> int:
    """An integer >= 0 (argparse ``type``)."""
    return int(_checked(text, int, "an integer >= 0", lambda v: v >= 0))


def positive_float(text: str) -> float:
    """A finite number > 0 (argparse ``type``)."""
    return _checked(text, float, "a number > 0", lambda v: 0 < v < float("inf"))


def int_in_range(low: int, high: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer in ``low..high``."""

    def parse(text: str) -> int:
        return int(_checked(text, int, f"an integer in {low}..{high}", lambda v: low <= v <= high))

    return parse


def number_in_range(low: float, high: float) -> Callable[[str], float]:
    """An argparse ``type``: a number in ``low..high``."""

    def parse(text: str) -> float:
        return _checked(text, float, f"a number in {low:g}..{high:g}", lambda v: low <= v <= high)

    return parse
