"""deploy/build.sh and deploy/image_check.sh without building: which builder they pick
and what they hand it (fake `docker`/`buildah` executables on PATH record their argv).
The real build and run check is `make image-test` (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy import dockerfile
from tests.deploy.manifests import REPO

BUILD = REPO / "deploy" / "build.sh"
CHECK = REPO / "deploy" / "image_check.sh"


def _fake(bin_dir: Path, name: str, log: Path, rc: int = 0) -> None:
    """An executable ``name`` that appends its argv (a JSON line) to ``log``, and the
    files under each ``-v`` source to ``<log>.mounts``; exits ``rc`` for ``docker info``
    and 0 otherwise."""
    script = bin_dir / name
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "argv = sys.argv[1:]\n"
        f"with open({str(log)!r}, 'a') as f:\n"
        f"    f.write(json.dumps([{name!r}, *argv]) + '\\n')\n"
        "for i, a in enumerate(argv[:-1]):\n"
        "    if a == '-v':\n"
        "        src = argv[i + 1].split(':')[0]\n"
        "        files = sorted(os.path.relpath(os.path.join(d, n), src)\n"
        "                       for d, _, ns in os.walk(src) for n in ns)\n"
        f"        with open({str(log) + '.mounts'!r}, 'a') as f:\n"
        "            f.write(json.dumps(files) + '\\n')\n"
        f"sys.exit({rc} if argv[:1] == ['info'] else 0)\n"
    )
    script.chmod(0o755)


def _env(bin_dir: Path) -> dict[str, str]:
    # Only the fakes and the basic tools: no real docker/buildah can answer.
    tools = bin_dir / "tools"
    tools.mkdir(exist_ok=True)
    tools_used = ("bash", "sh", "sed", "head", "date", "realpath", "nice", "dirname", "awk")
    for tool in (*tools_used, "mktemp", "chmod", "rm", "cat", "cp"):
        found = shutil.which(tool)
        assert found, tool
        (tools / tool).symlink_to(found)
    return {"PATH": f"{bin_dir}:{tools}", "HOME": str(bin_dir)}


def _build(
    tmp_path: Path, *args: str, docker_rc: int | None, buildah: bool
) -> tuple[int, str, list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    log.touch()
    if docker_rc is not None:
        _fake(bin_dir, "docker", log, docker_rc)
    if buildah:
        _fake(bin_dir, "buildah", log)
    result = subprocess.run(
        ["bash", str(BUILD), *args],
        env=_env(bin_dir),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.returncode, result.stderr, _calls(log)


def _calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def _builds(calls: list[list[str]]) -> list[list[str]]:
    return [c for c in calls if "bud" in c or c[:2] == ["docker", "build"]]


def test_docker_builds_when_its_engine_answers(tmp_path: Path) -> None:
    rc, err, calls = _build(tmp_path, docker_rc=0, buildah=True)
    assert rc == 0, err
    (argv,) = _builds(calls)
    assert argv[:2] == ["docker", "build"]
    assert argv[argv.index("-f") + 1] == "deploy/Dockerfile" and argv[-1] == "."
    assert not any(c[0] == "buildah" for c in calls)


def test_buildah_builds_when_no_engine_answers(tmp_path: Path) -> None:
    # `docker` is installed but its daemon does not answer: buildah, with vfs and chroot.
    rc, err, calls = _build(tmp_path, "--gpu", docker_rc=1, buildah=True)
    assert rc == 0, err
    (argv,) = _builds(calls)
    assert argv[0] == "buildah" and "bud" in argv
    assert argv[argv.index("--storage-driver") + 1] == "vfs"
    assert argv[argv.index("--isolation") + 1] == "chroot"
    # The Docker image format: OCI has no HEALTHCHECK, which buildah would drop.
    assert argv[argv.index("--format") + 1] == "docker"
    assert argv[argv.index("-f") + 1] == "deploy/Dockerfile.gpu"
    assert argv[argv.index("-t") + 1].endswith("-gpu")


def test_no_builder_is_a_usage_error(tmp_path: Path) -> None:
    rc, err, _ = _build(tmp_path, docker_rc=1, buildah=False)
    assert rc == 2 and "buildah" in err


def test_host_inputs_are_run_time_mounts_named_by_build_args(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    wheels = [tmp_path / "w1", tmp_path / "w2"]
    for w, wheel in zip(wheels, ["torch-0-py3-none-any.whl", "llama-0.whl"], strict=True):
        w.mkdir()
        (w / wheel).write_bytes(b"PK")
    rc, err, calls = _build(
        tmp_path,
        "--ca-file", str(ca), "--wheels", str(wheels[0]), "--wheels", str(wheels[1]),
        "--base", "localhost/base:1", "--", "--build-arg", "X=1",
        docker_rc=None, buildah=True,
    )  # fmt: skip
    assert rc == 0, err
    (argv,) = _builds(calls)
    # One mount, over the image's own (empty) /mnt: no placeholder path is left in a layer.
    mounts = [argv[i + 1] for i, a in enumerate(argv) if a == "-v"]
    assert len(mounts) == 1 and mounts[0].endswith(":/mnt:ro"), mounts
    staged = json.loads((tmp_path / "calls.log.mounts").read_text())
    assert staged == ["ca.crt", "wheels0/torch-0-py3-none-any.whl", "wheels1/llama-0.whl"]
    assert not Path(mounts[0].split(":")[0]).exists(), "the staging folder was left behind"
    build_args = [argv[i + 1] for i, a in enumerate(argv) if a == "--build-arg"]
    assert "PIP_CERT=/mnt/ca.crt" in build_args
    assert "PIP_FIND_LINKS=/mnt/wheels0 /mnt/wheels1" in build_args
    assert "BASE_IMAGE=localhost/base:1" in build_args and "X=1" in build_args


def test_host_inputs_need_buildah(tmp_path: Path) -> None:
    # docker build has no RUN-time bind mounts: refused rather than copied into a layer.
    wheels = tmp_path / "w"
    wheels.mkdir()
    rc, err, calls = _build(tmp_path, "--wheels", str(wheels), docker_rc=0, buildah=True)
    assert rc == 2 and "buildah" in err and not _builds(calls)


@pytest.mark.parametrize(
    "args",
    [
        ["--bogus"],
        ["--ca-file", "/nonexistent/ca.crt"],
        ["--gpu", "--debian-base"],
        ["--gpu", "--wheels", "/"],
        ["--tag"],
    ],
)
def test_bad_options_exit_2(tmp_path: Path, args: list[str]) -> None:
    rc, err, calls = _build(tmp_path, *args, docker_rc=None, buildah=True)
    assert rc == 2 and err.startswith("build.sh: ") and not _builds(calls)


def test_host_inputs_are_builder_args_that_pip_reads(cpu_image: dockerfile.Dockerfile) -> None:
    # Named like pip's own settings, empty by default (pip ignores an empty PIP_CERT and
    # PIP_FIND_LINKS), and declared in the builder only: the runtime stage, which is the
    # image, never sees them.
    builder = cpu_image.stage("builder")
    assert builder.args()["PIP_CERT"] == "" and builder.args()["PIP_FIND_LINKS"] == ""
    assert not {"PIP_CERT", "PIP_FIND_LINKS"} & set(cpu_image.final.args())
    assert not {"PIP_CERT", "PIP_FIND_LINKS"} & set(cpu_image.final.env())


def test_cpu_base_is_a_build_arg_with_the_public_default(cpu_image: dockerfile.Dockerfile) -> None:
    default = cpu_image.global_args["BASE_IMAGE"]
    assert default and default.startswith("python:3.11.")
    for stage in (cpu_image.stage("builder"), cpu_image.final):
        assert stage.written == "${BASE_IMAGE}" and stage.image == default
    # The venv is made with `python3`: the name both the official image and Debian's
    # python3 package give the interpreter.
    venv = [r.text for r in cpu_image.stage("builder").all("RUN") if "-m venv" in r.text]
    assert venv == ["python3 -m venv /opt/venv"]


def test_image_check_runs_docker_as_the_user_without_network(tmp_path: Path) -> None:
    # With an engine, every check is a `docker run` as uid 10001 with --network none;
    # the fake's empty answers fail the checks, which the exit code reports.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    _fake(bin_dir, "docker", log, 0)
    result = subprocess.run(
        ["bash", str(CHECK), "--tag", "gwm-avatars:test"],
        env=_env(bin_dir),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1 and "FAILED" in result.stderr, result.stderr
    runs = [c for c in _calls(log) if c[:2] == ["docker", "run"]]
    assert len(runs) >= 6  # uid, network, host inputs, smoke, render, serve (+ du report)
    for argv in runs:
        assert argv[argv.index("--network") + 1] == "none"
        assert argv[argv.index("--user") + 1] == "10001:10001"
        assert "gwm-avatars:test" in argv
    commands = [" ".join(a[a.index("gwm-avatars:test") + 1 :]) for a in runs]
    assert any(c.endswith("smoke") for c in commands)
    assert any("render" in c and "/out/check.mp4" in c for c in commands)
    assert any("avatar" in c and "serve" in c and "/readyz" in c for c in commands)


def test_scripts_pass_shell_syntax_and_help() -> None:
    for script in (BUILD, CHECK):
        assert os.access(script, os.X_OK), f"{script.name} is not executable"
        subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)
        out = subprocess.run(
            ["bash", str(script), "--help"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
        assert "--gpu" in out and "--tag" in out
