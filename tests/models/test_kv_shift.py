"""Planning the KV moves that reuse a conversation's later turns (no model)."""

from __future__ import annotations

from models.llm.kv_shift import MIN_REUSE_RUN, Move, apply_shifts, plan_shifts

SYSTEM = list(range(1000, 1040))  # persona + examples: the shared prefix
OLD = list(range(2000, 2030))  # the turns the history dropped
LATER = list(range(3000, 3050))  # the turns it kept
REPLY = list(range(4000, 4010))  # the last reply (not in the new prompt)
NEW = list(range(5000, 5008))  # the new turn


def held(cached: list[int], start: int, moves: list[Move]) -> list[int]:
    """What the sequence holds at positions 0..n-1 after the moves (the cells simulated)."""
    out = cached[:start]
    for src, dst, length in moves:
        assert dst == len(out)  # the runs follow one another
        out += cached[src : src + length]
    return out


def test_a_dropped_middle_is_found_and_the_later_turns_moved_down() -> None:
    cached = SYSTEM + OLD + LATER + REPLY
    prompt = SYSTEM + LATER + NEW
    moves = plan_shifts(cached, prompt, len(SYSTEM), protected=len(SYSTEM))
    assert moves == [Move(len(SYSTEM) + len(OLD), len(SYSTEM), len(LATER))]
    assert held(cached, len(SYSTEM), moves) == prompt[: len(SYSTEM) + len(LATER)]


def test_runs_shorter_than_the_minimum_are_not_moved() -> None:
    short = LATER[: MIN_REUSE_RUN - 1]
    cached = SYSTEM + OLD + short + REPLY
    prompt = SYSTEM + short + NEW
    assert plan_shifts(cached, prompt, len(SYSTEM), protected=len(SYSTEM)) == []
    exact = LATER[:MIN_REUSE_RUN]
    moves = plan_shifts(SYSTEM + OLD + exact + REPLY, SYSTEM + exact + NEW, 40, protected=40)
    assert [m.length for m in moves] == [MIN_REUSE_RUN]


def test_nothing_moves_below_the_protected_prefix() -> None:
    cached = SYSTEM + OLD + LATER + REPLY
    prompt = SYSTEM[:10] + LATER + NEW  # diverges inside the shared prefix
    assert plan_shifts(cached, prompt, 10, protected=len(SYSTEM)) == []
    moves = plan_shifts(cached, SYSTEM + LATER, len(SYSTEM), protected=len(SYSTEM))
    assert moves and all(m.dst >= len(SYSTEM) and m.src > m.dst for m in moves)


def test_several_runs_are_moved_one_after_the_other() -> None:
    a, b = LATER[:20], LATER[20:45]
    gap = list(range(6000, 6005))
    cached = SYSTEM + OLD + a + gap + b + REPLY
    prompt = SYSTEM + a + b + NEW
    moves = plan_shifts(cached, prompt, len(SYSTEM), protected=len(SYSTEM))
    start_a = len(SYSTEM) + len(OLD)
    assert moves == [
        Move(start_a, len(SYSTEM), len(a)),
        Move(start_a + len(a) + len(gap), len(SYSTEM) + len(a), len(b)),
    ]
    assert held(cached, len(SYSTEM), moves) == SYSTEM + a + b


def test_nothing_to_reuse_gives_no_moves() -> None:
    cached = SYSTEM + OLD + REPLY
    assert plan_shifts(cached, SYSTEM + LATER + NEW, len(SYSTEM), protected=40) == []
    assert plan_shifts(cached, SYSTEM, len(SYSTEM), protected=40) == []  # prompt all kept
    assert plan_shifts([], SYSTEM, 0, protected=0) == []


def test_a_run_stops_at_the_end_of_the_prompt_given() -> None:
    cached = SYSTEM + OLD + LATER + REPLY
    prompt = SYSTEM + LATER  # e.g. cut before the token evaluated again for the logits
    moves = plan_shifts(cached, prompt[:-1], len(SYSTEM), protected=len(SYSTEM))
    assert held(cached, len(SYSTEM), moves) == prompt[:-1]


class FakeMemory:
    """The cells of one sequence (position -> token) and the llama_memory_* calls."""

    def __init__(self, tokens: list[int]) -> None:
        self.cells = dict(enumerate(tokens))
        self.calls: list[tuple[str, int, int, int]] = []

    def llama_memory_seq_rm(self, mem: object, seq: int, p0: int, p1: int) -> bool:
        self.calls.append(("rm", seq, p0, p1))
        self.cells = {p: t for p, t in self.cells.items() if not p0 <= p < p1}
        return True

    def llama_memory_seq_add(self, mem: object, seq: int, p0: int, p1: int, d: int) -> None:
        self.calls.append(("add", seq, p0, d))
        moved = {p + d: t for p, t in self.cells.items() if p0 <= p < p1}
        kept = {p: t for p, t in self.cells.items() if not p0 <= p < p1}
        assert not set(moved) & set(kept)  # never onto a cell the sequence still holds
        self.cells = kept | moved


def test_applying_the_moves_leaves_the_prompt_at_positions_0_to_n() -> None:
    a, b = LATER[:20], LATER[20:45]
    cached = SYSTEM + OLD + a + [7] * 3 + b + REPLY
    prompt = SYSTEM + a + b + NEW
    moves = plan_shifts(cached, prompt, len(SYSTEM), protected=len(SYSTEM))
    lib = FakeMemory(cached)
    apply_shifts(lib, None, 3, moves)
    n = len(SYSTEM) + len(a) + len(b)
    assert [lib.cells[p] for p in range(n)] == prompt[:n]
    assert all(seq == 3 for _, seq, _, _ in lib.calls)
