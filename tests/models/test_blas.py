"""numpy's BLAS on one thread (``cpu.blas_threads``): no core left spinning after a product."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from threadpoolctl import ThreadpoolController

from models.blas import limit_blas_threads
from models.config import CpuConfig


@pytest.fixture
def restore_blas() -> Iterator[None]:
    """Put the BLAS libraries' thread counts back as they were."""
    controller = ThreadpoolController()
    before = {
        lib.filepath: lib.num_threads for lib in controller.select(user_api="blas").lib_controllers
    }
    yield
    for lib in ThreadpoolController().select(user_api="blas").lib_controllers:
        if lib.filepath in before:
            lib.set_num_threads(before[lib.filepath])


def test_numpy_blas_is_limited_to_the_configured_threads(restore_blas: None) -> None:
    np.ones((4, 4)) @ np.ones((4, 4))  # numpy's BLAS is loaded
    counts = limit_blas_threads(1)
    assert counts, "numpy's BLAS library should be found"
    assert set(counts.values()) == {1}
    # what the library itself says, not only what the function returned
    libs = ThreadpoolController().select(user_api="blas").lib_controllers
    assert [lib.num_threads for lib in libs] == [1] * len(libs)


def test_none_leaves_the_libraries_as_they_are(restore_blas: None) -> None:
    np.ones((4, 4)) @ np.ones((4, 4))
    ThreadpoolController().select(user_api="blas").limit(limits=2)
    libs = ThreadpoolController().select(user_api="blas").lib_controllers
    expected = {lib.filepath.rsplit("/", 1)[-1]: lib.num_threads for lib in libs}
    assert 2 in expected.values()  # numpy's OpenBLAS (a library built without threads says 1)
    assert limit_blas_threads(None) == expected


def test_the_default_is_one_thread_and_zero_is_refused() -> None:
    assert CpuConfig().blas_threads == 1
    with pytest.raises(ValueError):
        CpuConfig(blas_threads=0)
