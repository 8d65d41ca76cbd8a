"""scripts/setup.sh decides from the venv itself whether to install, and stays quiet.

The decision is tested on fake virtual environments (a real ``python -m venv`` with
hand-written ``*.dist-info`` folders), through ``GWM_SETUP_DRY_RUN=1``, which prints the
decision and changes nothing: no package is ever installed here.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import packaging
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
BASE_EXTRAS = ["dev", "offline-models", "transformers"]


def _load_setup_check() -> ModuleType:
    spec = importlib.util.spec_from_file_location("setup_check", ROOT / "scripts/setup_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


setup_check = _load_setup_check()
PYPROJECT = setup_check.load_pyproject(ROOT / "pyproject.toml")


def satisfying_version(text: str) -> str:
    """A version that satisfies the requirement (its lower bound, or 0)."""
    req = Requirement(text)
    floors = [s.version for s in req.specifier if s.operator in ("==", ">=", "~=", "===")]
    version = max(floors, key=packaging.version.Version) if floors else "0"
    assert req.specifier.contains(version, prereleases=True), (text, version)
    return version


class FakeVenv:
    """A real, empty venv (no pip) whose installed packages are written by hand."""

    def __init__(self, path: Path) -> None:
        self.path = path
        subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=60
        )
        found = sorted((path / "lib").glob("python3*/site-packages"))
        assert found, list(path.rglob("site-packages"))
        self.site = found[0]
        # setup_check.py needs `packaging` (in a real venv, pip's copy); link ours in.
        (self.site / "packaging").symlink_to(Path(packaging.__file__).parent)

    def install(self, name: str, version: str, direct_url: dict[str, str] | None = None) -> None:
        """Write the metadata pip would leave for ``name==version``."""
        for old in self.site.glob(f"{canonicalize_name(name).replace('-', '_')}-*.dist-info"):
            for f in old.iterdir():
                f.unlink()
            old.rmdir()
        info = self.site / f"{canonicalize_name(name).replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        if direct_url is not None:
            (info / "direct_url.json").write_text(json.dumps(direct_url))

    def install_requirements(self, extras: list[str], *, base: bool = True) -> None:
        """The project's requirements (unless not ``base``) and those of ``extras``."""
        optional = PYPROJECT["project"]["optional-dependencies"]
        reqs = list(PYPROJECT["project"]["dependencies"]) if base else []
        for extra in extras:
            reqs += optional[extra]
        for text in reqs:
            self.install(Requirement(text).name, satisfying_version(text))

    def install_project(self) -> None:
        self.install(setup_check.PROJECT_DIST, PYPROJECT["project"]["version"])
        for script in PYPROJECT["project"]["scripts"]:
            (self.path / "bin" / script).write_text("#!/bin/sh\n")


