#!/usr/bin/env bash
# Builds the operator image from the Dockerfile without Docker or a registry: Debian's podman with
# runc, on a Debian base image made by mmdebstrap (python3 + venv, docs and locales left out). All
# state is cached under ~/.cache/readiness-operator: the base rootfs tarball, and podman's image store
# (so the dependency layer survives between runs). A build whose inputs are unchanged is a no-op.
#
#   hack/image.sh [build]      build (or reuse) the image; prints its reference on stdout, size on stderr
#   hack/image.sh podman ARGS  podman with this machine's flags and the cached store, e.g.
#                              `hack/image.sh podman images`, `hack/image.sh podman save -o op.tar REF`
#
# Needs podman, runc and mmdebstrap (hack/setup.sh installs them). Runs as root here (rootful podman);
# rootless podman would also need uidmap and /etc/subuid ranges (not tried).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

IMAGE_REPO=localhost/readiness-operator
BASE_REPO=localhost/readiness-operator-base
DEBIAN_SUITE=bookworm
BASE_PACKAGES=python3,python3-venv
IMAGE_CACHE=$CACHE_ROOT/image
# podman's image store lives in the cache; its run state (locks, container state) in a temporary dir.
STORE=$IMAGE_CACHE/storage
RUN_STATE=${TMPDIR:-/tmp}/readiness-operator-podman-$(id -u)

# crun fails on this machine's hybrid cgroup layout and the default ulimits fail setrlimit: runc,
# cgroupfs and explicit ulimits work (shared/notes/feasibility.md).
PODMAN=(podman --root "$STORE" --runroot "$RUN_STATE/run" --tmpdir "$RUN_STATE/libpod"
        --runtime "$(command -v runc || echo /usr/sbin/runc)" --cgroup-manager cgroupfs --events-backend file)
ULIMITS=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)

# The base: apt sources, packages and dpkg excludes; its tag changes when any of them does.
MIRRORS=("deb http://deb.debian.org/debian $DEBIAN_SUITE main"
         "deb http://deb.debian.org/debian $DEBIAN_SUITE-updates main"
         "deb http://deb.debian.org/debian-security $DEBIAN_SUITE-security main")
MMDEBSTRAP_ARGS=(--variant=essential "--include=$BASE_PACKAGES"
                 # merged /usr by hook, not by the usrmerge package (which pulls in perl: 50 MB)
                 --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
                 "--dpkgopt=path-exclude=/usr/share/man/*" "--dpkgopt=path-exclude=/usr/share/doc/*"
                 "--dpkgopt=path-exclude=/usr/share/locale/*" "--dpkgopt=path-exclude=/usr/share/info/*")
base_key=$(printf '%s\n' "$DEBIAN_SUITE" "${MMDEBSTRAP_ARGS[@]}" "${MIRRORS[@]}" | sha256sum | cut -c1-12)
BASE_TAR=$IMAGE_CACHE/base-$DEBIAN_SUITE-$base_key.tar
BASE_REF=$BASE_REPO:$DEBIAN_SUITE-$base_key

need() { command -v "$1" >/dev/null || die "$1 is missing (hack/setup.sh installs podman, runc and mmdebstrap)"; }

# ensure_base makes the base rootfs tarball once (mmdebstrap, ~2 minutes) and imports it into the store.
ensure_base() {
  "${PODMAN[@]}" image exists "$BASE_REF" && return 0
  if [[ ! -s $BASE_TAR ]]; then
    need mmdebstrap
    log "making the Debian $DEBIAN_SUITE base rootfs with mmdebstrap ($BASE_PACKAGES; cold: ~2 minutes)"
    mmdebstrap --format=tar "${MMDEBSTRAP_ARGS[@]}" "$DEBIAN_SUITE" "$BASE_TAR.tmp" "${MIRRORS[@]}" \
      >"$IMAGE_CACHE/mmdebstrap.log" 2>&1 || { tail -n 30 "$IMAGE_CACHE/mmdebstrap.log" >&2; die "mmdebstrap failed"; }
    mv "$BASE_TAR.tmp" "$BASE_TAR"
    find "$IMAGE_CACHE" -maxdepth 1 -name 'base-*.tar' ! -path "$BASE_TAR" -delete  # an older base
  fi
  log "importing $BASE_TAR as $BASE_REF"
  "${PODMAN[@]}" import --quiet --change 'CMD ["/bin/sh"]' "$BASE_TAR" "$BASE_REF" >/dev/null
}

# The host's CA bundle, for pip inside the build when egress goes through a TLS-inspecting proxy.
ca_bundle() {
  local f
  for f in "${PIP_CERT:-}" "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt; do
    [[ -n $f && -s $f ]] && { echo "$f"; return; }
  done
}

# prune PREFIX KEEP untags all but the KEEP newest images whose name starts with PREFIX (a few are
# kept: another checkout's test may be about to run the one it just built).
prune() {
  local name
  for name in $("${PODMAN[@]}" images --sort created --format '{{.Repository}}:{{.Tag}}' \
                | grep -F "$1" | grep -v '<none>' | tail -n +$(($2 + 1))); do
    "${PODMAN[@]}" untag "$name" "$name" >/dev/null 2>&1 || true
  done
}

build() {
  need podman; need runc
  mkdir -p "$IMAGE_CACHE" "$RUN_STATE"
  ensure_base
  # Everything the Dockerfile copies (see .dockerignore), plus the base it builds on.
  local src_key deps_key
  src_key=$(cd "$REPO_ROOT" && { echo "$BASE_REF"; cat Dockerfile .dockerignore pyproject.toml README.md
    find operator -type f ! -path '*/__pycache__/*' ! -name '*.pyc' ! -path '*.egg-info*' | LC_ALL=C sort \
      | xargs sha256sum; } | sha256sum | cut -c1-12)
  deps_key=$(cd "$REPO_ROOT" && { echo "$BASE_REF"; cat Dockerfile pyproject.toml; } | sha256sum | cut -c1-12)
  local ref=$IMAGE_REPO:src-$src_key
  if ! "${PODMAN[@]}" image exists "$ref"; then
    local secret=() ca; ca=$(ca_bundle || true)
    [[ -n $ca ]] && secret=(--secret "id=pip-ca,src=$ca")
    local common=(--network host "${ULIMITS[@]}" "${secret[@]}" --build-arg "PYTHON_IMAGE=$BASE_REF")
    log "building $ref (dependencies reused while pyproject.toml is unchanged)"
    # The dependency stage is tagged, so pruning the previous image below keeps it as a cache.
    "${PODMAN[@]}" build --quiet "${common[@]}" --target deps -t "$IMAGE_REPO-deps:$deps_key" "$REPO_ROOT" >/dev/null
    "${PODMAN[@]}" build --quiet "${common[@]}" -t "$ref" -t "$IMAGE_REPO:dev" "$REPO_ROOT" >/dev/null
    prune "$IMAGE_REPO:src-" 3; prune "$IMAGE_REPO-deps:" 2; prune "$BASE_REPO:" 1
    # Unreferenced layers go once they are an hour old (never those of a build running right now).
    "${PODMAN[@]}" image prune --force --filter until=1h >/dev/null
  fi
  local bytes; bytes=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$ref")
  log "$ref: $((bytes / 1000000)) MB ($bytes bytes)"
  echo "$ref"
}

case ${1:-build} in
  build) build ;;
  podman) shift; need podman; mkdir -p "$RUN_STATE"; exec "${PODMAN[@]}" "$@" ;;
  *) die "usage: $0 [build | podman ARGS...]" ;;
esac
