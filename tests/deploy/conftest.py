"""Fixtures of the deploy tests: the manifests, the Dockerfiles and pyproject.toml."""

from __future__ import annotations

import re
import sys
from typing import Any

import pytest

from tests.deploy import dockerfile
from tests.deploy.manifests import REPO, Doc, load_docs

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


@pytest.fixture(scope="session")
def docs() -> list[Doc]:
    """Every document of deploy/k8s (the kustomization aside)."""
    return load_docs()


@pytest.fixture(scope="session")
def pyproject() -> dict[str, Any]:
    """pyproject.toml, parsed."""
    with (REPO / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


@pytest.fixture(scope="session")
def cpu_image() -> dockerfile.Dockerfile:
    """deploy/Dockerfile."""
    return dockerfile.parse(REPO / "deploy" / "Dockerfile")


@pytest.fixture(scope="session")
def gpu_image() -> dockerfile.Dockerfile:
    """deploy/Dockerfile.gpu."""
    return dockerfile.parse(REPO / "deploy" / "Dockerfile.gpu")


def pinned(requirements: list[str], name: str) -> str:
    """The version ``name==X`` pins in a list of requirement strings."""
    for req in requirements:
        m = re.fullmatch(rf"{re.escape(name)}(\[[^\]]*\])?==([^;\s]+)", req.strip())
        if m:
            return m.group(2)
    raise AssertionError(f"{name} is not pinned with == in {requirements}")