def dry_run(venv: Path, tmp_path: Path, **env: str) -> str:
    """setup.sh's decision for ``venv`` (nothing is changed)."""
    result = subprocess.run(
        ["bash", str(ROOT / "scripts/setup.sh")],
        env={
            **os.environ,
            "VENV": str(venv),
            "GWM_SETUP_DRY_RUN": "1",
            "XDG_CACHE_HOME": str(tmp_path / "cache"),
            "CMAKE_ARGS": "-DGGML_NATIVE=OFF",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert not result.stderr, result.stderr
    return result.stdout.strip()


@pytest.fixture
def venv(tmp_path: Path) -> FakeVenv:
    return FakeVenv(tmp_path / "venv")


def test_no_venv_means_install_and_the_dry_run_creates_nothing(tmp_path: Path) -> None:
    out = dry_run(tmp_path / "absent", tmp_path)
    assert out.startswith("setup: would install") and "no virtual environment" in out, out
    assert not (tmp_path / "absent").exists()


def test_one_setup_serves_run_and_test_and_accepts_coqui_on_top(
    venv: FakeVenv, tmp_path: Path
) -> None:
    out = dry_run(venv.path, tmp_path)
    assert out.startswith("setup: would install") and "torch==2.13.0: not installed" in out, out

    venv.install_requirements(BASE_EXTRAS)
    venv.install_project()
    out = dry_run(venv.path, tmp_path)
    assert "llama-cpp-python: not installed from a wheel built by scripts/setup.sh" in out, out
    # Built with other flags: the wheel folder's name (version + flags) differs.
    llama = setup_check.LLAMA_DIST
    other = {"url": "file:///c/wheels/llama-cpp-python-0.3.36-000000000000/llama.whl"}
    venv.install(llama, satisfying_version(f"{llama}==0.3.36"), other)
    out = dry_run(venv.path, tmp_path)
    assert "llama-cpp-python: built with other flags than llama-cpp-python-0.3.36-" in out, out
    wheel_dir = out.split("built with other flags than ", 1)[1].split()[0].rstrip(";")
    url = f"file://{tmp_path}/cache/gwm-avatars/wheels/{wheel_dir}/llama_cpp_python.whl"
    venv.install(llama, "0.3.36", {"url": url})

    # `make run`'s setup and `make test`'s (which adds Coqui) agree on the same venv.
    assert dry_run(venv.path, tmp_path) == f"setup: up to date ({venv.path})"
    out = dry_run(venv.path, tmp_path, GWM_COQUI="1")
    assert "would install Coqui" in out and "coqui-tts" in out, out
    assert "would install (" not in out, out  # only the Coqui extra is missing
    venv.install_requirements(["coqui"], base=False)
    assert dry_run(venv.path, tmp_path, GWM_COQUI="1") == f"setup: up to date ({venv.path})"
    assert dry_run(venv.path, tmp_path) == f"setup: up to date ({venv.path})"


def test_a_changed_requirement_or_a_missing_script_reinstalls(
    venv: FakeVenv, tmp_path: Path
) -> None:
    venv.install_requirements(BASE_EXTRAS)
    venv.install_project()
    venv.install("numpy", "2.1.0")
    (venv.path / "bin" / "avatar").unlink()
    problems = subprocess.run(
        [str(venv.path / "bin/python"), str(ROOT / "scripts/setup_check.py"), "--extras", "dev"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert problems.returncode == 1
    lines = problems.stdout.splitlines()
    assert "numpy<2,>=1.24: 2.1.0 installed" in lines or any(
        ln.startswith("numpy") and "2.1.0 installed" in ln for ln in lines
    ), lines
    assert any(ln.endswith("bin/avatar: missing") for ln in lines), lines


def test_a_check_that_cannot_run_means_install(venv: FakeVenv, tmp_path: Path) -> None:
    venv.install_requirements(BASE_EXTRAS)
    venv.install_project()
    (venv.site / "packaging").unlink()  # no packaging, no pip: the check fails to import
    out = dry_run(venv.path, tmp_path)
    assert out.startswith("setup: would install") and "cannot check" in out, out
    assert "ModuleNotFoundError" in out, out


def test_check_functions() -> None:
    installed = {"torch": "2.13.0+cpu", "numpy": "1.26.4", "gwm-avatars": "0.1.0"}
    assert setup_check.unmet(["torch==2.13.0", "NumPy>=1.24,<2"], installed) == []
    assert setup_check.unmet(["numpy>=2"], installed) == ["numpy>=2: 1.26.4 installed"]
    assert setup_check.unmet(["Pillow>=10"], installed) == ["Pillow>=10: not installed"]
    assert setup_check.unmet(['pywin32>=300; sys_platform == "win32"'], installed) == []
    with pytest.raises(ValueError, match="no extra 'nope'"):
        setup_check.requirements(PYPROJECT, ["nope"])
    wheel_dir = Path("/cache/wheels/llama-cpp-python-0.3.36-abc")
    ok = json.dumps({"url": f"file://{wheel_dir}/llama_cpp_python-0.3.36-py3-none-any.whl"})
    assert setup_check.llama_wheel_mismatch(ok, wheel_dir) is None
    assert setup_check.llama_wheel_mismatch(ok, wheel_dir.with_name("x")) is not None
    assert setup_check.llama_wheel_mismatch(None, wheel_dir) is not None
    assert setup_check.llama_wheel_mismatch("not json", wheel_dir) is not None


def test_pip_wrapper_drops_only_the_index_folder_noise(tmp_path: Path) -> None:
    fake = tmp_path / "venv" / "bin" / "python"
    fake.parent.mkdir(parents=True)
    noise = (
        "WARNING: Location 'file:///opt/pypi/simple/torch/' is ignored: "
        "it is neither a file nor a directory."
    )
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "{noise}" >&2\n'
        'echo "ERROR: No matching distribution found for torch==9" >&2\n'
        'echo "args: $*"\n'
        "exit 3\n"
    )
    fake.chmod(0o755)
    result = subprocess.run(
        ["bash", str(ROOT / "scripts/pip.sh"), "install", "torch==9"],
        env={**os.environ, "VENV": str(fake.parent.parent)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 3
    assert result.stdout == "args: -m pip install torch==9\n"
    assert result.stderr == "ERROR: No matching distribution found for torch==9\n"


def test_license_is_an_spdx_string_and_the_backend_supports_it() -> None:
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    requires = [Requirement(r) for r in PYPROJECT["build-system"]["requires"]]
    setuptools = next(r for r in requires if r.name == "setuptools")
    assert not setuptools.specifier.contains("76.9"), setuptools  # PEP 639 needs >= 77


def test_a_console_script_of_an_old_layout_reinstalls(tmp_path: Path) -> None:
    """A venv installed before the ``avatar`` command moved to another module."""
    script = tmp_path / "avatar"
    script.write_text("#!/venv/bin/python\nimport sys\nfrom avatar.cli import main\n")
    assert not setup_check.script_runs(script, "gwm_avatars.cli:main")
    script.write_text("#!/venv/bin/python\nimport sys\nfrom gwm_avatars.cli import main\n")
    assert setup_check.script_runs(script, "gwm_avatars.cli:main")
