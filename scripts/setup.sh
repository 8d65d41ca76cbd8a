#!/usr/bin/env bash
# Create or update the project's virtual environment (idempotent).
# Re-installs only when pyproject.toml changed since the last successful setup.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
EXTRAS="${GWM_EXTRAS:-dev,offline-models,transformers}"
# GWM_COQUI=1 adds the optional Coqui TTS backend (the test setup does; `make run` not).
COQUI="${GWM_COQUI:-0}"
stamp_key=$(cat pyproject.toml scripts/setup.sh scripts/install_coqui.sh | sha256sum | cut -c1-16)-${EXTRAS}-coqui${COQUI}
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
# llama-cpp-python builds from source. A portable x86-64 build (AVX2/FMA/F16C, no
# -march=native): native builds pick up AMX on some hosts, where llama.cpp then crashes
# in prompt evaluation. The wheel is cached per build flags, so rebuilds happen once.
LLAMA_VERSION=0.3.36
if [ "$(uname -m)" = "x86_64" ]; then
  default_cmake="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
else
  default_cmake="-DGGML_NATIVE=OFF"
fi
export CMAKE_ARGS="${CMAKE_ARGS:--DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF -DGGML_OPENMP=ON $default_cmake}"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
flags_key=$(printf '%s' "$CMAKE_ARGS" | sha256sum | cut -c1-12)
wheel_dir="${XDG_CACHE_HOME:-$HOME/.cache}/gwm-avatars/wheels/llama-cpp-python-$LLAMA_VERSION-$flags_key"
if ! ls "$wheel_dir"/llama_cpp_python-*.whl > /dev/null 2>&1; then
  echo "building llama-cpp-python $LLAMA_VERSION (once, a few minutes)"
  "$VENV/bin/python" -m pip wheel --quiet --no-deps --no-cache-dir \
    "llama-cpp-python==$LLAMA_VERSION" -w "$wheel_dir"
fi
"$VENV/bin/python" -m pip install --quiet --no-deps --force-reinstall "$wheel_dir"/llama_cpp_python-*.whl
"$VENV/bin/python" -m pip install --quiet -e ".[${EXTRAS}]"
if [ "$COQUI" = "1" ]; then
  VENV="$VENV" bash scripts/install_coqui.sh
fi
rm -f "$VENV"/.gwm-setup-*
touch "$stamp"
