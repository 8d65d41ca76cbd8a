"""The process-wide CPU settings a served process runs with, once every engine is loaded."""

from __future__ import annotations

from models.blas import limit_blas_threads
from streaming.engines import Engines


def test_loaded_engines_leave_numpy_blas_on_the_configured_threads(engines: Engines) -> None:
    """What a served process runs with: every engine loaded, then ``cpu.blas_threads``."""
    assert engines.config.cpu.blas_threads == 1
    assert set(limit_blas_threads(None).values()) == {1}
