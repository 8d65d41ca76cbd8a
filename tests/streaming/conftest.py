"""Fixtures for the service tests: a server per test on 127.0.0.1.

The models (``engines``), ``service_config`` and ``speak`` come from tests/conftest.py,
shared with the browser tests so the models load once per run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestServer

from streaming.config import AppConfig
from streaming.engines import Engines
from streaming.server import create_app


@pytest.fixture
async def server(service_config: AppConfig, engines: Engines) -> AsyncIterator[TestServer]:
    """A fresh server on 127.0.0.1 sharing the loaded engines."""
    app = create_app(service_config, engines=engines)
    srv = TestServer(app, host="127.0.0.1", port=0)
    await srv.start_server()
    yield srv
    await srv.close()
