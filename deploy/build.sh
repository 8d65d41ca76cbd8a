#!/usr/bin/env bash
# Build the CPU image (deploy/Dockerfile) or, with --gpu, the GPU image
# (deploy/Dockerfile.gpu) from the repository root: with `docker build` when a Docker
# engine answers, with buildah otherwise (GWM_BUILDER=docker|buildah overrides).
#
#   deploy/build.sh [--gpu] [--tag TAG] [--base IMAGE | --debian-base]
#                   [--ca-file FILE] [--wheels DIR]... [-- BUILDER-ARGS...]
#
#   --base IMAGE     the Dockerfile's BASE_IMAGE (CPU image only; default: its own)
#   --debian-base    build that base here from Debian's packages (debootstrap, root):
#                    bookworm minbase + python3 (3.11), python3-venv, ca-certificates;
#                    kept as localhost/gwm-debian-base:bookworm for later builds
#   --ca-file FILE   a CA bundle pip trusts in the RUN steps (TLS-intercepting proxy)
#   --wheels DIR     a directory of wheels pip may take packages from (repeatable)
#   -- ARGS          passed to the builder as they are (e.g. --build-arg K=V)
#
# --ca-file and --wheels are bind-mounted over /mnt at RUN time (buildah -v) and named by
# the builder stage's PIP_CERT/PIP_FIND_LINKS build arguments: no layer of the image
# holds them (nor a path of theirs). A normal build needs neither. Environment: DEBIAN_MIRROR (--debian-base),
# BUILDAH_STORAGE_DRIVER (default vfs), NICE (a niceness for the build, default 0).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }
die() { echo "build.sh: $*" >&2; exit 2; }
# shellcheck source=deploy/builder.sh
. deploy/builder.sh

version=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n 1)
gpu=0
tag=""
base=""
debian_base=0
ca_file=""
wheels=()
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --gpu) gpu=1 ;;
    --tag) [ $# -ge 2 ] || die "--tag needs a value"; tag=$2; shift ;;
    --base) [ $# -ge 2 ] || die "--base needs a value"; base=$2; shift ;;
    --debian-base) debian_base=1 ;;
    --ca-file) [ $# -ge 2 ] || die "--ca-file needs a value"; ca_file=$2; shift ;;
    --wheels) [ $# -ge 2 ] || die "--wheels needs a value"; wheels+=("$2"); shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; extra=("$@"); break ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
  shift
done

if [ "$gpu" = 1 ]; then
  dockerfile=deploy/Dockerfile.gpu
  tag=${tag:-gwm-avatars:$version-gpu}
  { [ -z "$base" ] && [ "$debian_base" = 0 ]; } || die "--base/--debian-base are for the CPU image"
  # Its uv reads neither PIP_CERT nor PIP_FIND_LINKS; nothing here could check a mapping.
  { [ -z "$ca_file" ] && [ ${#wheels[@]} = 0 ]; } || die "--ca-file/--wheels are for the CPU image"
else
  dockerfile=deploy/Dockerfile
  tag=${tag:-gwm-avatars:$version}
fi
[ -z "$base" ] || [ "$debian_base" = 0 ] || die "--base and --debian-base exclude each other"
[ -z "$ca_file" ] || [ -f "$ca_file" ] || die "--ca-file: no such file: $ca_file"
for d in "${wheels[@]+"${wheels[@]}"}"; do
  [ -d "$d" ] || die "--wheels: no such directory: $d"
done

# The builder: an explicit choice, else Docker when its engine answers, else buildah.
builder=$(choose_builder)
if [ "$builder" = docker ] && { [ -n "$ca_file" ] || [ ${#wheels[@]} -gt 0 ]; }; then
  die "--ca-file/--wheels need buildah (docker build has no RUN-time bind mounts)"
fi
storage=${BUILDAH_STORAGE_DRIVER:-vfs}
run() { nice -n "${NICE:-0}" "$@"; }

debian_base_tag=localhost/gwm-debian-base:bookworm
make_debian_base() {
  # A Debian bookworm minbase with Python 3.11 from Debian, imported as an image (once).
  if [ "$builder" = docker ]; then
    docker image inspect "$debian_base_tag" > /dev/null 2>&1 && return 0
  else
    buildah --storage-driver "$storage" inspect --type image "$debian_base_tag" \
      > /dev/null 2>&1 && return 0
  fi
  command -v debootstrap > /dev/null 2>&1 || die "--debian-base needs debootstrap"
  local work
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  echo "build.sh: debootstrap bookworm into $work (once)" >&2
  run debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$work/rootfs" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" > "$work/log" \
    || { tail -n 20 "$work/log" >&2; die "debootstrap failed"; }
  rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/*
  tar -C "$work/rootfs" --numeric-owner -cf "$work/rootfs.tar" .
  if [ "$builder" = docker ]; then
    docker import "$work/rootfs.tar" "$debian_base_tag"
  else
    printf 'FROM scratch\nADD rootfs.tar /\nCMD ["bash"]\n' > "$work/Containerfile"
    run buildah --storage-driver "$storage" bud --isolation chroot --layers=false \
      -f "$work/Containerfile" -t "$debian_base_tag" "$work"
  fi
  rm -rf "$work"
  trap - EXIT
}
if [ "$debian_base" = 1 ]; then
  make_debian_base
  base=$debian_base_tag
fi

args=(-f "$dockerfile" -t "$tag")
[ -z "$base" ] || args+=(--build-arg "BASE_IMAGE=$base")
if [ -n "$ca_file" ] || [ ${#wheels[@]} -gt 0 ]; then
  # The host inputs, staged in one folder (hard links where the file system allows) that
  # is mounted over the image's own empty /mnt: a mount onto a path the image lacks
  # would leave an empty placeholder of that path in the layers.
  stage=$(mktemp -d)
  trap 'rm -rf "$stage"' EXIT
  links=""
  if [ -n "$ca_file" ]; then
    cp "$ca_file" "$stage/ca.crt"
    args+=(--build-arg PIP_CERT=/mnt/ca.crt)
  fi
  i=0
  for d in "${wheels[@]+"${wheels[@]}"}"; do
    cp -rl "$d" "$stage/wheels$i" 2> /dev/null || { rm -rf "$stage/wheels$i"; cp -r "$d" "$stage/wheels$i"; }
    links="$links /mnt/wheels$i"
    i=$((i + 1))
  done
  [ -z "$links" ] || args+=(--build-arg "PIP_FIND_LINKS=${links# }")
  args+=(-v "$stage:/mnt:ro")
fi

start=$(date +%s)
if [ "$builder" = docker ]; then
  run docker build "${args[@]}" "${extra[@]+"${extra[@]}"}" .
else
  # --layers=false: one layer per stage, not per step (vfs copies every layer);
  # --pull=false: a base already in the store (--debian-base) is not looked up again;
  # --format docker: the OCI format has no HEALTHCHECK (buildah drops it, and SHELL).
  run buildah --storage-driver "$storage" bud --isolation chroot --layers=false \
    --pull=false --format docker "${args[@]}" "${extra[@]+"${extra[@]}"}" .
fi
echo "build.sh: built $tag with $builder in $(($(date +%s) - start)) s" >&2
