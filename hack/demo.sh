#!/usr/bin/env bash
# The main job, from a fresh machine: the living local cluster (or $KUBECONFIG), the example
# workloads on Ready nodes, the load generator's live traffic scraped by a real Prometheus, the
# operator with its admission webhook, the example policies; then it shows the verdicts with SLOs
# measured live, an Enforce denial of a noncompliant `kubectl apply`, and an SLO freeze after it
# raises a Deployment's error ratio.
#
#   hack/demo.sh          bring everything up from scratch and show it (warm: about a minute)
#   hack/demo.sh down     stop the operator, load generator, Prometheus and the local cluster
# Each run starts from scratch (a fresh local cluster), so it always shows the same story.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

STATE=$REPO_ROOT/.local
export PROM_DIR=$STATE/prometheus
mkdir -p "$STATE"
started=$SECONDS

# The local cluster's kubeconfig counts as local even when exported (as "Next:" below suggests).
[[ ${KUBECONFIG:-} == "${CLUSTER_DIR:-$STATE/cluster}/admin.kubeconfig" ]] && unset KUBECONFIG
alive() { [[ -f $STATE/$1.pid ]] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null; }
step() { log "$* (at $((SECONDS - started)) s)"; }
section() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

# stop_demo stops what an earlier run started. On the local cluster everything goes (a fresh cluster
# takes seconds); on $KUBECONFIG's cluster the demo's policies (finalized by the still-running
# operator), namespace and webhook configuration are removed first.
stop_demo() {
  if [[ -n ${KUBECONFIG:-} ]] && alive operator; then
    kubectl delete rp baseline hardened production --ignore-not-found --timeout=60s >/dev/null || true
  fi
  stop_pidfile "$STATE/operator.pid"
  stop_pidfile "$STATE/loadgen.pid"
  "$HACK_DIR/prometheus.sh" down 2>/dev/null
  if [[ -n ${KUBECONFIG:-} ]]; then
    kubectl delete namespace demo --ignore-not-found --timeout=120s >/dev/null || true
    kubectl delete validatingwebhookconfiguration readiness-operator --ignore-not-found >/dev/null || true
  else
    "$HACK_DIR/cluster.sh" down 2>/dev/null
  fi
}

if [[ ${1:-up} == down ]]; then
  stop_demo
  exit 0
fi

"$HACK_DIR/setup.sh"
stop_demo  # every run starts from the same state
if [[ -z ${KUBECONFIG:-} ]]; then
  KUBECONFIG=$("$HACK_DIR/cluster.sh" up)
  export KUBECONFIG
fi
step "cluster: $(kubectl get --raw /readyz) ($KUBECONFIG)"

kubectl apply -f crds/ >/dev/null
# (kubectl wait fails outright on a CRD whose status has no conditions yet: retry it.)
WAIT_SECONDS=60 wait_for kubectl wait --for=condition=established --timeout=10s crd --all || die "CRDs not established"
kubectl create namespace demo --dry-run=client -o yaml | kubectl apply -f - >/dev/null
# Workloads before policies: the Enforce policy would (rightly) deny the noncompliant ones.
kubectl apply -f examples/workloads/ >/dev/null

# Live traffic for every Deployment in `demo`, scraped every 2 s.
rm -f "$STATE/loadgen.port"
setsid .venv/bin/python hack/loadgen.py --namespace demo --port-file "$STATE/loadgen.port" \
  >"$STATE/loadgen.log" 2>&1 </dev/null &
echo $! >"$STATE/loadgen.pid"
WAIT_SECONDS=30 wait_for test -s "$STATE/loadgen.port" || die "load generator did not start: $(tail -n 5 "$STATE/loadgen.log")"
PROMETHEUS_URL=$("$HACK_DIR/prometheus.sh" up --scrape "127.0.0.1:$(cat "$STATE/loadgen.port")")
step "prometheus: $PROMETHEUS_URL scraping the load generator (log $STATE/loadgen.log)"

