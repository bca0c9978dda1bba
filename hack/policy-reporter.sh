#!/usr/bin/env bash
# Policy Reporter (github.com/kyverno/policy-reporter) reading our PolicyReports: builds it from a
# source checkout (the Go module proxy refuses its module, so this cannot run in CI), starts the local
# cluster (or uses $KUBECONFIG), our operator with the example policies and workloads, then Policy
# Reporter with its REST API and metrics; reads our results back and prints a summary next to what
# the PolicyReports themselves hold, and any result fields Policy Reporter's types do not declare.
#
#   hack/policy-reporter.sh SOURCE_DIR          run, summarise, stop what it started
#   KEEP=1 hack/policy-reporter.sh SOURCE_DIR   leave the operator and Policy Reporter running (for
#                                               the UI, docs/operations.md); stop with `... down`
#   hack/policy-reporter.sh down                stop what a KEEP=1 run left running
#
# SOURCE_DIR: e.g. `git clone https://github.com/kyverno/policy-reporter`. Built with `go build`
# (modules from the proxy; cgo, so gcc, for its SQLite store) into ~/.cache/readiness-operator/bin,
# keyed by a hash of its sources. Cold: tens of minutes on 2 busy cores (AWS, GCP, gRPC and Kubernetes
# SDKs); warm: none.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

STATE=$REPO_ROOT/.local/policy-reporter
NS=demo
POLICIES=(baseline hardened production)
mkdir -p "$STATE"

stop_all() {
  if [[ -f $STATE/operator.pid ]] && kill -0 "$(cat "$STATE/operator.pid")" 2>/dev/null && [[ -f $STATE/kubeconfig ]]; then
    # The operator is still running, so it removes its finalizers (and the reports go with the policies).
    kubectl --kubeconfig "$(cat "$STATE/kubeconfig")" delete rp "${POLICIES[@]}" --ignore-not-found --timeout=60s >/dev/null || true
  fi
  stop_pidfile "$STATE/policy-reporter.pid"
  stop_pidfile "$STATE/operator.pid"
}

