"""The README's commands, run as written: a README command that breaks fails here.

The commands are read from README.md itself (never copied here):

- every ``avatar ...`` command of the README (code blocks and inline code, optional
  ``[...]`` parts with and without) and of the Makefile's recipes parses, and its
  configuration (profile, ``--set``, ``GWM_*`` variables) loads; no model needed;
- the "Two commands" block: ``make run`` is started as written, in the background, in its
  own process group, until it prints the URL to open, serves the demo page, ``/readyz``
  answers and a typed turn gets a spoken reply; then SIGTERM to the group. (``make test``
  is the command running this test: its Makefile recipe is checked with ``make -n``.)
  ``VENV`` points at this test run's own venv, which setup.sh must find up to date (it
  would otherwise install: the test refuses rather than install anything);
- the ``avatar`` examples that finish on their own (``models``, ``smoke``, ``render``,
  ``prepare``) run in a scratch folder holding the ``photo.jpg`` and ``speech.wav``
  they name; ``serve`` is what ``make run`` starts, and ``route``'s example workers are
  not on loopback, so those two are only parsed.

Each command runs with the venv's ``bin`` first on ``PATH`` (an activated venv) and this
checkout first on ``PYTHONPATH``; the server gets a free port through ``GWM_SERVER__PORT``
so that it cannot collide with another service. What the commands cache (prepared
avatars) goes to a private folder; the model weights come from the usual cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from PIL import Image

from gwm_avatars.cli import COMMANDS, parse_args
from models.assets import AssetResolver
from streaming.config import load_config
from tests.conftest import TEST_PROMPT

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
MAKEFILE = (ROOT / "Makefile").read_text(encoding="utf-8")

RUN = {"models", "smoke", "render", "prepare"}
"""Subcommands whose README examples are run to completion."""
PARSE_ONLY = {
    "serve": "`make run` starts it",
    "route": "its example workers (10.0.0.x) are not on loopback",
}
ENV_ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=")


def section(heading: str) -> str:
    """The README's text under ``## heading``, up to the next ``## ``."""
    m = re.search(rf"^## {re.escape(heading)}\s*$(.*?)(?=^## |\Z)", README, re.M | re.S)
    assert m, f"README has no section '## {heading}'"
    return m.group(1)


def code_lines(text: str) -> list[str]:
    """The command lines of the ```bash blocks in ``text`` (comments and blanks left out)."""
    lines = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, re.M | re.S):
        for line in block.replace("\\\n", " ").splitlines():  # join continued lines
            if shlex.split(line, comments=True):
                lines.append(line.strip())
    return lines


def with_and_without_options(line: str) -> list[str]:
    """``avatar serve [--config gpu]`` -> without, and with, its optional ``[...]`` parts."""
    if "[" not in line or not re.search(r"\[-", line):
        return [line]
    without = re.sub(r"\s*\[-[^\]]*\]", "", line)
    with_all = re.sub(r"\[(-[^\]]*)\]", r"\1", line)
    return [without, with_all]


def split(line: str) -> tuple[dict[str, str], list[str]]:
    """``A=1 avatar serve  # note`` -> ({"A": "1"}, ["avatar", "serve"])."""
    tokens = shlex.split(line, comments=True)
    env = {}
    while tokens and ENV_ASSIGNMENT.match(tokens[0]):
        key, _, value = tokens.pop(0).partition("=")
        env[key] = value
    return env, tokens


def readme_avatar_commands() -> list[str]:
    """Every ``avatar ...`` command the README shows, in code blocks or inline code."""
    found = [line for line in code_lines(README) if split(line)[1][:1] == ["avatar"]]
    for span in re.findall(r"`([^`\n]+)`", README):
        if span.startswith("avatar ") or re.match(r"^([A-Z_][A-Z0-9_]*=\S+ )+avatar ", span):
            found.append(span)
    return [v for line in dict.fromkeys(found) for v in with_and_without_options(line)]


def makefile_avatar_commands() -> list[str]:
    """The Makefile's ``$(VENV)/bin/avatar ...`` recipes, with the Makefile's defaults."""
    defaults = dict(re.findall(r"^(\w+) \?= (\S+)$", MAKEFILE, re.M))
    found = []
    for line in re.findall(r"^\t@?\$\(VENV\)/bin/(avatar .*)$", MAKEFILE, re.M):
        found.append(re.sub(r"\$\((\w+)\)", lambda m: defaults[m.group(1)], line))
    return found


