"""Fixtures shared by the service tests (tests/streaming) and the browser tests (tests/web).

The models are loaded once per test run (``engines``), whichever of those packages runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import pytest

from models.audio import resample
from streaming.config import AppConfig, load_config
from streaming.engines import Engines

MODEL_FIXTURES = frozenset(
    {
        "engines",
        "speak",
        "piper_tts",
        "whisper_stt",
        "silero_model",
        "say_16k",
        "default_rig",
        "ray_serving",
        "speech",  # tests/avatar/test_motion.py: Piper
        "small_rig",  # tests/avatar/test_render_cli.py: face landmarks
        "llama",  # tests/models/test_llm.py
        "server_url",
        "tiny",
        "vits",  # tests/models/test_tts_coqui.py
        "xtts",
    }
)
"""Fixtures that load real models; a test that uses one (even through another fixture)
is marked ``models``."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests that load real models ``models`` (``-m "not models"``: the rest)."""
    for item in items:
        if MODEL_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.models)


TEST_PROMPT = (
    "You are a friendly assistant in a spoken conversation. Answer in one short sentence "
    "of at most fifteen words. No lists, no markdown."
)


@pytest.fixture(scope="session", autouse=True)
def _private_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Servers started by tests keep their session database (server.database_url unset:
    $XDG_DATA_HOME/gwm-avatars/sessions.db) in a temporary folder, not the user's home."""
    old = os.environ.get("XDG_DATA_HOME")
    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("xdg-data"))
    yield
    if old is None:
        os.environ.pop("XDG_DATA_HOME", None)
    else:
        os.environ["XDG_DATA_HOME"] = old


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
            # The pipeline under test, not the model's answers (benchmarks/replies.py):
            # the 0.5B keeps live calls on a loaded 2-core machine quick.
            "llm.model=qwen2.5-0.5b-instruct-gguf",
            # TEST_PROMPT replaces the persona; its few-shot examples go with it (with them the
            # 0.5B answers "The capital of France is Paris.", which Whisper hears as "Francis").
            "llm.examples=[]",
            f"llm.system_prompt={TEST_PROMPT!r}",
            "vad.min_silence_ms=400",
            # A loaded 2-core test machine can take longer than the 15 s default to the first
            # token; the fallback line is tested on its own (tests/streaming/test_faults.py).
            "llm.first_token_timeout_s=60",
        ],
    )


@pytest.fixture(scope="session")
def engines(service_config: AppConfig) -> Engines:
    """Every model, loaded once for all service and browser tests."""
    return Engines.load(service_config)


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
