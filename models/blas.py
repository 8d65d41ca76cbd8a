"""The process's BLAS threads: one by default, so a small matrix product never leaves a
core spinning.

numpy's OpenBLAS runs a product on all cores and then keeps its worker threads
spinning (``sched_yield``) for ~0.1 s, waiting for the next one. The service's products
are small — faster-whisper's mel filters (80 × 201 by 201 × frames) take ~2 ms — so
each transcription cost ~2 ms of work and ~100 ms of a second core spent spinning, at
the very moment the Whisper encoder wanted both cores (104.7 ms of CPU per 1.1 ms
feature extraction with OpenBLAS's 2 threads, 1.1 ms with one: ``python -m
benchmarks.blas_threads``, benchmarks/RESULTS.md "Where a turn's CPU goes"). The heavy
work never goes through numpy's BLAS: Whisper (CTranslate2), llama.cpp and onnxruntime
keep their own thread settings.
"""

from __future__ import annotations

import logging

from threadpoolctl import ThreadpoolController

log = logging.getLogger(__name__)


def limit_blas_threads(threads: int | None) -> dict[str, int]:
    """Set every BLAS library loaded in this process to ``threads`` threads (None: leave
    them as they are); return each library's thread count afterwards, by file name.

    Process-wide, as BLAS's own setting is; call it once the engines are loaded (a
    library loaded later keeps its default)."""
    blas = ThreadpoolController().select(user_api="blas")
    if threads is not None:
        blas.limit(limits=threads)
    counts = {lib.filepath.rsplit("/", 1)[-1]: lib.num_threads for lib in blas.lib_controllers}
    log.debug("BLAS threads: %s", counts or "no BLAS library loaded")
    return counts
