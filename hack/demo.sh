#!/usr/bin/env bash
# The main job, from a fresh machine: start the local control plane (or use $KUBECONFIG), and show
# it is ready. The operator, CRDs and example policies are added by the policy-core work.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

"$HACK_DIR/setup.sh"
if [[ -z ${KUBECONFIG:-} ]]; then
  KUBECONFIG=$("$HACK_DIR/cluster.sh" up)
  export KUBECONFIG
fi
kubectl get --raw /readyz; echo
kubectl get namespaces
