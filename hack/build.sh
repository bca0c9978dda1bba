#!/usr/bin/env bash
# Builds the test control plane (kube-apiserver + kube-controller-manager + kube-scheduler, etcd),
# kwok (fake nodes and pods), metrics-server, Helm and Sloth (the SLO oracle of the tests) from the Go module proxy into
# ~/.cache/readiness-operator/bin, keyed by version. A cached build is reused, so only the first
# run pays (several minutes on 2 cores).
#
#   hack/build.sh [kube|etcd|kwok|metrics-server|helm|sloth|all]   (default: all); progress on stderr
#   hack/build.sh path                   build what is missing, print "<kube dir>:<helm dir>" for PATH
#                                        (the kube dir holds a matching `kubectl`)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export CGO_ENABLED=0 GOFLAGS=-mod=mod
# One build at a time per cache: a second caller (the test suite's conftest while hack/setup.sh is
# still building) waits here, then finds the binaries built, instead of racing for the same .tmp dir.
mkdir -p "$CACHE_ROOT/bin"
exec 9>"$CACHE_ROOT/bin/.build.lock"
flock 9
# Link one binary at a time: a kube-apiserver link takes ~2 GiB.
export GOMAXPROCS=${GOMAXPROCS:-2}

build_kube() {
  local dir; dir=$(kube_bin_dir)
  [[ -x $dir/kube ]] && return 0
  log "building kube-apiserver + kube-controller-manager + kube-scheduler $KUBE_VERSION (cold: several minutes)"
  local minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
  local x=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    x+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    x+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  mkdir -p "$dir.tmp"
  (cd "$HACK_DIR/cluster/kube" && go build -trimpath -ldflags "-s -w$x" -o "$dir.tmp/kube" .)
  ln -sf kube "$dir.tmp/kubectl"
  mv "$dir.tmp" "$dir"
}

build_etcd() {
  local dir; dir=$(etcd_bin_dir)
  [[ -x $dir/etcd ]] && return 0
  log "building etcd $ETCD_VERSION"
  mkdir -p "$dir.tmp"
  (cd "$HACK_DIR/cluster/etcd" && go build -trimpath -ldflags "-s -w" -o "$dir.tmp/etcd" .)
  mv "$dir.tmp" "$dir"
}

build_helm() {
  local dir; dir=$(helm_bin_dir)
  [[ -x $dir/helm ]] && return 0
  log "installing helm $HELM_VERSION"
  mkdir -p "$dir.tmp"
  GOBIN="$dir.tmp" go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  mv "$dir.tmp" "$dir"
}

build_kwok() {
  local dir; dir=$(kwok_bin_dir)
  if [[ ! -x $dir/kwok ]]; then
    log "installing kwok $KWOK_VERSION (cold: about 5 minutes)"
    mkdir -p "$dir.tmp"
    GOBIN="$dir.tmp" go install "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
    mv "$dir.tmp" "$dir"
  fi
  # hack/cluster.sh reads kwok's stage YAML from the module cache; bring it back if it was cleaned.
  [[ -d $(kwok_module_dir)/kustomize ]] || go mod download "sigs.k8s.io/kwok@$KWOK_VERSION"
}

build_metrics_server() {
  local dir; dir=$(metrics_server_bin_dir)
  [[ -x $dir/metrics-server ]] && return 0
  log "installing metrics-server $METRICS_SERVER_VERSION (cold: a few minutes)"
  mkdir -p "$dir.tmp"
  GOBIN="$dir.tmp" go install "sigs.k8s.io/metrics-server/cmd/metrics-server@$METRICS_SERVER_VERSION"
  mv "$dir.tmp" "$dir"
}

build_sloth() {
  local dir; dir=$(sloth_bin_dir)
  [[ -x $dir/sloth ]] && return 0
  log "installing sloth $SLOTH_VERSION (cold: about 8 minutes)"
  mkdir -p "$dir.tmp"
  GOBIN="$dir.tmp" go install "github.com/slok/sloth/cmd/sloth@$SLOTH_VERSION"
  mv "$dir.tmp" "$dir"
}

# tool_path prints the cached tool directories for PATH (kubectl, helm), building what is missing.
tool_path() {
  build_etcd >&2; build_kube >&2; build_kwok >&2; build_metrics_server >&2; build_helm >&2
  echo "$(kube_bin_dir):$(helm_bin_dir)"
}

case "${1:-all}" in
  kube) build_kube ;;
  etcd) build_etcd ;;
  kwok) build_kwok ;;
  metrics-server) build_metrics_server ;;
  helm) build_helm ;;
  sloth) build_sloth ;;
  sloth-bin) build_sloth >&2; echo "$(sloth_bin_dir)/sloth" ;;  # build if missing, print the binary
  all) build_etcd; build_kube; build_kwok; build_metrics_server; build_helm; build_sloth ;;
  path) tool_path ;;
  *) die "usage: $0 [kube|etcd|kwok|metrics-server|helm|sloth|sloth-bin|all|path]" ;;
esac
