# Sourced by deploy/build.sh and deploy/image_check.sh (which define `die`): the image
# tool to use — GWM_BUILDER when set, else Docker when its engine answers, else buildah.
choose_builder() {
  local builder=${GWM_BUILDER:-}
  if [ -z "$builder" ]; then
    if command -v docker > /dev/null 2>&1 && docker info > /dev/null 2>&1; then
      builder=docker
    elif command -v buildah > /dev/null 2>&1; then
      builder=buildah
    else
      die "neither a Docker engine (docker info) nor buildah is available"
    fi
  fi
  case "$builder" in docker | buildah) ;; *) die "GWM_BUILDER must be docker or buildah" ;; esac
  echo "$builder"
}
