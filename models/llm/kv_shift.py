"""Reusing a conversation's evaluated tokens after its oldest turns were dropped.

When the history is trimmed, the new prompt is ``[persona+examples] + [later turns] +
[new turn]`` while the conversation's KV sequence holds ``[persona+examples] + [old
turns] + [later turns] + [last reply]``: the common prefix ends after the examples.
As llama.cpp's server does with ``--cache-reuse``, :func:`plan_shifts` finds the rest of
the prompt further on in the sequence, and :func:`apply_shifts` removes the cells in
between and moves each matching run down to where the prompt needs it
(``llama_memory_seq_rm`` then ``llama_memory_seq_add``; llama.cpp applies the K-shift,
the RoPE rotation of the moved keys, at the next decode).

The result is not bit-identical to evaluating the prompt afresh: a moved cell's key and
value were computed while it attended to the dropped tokens. This is the trade-off of
StreamingLLM and of llama.cpp's context shift, which llama-server accepts too; the
replies stay sensible, but a greedy reply may differ from a fresh evaluation's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from models.llm.llama_batch import Slot

MIN_REUSE_RUN = 16
"""Matching tokens a run needs to be moved rather than evaluated again: a shorter one
(a chat template's header, a common word) is not worth a shift and would tear up the
sequence for little."""


class Move(NamedTuple):
    """Cells of one sequence moved from positions ``src..src+length`` to ``dst..``."""

    src: int
    dst: int
    length: int


def plan_shifts(
    cached: Sequence[int],
    prompt: Sequence[int],
    start: int,
    *,
    protected: int,
    min_run: int = MIN_REUSE_RUN,
) -> list[Move]:
    """The moves that give the sequence holding ``cached`` more of ``prompt``.

    ``start`` tokens are kept as they are (the common prefix). From there the prompt's
    next tokens are looked for further on in ``cached``; each run of at least ``min_run``
    matching tokens is moved right after what is kept so far, and the search goes on
    after it. Afterwards the sequence holds ``prompt[:start + sum(lengths)]`` at
    positions 0..n-1 (the moves' ``dst`` follow one another from ``start``).

    No cell is moved to (or from) a position below ``protected``: those cells may be
    shared with other sequences (see :func:`apply_shifts`), so nothing is planned when
    ``start < protected``.
    """
    moves: list[Move] = []
    if start < protected:
        return moves
    src, dst = start, start
    while src < len(cached) and dst < len(prompt):
        n = 0
        while (
            src + n < len(cached) and dst + n < len(prompt) and cached[src + n] == prompt[dst + n]
        ):
            n += 1
        if n >= min_run and src != dst:
            moves.append(Move(src, dst, n))
            src += n
            dst += n
        else:
            src += 1
    return moves


def apply_shifts(lib: Any, mem: Any, seq_id: int, moves: Sequence[Move]) -> None:
    """Carry out ``moves`` (from :func:`plan_shifts`, in order) on sequence ``seq_id``.

    For each move the sequence's cells between the end of the previous run (``dst``)
    and the run (``src``) are removed, then the run's positions are lowered by
    ``src - dst``. The caller removes whatever the sequence holds after the last run.

    Invariant (unified KV cache, ``kv_unified=True``): a cell belongs to a set of
    sequences and has ONE position for all of them; ``llama_memory_seq_cp`` adds a
    sequence to the cells of sequence 0 (the shared prefix) rather than copying them,
    and ``llama_memory_seq_add`` changes the position of every cell of the sequence in
    its range — also for the other sequences that hold it. A slot's cells that may be
    shared are the ones it got from sequence 0, all at positions below the shared
    prefix's length. :func:`plan_shifts` is given that length as ``protected``, so
    every moved cell lies at or above it (``src > dst >= protected``) and is the slot's
    own. Removing (``llama_memory_seq_rm``) only takes the slot's sequence off a cell,
    which is safe for a shared one too.
    """
    for src, dst, length in moves:
        if src == dst:
            continue
        lib.llama_memory_seq_rm(mem, seq_id, dst, src)
        lib.llama_memory_seq_add(mem, seq_id, src, src + length, dst - src)


def shift_runs(
    lib: Any, mem: Any, slot: Slot, prompt: Sequence[int], start: int, *, protected: int
) -> int:
    """Plan and carry out the moves that give ``slot`` (whose first ``start`` tokens are
    ``prompt``'s) more of ``prompt``; the tokens moved. The slot's cells after
    ``start`` plus that many are left for the caller to remove, and ``slot.tokens``
    for it to set (to that prefix of ``prompt``)."""
    moves = plan_shifts(slot.tokens, prompt, start, protected=protected)
    apply_shifts(lib, mem, slot.seq_id, moves)
    return sum(m.length for m in moves)
