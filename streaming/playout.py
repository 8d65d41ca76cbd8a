"""Reply audio placed on the media clock, pulled one 20 ms frame at a time.

Speech chunks are scheduled back to back at absolute sample positions; the audio
track pulls frames by index and gets silence where nothing is scheduled. Barge-in
cuts everything after a sample (with a short fade). The playout is also the one record
of what the user heard: it keeps, per turn, the span and text of each chunk it was
given and where a cut ended it, until the turn takes that record (:meth:`take_heard`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Int16Audio = npt.NDArray[np.int16]


@dataclass
class ScheduledSpeech:
    """One speech chunk on the clock: samples [start, start + len(pcm))."""

    start: int
    pcm: Int16Audio
    text: str
    turn_id: int

    @property
    def end(self) -> int:
        """First sample after the chunk."""
        return self.start + len(self.pcm)


@dataclass(frozen=True)
class HeardSpeech:
    """How much of a chunk was played (before an interruption, or all of it)."""

    text: str
    fraction: float
    turn_id: int
    played_s: float = 0.0
    """Seconds of the chunk's audio that played."""


@dataclass
class _Spoken:
    """The ledger entry of one scheduled chunk (its audio may be gone already)."""

    start: int
    length: int
    text: str
    cut: int | None = None

    def heard(self, turn_id: int, rate: int) -> HeardSpeech:
        end = self.start + self.length
        played = max(0, (end if self.cut is None else min(self.cut, end)) - self.start)
        return HeardSpeech(self.text, played / max(1, self.length), turn_id, played / rate)


class AudioPlayout:
    """Queue of reply speech on one session's clock (thread-safe)."""

    def __init__(self, sample_rate: int, fade_ms: float = 8.0) -> None:
        self.sample_rate = sample_rate
        self._fade = max(1, int(sample_rate * fade_ms / 1000))
        self._items: list[ScheduledSpeech] = []
        self._ledger: dict[int, list[_Spoken]] = {}
        self._lock = threading.Lock()
        self._pulled = 0

    def schedule(self, pcm: Int16Audio, text: str, *, not_before: int, turn_id: int) -> int:
        """Place ``pcm`` after everything queued and not before ``not_before``; returns start."""
        with self._lock:
            tail = self._items[-1].end if self._items else 0
            start = max(tail, not_before)
            self._items.append(ScheduledSpeech(start, pcm, text, turn_id))
            self._ledger.setdefault(turn_id, []).append(_Spoken(start, len(pcm), text))
            return start

    def end_sample(self) -> int:
        """The sample at which the queued speech ends (0 if nothing queued)."""
        with self._lock:
            return self._items[-1].end if self._items else 0

    @property
    def pulled_until(self) -> int:
        """The sample after the last one pulled: speech placed before it would not play."""
        return self._pulled

    def is_playing(self, sample: int) -> bool:
        """Whether speech is queued at or after ``sample``."""
        return self.end_sample() > sample

    def pull(self, start: int, count: int) -> Int16Audio:
        """Samples ``[start, start+count)``: scheduled speech, silence elsewhere."""
        out = np.zeros(count, dtype=np.int16)
        stop = start + count
        with self._lock:
            self._pulled = max(self._pulled, stop)
            for item in self._items:
                if item.end <= start or item.start >= stop:
                    continue
                lo = max(start, item.start)
                hi = min(stop, item.end)
                out[lo - start : hi - start] = item.pcm[lo - item.start : hi - item.start]
            # Forget chunks that are fully played (the ledger keeps their spans).
            while self._items and self._items[0].end <= start:
                self._items.pop(0)
        return out

    def interrupt(self, at_sample: int) -> list[HeardSpeech]:
        """Cut all speech after ``at_sample`` (fading out); report what was heard of
        every chunk still queued (chunks after the cut: fraction 0)."""
        heard: list[HeardSpeech] = []
        with self._lock:
            for spoken in self._ledger.values():
                for s in spoken:
                    if s.start + s.length > at_sample and (s.cut is None or s.cut > at_sample):
                        s.cut = at_sample
            kept: list[ScheduledSpeech] = []
            for item in self._items:
                if item.start >= at_sample:
                    heard.append(HeardSpeech(item.text, 0.0, item.turn_id))
                    continue
                if item.end > at_sample:
                    n = at_sample - item.start
                    pcm = item.pcm[: n + self._fade].copy()
                    fade_len = len(pcm) - n
                    if fade_len > 0:
                        ramp = np.linspace(1.0, 0.0, fade_len, dtype=np.float32)
                        pcm[n:] = (pcm[n:].astype(np.float32) * ramp).astype(np.int16)
                    heard.append(
                        HeardSpeech(
                            item.text, n / len(item.pcm), item.turn_id, n / self.sample_rate
                        )
                    )
                    item = ScheduledSpeech(item.start, pcm, item.text, item.turn_id)
                kept.append(item)
            self._items = kept
        return heard

    def take_heard(self, turn_id: int) -> list[HeardSpeech]:
        """What the user heard of turn ``turn_id``, chunk by chunk, and forget it.

        Call it once the turn's audio has played out or been cut: a chunk that is
        neither played nor cut yet counts as heard.
        """
        with self._lock:
            spoken = self._ledger.pop(turn_id, [])
        return [s.heard(turn_id, self.sample_rate) for s in spoken]

    def clear(self) -> None:
        """Drop everything."""
        with self._lock:
            self._items.clear()
            self._ledger.clear()


def heard_text(text: str, fraction: float) -> str:
    """The words of ``text`` spoken in the first ``fraction`` of its audio."""
    if fraction >= 0.999:
        return text
    words = text.split()
    n = int(len(words) * max(0.0, fraction))
    return " ".join(words[:n])


def heard_words(heard: list[HeardSpeech]) -> str:
    """The words heard of a list of chunks, in order."""
    return " ".join(t for t in (heard_text(h.text, h.fraction) for h in heard) if t).strip()
