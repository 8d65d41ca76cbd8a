#!/usr/bin/env bash
# Run a built image (deploy/build.sh) for real: as its non-root user, with no network,
# inside the image (`docker run` when a Docker engine answers, `buildah run` otherwise;
# GWM_BUILDER=docker|buildah overrides):
#
#   CPU image: `avatar smoke` (VAD, STT, LLM, TTS from the baked model store),
#              `avatar render --text` writes an MP4 (probed on the host: ffprobe, else
#              PyAV of $PYTHON, else the image's own PyAV), `avatar serve` answers
#              /healthz and /readyz on loopback;
#              (buildah: run in a network namespace with loopback only, made with
#              `unshare --net` and `ip`, as chroot isolation has no --network none)
#   --gpu:     torch (a CUDA build) and onnxruntime-gpu (CUDA provider) import,
#              `avatar models` lists a complete store, the CPU smoke (no GPU needed).
#
#   deploy/image_check.sh [--gpu] [--tag TAG]
#
# Ends with the image's size and what makes it big (du inside). Exit 0 when every check
# passed, 1 when one failed, 2 on bad usage.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "image_check.sh: $*" >&2; exit 2; }
# shellcheck source=deploy/builder.sh
. deploy/builder.sh
version=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n 1)
gpu=0
tag=""
while [ $# -gt 0 ]; do
  case "$1" in
    --gpu) gpu=1 ;;
    --tag) [ $# -ge 2 ] || die "--tag needs a value"; tag=$2; shift ;;
    -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
  shift
done
if [ "$gpu" = 1 ]; then tag=${tag:-gwm-avatars:$version-gpu}; else tag=${tag:-gwm-avatars:$version}; fi

builder=$(choose_builder)
storage=${BUILDAH_STORAGE_DRIVER:-vfs}
uid=10001

# /out: a host folder the image's user may write (the rendered MP4 comes back there).
out=$(mktemp -d)
chmod 0777 "$out"
ctr=""
cleanup() {
  rm -rf "$out"
  if [ -n "$ctr" ]; then buildah --storage-driver "$storage" rm "$ctr" > /dev/null || true; fi
}
trap cleanup EXIT
if [ "$builder" = buildah ]; then
  ctr=$(buildah --storage-driver "$storage" from --pull-never "$tag")
else
  docker image inspect "$tag" > /dev/null || die "no image $tag (deploy/build.sh builds it)"
fi

# in_image CMD...: one command in a fresh run of the image, as $uid, without network.
in_image() {
  if [ "$builder" = buildah ]; then
    # Chroot isolation has no --network none: buildah runs in a network namespace of its
    # own (unshare --net) that has nothing but loopback, and shares that one.
    nice -n "${NICE:-0}" unshare --net -- sh -c 'ip link set lo up && exec "$@"' sh \
      buildah --storage-driver "$storage" run --isolation chroot --network host \
      --user "$uid:$uid" -v "$out:/out" "$ctr" -- "$@"
  else
    docker run --rm --network none --user "$uid:$uid" -v "$out:/out" --entrypoint "$1" \
      "$tag" "${@:2}"
  fi
}

failed=0
check() {  # check NAME CMD...: run, time and report one check
  local name=$1 t0 rc
  shift
  t0=$(date +%s)
  echo "== $name" >&2
  if "$@"; then rc=0; else rc=$?; failed=1; fi
  echo "== $name: $([ "$rc" = 0 ] && echo ok || echo "FAILED (rc=$rc)") in $(($(date +%s) - t0)) s" >&2
}

user_is_service() { [ "$(in_image id -u)" = "$uid" ]; }
no_network() {
  # Nothing but loopback: connecting out fails at once (no route), not by a timeout.
  in_image python -c "
import socket, sys
try:
    socket.create_connection(('1.1.1.1', 443), timeout=5)
except OSError as e:
    print('no network:', e)
    sys.exit(0)
sys.exit('the container reached the network')"
}
no_host_inputs() {
  # What build.sh mounted over /mnt during the build, and pip's settings, stayed out.
  in_image bash -c '[ -z "$(ls -A /mnt)" ] && ! env | grep -E "^PIP_(CERT|FIND_LINKS)="'
}
has_healthcheck() {  # the image format kept HEALTHCHECK (buildah's OCI format drops it)
  local hc
  if [ "$builder" = buildah ]; then
    hc=$(buildah --storage-driver "$storage" inspect --type image \
      --format '{{.Docker.Config.Healthcheck}}' "$tag")
  else
    hc=$(docker image inspect --format '{{json .Config.Healthcheck}}' "$tag")
  fi
  echo "healthcheck: $hc"
  case "$hc" in *healthz*) ;; *) return 1 ;; esac
}
smoke() { in_image avatar --set assets.allow_download=false smoke; }