def example_commands() -> list[str]:
    """The command lines of the README's "The `avatar` command" block."""
    return code_lines(section("The `avatar` command"))


# --- fast: every command parses and its configuration loads --------------------------


def test_the_readme_shows_the_commands_this_test_runs() -> None:
    assert split(code_lines(section("Two commands"))[0])[1] == ["make", "run"]
    subcommands = {split(line)[1][1] for line in example_commands()}
    assert subcommands >= RUN, subcommands
    assert subcommands <= RUN | set(PARSE_ONLY), f"run or parse these: {subcommands}"
    assert len(readme_avatar_commands()) >= len(example_commands()) + 3
    assert {c.split()[1] for c in makefile_avatar_commands()} >= {"serve", "smoke"}


@pytest.mark.parametrize("line", readme_avatar_commands() + makefile_avatar_commands())
def test_every_avatar_command_parses_and_its_config_loads(line: str) -> None:
    env, tokens = split(line)
    assert tokens[0] == "avatar"
    args = parse_args(tokens[1:])
    assert args.command in COMMANDS
    load_config(args.config, environ=env, overrides=args.overrides)


def test_make_targets_of_the_two_commands_exist() -> None:
    for line in code_lines(section("Two commands")):
        env, tokens = split(line)
        assert tokens[0] == "make", line
        result = subprocess.run(
            ["make", "-n", *tokens[1:]],
            cwd=ROOT,
            env={**os.environ, **env, "VENV": sys.prefix},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, (line, result.stderr)


def test_parsing_helpers() -> None:
    assert with_and_without_options("avatar serve [--config gpu] [--port 8080]") == [
        "avatar serve",
        "avatar serve --config gpu --port 8080",
    ]
    assert with_and_without_options("avatar serve --set 'x=[1]'") == ["avatar serve --set 'x=[1]'"]
    assert split("A_B=5 avatar serve  # note") == ({"A_B": "5"}, ["avatar", "serve"])


# --- with models: the commands run ---------------------------------------------------


def _venv() -> Path:
    if sys.prefix == sys.base_prefix:
        pytest.fail("run the tests from the project's venv (make test): make run needs one")
    return Path(sys.prefix)


def _env(cache: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of an activated venv, with this checkout's code first.

    With ``cache``, what the commands cache (prepared avatars) goes there, except the
    model weights: those stay in the usual cache, assembled once for every test.
    """
    env = dict(os.environ)
    if cache is not None:
        env["GWM_ASSETS__CACHE_DIR"] = str(AssetResolver(load_config("default").assets).cache_dir)
        env["XDG_CACHE_HOME"] = str(cache)
    env["PATH"] = f"{_venv() / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(_venv())
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This module's private cache folder."""
    return tmp_path_factory.mktemp("readme-cache")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch folder with the files the README's examples name."""
    from avatar.identity.bundle import default_photo
    from tests.avatar.speech_support import espeak_wav

    folder = tmp_path_factory.mktemp("readme")
    Image.fromarray(default_photo()).save(folder / "photo.jpg", quality=92)
    espeak_wav("Hello there, nice to meet you.", folder / "speech.wav")
    return folder


def _check_outputs(tokens: list[str], folder: Path, stdout: str) -> None:
    """What each example should have left behind."""
    from avatar.media import probe

    command = tokens[1]
    if command == "render":
        out = folder / tokens[tokens.index("-o") + 1]
        info = probe(out)
        assert info.video_frames > 0 and info.audio_codecs, info
        if "--size" in tokens:
            w, h = tokens[tokens.index("--size") + 1].split("x")
            assert (info.width, info.height) == (int(w), int(h)), info
        if "--fps" in tokens:
            assert info.fps == float(tokens[tokens.index("--fps") + 1]), info
    elif command == "prepare":
        bundle = folder / tokens[tokens.index("-o") + 1]
        assert (bundle / "rig.json").is_file() and (bundle / "preview.png").is_file()
    elif command == "models":
        assert "whisper-base" in stdout and "piper-joe-medium" in stdout, stdout
    elif command == "smoke":
        assert re.search(r"^llm .*replied", stdout, re.M), stdout


@pytest.mark.models
@pytest.mark.timeout(900)
@pytest.mark.parametrize("line", [line for line in example_commands() if line.split()[1] in RUN])
def test_avatar_example_runs_as_written(line: str, workdir: Path, cache: Path) -> None:
    env, tokens = split(line)
    result = subprocess.run(
        ["bash", "-c", line],
        cwd=workdir,
        env=_env(cache, **env),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, (line, result.stdout[-2000:], result.stderr[-4000:])
    assert "Traceback" not in result.stderr, result.stderr[-4000:]
    _check_outputs(tokens, workdir, result.stdout)


@contextlib.contextmanager
def _process_group(command: str, log: Path, env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """``command`` in its own process group; SIGTERM to the group (then SIGKILL) at exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["bash", "-c", command],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
                _wait_group_gone(proc.pid, 30)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def _wait_group_gone(pgid: int, timeout: float) -> None:
    """Until no process of the group is left (``avatar serve`` drains, then exits)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    raise AssertionError(f"process group {pgid} still running {timeout} s after SIGTERM")


async def _wait_for_line(log: Path, proc: subprocess.Popen, pattern: str, timeout: float) -> str:
    end = time.monotonic() + timeout
    text = ""
    while time.monotonic() < end:
        text = await asyncio.to_thread(log.read_text, errors="replace")
        m = re.search(pattern, text, re.M)
        if m:
            return m.group(0)
        assert proc.poll() is None, f"exited early ({proc.returncode}):\n{text[-4000:]}"
        await asyncio.sleep(0.3)
    raise AssertionError(f"no line matching {pattern!r} in {timeout} s:\n{text[-4000:]}")


async def _typed_turn(url: str) -> tuple[dict, list[np.ndarray]]:
    """A session, one typed message; the final reply and the audio received."""
    from streaming.client import ClientPeer

    peer = ClientPeer(url, keep_video=False)
    try:
        assert await peer.connect() is None
        await peer.wait_open()
        peer.send({"type": "text", "text": "Say hello to me."})
        final = await peer.wait_event("assistant_text", 120, pred=lambda m: m["final"])
        await peer.wait_event("turn_metrics", 15)
    finally:
        await peer.hangup()
    return final, [a for _, a in peer.received.audio]


def _setup_decision(venv: Path) -> str:
    """What scripts/setup.sh would do to ``venv`` (its dry run changes nothing)."""
    return subprocess.run(
        ["bash", "scripts/setup.sh"],
        cwd=ROOT,
        env=_env(VENV=str(venv), GWM_SETUP_DRY_RUN="1"),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout


@pytest.mark.models
@pytest.mark.timeout(600)
async def test_make_run_serves_the_page_and_answers_a_typed_turn(
    tmp_path: Path, cache: Path
) -> None:
    line = code_lines(section("Two commands"))[0]
    venv = _venv()
    decision = await asyncio.to_thread(_setup_decision, venv)
    # `make test` set this venv up: `make run` must not install anything.
    assert decision.strip() == f"setup: up to date ({venv})", decision

    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    env = _env(
        cache,
        VENV=str(venv),
        GWM_SERVER__PORT=str(port),
        GWM_SERVER__ICE_HOST_ADDRESSES="[127.0.0.1]",
        GWM_LLM__MAX_TOKENS="30",
        GWM_LLM__FIRST_TOKEN_TIMEOUT_S="60",
        GWM_LLM__SYSTEM_PROMPT=TEST_PROMPT,
    )
    log = tmp_path / "make-run.log"
    with _process_group(line, log, env) as proc:
        ready = await _wait_for_line(log, proc, r"ready .*: open (\S+)$", 300)
        assert ready.endswith(f"open {url}"), ready
        async with aiohttp.ClientSession() as http:
            page = await http.get(url)
            assert page.status == 200
            assert "gwm-avatar" in await page.text()
            assert (await http.get(f"{url}readyz")).status == 200
        final, audio = await _typed_turn(url.rstrip("/"))
    output = log.read_text(errors="replace")
    assert final["text"].strip(), final
    loud = [a for a in audio if a.size and float(np.abs(a).max()) > 0.02]
    assert len(loud) > 20, f"the reply was not heard ({len(loud)} loud frames)"
    assert "shutting down" in output, output[-3000:]  # SIGTERM drained and stopped it
    assert "Traceback" not in output, output[-6000:]
    assert "is ignored: it is neither a file nor a directory" not in output
