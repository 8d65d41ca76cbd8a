"""The record of one conversation turn, and the hook that stores it."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass
class TurnRecord:
    """What happened in one turn (for the data channel and persistence).

    ``reply_text`` is everything the LLM wrote, ``spoken_text`` what the user heard;
    an interrupted turn has ``cut_at`` (wall clock) and ``spoken_s`` (seconds of reply
    audio played before the cut). ``error`` is set when the turn was skipped.
    """

    turn_id: int
    user_text: str = ""
    reply_text: str = ""
    spoken_text: str = ""
    interrupted: bool = False
    metrics: dict[str, float] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)
    completed_at: float | None = None
    cut_at: float | None = None
    spoken_s: float | None = None
    error: str = ""


TurnHook = Callable[[TurnRecord], "Awaitable[None] | None"]
"""Called with each finished turn; an awaitable it returns (a durable write) is awaited
before the turn's final events go to the client."""
