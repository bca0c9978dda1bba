#!/usr/bin/env bash
# Admission latency of the real webhook: the local control plane (or $KUBECONFIG), the CRDs and
# example policies, the operator serving its webhook on loopback, then hack/bench/admission.py at a
# fixed rate. Prints p50/p95/p99 latency and the achieved rate.
#
#   hack/bench/admission-live.sh [RATE] [SECONDS]     (defaults: 200 req/s for 10 s)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cd "$REPO_ROOT"
RATE=${1:-200}; SECONDS_=${2:-10}
"$HACK_DIR/setup.sh" >/dev/null
if [[ -z ${KUBECONFIG:-} ]]; then KUBECONFIG=$("$HACK_DIR/cluster.sh" up); export KUBECONFIG; fi
kubectl apply -f crds/ >/dev/null
kubectl wait --for=condition=established --timeout=60s crd --all >/dev/null
kubectl apply -f examples/policies/ >/dev/null

port=$(free_port); work=$(mktemp -d)
READINESS_WEBHOOK_URL="https://127.0.0.1:$port" READINESS_WEBHOOK_ADDR=127.0.0.1 \
READINESS_WEBHOOK_CONFIGURATION=readiness-bench \
  .venv/bin/readiness-operator run --standalone --liveness "http://127.0.0.1:$(free_port)/healthz" \
  --webhook-port "$port" >"$work/operator.log" 2>&1 &
op=$!
trap 'kill $op 2>/dev/null; wait $op 2>/dev/null; kubectl delete validatingwebhookconfiguration readiness-bench --ignore-not-found >/dev/null; rm -rf "$work"' EXIT
WAIT_SECONDS=60 wait_for kubectl get validatingwebhookconfiguration readiness-bench || die "no webhook configuration: $work/operator.log"
kubectl get validatingwebhookconfiguration readiness-bench -o jsonpath='{.webhooks[0].clientConfig.caBundle}' | base64 -d >"$work/ca.pem"
sleep 2
log "operator webhook on 127.0.0.1:$port; $RATE req/s for $SECONDS_ s"
.venv/bin/python hack/bench/admission.py --url "https://127.0.0.1:$port/validate-deployment" --cacert "$work/ca.pem" \
  --rate "$RATE" --duration "$SECONDS_"
