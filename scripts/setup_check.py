"""Does this Python environment already hold what scripts/setup.sh would install?

Run with the virtual environment's own Python, before anything is installed into it, so
it needs nothing but the standard library and ``packaging`` (pip's copy will do):

    .venv/bin/python scripts/setup_check.py --extras dev,offline-models,transformers \\
        [--llama-wheel-dir DIR]

Prints one line per unmet requirement and exits 1, or prints nothing and exits 0. The
answer comes from the environment itself (installed distributions against the
requirements in pyproject.toml), not from a stamp file, so ``make run`` and ``make
test`` agree, an environment with more installed (the optional Coqui extra) still
satisfies the plain setup, and edits to pyproject.toml that change no requirement
reinstall nothing.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import re
import sys
import sysconfig
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

try:
    import tomllib
except ImportError:  # Python 3.10
    from pip._vendor import tomli as tomllib  # type: ignore[no-redef]

try:
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name
except ImportError:  # a bare venv: pip's vendored copy
    from pip._vendor.packaging.requirements import (  # type: ignore[no-redef]
        InvalidRequirement,
        Requirement,
    )
    from pip._vendor.packaging.utils import canonicalize_name  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parent.parent
PROJECT_DIST = "gwm-avatars"
LLAMA_DIST = "llama-cpp-python"


def load_pyproject(path: Path) -> dict[str, Any]:
    """The parsed pyproject.toml."""
    with path.open("rb") as fh:
        return tomllib.load(fh)


def requirements(pyproject: Mapping[str, Any], extras: Iterable[str]) -> list[str]:
    """The project's requirements plus those of ``extras`` (``ValueError`` if unknown)."""
    project = pyproject["project"]
    optional = project.get("optional-dependencies", {})
    reqs = list(project.get("dependencies", []))
    for extra in extras:
        if extra not in optional:
            raise ValueError(f"pyproject.toml has no extra {extra!r}")
        reqs += optional[extra]
    return reqs


def installed_versions(paths: Sequence[str] | None = None) -> dict[str, str]:
    """Canonical distribution name -> version, of the environment (or ``paths``)."""
    found: dict[str, str] = {}
    dists = md.distributions(path=list(paths)) if paths is not None else md.distributions()
    for dist in dists:
        name = dist.metadata["Name"]
        if name:
            found.setdefault(canonicalize_name(name), dist.version)
    return found


def unmet(reqs: Iterable[str], installed: Mapping[str, str]) -> list[str]:
    """A line per requirement that ``installed`` does not satisfy (markers evaluated)."""
    out = []
    for text in reqs:
        try:
            req = Requirement(text)
        except InvalidRequirement as exc:
            out.append(f"{text}: invalid requirement ({exc})")
            continue
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        version = installed.get(canonicalize_name(req.name))
        if version is None:
            out.append(f"{text}: not installed")
        elif not req.specifier.contains(version, prereleases=True):
            out.append(f"{text}: {version} installed")
    return out


def llama_wheel_mismatch(direct_url: str | None, wheel_dir: Path) -> str | None:
    """Why the installed llama-cpp-python is not the wheel built in ``wheel_dir``, if so.

    setup.sh installs it from a wheel whose folder name carries the version and the
    build flags; pip records that file's URL in the distribution's direct_url.json.
    """
    if direct_url is None:
        return f"{LLAMA_DIST}: not installed from a wheel built by scripts/setup.sh"
    try:
        url = str(json.loads(direct_url).get("url", ""))
    except (ValueError, AttributeError):
        url = ""
    folder = re.sub(r"^file://", "", url).rstrip("/").rsplit("/", 2)
    if len(folder) < 2 or folder[-2] != wheel_dir.name:
        return f"{LLAMA_DIST}: built with other flags than {wheel_dir.name}"
    return None


def _direct_url(dist_name: str) -> str | None:
    try:
        return md.distribution(dist_name).read_text("direct_url.json")
    except md.PackageNotFoundError:
        return None


def script_runs(path: Path, target: str) -> bool:
    """Whether the console script at ``path`` calls ``target`` (``module:function``), as
    pip writes them (``from module import function``); a script of another form counts."""
    module, _, function = target.partition(":")
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    if "import " not in text:
        return True
    return f"from {module} import {function}" in text


def check(
    pyproject: Mapping[str, Any],
    extras: Sequence[str],
    installed: Mapping[str, str],
    *,
    llama_direct_url: str | None = None,
    llama_wheel_dir: Path | None = None,
    scripts_dir: Path | None = None,
) -> list[str]:
    """Every reason to (re)install; empty when the environment is up to date.

    With ``scripts_dir`` the project itself must be installed (its version, and its
    console scripts there); with ``llama_wheel_dir``, llama-cpp-python from that wheel.
    """
    problems = unmet(requirements(pyproject, extras), installed)
    if scripts_dir is not None:
        project = pyproject["project"]
        problems += unmet([f"{PROJECT_DIST}=={project['version']}"], installed)
        for script, target in project.get("scripts", {}).items():
            path = scripts_dir / script
            if not path.exists():
                problems.append(f"{path}: missing")
            elif not script_runs(path, target):
                problems.append(f"{path}: does not run {target}")
    if llama_wheel_dir is not None and LLAMA_DIST in installed:
        reason = llama_wheel_mismatch(llama_direct_url, llama_wheel_dir)
        if reason:
            problems.append(reason)
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """Print the reasons to install (exit 1), or nothing (exit 0)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extras", default="", help="comma-separated extras to check")
    parser.add_argument("--llama-wheel-dir", type=Path, default=None)
    parser.add_argument(
        "--no-project",
        action="store_true",
        help="check the extras' requirements only, not the project's own install",
    )
    parser.add_argument("--pyproject", type=Path, default=ROOT / "pyproject.toml")
    args = parser.parse_args(argv)
    extras = [e for e in args.extras.split(",") if e]
    try:
        problems = check(
            load_pyproject(args.pyproject),
            extras,
            installed_versions(),
            llama_direct_url=_direct_url(LLAMA_DIST),
            llama_wheel_dir=args.llama_wheel_dir,
            scripts_dir=None if args.no_project else Path(sysconfig.get_path("scripts")),
        )
    except (OSError, ValueError, KeyError) as exc:
        problems = [f"cannot check the environment: {exc}"]
    for line in problems:
        sys.stdout.write(line + "\n")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
