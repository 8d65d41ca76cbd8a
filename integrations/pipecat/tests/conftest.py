"""Fixtures of the plugin's tests: the stand-in echo service and a speech-like clip."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest

from tests.fake_echo import FakeEchoService
from tests.pipeline_support import speechlike

API_KEY = "plugin-test-key"


@pytest.fixture
async def fake_service() -> AsyncIterator[FakeEchoService]:
    """The stand-in echo service on 127.0.0.1 (API key: ``API_KEY``)."""
    service = FakeEchoService(api_key=API_KEY)
    await service.start()
    yield service
    await service.stop()


@pytest.fixture(scope="session")
def speech16k() -> np.ndarray:
    """2.5 s of speech-like sound at 16 kHz."""
    return speechlike(2.5, 16_000)
