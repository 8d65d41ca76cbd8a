"""Fixtures for the service tests: models loaded once, a server per test on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest
from aiohttp.test_utils import TestServer

from avatar.config import AppConfig, load_config
from models.audio import resample
from streaming.engines import Engines
from streaming.server import create_app

TEST_PROMPT = (
    "You are a friendly assistant in a spoken conversation. Answer in one short sentence "
    "of at most fifteen words. No lists, no markdown."
)


@pytest.fixture(scope="session")
def service_config() -> AppConfig:
    """The default profile, kept on loopback, with short replies for fast tests."""
    return load_config(
        "default",
        environ={},
        overrides=[
            "server.ice_host_addresses=[127.0.0.1]",
            "server.max_sessions=2",
            "llm.max_tokens=40",
            f"llm.system_prompt={TEST_PROMPT!r}",
            "vad.min_silence_ms=400",
        ],
    )


@pytest.fixture(scope="session")
def engines(service_config: AppConfig) -> Engines:
    """Every model, loaded once for all service tests."""
    return Engines.load(service_config)


@pytest.fixture
async def server(service_config: AppConfig, engines: Engines) -> AsyncIterator[TestServer]:
    """A fresh server on 127.0.0.1 sharing the loaded engines."""
    app = create_app(service_config, engines=engines)
    srv = TestServer(app, host="127.0.0.1", port=0)
    await srv.start_server()
    yield srv
    await srv.close()


@pytest.fixture(scope="session")
def speak(engines: Engines):
    """Synthesize a question with Piper as 48 kHz mono float (the user's voice)."""

    def _speak(text: str, pad_s: float = 0.3) -> np.ndarray:
        chunks = list(engines.tts.synthesize(text))
        rate = chunks[0].sample_rate
        pcm = np.concatenate([c.pcm for c in chunks])
        pcm48 = resample(pcm, rate, 48_000)
        pad = np.zeros(int(pad_s * 48_000), np.float32)
        return np.concatenate([pad, pcm48, pad])

    return _speak
