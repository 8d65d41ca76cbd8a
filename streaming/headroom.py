"""Whether the machine has CPU to spare right now, for work that is only worth doing then.

Transcribing the user's words while they speak saves the LLM work at the end of the
turn, but each pass costs CPU; on a machine busy with other callers the passes slow down
what every turn waits for (benchmarks/RESULTS.md, "Listening ahead"); likewise a second
llama.cpp thread for a reply's last words pays on an idle core and loses on a busy
machine ("Closer to the wire"). :class:`CpuHeadroom`
measures the idle share of the machine over the last sampling window: all cores from
``/proc/stat`` where there is one, else this process's own CPU time against the cores.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

PROC_STAT = Path("/proc/stat")

CpuTimes = Callable[[], tuple[float, float]]
"""(busy, total) CPU seconds so far, of the whole machine (or of this process)."""


def machine_cpu_times() -> tuple[float, float]:
    """Busy and total CPU time of all cores since boot (jiffies; Linux /proc/stat)."""
    fields = PROC_STAT.read_text().split("\n", 1)[0].split()[1:]
    values = [float(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0.0)  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user time
    return total - idle, total


def process_cpu_times(now: Callable[[], float] = time.monotonic) -> tuple[float, float]:
    """This process's CPU seconds and the seconds all cores had since an arbitrary
    origin (a fallback where /proc/stat is missing: other processes count as idle)."""
    return time.process_time(), now() * (os.cpu_count() or 1)


def default_cpu_times() -> CpuTimes:
    """The machine's counters where readable, else this process's."""
    try:
        machine_cpu_times()
    except (OSError, ValueError, IndexError):
        return process_cpu_times
    return machine_cpu_times


class CpuHeadroom:
    """The idle share of the CPU over the last ``window_s`` (re-sampled at most once a
    window, so asking often costs nothing). One per process, shared by its sessions and
    the LLM."""

    def __init__(
        self,
        window_s: float = 1.0,
        *,
        times: CpuTimes | None = None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._window_s = window_s
        self._times = times or default_cpu_times()
        self._now = now
        self._mark = (now(), *self._times())
        self._idle = 1.0
        self._lock = threading.Lock()  # asked from the event loop and the LLM's thread

    def idle(self) -> float:
        """Share of the CPU that was idle over the last window (0..1); thread-safe."""
        with self._lock:
            t = self._now()
            if t - self._mark[0] >= self._window_s:
                busy, total = self._times()
                d_busy, d_total = busy - self._mark[1], total - self._mark[2]
                if d_total > 0:
                    self._idle = min(1.0, max(0.0, 1.0 - d_busy / d_total))
                self._mark = (t, busy, total)
            return self._idle

    def spare(self, min_idle: float) -> Callable[[], bool]:
        """A check for one kind of optional work: at least ``min_idle`` of the CPU idle."""
        return lambda: self.idle() >= min_idle
