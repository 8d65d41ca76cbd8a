"""Malloc thresholds for GPU frames (the CUDA path itself runs in benchmarks/gpu.py only)."""

from __future__ import annotations

import platform

import pytest

from avatar.render.host_memory import keep_frame_memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only")
def test_keep_frame_memory_sets_the_thresholds_on_glibc() -> None:
    assert keep_frame_memory() is True
    assert keep_frame_memory() is True  # idempotent
