"""The CPU headroom that optional work asks about: fake counters and a fake clock."""

from __future__ import annotations

import pytest

from streaming.headroom import PROC_STAT, CpuHeadroom, machine_cpu_times


class Counters:
    def __init__(self) -> None:
        self.t = 0.0
        self.busy = 0.0
        self.total = 0.0

    def run(self, seconds: float, busy_share: float, cores: int = 2) -> None:
        self.t += seconds
        self.total += seconds * cores
        self.busy += seconds * cores * busy_share


def test_the_idle_share_is_measured_over_the_last_window() -> None:
    c = Counters()
    h = CpuHeadroom(1.0, times=lambda: (c.busy, c.total), now=lambda: c.t)
    assert h.idle() == 1.0  # nothing measured yet: assume idle
    c.run(1.0, 0.8)
    assert h.idle() == pytest.approx(0.2)
    c.run(0.5, 0.0)  # within the window: the last figure stands
    assert h.idle() == pytest.approx(0.2)
    c.run(0.5, 0.0)
    assert h.idle() == pytest.approx(1.0)
    spare = h.spare(0.3)
    c.run(1.0, 0.75)
    assert not spare()
    c.run(1.0, 0.5)
    assert spare()


@pytest.mark.skipif(not PROC_STAT.exists(), reason="no /proc/stat on this system")
def test_the_machine_counters_are_read_from_proc_stat() -> None:
    busy, total = machine_cpu_times()
    assert 0 <= busy <= total
    later_busy, later_total = machine_cpu_times()
    assert later_total >= total and later_busy >= busy
    h = CpuHeadroom(0.0)
    sum(i * i for i in range(200_000))  # keep a core busy for a moment
    assert 0.0 <= h.idle() <= 1.0
