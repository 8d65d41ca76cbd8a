"""``avatar serve`` as a real process on 127.0.0.1, from the service's own venv.

The service's venv is ``$GWM_SERVICE_PYTHON`` (scripts/pipecat_test.sh sets it), else
the repository's ``.venv``; the repository root goes on its PYTHONPATH so that this
checkout's code is served. It runs with an API key, 256-pixel video and the small
LLM, and is killed (SIGKILL) at the end or by a test.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SERVICE_API_KEY = "plugin-test-service-key"
VIDEO_SIZE = 256
READY_TIMEOUT_S = 240.0


def service_python() -> Path | None:
    """The service venv's python, if there is one."""
    given = os.environ.get("GWM_SERVICE_PYTHON")
    path = Path(given) if given else ROOT / ".venv" / "bin" / "python"
    return path if path.exists() else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServiceProcess:
    """Start it, wait for ``/readyz``, use ``url``; ``kill()`` it."""

    def __init__(self, python: Path, log: Path) -> None:
        self.python = python
        self.log = log
        self.port = 0
        self.url = ""
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        """Started and not dead."""
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start ``avatar serve`` and wait until it is ready."""
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            "GWM_SERVER__API_KEYS": SERVICE_API_KEY,
        }
        sets = [
            "server.ice_host_addresses=[127.0.0.1]",
            f"render.size={VIDEO_SIZE}",
            "llm.model=qwen2.5-0.5b-instruct-gguf",
        ]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    *(str(self.python), "-m", "gwm_avatars.cli"),
                    *(a for s in sets for a in ("--set", s)),
                    *("serve", "--host", "127.0.0.1", "--port", str(self.port)),
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"avatar serve exited ({self.proc.returncode}); see {self.log}")
            with (
                contextlib.suppress(urllib.error.URLError, OSError),
                urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as resp,
            ):
                if resp.status == 200:
                    return
            time.sleep(0.5)
        self.kill()
        raise TimeoutError(f"avatar serve not ready in {READY_TIMEOUT_S:g} s; see {self.log}")

    def kill(self) -> None:
        """SIGKILL: gone at once, no goodbye to anyone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
