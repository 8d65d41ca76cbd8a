#!/usr/bin/env bash
# Create or update the project's virtual environment (idempotent).
# Re-installs only when pyproject.toml changed since the last successful setup.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
EXTRAS="${GWM_EXTRAS:-dev,offline-models,transformers}"
stamp_key=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)-${EXTRAS}
stamp="$VENV/.gwm-setup-$stamp_key"
if [ -f "$stamp" ]; then
  exit 0
fi
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip wheel setuptools
# torch first and pinned: 2.13.0 is the CPU wheel on this kind of machine; a looser
# requirement would pull a multi-GB CUDA build.
"$VENV/bin/python" -m pip install --quiet "torch==2.13.0"
# llama-cpp-python builds from source: keep the build small and use OpenMP.
export CMAKE_ARGS="${CMAKE_ARGS:--DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF -DGGML_OPENMP=ON}"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
"$VENV/bin/python" -m pip install --quiet -e ".[${EXTRAS}]"
rm -f "$VENV"/.gwm-setup-*
touch "$stamp"
