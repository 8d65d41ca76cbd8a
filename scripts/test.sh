#!/usr/bin/env bash
# Lint, type-check and run the whole test suite (pytest's "no tests" exit 5 is a pass).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
"$VENV/bin/ruff" check models avatar streaming gwm_avatars tests benchmarks scripts
"$VENV/bin/mypy"
set +e
"$VENV/bin/python" -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests"
  exit 0
fi
exit "$rc"