port=$(free_port) hook=$(free_port)
READINESS_PROMETHEUS_URL=$PROMETHEUS_URL READINESS_WEBHOOK_URL=https://127.0.0.1:$hook READINESS_WEBHOOK_ADDR=127.0.0.1 \
  setsid .venv/bin/readiness-operator run --standalone --liveness "http://127.0.0.1:$port/healthz" --webhook-port "$hook" \
  >"$STATE/operator.log" 2>&1 </dev/null &
echo $! >"$STATE/operator.pid"
WAIT_SECONDS=60 wait_for curl -sf "http://127.0.0.1:$port/healthz" || die "operator did not start: $STATE/operator.log"
step "operator running with its webhook (pid $(cat "$STATE/operator.pid"), log $STATE/operator.log)"

deployments_available() {
  [[ $(kubectl -n demo get deploy -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Available")].status}{"\n"}{end}' | grep -c True) \
     -eq $(kubectl -n demo get deploy -o name | wc -l) ]]
}
WAIT_SECONDS=60 wait_for deployments_available || die "demo Deployments not Available in 60 s: kubectl -n demo get deploy,pods"
# The SLO queries need two scrapes of every pod before they answer.
series_live() {
  curl -sf "$PROMETHEUS_URL/api/v1/query" --data-urlencode 'query=count(rate(http_requests_total{namespace="demo"}[1m]))' \
    | grep -q '"value":\[[^]]*,"[1-9]'
}
WAIT_SECONDS=30 wait_for series_live || die "no live series in Prometheus: $PROM_DIR/prometheus.log, $STATE/loadgen.log"

kubectl apply -f examples/policies/ >/dev/null
step "example workloads Available, live series in Prometheus, policies applied"
webhook_registered() { kubectl get validatingwebhookconfiguration readiness-operator >/dev/null; }
WAIT_SECONDS=30 wait_for webhook_registered || die "webhook not registered: $STATE/operator.log"

# show_denial prints kubectl's error without the patch it echoes back.
show_denial() {
  sed -E -e '/^\{"metadata"/,/^Name: /d' -e 's/^for: "[^"]*": error when patching "[^"]*": //' \
    -e 's/(denies this Deployment): /\1:\n- /' -e 's/; ([a-z][a-z0-9-]+: )/\n- \1/g' | fold -s -w 160
}

# SLO_TABLE prints one line per SLO of every policy: its state (Met/Breaching/Unknown) and counts.
slo_table() {
  kubectl get rp -o json | .venv/bin/python -c '
import json, sys
rows = [("POLICY", "SLO", "OBJECTIVE", "STATE", "MEASURED", "BREACHING", "FROZEN", "WORST")]
for p in json.load(sys.stdin)["items"]:
    for s in (p.get("status") or {}).get("slos", []):
        if "objective" in s:
            objective = "%g%% / %s" % (s["objective"], s["period"])
            def alerts(firing):
                fired = [a for a in firing.split(", ") if a not in ("budget-exhausted", "none")]
                return (fired[0] + (" +%d" % (len(fired) - 1) if len(fired) > 1 else "")) if fired else "no burn"
            worst = "; ".join("%s: budget %s, %s" % (
                w["name"], "%.0f%% left" % (100 * w["budgetRemaining"]) if w["budgetRemaining"] > 0 else "spent",
                alerts(w["firing"])) for w in s.get("worst", [])[:2])
        else:
            objective = "%s %g" % (s.get("comparison"), s.get("threshold"))
            worst = ", ".join("%s=%.4g" % (w["name"], w["value"]) for w in s.get("worst", [])[:2])
        rows.append((p["metadata"]["name"], s["name"], objective, s.get("state", "?"), str(s.get("measured", 0)),
                     str(s.get("breaching", 0)), str(s.get("frozen", "-")), worst or "-"))
widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
for r in rows:
    print("   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
'
}
all_ready_and_measured() {
  [[ $(kubectl get rp -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True) \
     -eq $(kubectl get rp -o name | wc -l) ]] || return 1
  # Every SLO has a state other than Unknown, and every Deployment it judges was measured.
  kubectl get rp -o json | .venv/bin/python -c '
import json, sys
slos = [s for p in json.load(sys.stdin)["items"] for s in (p.get("status") or {}).get("slos", [])]
sys.exit(0 if slos and all(s.get("state") in ("Met", "Breaching") and not s.get("noData") for s in slos) else 1)'
}
WAIT_SECONDS=60 wait_for all_ready_and_measured || { slo_table; die "policies not evaluated with live SLOs in 60 s: $STATE/operator.log"; }
step "policies Ready, every SLO measured"
section kubectl get nodes -L topology.kubernetes.io/zone
kubectl get nodes -L topology.kubernetes.io/zone
section kubectl -n demo get deployments,pdb
kubectl -n demo get deployments,pdb
section kubectl get readinesspolicy
kubectl get readinesspolicy
section "SLOs measured live from the load generator's series (status.slos of each policy)"
slo_table

section "kubectl apply -f examples/rollouts/legacy-agent-v2.yaml     # hardened: Enforce"
if out=$(kubectl apply -f examples/rollouts/legacy-agent-v2.yaml 2>&1); then
  echo "$out"; die "the Enforce policy admitted a noncompliant rollout"
fi
echo "$out" | show_denial

section "kubectl -n demo annotate deployment checkout readiness.dev/loadgen-error-ratio=0.2   # 20% of requests fail"
kubectl -n demo annotate deployment checkout readiness.dev/loadgen-error-ratio=0.2 --overwrite
frozen() {
  kubectl get rp production -o json | .venv/bin/python -c '
import json, sys
slos = {s["name"]: s for s in json.load(sys.stdin)["status"].get("slos", [])}
sys.exit(0 if any(w["name"] == "checkout" for w in slos.get("availability", {}).get("worst", [])) else 1)'
}
WAIT_SECONDS=45 wait_for frozen || { slo_table; die "the availability SLO did not see checkout breach in 45 s"; }
step "the availability SLO sees checkout breach"
slo_table
section "kubectl apply -f examples/rollouts/checkout-v2.yaml          # compliant, but its error budget burns"
if out=$(kubectl apply -f examples/rollouts/checkout-v2.yaml 2>&1); then
  echo "$out"; die "the SLO freeze admitted a rollout of a breaching Deployment"
fi
echo "$out" | show_denial
kubectl -n demo annotate deployment checkout readiness.dev/loadgen-error-ratio- >/dev/null

# HPAs compute from metrics-server (10 s resolution) once the pods have two samples.
hpas_active() {
  [[ $(kubectl -n demo get hpa -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="ScalingActive")].status}{"\n"}{end}' | grep -c True) \
     -eq $(kubectl -n demo get hpa -o name | wc -l) ]]
}
WAIT_SECONDS=60 wait_for hpas_active || log "warning: some HPAs are not ScalingActive yet (kubectl -n demo describe hpa)"
section "kubectl -n demo get hpa        # computed from metrics-server, which scrapes kwok's emulated kubelets"
kubectl -n demo get hpa

cat <<EOT

Demo ready in $((SECONDS - started)) s. Next:
  export KUBECONFIG=$KUBECONFIG PROMETHEUS_URL=$PROMETHEUS_URL
  kubectl get rp production -o yaml           # conditions, counts, SLO states, worst offenders
  kubectl get policyreports -n demo           # one result per Deployment x check
  kubectl -n demo get events --field-selector reason=ErrorBudgetFreeze   # also ReadinessNoncompliant
  kubectl -n demo annotate deploy payments readiness.dev/loadgen-latency-seconds=3   # p99 > 2 s
  .venv/bin/readiness-operator audit --policy examples/policies/production.yaml -f examples/workloads/
  hack/demo.sh down
EOT