if [[ ${1:-} == down ]]; then stop_all; exit 0; fi
[[ $# -eq 1 && -f ${1}/go.mod ]] || die "usage: $0 SOURCE_DIR (a policy-reporter checkout) | down"
SOURCE_DIR=$(cd "$1" && pwd)
grep -q '^module github.com/kyverno/policy-reporter' "$SOURCE_DIR/go.mod" || die "$SOURCE_DIR is not policy-reporter"

# --- build ---------------------------------------------------------------------------------------
src_hash=$(cd "$SOURCE_DIR" && find . -name '*.go' -o -name go.mod -o -name go.sum | LC_ALL=C sort | xargs cat \
  | sha256sum | cut -c1-12)
BIN_DIR=$CACHE_ROOT/bin/policy-reporter-$src_hash-cgo
if [[ ! -x $BIN_DIR/policy-reporter ]]; then
  log "building policy-reporter from $SOURCE_DIR (cold: tens of minutes)"
  mkdir -p "$BIN_DIR.tmp"
  # As upstream builds it: its SQLite store (the REST API's database) is go-sqlite3, which needs cgo.
  (cd "$SOURCE_DIR" && CGO_ENABLED=1 GOFLAGS=-mod=mod GOMAXPROCS=${GOMAXPROCS:-2} go build -trimpath \
     -tags sqlite_unlock_notify -ldflags "-s -w -X main.Version=source-$src_hash" -o "$BIN_DIR.tmp/policy-reporter" .)
  mv "$BIN_DIR.tmp" "$BIN_DIR"
fi

# --- cluster, operator, example policies ---------------------------------------------------------
stop_all
if [[ -z ${KUBECONFIG:-} ]]; then
  KUBECONFIG=$("$HACK_DIR/cluster.sh" up | tail -n 1)
fi
export KUBECONFIG
echo "$KUBECONFIG" >"$STATE/kubeconfig"
[[ ${KEEP:-} == 1 ]] || trap stop_all EXIT
kubectl apply -f crds/ >/dev/null
kubectl wait --for=condition=established --timeout=60s crd readinesspolicies.readiness.dev policyreports.wgpolicyk8s.io >/dev/null
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl apply -f examples/workloads/ >/dev/null

read -r op_metrics op_health pr_port <<<"$(free_ports 3)"
log "starting the operator (metrics :$op_metrics)"
.venv/bin/readiness-operator run --standalone --metrics-port "$op_metrics" \
  --liveness "http://127.0.0.1:$op_health/healthz" >"$STATE/operator.log" 2>&1 &
echo $! >"$STATE/operator.pid"
WAIT_SECONDS=90 wait_for curl -fsS "http://127.0.0.1:$op_metrics/readyz" || die "operator not Ready: $STATE/operator.log"
kubectl apply -f examples/policies/ >/dev/null
for policy in "${POLICIES[@]}"; do
  WAIT_SECONDS=90 wait_for kubectl -n "$NS" get policyreport "readiness-$policy" \
    || die "no PolicyReport for $policy: $STATE/operator.log"
done

# --- Policy Reporter -----------------------------------------------------------------------------
log "starting policy-reporter (REST API and metrics :$pr_port)"
(cd "$STATE" && exec "$BIN_DIR/policy-reporter" run --kubeconfig "$KUBECONFIG" --port "$pr_port" --rest-enabled \
   --metrics-enabled --dbfile "$STATE/policy-reporter.db" --template-dir "$SOURCE_DIR/templates" \
   >"$STATE/policy-reporter.log" 2>&1) &
echo $! >"$STATE/policy-reporter.pid"
WAIT_SECONDS=90 wait_for curl -fsS "http://127.0.0.1:$pr_port/ready" || die "policy-reporter not ready: $STATE/policy-reporter.log"
# It reads reports through an informer into its database: wait until every result of ours is there.
want=$(kubectl -n "$NS" get policyreports -l app.kubernetes.io/managed-by=readiness-operator -o json \
  | jq '[.items[].results[]] | length')
WAIT_SECONDS=60 wait_for bash -c "[[ \$(curl -fsS 'http://127.0.0.1:$pr_port/v1/namespaced-resources/results?sources=readiness-operator' \
  | jq .count) == $want ]]" || log "warning: Policy Reporter's results list does not hold all $want results (see below)"

# --- what it shows -------------------------------------------------------------------------------
kubectl -n "$NS" get policyreports -l app.kubernetes.io/managed-by=readiness-operator -o json >"$STATE/reports.json"
api=$STATE/api
mkdir -p "$api"
get() { curl -fsS "http://127.0.0.1:$pr_port/$1" >"$api/$2.json" || echo null >"$api/$2.json"; }
get v1/namespaces v1-namespaces
get "v1/policy-reports?sources=readiness-operator" v1-policy-reports
get "v1/namespaced-resources/results?sources=readiness-operator" v1-results
get "v1/namespaced-resources/status-counts?sources=readiness-operator" v1-status-counts
get "v1/namespaced-resources/policies?sources=readiness-operator" v1-policies
get "v1/namespaced-resources/categories?sources=readiness-operator" v1-categories
get v2/sources v2-sources
get "v2/sources/categories?sources=readiness-operator" v2-source-categories
get "v2/policies?sources=readiness-operator" v2-policies
get "v2/findings?sources=readiness-operator" v2-findings
get "v2/namespace-scoped/results?sources=readiness-operator&namespaces=$NS" v2-results
get "v2/namespace-scoped/readiness-operator/status-counts?namespaces=$NS" v2-status-counts
get "v2/namespace-scoped/readiness-operator/severity-counts?namespaces=$NS" v2-severity-counts
get "v2/namespace-scoped/resource-results?sources=readiness-operator&namespaces=$NS" v2-resource-results
curl -fsS "http://127.0.0.1:$pr_port/metrics" >"$api/metrics.txt" || true

python3 - "$STATE/reports.json" "$api" "$SOURCE_DIR" "$pr_port" <<'EOF'
import collections, json, re, sys
from pathlib import Path

reports, api, source, port = json.load(open(sys.argv[1]))["items"], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
def load(name):
    return json.loads((api / f"{name}.json").read_text())

ours = [r for rep in reports for r in rep["results"]]
by_status = collections.Counter(r["result"] for r in ours)
print(f"\nOur PolicyReports in the cluster: {len(reports)} reports, {len(ours)} results, {dict(sorted(by_status.items()))}")
print(f"Policy Reporter at http://127.0.0.1:{port}, as read through its REST API:")

results = (load("v1-results") or {}).get("items", [])
shown = collections.Counter(r.get("status") for r in results)
print(f"  GET /v1/namespaced-resources/results?sources=readiness-operator: {len(results)} results {dict(sorted(shown.items()))}"
      f" -> {'matches' if sorted(shown.items()) == sorted(by_status.items()) else 'DIFFERS from'} the reports")
if results:
    keys = sorted(results[0])
    print(f"    fields of a result: {', '.join(keys)}")
    print(f"    e.g. {json.dumps({k: results[0][k] for k in ('policy', 'rule', 'status', 'severity', 'category', 'kind', 'name') if k in results[0]})}")
for name, path in (("v1-status-counts", "/v1/namespaced-resources/status-counts"),):
    counts = {c["status"]: sum(i["count"] for i in c["items"]) for c in (load(name) or [])}
    print(f"  GET {path}: {counts}")
print(f"  GET /v1/namespaced-resources/policies: {load('v1-policies')}")
print(f"  GET /v1/namespaced-resources/categories: {load('v1-categories')}")
reps = load("v1-policy-reports") or {}
print(f"  GET /v1/policy-reports?sources=readiness-operator: {reps.get('count')} reports "
      f"{[(i['name'], i['pass'], i['fail'], i['warn'], i['error'], i['skip']) for i in reps.get('items', [])]} (name, pass, fail, warn, error, skip)")
print(f"  GET /v2/sources: {load('v2-sources')}")
cats = load("v2-source-categories") or []
print(f"  GET /v2/sources/categories: {[(c.get('name'), [(x.get('name'), x.get('pass'), x.get('fail'), x.get('warn'), x.get('error'), x.get('skip')) for x in c.get('categories', [])]) for c in cats]}")
pols = load("v2-policies") or []
print(f"  GET /v2/policies: {[(p.get('source'), p.get('category'), p.get('name'), p.get('severity'), p.get('results')) for p in pols]}")
findings = load("v2-findings") or {}
print(f"  GET /v2/findings: total {findings.get('total')}, per source {[(c.get('source'), c.get('counts')) for c in findings.get('counts', [])]}")
v2r = load("v2-results") or {}
print(f"  GET /v2/namespace-scoped/results: {v2r.get('count')} results")
print(f"  GET /v2/namespace-scoped/readiness-operator/status-counts: {load('v2-status-counts')}")
print(f"  GET /v2/namespace-scoped/readiness-operator/severity-counts: {load('v2-severity-counts')}")
rr = load("v2-resource-results") or {}
print(f"  GET /v2/namespace-scoped/resource-results: {rr.get('count')} resources: "
      f"{[(i.get('name'), i.get('pass'), i.get('fail'), i.get('warn'), i.get('error'), i.get('skip')) for i in rr.get('items', [])]}")
metrics = [dict(re.findall(r'(\w+)="([^"]*)"', l)) for l in (api / "metrics.txt").read_text().splitlines()
           if l.startswith("policy_report_result{") and 'source="readiness-operator"' in l]
by_metric = collections.Counter(m.get("status") for m in metrics)
print(f"  GET /metrics: {len(metrics)} policy_report_result series with source=readiness-operator {dict(sorted(by_metric.items()))}"
      f" -> {'matches' if sorted(by_metric.items()) == sorted(by_status.items()) else 'DIFFERS from'} the reports")
for label in ("policy", "category", "severity", "report"):
    print(f"    by {label}: {dict(sorted(collections.Counter(m.get(label) for m in metrics).items()))}")

# Fields of our results that Policy Reporter's result type (wgpolicyk8s.io v1alpha2) does not declare.
common = (source / "pkg/crd/api/policyreport/v1alpha2/common.go").read_text()
body = common[common.index("type PolicyReportResult struct"):]
body = body[: body.index("\n}\n")]
declared = set(re.findall(r'json:"([^",]+)', body)) - {"-"}
ours_fields = {k for r in ours for k in r}
unknown = sorted(ours_fields - declared)
props = sorted({k for r in ours for k in r.get("properties", {})})
print(f"\nResult fields Policy Reporter declares: {', '.join(sorted(declared))}")
print(f"Our result fields it does not declare: {unknown or 'none'}; our properties: {', '.join(props)}")
# Does what it serves keep our properties? Match one result by resource, policy and rule.
if results:
    mine = {(r["resources"][0]["name"], r["policy"], r["rule"]): r for r in ours if r.get("resources")}
    kept = sum(1 for r in results if (mine.get((r.get("name"), r.get("policy"), r.get("rule"))) or {}).get("properties") == r.get("properties"))
    print(f"Results served with exactly our properties: {kept} of {len(results)}; our fields not in its /v1 result view: "
          f"{sorted(ours_fields - {'policy', 'rule', 'category', 'severity', 'message', 'timestamp', 'properties'} - {'result', 'resources', 'source'})}"
          " (result -> status, resources -> kind/apiVersion/namespace/name, source -> the sources filter)")
EOF
if [[ ${KEEP:-} == 1 ]]; then
  log "left running: Policy Reporter http://127.0.0.1:$pr_port (REST API, /metrics), our operator; stop: $0 down"
fi
