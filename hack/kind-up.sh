#!/usr/bin/env bash
# For users with Docker: a kind cluster instead of the local control plane, with the operator
# image built and loaded into it. Not used by CI (no Docker engine there).
#
#   hack/kind-up.sh            create cluster "readiness" (if missing), build + load the image
#   KIND_CLUSTER=name hack/kind-up.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KIND_CLUSTER=${KIND_CLUSTER:-readiness}
KIND_VERSION=v0.29.0
IMAGE=${IMAGE:-readiness-operator:dev}

command -v docker >/dev/null || die "kind needs Docker; without it use hack/cluster.sh up"
if ! command -v kind >/dev/null; then
  GOBIN="$CACHE_ROOT/bin/kind-$KIND_VERSION" go install "sigs.k8s.io/kind@$KIND_VERSION"
  PATH="$CACHE_ROOT/bin/kind-$KIND_VERSION:$PATH"
fi
kind get clusters | grep -qx "$KIND_CLUSTER" || kind create cluster --name "$KIND_CLUSTER"
if [[ -f $REPO_ROOT/Dockerfile ]]; then
  docker build -t "$IMAGE" "$REPO_ROOT"
  kind load docker-image "$IMAGE" --name "$KIND_CLUSTER"
fi
mkdir -p "$REPO_ROOT/.local"
kind get kubeconfig --name "$KIND_CLUSTER" >"$REPO_ROOT/.local/kind.kubeconfig"
echo "$REPO_ROOT/.local/kind.kubeconfig"
