#!/usr/bin/env bash
# Lint, type-check and run the whole test suite (pytest's "no tests" exit 5 is a pass),
# then the pipecat plugin's tests in its own venv (scripts/pipecat_test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
"$VENV/bin/ruff" check models avatar streaming gwm_avatars tests benchmarks scripts integrations
"$VENV/bin/mypy"
set +e
"$VENV/bin/python" -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests"
  rc=0
fi
# The plugin's suite when the whole suite runs (no pytest arguments).
if [ "$#" -eq 0 ]; then
  set +e
  VENV="$VENV" bash scripts/pipecat_test.sh
  plugin_rc=$?
  set -e
  if [ "$rc" -eq 0 ]; then
    rc=$plugin_rc
  fi
fi
exit "$rc"
