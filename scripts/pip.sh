#!/usr/bin/env bash
# pip of the project's venv, minus one kind of noise: the "Location '…' is ignored: it
# is neither a file nor a directory" warning that pip gives for every package when a
# configured index is a local folder lacking it. Everything else pip says is passed on
# (stdout to stdout, stderr to stderr) and its exit status is kept.
#
#   VENV=.venv bash scripts/pip.sh install --quiet ...
set -uo pipefail
VENV="${VENV:-.venv}"
NOISE="^WARNING: Location '.*' is ignored: it is neither a file nor a directory\.$"
{ "$VENV/bin/python" -m pip "$@" 2>&1 1>&3 3>&- | { grep -v -E "$NOISE" || true; } >&2; } 3>&1
