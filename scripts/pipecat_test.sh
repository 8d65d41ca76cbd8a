#!/usr/bin/env bash
# The pipecat plugin (integrations/pipecat) in its own virtual environment: pipecat-ai
# needs protobuf>=5 and Python 3.11+, the service pins protobuf<5, so the two never
# share one. Creates $PIPECAT_VENV (once per version of the plugin's pyproject.toml;
# the plugin is installed editable, so a code change needs no reinstall), type-checks
# the plugin with the service venv's mypy against the plugin venv's packages, then
# runs its tests: they start `avatar serve` from the service venv ($VENV) on
# 127.0.0.1 and talk to it over WebRTC, as a pipecat bot would.
#
#   VENV=.venv PIPECAT_VENV=.venv-pipecat bash scripts/pipecat_test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="$(realpath "${VENV:-.venv}")"
PIPECAT_VENV="${PIPECAT_VENV:-.venv-pipecat}"
if [ -z "${PIPECAT_PYTHON:-}" ]; then
  PIPECAT_PYTHON=$(command -v python3.11 || command -v python3)
fi
stamp="$PIPECAT_VENV/.gwm-pipecat-$(sha256sum integrations/pipecat/pyproject.toml | cut -c1-12)"
if [ ! -e "$stamp" ]; then
  started=$SECONDS
  echo "setup: the pipecat plugin's venv ($PIPECAT_VENV)"
  if [ ! -x "$PIPECAT_VENV/bin/python" ]; then
    "$PIPECAT_PYTHON" -m venv "$PIPECAT_VENV"
  fi
  VENV="$PIPECAT_VENV" bash scripts/pip.sh install --quiet -e "./integrations/pipecat[test]"
  rm -f "$PIPECAT_VENV"/.gwm-pipecat-*
  touch "$stamp"
  echo "setup: done in $((SECONDS - started)) s"
fi
PIPECAT_VENV="$(realpath "$PIPECAT_VENV")"
"$VENV/bin/mypy" --config-file integrations/pipecat/pyproject.toml \
  --python-executable "$PIPECAT_VENV/bin/python" integrations/pipecat/src
cd integrations/pipecat
GWM_SERVICE_PYTHON="$VENV/bin/python" "$PIPECAT_VENV/bin/python" -m pytest "$@"
