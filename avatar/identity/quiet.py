"""MediaPipe's native start-up chatter kept off the terminal.

MediaPipe (face detection, landmarks) writes a few lines straight to file descriptor 2
the first time it builds a graph ("Created TensorFlow Lite XNNPACK delegate", absl
warnings). :func:`quiet_native_stderr` drops those and passes everything else on. It
swaps the process's fd 2, so use it where nothing else does at the same time: a
command's own preparation step, or the service's model loading before it serves.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator

NATIVE_NOISE = (
    "INFO: Created TensorFlow Lite",
    "WARNING: All log messages before absl",
    "W0000 ",
    "I0000 ",
)
"""Line prefixes of MediaPipe's native chatter."""


@contextlib.contextmanager
def quiet_native_stderr(verbose: bool = False) -> Iterator[None]:
    """Hide MediaPipe's native chatter (unless ``verbose``); other stderr lines are kept."""
    if verbose:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode("utf-8", "replace")
            kept = [ln for ln in text.splitlines() if ln and not ln.startswith(NATIVE_NOISE)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")
