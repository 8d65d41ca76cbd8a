"""Host memory for frames copied back from a GPU: keep freed frame buffers in the heap.

A GPU renders a batch in a few milliseconds, and then every frame needs fresh host
memory (2.7 MB at 720p). glibc serves such blocks by mmap or trims them back to the
kernel when they are freed, so each new frame is page-faulted in again; on an H200 that
made copying 32 frames at 720p back to the host take 60 ms for 8 ms of rendering. With
a fixed mmap threshold of 32 MB (frames come from the heap) and a high trim threshold
(freed frames stay there for the next ones) the same copy takes ~12 ms
(benchmarks/RESULTS.md, "GPU"). Equivalent to starting the process with
``GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 * 2**20  # glibc's largest allowed mmap threshold on 64-bit
TRIM_THRESHOLD_BYTES = 2**30


def keep_frame_memory() -> bool:
    """Set glibc's malloc thresholds for frame-sized blocks; False where there is no glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
    log.debug("malloc thresholds for GPU frames set: %s", ok)
    return ok
