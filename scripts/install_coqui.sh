#!/usr/bin/env bash
# Install the optional Coqui TTS backend (the `coqui` extra of pyproject.toml) into an
# existing venv without changing a single package that is already there (idempotent).
#
#   VENV=.venv bash scripts/install_coqui.sh
#
# 1. Every installed package is held at its current version (a constraints file made
#    from `pip freeze`), plus the project's pins, so coqui-tts can only ADD packages:
#    torch, numpy, protobuf, onnx, mediapipe, piper-tts and transformers stay put.
# 2. PyPI's torchaudio (and torchcodec) are CUDA builds; beside a CPU torch their
#    native libraries fail to load and `import torchaudio` (needed by `import TTS`)
#    raises OSError. Then torchaudio's own lib/*.so are removed: it imports in
#    pure-Python mode (resampling, mel spectrograms work; torchaudio.load does not, so
#    the project reads audio with soundfile). torchcodec only has to be installed: TTS
#    checks that it exists and never imports it on the paths we use.
#    On a machine where torchaudio loads (matching CUDA torch), nothing is removed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PY="$VENV/bin/python"
if [ ! -x "$PY" ]; then
  echo "install_coqui: no Python at $PY (run scripts/setup.sh first)" >&2
  exit 1
fi

log() { echo "install_coqui: $*" >&2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The requirements of the `coqui` extra, read from pyproject.toml (one source of truth).
"$PY" - >"$tmp/requirements.txt" <<'EOF'
try:
    import tomllib
except ImportError:  # Python 3.10
    from pip._vendor import tomli as tomllib
with open("pyproject.toml", "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["optional-dependencies"]["coqui"]))
EOF

need_install=1
if "$PY" -c "import TTS" >/dev/null 2>&1; then
  plan=$("$PY" -m pip install --dry-run -r "$tmp/requirements.txt" 2>/dev/null || true)
  if ! grep -q "^Would install" <<<"$plan"; then
    need_install=0
  fi
fi
if [ "$need_install" = 1 ]; then
  # Hold everything already installed (not the editable project, not direct URLs).
  "$PY" -m pip freeze --exclude-editable | grep -E '^[A-Za-z0-9_.-]+==' >"$tmp/held.txt" || true
  cat >"$tmp/pins.txt" <<'EOF'
torch==2.13.0
numpy<2
protobuf>=4.25.3,<5
onnx==1.17.0
EOF
  log "installing $(tr '\n' ' ' <"$tmp/requirements.txt")"
  VENV="$VENV" bash scripts/pip.sh install --quiet -c "$tmp/held.txt" -c "$tmp/pins.txt" \
    -r "$tmp/requirements.txt"
else
  log "coqui-tts already installed"
fi

# torchaudio: strip native libraries that cannot load beside this torch.
if ! err=$("$PY" -c "import torchaudio" 2>&1); then
  if grep -q "OSError" <<<"$err"; then
    libdir=$("$PY" -c "import importlib.util, pathlib; \
s = importlib.util.find_spec('torchaudio'); \
print(pathlib.Path(next(iter(s.submodule_search_locations))) / 'lib')")
    log "torchaudio's native libraries do not load beside this torch; removing $libdir/*.so"
    rm -f "$libdir"/*.so
  else
    log "import torchaudio fails:"
    echo "$err" >&2
    exit 1
  fi
fi

"$PY" -m pip check >&2
"$PY" - <<'EOF'
import importlib.metadata as md

from TTS.api import TTS  # noqa: F401  (the whole API imports)

import torch, numpy, google.protobuf  # noqa: E401

print(
    "install_coqui: ok: coqui-tts", md.version("coqui-tts"),
    "torch", torch.__version__, "torchaudio", md.version("torchaudio"),
    "numpy", numpy.__version__, "protobuf", google.protobuf.__version__,
)
EOF
