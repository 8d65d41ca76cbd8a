"""coturn (Debian's ``turnserver``) on 127.0.0.1 for tests: free port, random secret.

The fixture ``coturn`` (one server per test run) is used by tests/streaming/test_turn.py
and tests/web/test_turn_widget.py: import ``coturn_fixture`` into the test module. It
skips when coturn is not installed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from streaming.config import IceConfig
from streaming.turn import TurnUnavailableError, check_turn, ice_servers_for

TURNSERVER = "/usr/bin/turnserver"


@dataclasses.dataclass(frozen=True)
class Coturn:
    """A running turnserver: its url and shared secret."""

    url: str
    secret: str

    def ice(self, **fields: Any) -> IceConfig:
        """An ``ice`` config section pointing at this server."""
        return IceConfig.model_validate(
            {"turn_urls": [self.url], "turn_secret": self.secret} | fields
        )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        return int(udp.getsockname()[1])


async def _wait_allocates(servers: list[dict[str, Any]], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            await check_turn(servers, timeout_s=0.5)
            return
        except TurnUnavailableError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


@pytest.fixture(scope="session", name="coturn")
def coturn_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Coturn]:
    """Debian's coturn on 127.0.0.1 (free port, random secret); stopped at the end."""
    if shutil.which(TURNSERVER) is None:
        pytest.skip(f"coturn is not installed ({TURNSERVER}; apt-get install coturn)")
    root = tmp_path_factory.mktemp("coturn")
    secret = secrets.token_hex(16)
    port = _free_port()
    low = random.Random().randrange(50_000, 59_000, 2)
    log_path = root / "turnserver.log"
    args = [
        TURNSERVER,
        "-n",
        "--listening-ip=127.0.0.1",
        "--relay-ip=127.0.0.1",
        f"--listening-port={port}",
        f"--min-port={low}",
        f"--max-port={low + 200}",
        "--use-auth-secret",
        f"--static-auth-secret={secret}",
        "--realm=gwm.test",
        "--no-tls",
        "--no-dtls",
        "--no-cli",
        "--fingerprint",
        "--allow-loopback-peers",
        "--relay-threads=1",
        f"--userdb={root / 'turndb'}",
        f"--pidfile={root / 'turnserver.pid'}",
        "--log-file=stdout",
        "--simple-log",
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    server = Coturn(url=f"turn:127.0.0.1:{port}?transport=udp", secret=secret)
    try:
        # On a thread of its own: a browser test's Playwright may own this thread's loop.
        with ThreadPoolExecutor(1) as pool:
            probe = ice_servers_for(server.ice(), "probe")
            pool.submit(asyncio.run, _wait_allocates(probe, 10.0)).result()
    except TurnUnavailableError:
        proc.terminate()
        proc.wait(timeout=10)
        tail = log_path.read_text(errors="replace")[-2000:]
        pytest.fail(f"coturn did not come up on 127.0.0.1:{port}:\n{tail}")
    yield server
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
