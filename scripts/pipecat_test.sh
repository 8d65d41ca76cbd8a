#!/usr/bin/env bash
# The pipecat plugin (integrations/pipecat) in its own virtual environment: pipecat-ai
# needs protobuf>=5 and Python 3.11+, the service pins protobuf<5, so the two never
# share one. The plugin venv holds only the plugin's dependencies; it lives in the
# cache, one per version of integrations/pipecat/pyproject.toml (its hash names it),
# so a fresh clone (CI) reuses it and two checkouts can share it: the plugin's code is
# taken from this checkout (PYTHONPATH), never from the venv. Then: mypy (the service
# venv's, pointed at the plugin venv's packages) and the plugin's tests, which start
# `avatar serve` from the service venv ($VENV) on 127.0.0.1 and talk to it over
# WebRTC, as a pipecat bot would.
#
#   VENV=.venv bash scripts/pipecat_test.sh [pytest args]
#   PIPECAT_VENV=DIR   use (or create) that venv instead
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
VENV="$(realpath "${VENV:-.venv}")"
key=$(sha256sum integrations/pipecat/pyproject.toml | cut -c1-12)
cache="${XDG_CACHE_HOME:-$HOME/.cache}/gwm-avatars"
PIPECAT_VENV="${PIPECAT_VENV:-$cache/venv-pipecat-$key}"
if [ -z "${PIPECAT_PYTHON:-}" ]; then
  PIPECAT_PYTHON=$(command -v python3.11 || command -v python3)
fi
mkdir -p "$cache"
(
  flock 9
  if [ ! -e "$PIPECAT_VENV/.complete-$key" ]; then
    started=$SECONDS
    echo "setup: the pipecat plugin's venv ($PIPECAT_VENV)"
    rm -rf "$PIPECAT_VENV"
    "$PIPECAT_PYTHON" -m venv "$PIPECAT_VENV"
    # the plugin with its dependencies, then the plugin out: its code comes from here
    VENV="$PIPECAT_VENV" bash scripts/pip.sh install --quiet "./integrations/pipecat[test]"
    VENV="$PIPECAT_VENV" bash scripts/pip.sh uninstall --quiet --yes gwm-avatars-pipecat
    touch "$PIPECAT_VENV/.complete-$key"
    echo "setup: done in $((SECONDS - started)) s"
  fi
) 9>"$cache/venv-pipecat.lock"
export PYTHONPATH="$ROOT/integrations/pipecat/src"
"$VENV/bin/mypy" --config-file integrations/pipecat/pyproject.toml \
  --python-executable "$PIPECAT_VENV/bin/python" integrations/pipecat/src
cd integrations/pipecat
GWM_SERVICE_PYTHON="$VENV/bin/python" "$PIPECAT_VENV/bin/python" -m pytest "$@"
