#!/usr/bin/env bash
# The main job, from a fresh machine: start the local control plane (or use $KUBECONFIG), install
# the CRDs, run the operator, apply the example policies and workloads, and show their verdicts.
#
#   hack/demo.sh          bring everything up and print `kubectl get readinesspolicy`
#   hack/demo.sh down     stop the operator and the local control plane
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

STATE=$REPO_ROOT/.local
mkdir -p "$STATE"

if [[ ${1:-up} == down ]]; then
  stop_pidfile "$STATE/operator.pid"
  "$HACK_DIR/cluster.sh" down
  exit 0
fi

"$HACK_DIR/setup.sh"
if [[ -z ${KUBECONFIG:-} ]]; then
  KUBECONFIG=$("$HACK_DIR/cluster.sh" up)
  export KUBECONFIG
fi
log "cluster: $(kubectl get --raw /readyz) ($KUBECONFIG)"

kubectl apply -f crds/ >/dev/null
kubectl wait --for=condition=established --timeout=60s crd --all >/dev/null

if ! { [[ -f $STATE/operator.pid ]] && kill -0 "$(cat "$STATE/operator.pid")" 2>/dev/null; }; then
  port=$(free_port)
  setsid .venv/bin/readiness-operator run --standalone --liveness "http://127.0.0.1:$port/healthz" \
    >"$STATE/operator.log" 2>&1 </dev/null &
  echo $! >"$STATE/operator.pid"
  WAIT_SECONDS=60 wait_for curl -sf "http://127.0.0.1:$port/healthz" || die "operator did not start: $STATE/operator.log"
  log "operator running (pid $(cat "$STATE/operator.pid"), log $STATE/operator.log)"
fi

kubectl create namespace demo --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl apply -f examples/workloads/ >/dev/null
kubectl apply -f examples/policies/ >/dev/null
ready() { [[ $(kubectl get rp -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True) -eq $(kubectl get rp -o name | wc -l) ]]; }
WAIT_SECONDS=60 wait_for ready || die "policies not evaluated in 60 s: $STATE/operator.log"

kubectl get readinesspolicy
cat <<EOT

Next:
  export KUBECONFIG=$KUBECONFIG
  kubectl get rp production -o yaml           # conditions, counts, worst offenders
  kubectl get policyreports -n demo           # one result per Deployment x check
  kubectl get events -n demo --field-selector reason=ReadinessNoncompliant
  .venv/bin/readiness-operator audit --policy examples/policies/production.yaml -f examples/workloads/
  hack/demo.sh down
EOT
