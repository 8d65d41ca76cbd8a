"""Session fixtures of the avatar tests: the default rig (prepared once) and renderers."""

from __future__ import annotations

from pathlib import Path

import pytest

from avatar.identity import AvatarRig, load_rig
from avatar.render import CpuRenderer

SIZE = (512, 512)


@pytest.fixture(scope="session")
def avatar_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private avatar cache for this test run (the default avatar is prepared into it)."""
    return tmp_path_factory.mktemp("avatars")


@pytest.fixture(scope="session")
def default_rig(avatar_cache: Path) -> AvatarRig:
    """The default avatar (``skimage.data.astronaut()``) at 512×512, prepared once."""
    return load_rig(None, size=SIZE, cache_dir=avatar_cache)


@pytest.fixture(scope="session")
def default_bundle(default_rig: AvatarRig, avatar_cache: Path) -> Path:
    """The bundle folder the default avatar was prepared into."""
    return avatar_cache / f"default-{SIZE[0]}x{SIZE[1]}"


@pytest.fixture(scope="session")
def cpu_renderer(default_rig: AvatarRig) -> CpuRenderer:
    """A CPU renderer of the default avatar (its per-rig model is built once)."""
    return CpuRenderer(default_rig)
