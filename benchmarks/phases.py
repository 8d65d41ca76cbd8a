"""The server's CPU split by what one live session is doing (idle, listening, thinking,
speaking), measured on a real call to ``avatar serve`` on 127.0.0.1.

Used by ``benchmarks/capacity.py --live``. A sampler reads the server process's CPU time
every :data:`SAMPLE_S` and books each slice to the phase the call is in at that moment:
the user's speech is *listening*, from its end to the first ``speaking`` state event
*thinking* (the end-of-turn wait, STT, the LLM's first clause, TTS), then *speaking*
until the avatar listens again, and *idle* otherwise (connected, nobody talks).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from benchmarks.conversation import Question, answered, proc_cpu_seconds, quiet
from benchmarks.spoken import RATE
from streaming.client import ClientPeer

SAMPLE_S = 0.05
PHASES = ("idle", "listening", "thinking", "speaking")
IDLE_GAP_S = 2.0
"""Idle time between one reply and the next question."""
TURN_TIMEOUT_S = 90.0


@dataclass
class PhaseCpu:
    """CPU seconds and wall seconds booked to each phase."""

    cpu_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    wall_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    errors: list[str] = field(default_factory=list)

    def cores(self, phase: str) -> float:
        """Average cores the server used in ``phase``."""
        wall = self.wall_s[phase]
        return self.cpu_s[phase] / wall if wall > 0 else float("nan")


class _Phase:
    """The phase the call is in now (set by the driver, read by the sampler)."""

    def __init__(self) -> None:
        self.name = "idle"


async def _sample(pid: int, phase: _Phase, result: PhaseCpu, stop: asyncio.Event) -> None:
    cpu, t = proc_cpu_seconds(pid), time.monotonic()
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SAMPLE_S)
        cpu2, t2 = proc_cpu_seconds(pid), time.monotonic()
        result.cpu_s[phase.name] += cpu2 - cpu
        result.wall_s[phase.name] += t2 - t
        cpu, t = cpu2, t2


async def _turn(peer: ClientPeer, q: Question, phase: _Phase) -> str:
    """Speak ``q`` and follow the phases until the avatar listens again; an error or ''."""
    sent, cursor = len(peer.mic.sent_log), len(peer.received.events)
    peer.mic.say(q.clip)
    t0 = time.monotonic()
    while len(peer.mic.sent_log) == sent:
        if time.monotonic() - t0 > 30:
            return "microphone not read"
        await asyncio.sleep(0.01)
    pad_s = (len(q.clip) / RATE - q.speech_s) / 2
    start = peer.mic.sent_log[-1][0] + pad_s
    end = start + q.speech_s
    while True:
        now = time.monotonic()
        events = peer.received.events[cursor:]
        states = [e.get("state") for _, e in events if e.get("type") == "state"]
        if now < start:
            phase.name = "idle"
        elif now < end:
            phase.name = "listening"
        elif "speaking" in states and states[-1] == "speaking":
            phase.name = "speaking"
        elif "speaking" not in states:
            phase.name = "thinking"
        else:  # it spoke and listens again: the reply's tail is still arriving
            phase.name = "speaking"
        if answered(events, now, end):
            return ""
        if now - end > TURN_TIMEOUT_S:
            return "turn timed out"
        await asyncio.sleep(0.02)


async def phase_cpu(
    url: str, pid: int, questions: Sequence[Question], idle_s: float = 10.0
) -> PhaseCpu:
    """One caller: ``idle_s`` of idle call, then each question with idle gaps between."""
    result = PhaseCpu()
    peer = ClientPeer(url, keep_video=False)
    failed = await peer.connect()
    if failed is not None:
        result.errors.append(f"refused {failed.status}")
        return result
    phase, stop = _Phase(), asyncio.Event()
    try:
        await peer.wait_open()
        await asyncio.sleep(2.0)  # the call settles (ICE, first keyframes)
        sampler = asyncio.create_task(_sample(pid, phase, result, stop))
        try:
            await asyncio.sleep(idle_s)
            for q in questions:
                error = await _turn(peer, q, phase)
                if error:
                    result.errors.append(error)
                    break
                phase.name = "speaking"
                await quiet(peer)
                phase.name = "idle"
                await asyncio.sleep(IDLE_GAP_S)
        finally:
            stop.set()
            await sampler
    finally:
        await peer.hangup()
    return result
