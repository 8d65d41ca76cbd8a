"""The bookkeeping of warm jobs (no model)."""

from __future__ import annotations

from models.llm.llama_batch import Slot
from models.llm.warm_jobs import WARM_CHUNK, WarmJob, WarmJobs, warm_slot


def job(key: str, pending: list[int] | None = None) -> WarmJob:
    return WarmJob(key, lambda: [], pending=pending or [])


def test_a_warm_job_takes_its_own_slot_or_an_unused_one_never_another_conversations() -> None:
    own = Slot(1, key="a", tokens=[1, 2])
    other = Slot(2, key="b", tokens=[1, 2, 3])
    unused = Slot(3)
    assert warm_slot([other, unused, own], "a") is own
    assert warm_slot([other, unused], "a") is unused
    assert warm_slot([other, Slot(4, key=None, tokens=[5])], "a") is None  # anonymous: kept
    own.busy = True
    assert warm_slot([own, other], "a") is None


def test_a_newer_warm_job_replaces_the_waiting_one_and_busy_keys_wait() -> None:
    jobs = WarmJobs()
    first, second = job("a"), job("a")
    jobs.add(first)
    jobs.add(second)
    jobs.add(job("b"))
    assert jobs.waiting["a"] is second
    assert [j.key for j in jobs.ready({"b"})] == ["a"]
    jobs.cancel("a")
    assert not jobs.active("a") and jobs.active("b")


def test_warm_pieces_are_small_and_fit_the_batch() -> None:
    jobs = WarmJobs()
    jobs.running = [job("a", list(range(10))), job("b", list(range(10))), job("c")]
    pieces = jobs.pieces(WARM_CHUNK + 2)
    assert [(j.key, p) for j, p in pieces] == [("a", [0, 1, 2, 3]), ("b", [0, 1])]
    slot = Slot(1)
    jobs.running[1].slot = slot
    assert jobs.holding(slot) is jobs.running[1] and jobs.running_for("c") is jobs.running[2]