probe_mp4() {  # a valid MP4: one H.264 video and one audio stream, frames, a duration
  local f=$out/check.mp4 code
  code="
import sys, av
with av.open(sys.argv[1]) as c:
    v = c.streams.video[0]
    a = c.streams.audio[0]
    n = sum(1 for _ in c.decode(v))
    dur = float(c.duration or 0) / av.time_base
    print(f'{v.codec_context.name} {v.width}x{v.height} {n} frames, {a.codec_context.name} audio, {dur:.2f} s')
    assert v.codec_context.name == 'h264' and n > 0 and dur > 0"
  if command -v ffprobe > /dev/null 2>&1; then
    ffprobe -v error -show_entries stream=codec_name,width,height,nb_frames:format=duration \
      -of compact "$f" | tee /dev/stderr | grep -q 'codec_name=h264'
  elif "${PYTHON:-python3}" -c "import av" > /dev/null 2>&1; then
    "${PYTHON:-python3}" -c "$code" "$f"
  else
    in_image python -c "$code" /out/check.mp4
  fi
}
render() {
  in_image avatar --set assets.allow_download=false render --no-progress \
    --text "Hello from inside the container image." -o /out/check.mp4 && probe_mp4
}

serve() {
  # avatar serve on 127.0.0.1 inside; /healthz then /readyz (200 once models are loaded).
  # shellcheck disable=SC2016
  in_image bash -c '
    GWM_SERVER__HOST=127.0.0.1 GWM_SERVER__PORT=8080 avatar --set assets.allow_download=false serve &
    pid=$!
    python - <<"EOF"
import json, sys, time, urllib.error, urllib.request
def get(path):
    try:
        with urllib.request.urlopen("http://127.0.0.1:8080" + path, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
    except OSError:
        return None, None
deadline = time.monotonic() + 600
health = ready = (None, None)
while time.monotonic() < deadline:
    health = get("/healthz")
    if health[0] == 200:
        ready = get("/readyz")
        if ready[0] == 200:
            break
    time.sleep(2)
print("healthz", health, "readyz", ready)
sys.exit(0 if health[0] == 200 and ready[0] == 200 else 1)
EOF
    rc=$?
    kill -TERM "$pid"
    wait "$pid" || true
    exit "$rc"'
}

gpu_imports() {
  in_image python -c "
import onnxruntime, torch
print('torch', torch.__version__, 'cuda', torch.version.cuda)
print('onnxruntime', onnxruntime.__version__, onnxruntime.get_available_providers())
assert torch.version.cuda and 'CUDAExecutionProvider' in onnxruntime.get_available_providers()"
}
models() { in_image avatar --config gpu models; }

check "runs as uid $uid" user_is_service
check "no network" no_network
check "no host build inputs in the image" no_host_inputs
check "HEALTHCHECK kept" has_healthcheck
if [ "$gpu" = 1 ]; then
  check "torch + onnxruntime-gpu import" gpu_imports
  check "avatar models" models
  check "avatar smoke (CPU)" in_image avatar --set assets.allow_download=false \
    --set stt.device=cpu --set tts.device=cpu smoke
else
  check "avatar smoke" smoke
  check "avatar render --text -> MP4" render
  check "avatar serve: /healthz + /readyz" serve
fi

# What the image weighs, and where.
if [ "$builder" = buildah ]; then
  buildah --storage-driver "$storage" images --format '{{.Name}}:{{.Tag}} {{.Size}}' "$tag"
else
  docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' "$tag"
fi
in_image bash -c 'du -xsh /usr /opt/venv /opt/gwm/models /app /opt/python 2>/dev/null
  du -xsm /opt/venv/lib/python3.11/site-packages/* 2>/dev/null | sort -rn | head -n 12' || true

if [ "$failed" = 0 ]; then echo "image_check.sh: $tag passed" >&2; else echo "image_check.sh: $tag FAILED" >&2; fi
exit "$failed"
