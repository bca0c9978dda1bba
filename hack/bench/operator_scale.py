#!/usr/bin/env python3
"""Operator at scale: 10,000 Deployments with their pods in a real local cluster, 4 policies, real Prometheus.

    .venv/bin/python hack/bench/operator_scale.py [--deployments 10000] [--namespaces 50] [--pods | --no-pods]
        [--nodes 100] [--replicas 2] [--changes 100] [--idle-seconds 60] [--write-docs] [--profile FILE] [--json]

What it does (loopback only, every loop bounded, every process it starts is stopped at the end):

1. Starts a cluster with `hack/cluster.sh up` in its own CLUSTER_DIR (or uses $KUBECONFIG, then
   cleans up only the namespaces and policies it created) and a Prometheus with `hack/prometheus.sh`
   in its own PROM_DIR, backfilled with healthy SLO series for a subset of the Deployments.
   `--pods` (the default): the living cluster as cluster.sh starts it, with `--nodes` kwok Nodes
   (sized to hold every pod), scheduler, kube-controller-manager (client rate limits lifted,
   Kubernetes' 15 s HPA sync period) and metrics-server: the controller-manager creates the
   Deployments' ReplicaSets and pods, the scheduler binds them, kwok makes them Running and Ready,
   the disruption controller fills the PDBs' status. `--no-pods`: NODES=0 and the controller-manager
   stopped (only that one, by pid): no ReplicaSets, no pods, Deployment status empty.
2. Creates the namespaces, Deployments (replicas 1-5; those with an HPA at its minReplicas, as the
   HPA would keep them), PDBs (~half) and HPAs (~45 %) with `kubectl apply --server-side` of one
   multi-object file per namespace, several in parallel; with pods, waits (bounded, printing
   progress) until every pod exists, every Deployment is Ready and every PDB counts its pods healthy.
3. Computes the expected result of each policy with `readiness-operator audit` (in process, per
   namespace: objects only relate within their namespace) on the same objects.
4. Applies the three example policies and the Pod Security restricted preset with `match` widened to
   the benchmark namespaces (so each judges every Deployment) and SLO intervals of 30 s, measures the
   floor (a bare paginated LIST of every kind the operator reads, pods and ReplicaSets included),
   then starts the operator: `--replicas 2` (the default) runs two processes with leader election on
   a Lease (`--leader-election-lease`, READINESS_NAMESPACE=readiness-bench, as the chart runs them),
   `--replicas 1` one `--standalone` process. Each replica talks through its own counting proxy
   (count_proxy.py), so every API request is counted by replica, verb and resource.
5. Measures: time until every policy's status (written by the leader) is complete and correct
   (targets, compliant and noncompliant equal to the audit, SLO measured counts equal to the
   backfilled subset) and until every PolicyReport result is written; peak RSS (VmHWM) and CPU of
   each replica (leader and standby); steady-state CPU per replica (and of the cluster's own
   processes), API requests and Prometheus queries over an idle window; then adds a readinessProbe
   to 100 Deployments that lack one and measures the time until the statuses match the audit of the
   changed objects AND the PolicyReport results of every changed Deployment (watched) carry the
   expected compliance and per-check results (SLO checks aside: they come from Prometheus).

The top-level JSON keys of one replica (converge_cpu_seconds, peak_rss_mb, idle_cpu_percent, ...)
are the leader's; `per_replica` holds every replica's, `standby_*` the standby's.
"""


from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "operator"))
HACK = ROOT / "hack"
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
NS_LABEL = "bench.readiness.dev/scale"
NS_PREFIX = "scale-"
SLO_INTERVAL = "30s"
HPA_MIN_REPLICAS = 3
BENCH_NAMESPACE = "readiness-bench"  # the operator's namespace (READINESS_NAMESPACE): its leader-election Lease
LEASE = "readiness-bench"
MANAGED = "app.kubernetes.io/managed-by=readiness-operator"
CLK_TCK = os.sysconf("SC_CLK_TCK")
DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## Operator at scale"
HEADINGS = ("## Engine vs peers", "## Operator at scale", "## Admission")


def log(msg: str) -> None:
    print(f"[operator_scale {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------------------------
# Objects


def make_objects(n: int, namespaces: int, seed: int = 7) -> dict[str, list[dict[str, Any]]]:
    """Varied Deployments (+ PDB for ~1/2, HPA for ~1/3) spread evenly over the namespaces."""
    rng = random.Random(seed)
    out: dict[str, list[dict[str, Any]]] = {}
    for ns_i in range(namespaces):
        ns = f"{NS_PREFIX}{ns_i:02d}"
        out[ns] = [{"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": ns, "labels": {NS_LABEL: "true", "team": f"team-{ns_i % 7}"}}}]
    for i in range(n):
        ns = f"{NS_PREFIX}{i % namespaces:02d}"
        name = f"svc-{i:05d}"
        good = rng.random() < 0.3  # a third are well configured, the rest vary check by check

        def p(q: float, good: bool = good) -> bool:
            return good or rng.random() < q

        tier = "production" if rng.random() < 0.4 else rng.choice(["web", "batch", "internal"])
        labels = {"app": name, "tier": tier}
        container: dict[str, Any] = {
            "name": "app",
            "image": f"registry.example/{name}:{'latest' if not good and rng.random() < 0.1 else '1.4.2'}",
            "ports": [{"containerPort": 8080}],
            "env": [{"name": "MODE", "value": "prod"}, {"name": "LOG_LEVEL", "value": "info"}],
        }
        if p(0.8):
            # (request, limit) pairs, limit >= request; production wants >= 512Mi / <= 1Gi, hardened <= 500M
            memory, limit = rng.choice([("512Mi", "1Gi"), ("256Mi", "480M")] if good else
                                       [("128Mi", "256Mi"), ("256Mi", "480M"), ("512Mi", "1Gi"), ("1Gi", "2Gi")])
            container["resources"] = {"requests": {"cpu": rng.choice(["100m", "250m", "0.5"]), "memory": memory}}
            if p(0.7):
                container["resources"]["limits"] = {"memory": limit}
        probe = {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 10}
        if p(0.75):
            container["livenessProbe"] = probe
        if p(0.7):
            container["readinessProbe"] = {**probe, "httpGet": {"path": "/ready", "port": 8080}}
        if p(0.3):
            container["startupProbe"] = {**probe, "failureThreshold": 30}
        if p(0.35):
            container["securityContext"] = {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                                            "capabilities": {"drop": ["ALL"]}}
        elif rng.random() < 0.03:
            container["securityContext"] = {"privileged": True}
        pod: dict[str, Any] = {"containers": [container]}
        if rng.random() < 0.15:
            pod["containers"].append({"name": "sidecar", "image": "registry.example/proxy:2.1",
                                      "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                                                    "limits": {"memory": "128Mi"}}})
        if p(0.35):
            pod["securityContext"] = {"runAsNonRoot": True, "runAsUser": 1000 + i % 1000,
                                      "seccompProfile": {"type": "RuntimeDefault"}}
        if p(0.4):
            pod["terminationGracePeriodSeconds"] = 30 if good else rng.choice([10, 30, 60])
        if p(0.25):
            pod["affinity"] = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": name}}, "topologyKey": "kubernetes.io/hostname"}]}}
        replicas = 3 if good else rng.choice([1, 2, 3, 3, 5])
        deployment: dict[str, Any] = {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                "template": {"metadata": {"labels": labels}, "spec": pod},
            },
        }
        out[ns].append(deployment)
        if good or rng.random() < 0.3:  # ~half
            out[ns].append({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                            "metadata": {"name": name, "namespace": ns},
                            "spec": {"minAvailable": 2 if good or rng.random() < 0.6 else 1,
                                     "selector": {"matchLabels": {"app": name}}}})
        if good or rng.random() < 0.215:  # ~45%
            # The HPA keeps the Deployment within [minReplicas, maxReplicas] and, with kwok's idle usage,
            # at minReplicas: created there, its replicas never move (nor do the verdicts reading them).
            deployment["spec"]["replicas"] = HPA_MIN_REPLICAS
            metrics = [resource_metric("cpu", 70)]
            if good or rng.random() < 0.5:
                metrics.append(resource_metric("memory", 80))
            out[ns].append({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                            "metadata": {"name": name, "namespace": ns},
                            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                                     "minReplicas": HPA_MIN_REPLICAS, "maxReplicas": 10, "metrics": metrics}})
    return out


def resource_metric(name: str, utilization: int) -> dict[str, Any]:
    return {"type": "Resource",
            "resource": {"name": name, "target": {"type": "Utilization", "averageUtilization": utilization}}}


EXAMPLE_POLICIES = ("baseline", "hardened", "production")
RESTRICTED_PRESET = ROOT / "operator" / "readiness_operator" / "presets" / "pod-security-restricted.yaml"


def policies() -> list[dict[str, Any]]:
    """The example policies plus the Pod Security restricted preset, selecting every benchmark
    namespace, with 30 s SLO intervals."""
    out = []
    # Named: examples/policies/ holds more examples since (graded SLOs, a web service, Pod Security ones).
    for path in [*(ROOT / "examples" / "policies" / f"{name}.yaml" for name in EXAMPLE_POLICIES), RESTRICTED_PRESET]:
        policy = yaml.safe_load(path.read_text())
        policy["spec"]["match"] = {"namespaceSelector": {"matchLabels": {NS_LABEL: "true"}}}
        # The hardened (Enforce) policy's fail-safe ValidatingAdmissionPolicy would deny the benchmark's
        # noncompliant Deployment updates; the webhook is not started either (admission is benchmarked apart).
        policy["spec"].setdefault("admission", {})["failSafe"] = False
        for slo in policy["spec"].get("slos") or ():
            slo["interval"] = SLO_INTERVAL
        out.append(policy)
    return out


def slo_series(pods: list[tuple[str, str]], now: int) -> str:
    """Healthy series (every SLO met) for the given (namespace, pod)s, 10 min back to 50 min ahead. SLIs
    are read per pod (`sum by (namespace, pod)`) and the operator maps each pod to its Deployment by
    its ReplicaSet, so the series carry the pod's name."""
    start, end, step = now - 600, now + 3000, 30
    lines = ["# TYPE http_requests counter"]
    for ns, pod in pods:
        for code, rate in (("200", 99.99), ("500", 0.01)):
            lines += [f'http_requests_total{{namespace="{ns}",pod="{pod}",code="{code}"}} {rate * (t - start):.3f} {t}'
                      for t in range(start, end, step)]
    lines.append("# TYPE http_request_duration_seconds histogram")
    for ns, pod in pods:
        for le in ("0.005", "0.01", "+Inf"):
            series = f'http_request_duration_seconds_bucket{{namespace="{ns}",pod="{pod}",le="{le}"}}'
            lines += [f"{series} {100 * (t - start):.3f} {t}" for t in range(start, end, step)]
    lines.append("# TYPE container_memory_working_set_bytes gauge")  # hardened's memory-per-instance (< 500 MB)
    for ns, pod in pods:
        series = f'container_memory_working_set_bytes{{namespace="{ns}",pod="{pod}",container="app"}}'
        lines += [f"{series} 200000000 {t}" for t in range(start, end, step)]
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


METADATA = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"


def slo_pods(e: Env, objects: dict[str, list[dict[str, Any]]], subset: list[tuple[str, str]],
             with_pods: bool) -> list[tuple[str, str]]:
    """(namespace, pod) names for the SLO series of the `subset` Deployments, ones the operator maps
    to them through a ReplicaSet it watches: with pods, their pods' names (metadata-only LIST); without,
    one ReplicaSet per subset Deployment (owned by it, 0 replicas, the controller-manager stopped:
    nothing acts on it) and a pod name under it."""
    want = set(subset)
    namespaces = sorted({ns for ns, _ in want})
    out: list[tuple[str, str]] = []
    if with_pods:
        for ns in namespaces:
            for item in e.get(f"/api/v1/namespaces/{ns}/pods", accept=METADATA)["items"]:
                meta = item["metadata"]
                if (ns, (meta.get("labels") or {}).get("app")) in want:
                    out.append((ns, meta["name"]))
        return out
    uids = {(ns, item["metadata"]["name"]): item["metadata"]["uid"] for ns in namespaces
            for item in e.get(f"/apis/apps/v1/namespaces/{ns}/deployments", accept=METADATA)["items"]}
    by_key = {(ns, o["metadata"]["name"]): o for ns, items in objects.items() for o in items if o["kind"] == "Deployment"}
    docs = []
    for ns, name in subset:
        labels = {**by_key[(ns, name)]["spec"]["template"]["metadata"]["labels"], "pod-template-hash": "bench"}
        docs.append({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                     "metadata": {"name": f"{name}-bench", "namespace": ns, "labels": labels,
                                  "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                                                       "uid": uids[(ns, name)], "controller": True,
                                                       "blockOwnerDeletion": True}]},
                     "spec": {"replicas": 0, "selector": {"matchLabels": labels},
                              "template": {"metadata": {"labels": labels},
                                           "spec": by_key[(ns, name)]["spec"]["template"]["spec"]}}})
        out.append((ns, f"{name}-bench-00000"))
    rs_file = e.work / "slo-replicasets.yaml"
    rs_file.write_text("\n---\n".join(json.dumps(d) for d in docs) + "\n")
    apply_files(e, [rs_file], 1)
    return out


# ---------------------------------------------------------------------------------------------
# Expected results: `readiness-operator audit` on the same objects


@dataclass
class Expected:
    targets: int = 0
    compliant: int = 0
    noncompliant: int = 0


def audit(policy_file: Path, manifest_files: list[Path], compliant_of: dict[tuple[str, str], bool] | None = None,
          keep: set[tuple[str, str]] | None = None) -> Expected:
    """Counts of the audit; with `compliant_of`, also each kept Deployment's compliance."""
    from readiness_operator import cli

    exp = Expected()
    for f in manifest_files:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            # -q: no summary line per file; --allow-no-match: a namespace file the policy does not select
            # counts as 0 targets (exit 3 otherwise).
            rc = cli.main(["audit", "--policy", str(policy_file), "-f", str(f), "-o", "json", "-q", "--allow-no-match"])
        if rc not in (0, 1):
            raise RuntimeError(f"audit failed on {f} (exit {rc})")
        for r in json.loads(buf.getvalue())["results"]:
            exp.targets += 1
            exp.compliant += bool(r["compliant"])
            if compliant_of is not None and keep is not None and (r["namespace"], r["name"]) in keep:
                compliant_of[(r["namespace"], r["name"])] = bool(r["compliant"])
    exp.noncompliant = exp.targets - exp.compliant
    return exp


def expected_results(pol: list[dict[str, Any]], expected: dict[str, Expected]) -> int:
    """One PolicyReport result per Deployment x check (SLOs included)."""
    from readiness_operator.engine import compile_policy
    from readiness_operator.model import ReadinessPolicySpec

    return sum(expected[p["metadata"]["name"]].targets
               * len(compile_policy(ReadinessPolicySpec.model_validate(p["spec"])).check_ids) for p in pol)


def with_probe(deployment: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(deployment))
    out["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] = {
        "httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 10}
    return out


def pick_changes(objects: dict[str, list[dict[str, Any]]], policy_file: Path, n: int) -> list[dict[str, Any]]:
    """Add a readinessProbe to n Deployments lacking one, preferring those it makes compliant with
    the policy (so the statuses visibly change); `objects` is updated in place."""
    from readiness_operator.cli import load_policy
    from readiness_operator.engine import compile_policy, evaluate
    from readiness_operator.world import InMemoryView, Worlds

    spec = compile_policy(load_policy(str(policy_file)).spec)
    flips, others = [], []
    for items in objects.values():
        pdbs = [o for o in items if o["kind"] == "PodDisruptionBudget"]
        hpas = [o for o in items if o["kind"] == "HorizontalPodAutoscaler"]
        worlds = Worlds(InMemoryView(pdbs=pdbs, hpas=hpas))
        for i, o in enumerate(items):
            if o["kind"] != "Deployment" or "readinessProbe" in o["spec"]["template"]["spec"]["containers"][0]:
                continue
            new = with_probe(o)
            before = evaluate(spec, o, worlds.of(o)).compliant
            after = evaluate(spec, new, worlds.of(new)).compliant
            (flips if before != after else others).append((items, i, new))
    chosen = (flips[:: max(1, len(flips) // n)] + others)[:n]
    for items, i, new in chosen:
        items[i] = new
    return [new for _, _, new in chosen]


# ---------------------------------------------------------------------------------------------
# Processes


@dataclass
class Env:
    work: Path
    kubeconfig: Path
    kubectl: str
    own_cluster: bool
    cluster_dir: Path | None
    prom_dir: Path
    prom_url: str = ""
    cluster_up_seconds: float = 0.0
    api: str = ""  # the bench's own reads: plain HTTP to its own count proxy (not an operator's)
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    def get(self, path: str, accept: str = "application/json", timeout: float = 120) -> Any:
        request = urllib.request.Request(f"{self.api}{path}", headers={"Accept": accept})
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return json.loads(r.read())

    def k(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 300) -> str:
        r = subprocess.run([self.kubectl, "--kubeconfig", str(self.kubeconfig), *args], input=input,
                           capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args[:4])} failed: {r.stderr.strip()[-2000:]}")
        return r.stdout


def tool_path() -> str:
    return subprocess.run([str(HACK / "build.sh"), "path"], capture_output=True, text=True, check=True).stdout.strip()


def start_cluster(args: argparse.Namespace, work: Path) -> Env:
    path = tool_path()
    os.environ["PATH"] = f"{path}:{os.environ['PATH']}"
    kubectl = shutil.which("kubectl") or "kubectl"
    prom_dir = Path(args.prom_dir)
    if os.environ.get("KUBECONFIG"):
        kubeconfig = Path(os.environ["KUBECONFIG"])
        log(f"using the cluster of $KUBECONFIG ({kubeconfig}); the controller-manager is left alone")
        # A cluster of hack/cluster.sh keeps its pid files next to the kubeconfig: read (for CPU figures) only.
        pids_dir = kubeconfig.parent if (kubeconfig.parent / "apiserver.pid").exists() else None
        e = Env(work, kubeconfig, kubectl, False, pids_dir, prom_dir)
        # Leftovers of an earlier run: gone before we start, so the operator starts from nothing
        # (no status, no PolicyReports); with --reuse the namespaces and their objects stay.
        for name in e.k("get", "readinesspolicies", "-l", f"{NS_LABEL}=true", "-o", "name", check=False).split():
            e.k("patch", name, "--type=merge", "-p", '{"metadata":{"finalizers":null}}', check=False)
        e.k("delete", "readinesspolicies", "-l", f"{NS_LABEL}=true", "--ignore-not-found", check=False, timeout=60)
        if args.reuse:  # DELETE collection per namespace: `kubectl delete -A -l` would GET every report first
            namespaces = [n.split("/", 1)[1] for n in e.k("get", "namespaces", "-l", f"{NS_LABEL}=true", "-o", "name").split()]
            selector = "labelSelector=app.kubernetes.io%2Fmanaged-by%3Dreadiness-operator"
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda ns: e.k("delete", "--raw", f"/apis/wgpolicyk8s.io/v1alpha2/namespaces/{ns}/policyreports"
                                                                f"?{selector}", check=False, timeout=300), namespaces))
        else:
            e.k("delete", "namespaces", "-l", f"{NS_LABEL}=true", "--ignore-not-found", "--timeout=300s", check=False,
                timeout=330)
        return e
    cluster_dir = Path(args.cluster_dir)
    env = {**os.environ, "CLUSTER_DIR": str(cluster_dir), "NODES": "0"}
    if args.pods:
        # The living cluster of cluster.sh, sized for the benchmark: every pod fits on the nodes (kwok's
        # fake capacity), the controller-manager and scheduler are not held to 20 / 50 requests/s (their
        # defaults would take half an hour for 30,000 pods), and the HPA controller syncs every 15 s
        # (Kubernetes' default; cluster.sh's 5 s is for tests).
        want_pods = args.expected_pods
        env.update(NODES=str(args.nodes), NODE_PODS=str(max(110, -(-want_pods * 5 // 4) // max(1, args.nodes))),
                   NODE_CPU="1000", NODE_MEMORY="4Ti", KUBE_API_QPS=str(args.kube_api_qps),
                   HPA_SYNC_PERIOD=args.hpa_sync_period)
    log(f"starting the cluster in {cluster_dir} ({env['NODES']} kwok nodes)")
    t = time.monotonic()
    out = subprocess.run([str(HACK / "cluster.sh"), "up"], env=env, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"cluster.sh up failed: {out.stderr[-2000:]}")
    e = Env(work, Path(out.stdout.strip().splitlines()[-1]), kubectl, True, cluster_dir, prom_dir)
    e.cluster_up_seconds = round(time.monotonic() - t, 1)
    if args.keep_cluster:
        log(f"keeping the control plane: export KUBECONFIG={e.kubeconfig}; CLUSTER_DIR={cluster_dir} hack/cluster.sh down")
    else:
        e.cleanups.append(lambda: subprocess.run([str(HACK / "cluster.sh"), "down"], env=env, capture_output=True, timeout=120))
    pid_file = cluster_dir / "controller-manager.pid"
    if not args.pods and pid_file.exists() and not args.keep_controller_manager:
        # No nodes: the controller-manager would only create ReplicaSets and Pending pods.
        pid = int(pid_file.read_text())
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            pid_file.unlink()  # so `cluster.sh down` never signals a reused pid
            log(f"stopped kube-controller-manager (pid {pid}) so it does not compete for the CPU")
    return e


def start_prometheus(e: Env, om: Path) -> None:
    env = {**os.environ, "PROM_DIR": str(e.prom_dir)}
    out = subprocess.run([str(HACK / "prometheus.sh"), "up", str(om)], env=env, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"prometheus.sh up failed: {out.stderr[-2000:]}")
    e.prom_url = out.stdout.strip().splitlines()[-1]
    e.cleanups.append(lambda: subprocess.run([str(HACK / "prometheus.sh"), "down"], env=env, capture_output=True, timeout=60))


def prom_queries(e: Env) -> int:
    with urllib.request.urlopen(f"{e.prom_url}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines()
               if line.startswith("prometheus_http_requests_total{") and 'handler="/api/v1/query"' in line)


def utc_second() -> str:
    """Now as the query log stamps it, to the second (the log's `ts` compares as text)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def logged_queries(e: Env, since: str, until: str) -> dict[str, int]:
    """What was asked of Prometheus between two `utc_second()`s, from its query log (hack/prometheus.sh
    writes one): each query's first 120 characters, with how often it ran."""
    asked: Counter[str] = Counter()
    path = e.prom_dir / "queries.log"
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError, AttributeError):
                entry = json.loads(line)
                if since <= str(entry.get("ts", ""))[:19] < until:
                    asked[" ".join(str(entry["params"]["query"]).split())[:120]] += 1
    return dict(asked.most_common())


class Proxy:
    def __init__(self, e: Env, name: str = "operator") -> None:
        port_file = e.work / f"proxy-{name}.port"
        self.log_path = e.work / f"proxy-{name}.log"
        self.log = self.log_path.open("wb")
        self.proc = subprocess.Popen([PYTHON, str(HACK / "bench" / "count_proxy.py"), "--kubeconfig", str(e.kubeconfig),
                                      "--port-file", str(port_file)], stdout=self.log, stderr=subprocess.STDOUT)
        e.cleanups.append(self.stop)
        for _ in range(200):
            if port_file.exists() and port_file.read_text().strip():
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"count proxy exited: {self.log_path.read_text()[-2000:]}")
            time.sleep(0.05)
        self.port = int(port_file.read_text())
        self.url = f"http://127.0.0.1:{self.port}"
        self.kubeconfig = e.work / f"{name}.kubeconfig"
        self.kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "bench",
            "clusters": [{"name": "proxy", "cluster": {"server": f"http://127.0.0.1:{self.port}"}}],
            "users": [{"name": "anonymous", "user": {}}],
            "contexts": [{"name": "bench", "context": {"cluster": "proxy", "user": "anonymous"}}],
        }))

    def _read_counts(self, attempts: int = 4) -> dict[str, Any]:
        """The proxy's own counts. It answers them itself, but on a saturated machine (10,000 Deployments'
        reports and kwok's pods at once) its event loop can be seconds behind: wait, and try again."""
        for attempt in range(attempts):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/__counts", timeout=30) as r:
                    return dict(json.load(r))
            except (OSError, TimeoutError):
                if attempt == attempts - 1:
                    raise
                time.sleep(2.0)
        raise AssertionError("unreachable")

    def counts(self) -> Counter[str]:
        return Counter(self._read_counts()["requests"])

    def timings(self) -> dict[str, Counter[str]]:
        """Per kind of request: "requests", "seconds" (sent -> the API server's answer) and "request_bytes"."""
        got = self._read_counts()
        return {k: Counter(got.get(k) or {}) for k in ("requests", "seconds", "request_bytes")}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


REPORT_WRITES = ("PATCH wgpolicyk8s.io/policyreports", "POST wgpolicyk8s.io/policyreports")


def report_write_figures(before: dict[str, Counter[str]], after: dict[str, Counter[str]]) -> dict[str, float]:
    """PolicyReport writes between two `Proxy.timings`: how many, their mean body size and the mean and
    total time the API server took to answer them."""
    n = sum(after["requests"][k] - before["requests"][k] for k in REPORT_WRITES)
    seconds = sum(after["seconds"][k] - before["seconds"][k] for k in REPORT_WRITES)
    sent = sum(after["request_bytes"][k] - before["request_bytes"][k] for k in REPORT_WRITES)
    if not n:
        return {"writes": 0}
    return {"writes": n, "mean_kb": round(sent / n / 1024, 1), "mean_seconds": round(seconds / n, 3),
            "total_seconds": round(seconds, 1)}


class Operator:
    """One operator process (a replica) talking through its own counting proxy."""

    def __init__(self, e: Env, proxy: Proxy, name: str, lease: str | None, profile: str | None,
                 tracemalloc: bool = False) -> None:
        self.name, self.proxy = name, proxy
        self.liveness, self.metrics_port = free_port(), free_port()
        cmd = [PYTHON]
        if profile:
            cmd += ["-m", "cProfile", "-o", profile]
        election = ["--leader-election-lease", lease] if lease else ["--standalone"]
        cmd += ["-m", "readiness_operator", "run", *election,
                "--liveness", f"http://127.0.0.1:{self.liveness}/healthz", "--metrics-port", str(self.metrics_port)]
        env = {**os.environ, "KUBECONFIG": str(proxy.kubeconfig), "READINESS_PROMETHEUS_URL": e.prom_url,
               "PYTHONPATH": str(ROOT / "operator"), "PYTHONFAULTHANDLER": "1"}  # SIGABRT dumps the stacks
        self.memory_profile: Path | None = None
        if tracemalloc:  # tracemalloc_site/sitecustomize.py traces from start and dumps on SIGUSR1
            self.memory_profile = e.work / f"tracemalloc-{name}.txt"
            env.update(PYTHONPATH=f"{ROOT / 'hack' / 'bench' / 'tracemalloc_site'}{os.pathsep}{env['PYTHONPATH']}",
                       BENCH_TRACEMALLOC_OUT=str(self.memory_profile))
        if lease:  # as the chart runs them: the Lease in the operator's namespace, the pod name as identity
            env.update(READINESS_NAMESPACE=BENCH_NAMESPACE, READINESS_POD_NAME=name)
        self.log_path = e.work / f"operator-{name}.log"
        self.log = self.log_path.open("wb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        e.cleanups.append(self.stop)

    def alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"operator {self.name} exited ({self.proc.returncode}): "
                               f"{self.log_path.read_text()[-3000:]}")

    def watch_events(self) -> dict[str, float]:
        """readiness_watch_events_total from this replica's /metrics, as "kind changed=true|false" -> count."""
        out: dict[str, float] = {}
        with contextlib.suppress(OSError, ValueError), \
                urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("readiness_watch_events_total{"):
                    labels, value = line.rsplit(" ", 1)
                    found = dict(re.findall(r'(\w+)="([^"]*)"', labels))
                    out[f"{found.get('kind')} changed={found.get('changed')}"] = float(value)
        return out

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime

    def status_kb(self, key: str) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        return 0

    def start_sampling(self, every: float = 0.5) -> None:
        """Record (seconds since start, RSS MB) in the background, to see when the peak happens."""
        self.samples: list[tuple[float, float]] = []

        def sample() -> None:
            while self.proc.poll() is None and len(self.samples) < 20_000:
                with contextlib.suppress(OSError, ValueError):
                    self.samples.append((round(time.monotonic() - self.started, 1), round(self.status_kb("VmRSS") / 1024, 1)))
                time.sleep(every)

        threading.Thread(target=sample, daemon=True).start()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


# ---------------------------------------------------------------------------------------------
# Measurement


def statuses(e: Env) -> dict[str, dict[str, Any]]:
    items = e.get("/apis/readiness.dev/v1alpha1/readinesspolicies", timeout=30)["items"]
    return {p["metadata"]["name"]: p.get("status") or {} for p in items}


def mismatches(current: dict[str, dict[str, Any]], expected: dict[str, Expected], slo_measured: dict[str, int],
               slo_names: dict[str, list[str]]) -> list[str]:
    out = []
    for name, exp in expected.items():
        st = current.get(name) or {}
        got = (st.get("targets"), st.get("compliant"), st.get("noncompliant"))
        if got != (exp.targets, exp.compliant, exp.noncompliant):
            out.append(f"{name}: targets/compliant/noncompliant {got} != {(exp.targets, exp.compliant, exp.noncompliant)}")
        slos = {s.get("name"): s for s in st.get("slos") or ()}
        for slo in slo_names.get(name, ()):
            if (slos.get(slo) or {}).get("measured") != slo_measured[name]:
                out.append(f"{name}: slo {slo} measured {(slos.get(slo) or {}).get('measured')} != {slo_measured[name]}")
    return out


def alive(ops: list[Operator]) -> None:
    for op in ops:
        op.alive()


def wait_correct(e: Env, ops: list[Operator], expected: dict[str, Expected], slo_measured: dict[str, int],
                 slo_names: dict[str, list[str]], since: float, timeout: float,
                 reports: ReportWatch | None = None) -> tuple[float, dict[str, float], float | None]:
    """Seconds from `since` until every status is correct (and, with `reports`, until then and the
    watched PolicyReport results are too); also when each policy's status first was, and when the
    reports first were."""
    per_policy: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    last: list[str] = []
    status_done: float | None = None
    while time.monotonic() < deadline:
        alive(ops)
        if status_done is None:
            try:
                current = statuses(e)
            except (OSError, ValueError):
                time.sleep(0.5)
                continue
            now = time.monotonic() - since
            for name in expected:
                if name not in per_policy and not mismatches({name: current.get(name) or {}}, {name: expected[name]},
                                                             slo_measured, slo_names):
                    per_policy[name] = now
            last = mismatches(current, expected, slo_measured, slo_names)
            if not last:
                status_done = now
        if status_done is not None:
            if reports is None:
                return status_done, per_policy, None
            if reports.done_at is not None:
                return status_done, per_policy, reports.done_at - since
            last = ([f"report watch ended: {reports.error}"] if reports.error else []) + (
                reports.problems[:5] or ["reports: watching"])
        time.sleep(0.25)
    raise TimeoutError(f"statuses{' and reports' if reports else ''} not correct after {timeout:.0f}s: {last}")


TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


def table_rows(e: Env, path: str, limit: int = 500) -> Iterator[dict[str, Any]]:
    """The server-side table (`kubectl get`'s columns) of a LIST, page by page, rows as {column: cell}."""
    token = ""
    while True:
        sep = "&" if "?" in path else "?"
        page = e.get(f"{path}{sep}limit={limit}&includeObject=None"
                     + (f"&continue={urllib.parse.quote(token)}" if token else ""), accept=TABLE)
        names = [c["name"].lower() for c in page.get("columnDefinitions") or ()]
        for row in page.get("rows") or ():
            yield dict(zip(names, row.get("cells") or (), strict=False))
        token = (page.get("metadata") or {}).get("continue") or ""
        if not token:
            return


def report_results(e: Env) -> tuple[int, int]:
    """(PolicyReports, results in them) from the server-side table (summary columns), not the bodies."""
    rows = list(table_rows(e, f"/apis/wgpolicyk8s.io/v1alpha2/policyreports?labelSelector={urllib.parse.quote(MANAGED)}"))
    return len(rows), sum(int(row.get(c) or 0) for row in rows for c in ("pass", "fail", "warn", "error", "skip"))


def wait_reports(e: Env, ops: list[Operator], want: int, since: float, timeout: float) -> float | None:
    """Seconds from `since` until the PolicyReports hold `want` results (None: not within timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive(ops)
        with contextlib.suppress(OSError, ValueError):
            if report_results(e)[1] == want:
                return time.monotonic() - since
        time.sleep(2)
    return None


def count(e: Env, path: str) -> int:
    """Objects a LIST would return, from one item and the server's remainingItemCount (no selector)."""
    page = e.get(f"{path}?limit=1")
    return len(page.get("items") or ()) + int((page.get("metadata") or {}).get("remainingItemCount") or 0)


def wait_pods(e: Env, objects: dict[str, list[dict[str, Any]]], timeout: float) -> dict[str, Any]:
    """Wait (bounded, printing progress) until every benchmark Deployment is Ready with all its pods
    (kwok Running/Ready) and every PDB's status counts its pods healthy: before that the live part of
    the PDB check and the operator's first pass would judge a cluster still being built."""
    desired = {(ns, o["metadata"]["name"]): int(o["spec"]["replicas"]) for ns, items in objects.items()
               for o in items if o["kind"] == "Deployment"}
    want_pods = sum(desired.values())
    pdbs = {(ns, o["metadata"]["name"]) for ns, items in objects.items() for o in items
            if o["kind"] == "PodDisruptionBudget"}
    start = time.monotonic()
    deadline = start + timeout
    last_log = 0.0
    ready = pods = healthy = 0
    while True:
        now = time.monotonic()
        pods = count(e, "/api/v1/pods")
        if pods >= want_pods:
            ready = 0
            for ns in objects:
                for row in table_rows(e, f"/apis/apps/v1/namespaces/{ns}/deployments"):
                    have, _, of = str(row.get("ready") or "0/0").partition("/")
                    want = desired.get((ns, str(row.get("name"))))
                    ready += want is not None and have == of == str(want) == str(row.get("available")) \
                        == str(row.get("up-to-date"))
        if ready == len(desired):
            healthy = 0
            for ns in objects:
                for pdb in e.get(f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets")["items"]:
                    key, st = (ns, pdb["metadata"]["name"]), pdb.get("status") or {}
                    healthy += key in pdbs and st.get("observedGeneration") == pdb["metadata"].get("generation") \
                        and st.get("expectedPods") == st.get("currentHealthy") == desired.get(key)
            if healthy == len(pdbs):
                break
        if now - last_log > 15:
            last_log = now
            log(f"pods: {pods:,} of {want_pods:,} exist; Deployments Ready: {ready:,} of {len(desired):,}; "
                f"PDBs counting their pods: {healthy:,} of {len(pdbs):,} ({now - start:.0f} s)")
        if now > deadline:
            raise TimeoutError(f"after {timeout:.0f} s: {pods:,} of {want_pods:,} pods, {ready:,} of {len(desired):,} "
                               f"Deployments Ready, {healthy:,} of {len(pdbs):,} PDBs healthy")
        time.sleep(5)
    out = {"pods_expected": want_pods, "pods": count(e, "/api/v1/pods"), "replicasets": count(e, "/apis/apps/v1/replicasets"),
           "nodes": count(e, "/api/v1/nodes"), "pods_ready_seconds": round(time.monotonic() - start, 1)}
    log(f"{out['pods']:,} pods on {out['nodes']} nodes, every Deployment Ready and every PDB healthy "
        f"{out['pods_ready_seconds']} s after the objects were created")
    return out


def cluster_cpu(e: Env) -> dict[str, float]:
    """CPU seconds so far of each process cluster.sh started (apiserver, etcd, kwok ...), by pid file."""
    out: dict[str, float] = {}
    if e.cluster_dir is None:
        return out
    for pid_file in sorted(e.cluster_dir.glob("*.pid")):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{int(pid_file.read_text())}/stat").read_text().rsplit(")", 1)[1].split()
            out[pid_file.stem] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def report_result(status: str, severity: Any) -> str:
    """The PolicyReport result a finding must show (wgpolicyk8s.io: pass / fail / warn / error / skip)."""
    from readiness_operator.severity import Severity

    if status in ("pass", "exempt", "unknown"):
        return {"pass": "pass", "exempt": "skip", "unknown": "error"}[status]
    return "warn" if Severity(severity) == Severity.INFO else "fail"


@dataclass
class ExpectedResults:
    """One Deployment's results under one policy: how many, its compliance, every non-SLO check's result."""

    count: int
    compliant: bool
    rules: dict[str, str]


def expected_change_results(pol: list[dict[str, Any]], objects: dict[str, list[dict[str, Any]]],
                            keys: set[tuple[str, str]]) -> dict[tuple[str, str, str], ExpectedResults]:
    """(namespace, Deployment, policy) -> its expected report results, from the engine offline (as the
    audit judges). SLO checks are left to their count: their results come from Prometheus."""
    from readiness_operator.engine import compile_policy, evaluate
    from readiness_operator.model import ReadinessPolicySpec
    from readiness_operator.model.check_ids import SLO_PREFIX
    from readiness_operator.world import InMemoryView, Worlds

    plans = {p["metadata"]["name"]: compile_policy(ReadinessPolicySpec.model_validate(p["spec"])) for p in pol}
    out: dict[tuple[str, str, str], ExpectedResults] = {}
    for ns, items in objects.items():
        targets = [o for o in items if o["kind"] == "Deployment" and (ns, o["metadata"]["name"]) in keys]
        if not targets:
            continue
        labels = {o["metadata"]["name"]: o["metadata"].get("labels") or {} for o in items if o["kind"] == "Namespace"}
        worlds = Worlds(InMemoryView(deployments=[o for o in items if o["kind"] == "Deployment"],
                                     pdbs=[o for o in items if o["kind"] == "PodDisruptionBudget"],
                                     hpas=[o for o in items if o["kind"] == "HorizontalPodAutoscaler"],
                                     namespace_labels=labels))
        for o in targets:
            for name, plan in plans.items():
                verdict = evaluate(plan, o, worlds.of(o))
                out[(ns, o["metadata"]["name"], name)] = ExpectedResults(
                    len(verdict.findings), verdict.compliant,
                    {f.check: report_result(f.status, f.severity) for f in verdict.findings
                     if not f.check.startswith(SLO_PREFIX)})
    return out


class ReportWatch:
    """The PolicyReport results of some Deployments, kept current by a paginated LIST then a WATCH in
    a thread (only the results of those Deployments are kept: at 10,000 the reports are ~200 MB).
    `expect` arms it: `done_at` is the first moment every expected result is there."""

    PATH = "/apis/wgpolicyk8s.io/v1alpha2/policyreports"

    def __init__(self, e: Env, keys: set[tuple[str, str]]) -> None:
        self.e, self.keys = e, keys
        self.lock = threading.Lock()
        self.by_report: dict[tuple[str, str], dict[str, list[tuple[str, str, str, str]]]] = {}
        self.expected: dict[tuple[str, str, str], ExpectedResults] | None = None
        self.done_at: float | None = None
        self.problems: list[str] = []
        self.events = 0
        self.error = ""
        self.stopped = False
        selector = urllib.parse.quote(MANAGED)
        token, rv = "", ""
        while True:  # one consistent snapshot: every page is read at the first page's resourceVersion
            page = e.get(f"{self.PATH}?labelSelector={selector}&limit=20"
                         + (f"&continue={urllib.parse.quote(token)}" if token else ""))
            rv = rv or page["metadata"]["resourceVersion"]
            for report in page.get("items") or ():
                self._keep(report)
            token = page["metadata"].get("continue") or ""
            if not token:
                break
        self.url = (f"{e.api}{self.PATH}?watch=1&labelSelector={selector}&resourceVersion={rv}"
                    "&allowWatchBookmarks=true&timeoutSeconds=3600")
        threading.Thread(target=self._watch, daemon=True).start()

    def _keep(self, report: dict[str, Any], deleted: bool = False) -> None:
        key = (report["metadata"]["namespace"], report["metadata"]["name"])
        kept: dict[str, list[tuple[str, str, str, str]]] = {}
        if not deleted:
            for r in report.get("results") or ():
                for ref in r.get("resources") or ():
                    if ref.get("kind") == "Deployment" and (key[0], ref.get("name")) in self.keys:
                        kept.setdefault(ref["name"], []).append((str(r.get("policy")), str(r.get("rule")),
                                                                 str(r.get("result")),
                                                                 str((r.get("properties") or {}).get("compliant"))))
        with self.lock:
            if kept:
                self.by_report[key] = kept
            else:
                self.by_report.pop(key, None)

    def _watch(self) -> None:
        try:
            with urllib.request.urlopen(self.url, timeout=3700) as r:
                for line in r:
                    if self.stopped:
                        return
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        self.error = str((event.get("object") or {}).get("message"))
                        return
                    if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                        self._keep(event["object"], deleted=event["type"] == "DELETED")
                        self.events += 1
                        self.check()
        except (OSError, ValueError) as exc:
            self.error = str(exc)

    def expect(self, expected: dict[tuple[str, str, str], ExpectedResults]) -> None:
        self.expected = expected
        self.check()

    def check(self) -> None:
        if self.expected is None or self.done_at is not None:
            return
        with self.lock:
            got: dict[tuple[str, str, str], list[tuple[str, str, str]]] = {}
            for (ns, _), kept in self.by_report.items():
                for name, results in kept.items():
                    for policy, rule, result, compliant in results:
                        got.setdefault((ns, name, policy), []).append((rule, result, compliant))
        problems = []
        for key, want in self.expected.items():
            have = got.get(key, [])
            rules = {rule: result for rule, result, _ in have}
            if len(have) != want.count:
                problems.append(f"{'/'.join(key)}: {len(have)} results, {want.count} expected")
            elif any(c != str(want.compliant).lower() for _, _, c in have):
                problems.append(f"{'/'.join(key)}: compliant is not {str(want.compliant).lower()}")
            else:
                wrong = {r: (rules.get(r), v) for r, v in want.rules.items() if rules.get(r) != v}
                if wrong:
                    problems.append(f"{'/'.join(key)}: (result, expected) {wrong}")
        self.problems = problems
        if not problems:
            self.done_at = time.monotonic()

    def stop(self) -> None:
        self.stopped = True


FLOOR_RESOURCES = ("/api/v1/namespaces", "/apis/apps/v1/deployments", "/apis/policy/v1/poddisruptionbudgets",
                   "/apis/autoscaling/v2/horizontalpodautoscalers", "/apis/networking.k8s.io/v1/networkpolicies",
                   "/apis/apps/v1/replicasets", "/api/v1/pods")


def bare_list_seconds(base_url: str, limit: int = 500) -> tuple[float, dict[str, int]]:
    """The floor: a paginated LIST of every kind the operator reads (pods and ReplicaSets included),
    each page parsed from JSON into Python objects and dropped -- nothing can converge before it has
    read the data once. Returns the seconds and the objects by resource."""
    objects: dict[str, int] = {}
    start = time.monotonic()
    for path in FLOOR_RESOURCES:
        token = ""
        name = path.rsplit("/", 1)[1]
        objects[name] = 0
        while True:
            query = f"?limit={limit}" + (f"&continue={urllib.parse.quote(token)}" if token else "")
            with urllib.request.urlopen(f"{base_url}{path}{query}", timeout=120) as r:
                page = json.loads(r.read())
            objects[name] += len(page.get("items") or ())
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                break
    return time.monotonic() - start, objects


def apply_files(e: Env, files: list[Path], parallel: int) -> None:
    def one(f: Path) -> None:
        e.k("apply", "--server-side", "--force-conflicts", "--field-manager", "bench", "-f", str(f), "-o", "name", timeout=600)

    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(one, files))


def write_manifests(objects: dict[str, list[dict[str, Any]]], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    files = []
    for ns, items in objects.items():
        f = directory / f"{ns}.yaml"
        f.write_text("\n---\n".join(json.dumps(o) for o in items) + "\n")
        files.append(f)
    return files


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{os.cpu_count()} cores ({cpu}), {mem_gib:.0f} GiB RAM, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


@contextlib.contextmanager
def environment(args: argparse.Namespace) -> Iterator[Env]:
    work = Path(tempfile.mkdtemp(prefix="operator-scale-"))
    e: Env | None = None
    try:
        e = start_cluster(args, work)
        e.api = Proxy(e, "bench").url  # the bench's own reads, apart from the operators' counts
        yield e
    finally:
        if e is not None:
            if not e.own_cluster and not args.reuse:  # --reuse keeps the namespaces for the next run
                with contextlib.suppress(Exception):
                    e.k("delete", "readinesspolicies", "-l", f"{NS_LABEL}=true", "--wait=false", check=False)
                    e.k("delete", "namespaces", "-l", f"{NS_LABEL}=true", "--wait=false", check=False)
                    e.k("delete", "namespace", BENCH_NAMESPACE, "--ignore-not-found", "--wait=false", check=False)
            for cleanup in reversed(e.cleanups):
                with contextlib.suppress(Exception):
                    cleanup()
        if args.keep_work:
            log(f"work files kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, results: dict[str, Any]) -> dict[str, Any]:
    """Measure into `results` as it goes, so a run that breaks late (an API server too busy to answer
    a last read) still leaves every figure taken before it."""
    results.update({"deployments": args.deployments, "namespaces": args.namespaces, "machine": machine(),
                    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                    "load_before": " / ".join(f"{x:.1f}" for x in os.getloadavg()),
                    "with_pods": args.pods, "replicas": args.replicas})
    objects = make_objects(args.deployments, args.namespaces)
    args.expected_pods = sum(int(o["spec"]["replicas"]) for items in objects.values() for o in items
                             if o["kind"] == "Deployment")
    with environment(args) as e:
        results["cluster_up_seconds"] = e.cluster_up_seconds
        kinds = Counter(o["kind"] for items in objects.values() for o in items)
        results["objects"] = dict(kinds)
        files = write_manifests(objects, e.work / "manifests")
        e.k("apply", "--server-side", "-f", str(ROOT / "manifests" / "crds.yaml"))
        e.k("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        pol = policies()
        for p in pol:
            p["metadata"]["labels"] = {NS_LABEL: "true"}
        policy_files = []
        for p in pol:
            f = e.work / f"policy-{p['metadata']['name']}.yaml"
            f.write_text(yaml.safe_dump(p))
            policy_files.append(f)
        present = e.k("get", "namespaces", "-l", f"{NS_LABEL}=true", "-o", "name").split() if args.reuse else []
        if args.reuse and len(present) == args.namespaces:
            log(f"--reuse: the {len(present)} benchmark namespaces exist; not creating the objects again")
            results["create_seconds"] = "reused"
            # ... but restore the Deployments the change step edits (an interrupted run leaves them changed)
            scratch = make_objects(args.deployments, args.namespaces)
            edited = pick_changes(scratch, policy_files[0], args.changes)
            names = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in edited}
            restore = e.work / "restore.yaml"
            restore.write_text("\n---\n".join(json.dumps(o) for items in objects.values() for o in items
                                              if (o["metadata"].get("namespace"), o["metadata"]["name"]) in names
                                              and o["kind"] == "Deployment") + "\n")
            apply_files(e, [restore], 1)
        else:
            log(f"creating {dict(kinds)} with kubectl apply --server-side ({args.parallel} files at a time)")
            t = time.monotonic()
            apply_files(e, files, args.parallel)
            results["create_seconds"] = round(time.monotonic() - t, 1)
            log(f"created in {results['create_seconds']} s")
        if args.pods:
            try:
                results.update(wait_pods(e, objects, args.pods_timeout))
            except TimeoutError as exc:
                results["failed"] = str(exc)
                return results
        if isinstance(results.get("create_seconds"), float):
            results["setup_seconds"] = round(results["create_seconds"] + results.get("pods_ready_seconds", 0.0), 1)

        log("computing the expected verdicts with `readiness-operator audit`")
        t = time.monotonic()
        expected = {p["metadata"]["name"]: audit(f, files) for p, f in zip(pol, policy_files, strict=True)}
        results["audit_seconds"] = round(time.monotonic() - t, 1)
        results["expected"] = {k: vars(v) for k, v in expected.items()}
        log(f"expected: {results['expected']}")

        # SLO series for every 20th Deployment (500 of 10,000), all healthy.
        deployments = [(o["metadata"]["namespace"], o["metadata"]["name"]) for items in objects.values()
                       for o in items if o["kind"] == "Deployment"]
        subset = deployments[:: args.slo_every]
        om = e.work / "slo.om"
        slo_pod_names = slo_pods(e, objects, subset, args.pods)
        om.write_text(slo_series(slo_pod_names, int(time.time())))
        log(f"starting Prometheus with SLO series for {len(subset)} Deployments ({len(slo_pod_names)} pods)")
        start_prometheus(e, om)
        slo_names = {p["metadata"]["name"]: [s["name"] for s in p["spec"].get("slos") or ()] for p in pol}
        slo_measured = {name: len(subset) for name in slo_names}
        results["slo_series_for"] = len(subset)
        results["slo_queries_per_interval_expected"] = sum(len(v) for v in slo_names.values())

        for f in policy_files:
            e.k("apply", "-f", str(f))
        floor_runs = [bare_list_seconds(e.api) for _ in range(3)]
        results["floor_list_seconds"] = round(min(t for t, _ in floor_runs), 2)
        results["floor_list_seconds_runs"] = [round(t, 2) for t, _ in floor_runs]
        results["floor_list_objects"] = sum(floor_runs[0][1].values())
        results["floor_list_objects_by_resource"] = floor_runs[0][1]
        log(f"floor: a bare paginated LIST of {results['floor_list_objects']:,} objects ({floor_runs[0][1]}) takes "
            f"{results['floor_list_seconds']} s (best of 3: {results['floor_list_seconds_runs']})")

        replica_names = [f"replica-{chr(ord('a') + i)}" for i in range(args.replicas)]
        lease = LEASE if args.replicas > 1 else None
        if lease:  # the operator's namespace, its Lease gone (an earlier run's holder would delay the election)
            e.k("create", "namespace", BENCH_NAMESPACE, check=False)
            e.k("-n", BENCH_NAMESPACE, "delete", "lease", lease, "--ignore-not-found", check=False)
        proxies = {name: Proxy(e, name) for name in replica_names}
        resets = {name: proxy.counts() for name, proxy in proxies.items()}
        timings_at_start = {name: proxy.timings() for name, proxy in proxies.items()}
        prom_before = prom_queries(e)
        cluster0 = cluster_cpu(e)
        log(f"starting the operator: {', '.join(replica_names)}" + (f" (leader election, Lease {BENCH_NAMESPACE}/{lease})"
                                                             if lease else " (--standalone)"))
        ops = [Operator(e, proxies[name], name, lease, args.profile if i == 0 else None, args.tracemalloc)
               for i, name in enumerate(replica_names)]
        started = ops[0].started
        for op in ops:
            op.start_sampling()
        per: dict[str, dict[str, Any]] = {op.name: {} for op in ops}
        results["per_replica"] = per  # filled as the run goes (kept if a late read breaks)

        def record(suffix: str, rss: bool = True) -> None:
            for op in ops:
                per[op.name][f"{suffix}_cpu_seconds"] = round(op.cpu_seconds(), 1)
                if rss:
                    per[op.name][f"peak_rss_mb_at_{suffix}"] = round(op.status_kb("VmHWM") / 1024, 1)
                per[op.name][f"requests_to_{suffix}"] = dict(op.proxy.counts() - resets[op.name])

        try:
            converged, per_policy, _ = wait_correct(e, ops, expected, slo_measured, slo_names, started, args.timeout)
        except TimeoutError as exc:
            log(str(exc))
            record("converge")
            if lease:
                with contextlib.suppress(OSError, ValueError):
                    lease_moves(e, ops, per, results)
            results.update(converge_seconds=f"> {args.timeout:.0f}", per_replica=per, failed=str(exc),
                           converge_cpu_seconds=per[ops[0].name]["converge_cpu_seconds"],
                           peak_rss_mb=per[ops[0].name]["peak_rss_mb_at_converge"],
                           requests_to_converge=per[ops[0].name]["requests_to_converge"])
            return results
        leader = leader_of(e, ops)
        standby = [op for op in ops if op is not leader]
        results["leader"] = leader.name
        for op in ops:
            per[op.name]["role"] = "leader" if op is leader else "standby"
        record("converge")
        results["converge_seconds"] = round(converged, 1)
        results["converge_vs_floor"] = round(converged / results["floor_list_seconds"], 2)
        results["peak_rss_mb_at_converge"] = per[leader.name]["peak_rss_mb_at_converge"]
        results["converge_per_policy_seconds"] = {k: round(v, 1) for k, v in sorted(per_policy.items())}
        results["converge_cpu_seconds"] = per[leader.name]["converge_cpu_seconds"]
        results["requests_to_converge"] = per[leader.name]["requests_to_converge"]
        log(f"converged in {converged:.1f} s (leader {leader.name}: CPU {results['converge_cpu_seconds']} s"
            + "".join(f"; standby {op.name}: CPU {per[op.name]['converge_cpu_seconds']} s" for op in standby) + ")")
        want_results = expected_results(pol, expected)
        reports_done = wait_reports(e, ops, want_results, started, args.timeout)
        results["reports_complete_seconds"] = round(reports_done, 1) if reports_done is not None else f"> {args.timeout:.0f}"
        record("reports_complete")
        results["reports_complete_cpu_seconds"] = per[leader.name]["reports_complete_cpu_seconds"]
        results["peak_rss_mb_first_pass"] = per[leader.name]["peak_rss_mb_at_reports_complete"]
        if reports_done is not None:
            results["reports_complete_vs_floor"] = round(reports_done / results["floor_list_seconds"], 2)
        results["requests_to_reports_complete"] = per[leader.name]["requests_to_reports_complete"]
        results["report_writes_to_reports_complete"] = report_write_figures(timings_at_start[leader.name],
                                                                            leader.proxy.timings())
        log(f"PolicyReports complete ({want_results:,} results) {results['reports_complete_seconds']} s after start")
        cluster1 = cluster_cpu(e)
        results["cluster_cpu_seconds_to_reports_complete"] = {k: round(v - cluster0.get(k, 0.0), 1)
                                                              for k, v in cluster1.items()}

        # Let the tail of the first pass (events, resync marks) settle, then an idle window.
        time.sleep(args.settle)
        if args.tracemalloc:
            results["memory_profiles"] = memory_profiles(ops, timeout=120.0)
        cpu0 = {op.name: op.cpu_seconds() for op in ops}
        req0 = {op.name: op.proxy.counts() for op in ops}
        prom0, cl0, t0 = prom_queries(e), cluster_cpu(e), time.monotonic()
        events0 = {op.name: op.watch_events() for op in ops}
        spies = start_py_spy(args.py_spy, ops, args.idle_seconds) if args.py_spy else {}
        idle_from = utc_second()
        time.sleep(args.idle_seconds)
        cpu1 = {op.name: op.cpu_seconds() for op in ops}
        req1 = {op.name: op.proxy.counts() for op in ops}
        prom1, cl1, t1 = prom_queries(e), cluster_cpu(e), time.monotonic()
        events1 = {op.name: op.watch_events() for op in ops}
        window = t1 - t0
        for op in ops:
            requests = req1[op.name] - req0[op.name]
            per[op.name]["idle_watch_events_per_second"] = {
                key: round((n - events0[op.name].get(key, 0)) / window, 1) for key, n in sorted(events1[op.name].items())}
            per[op.name].update(idle_cpu_percent=round(100 * (cpu1[op.name] - cpu0[op.name]) / window, 2),
                                idle_requests=dict(requests),
                                idle_requests_per_minute=round(sum(requests.values()) * 60 / window, 1))
        results["idle_window_seconds"] = round(window, 1)
        results["idle_cpu_percent"] = per[leader.name]["idle_cpu_percent"]
        results["idle_cpu_seconds_per_30s"] = round((cpu1[leader.name] - cpu0[leader.name]) * 30 / window, 2)
        results["idle_requests"] = per[leader.name]["idle_requests"]
        results["idle_requests_per_minute"] = per[leader.name]["idle_requests_per_minute"]
        results["prometheus_queries_in_window"] = prom1 - prom0
        results["prometheus_queries_per_30s_interval"] = round((prom1 - prom0) * 30 / window, 1)
        results["prometheus_queries_total"] = prom1 - prom_before
        results["cluster_idle_cpu_percent"] = {k: round(100 * (v - cl0.get(k, 0.0)) / window, 1) for k, v in cl1.items()}
        results["idle_prometheus_queries"] = logged_queries(e, idle_from, utc_second())
        if spies:
            results["idle_profile"] = finish_py_spy(spies)
        log("idle: CPU " + ", ".join(f"{op.name} {per[op.name]['idle_cpu_percent']} %" for op in ops)
            + f"; leader: {sum(results['idle_requests'].values())} API requests, {prom1 - prom0} Prometheus queries "
            f"in {window:.0f} s; cluster processes: {results['cluster_idle_cpu_percent']} %")

        changed: list[dict[str, Any]] = []
        if args.changes > 0:  # --changes 0: no change measure (e.g. 50,000 Deployments: converge, RSS, nothing dropped)
            # Change 100 Deployments: add a readinessProbe where one is missing.
            changed = pick_changes(objects, policy_files[0], args.changes)
            keys = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in changed}
            files = write_manifests(objects, e.work / "manifests")  # the audit sees the changed objects
            change_file = e.work / "changes.yaml"
            change_file.write_text("\n---\n".join(json.dumps(o) for o in changed) + "\n")
            t = time.monotonic()
            compliant_of: dict[str, dict[tuple[str, str], bool]] = {}
            expected = {}
            for p, f in zip(pol, policy_files, strict=True):
                compliant_of[p["metadata"]["name"]] = {}
                expected[p["metadata"]["name"]] = audit(f, files, compliant_of[p["metadata"]["name"]], keys)
            want_reports = expected_change_results(pol, objects, keys)
            disagree = [k for k, v in want_reports.items() if compliant_of[k[2]].get(k[:2]) != v.compliant]
            if disagree:  # the offline engine and the audit are the same code: this would be a bench bug
                raise RuntimeError(f"the audit and the engine disagree on {disagree[:5]}")
            log(f"after the change, expected: { {k: vars(v) for k, v in expected.items()} } "
                f"(audit {time.monotonic() - t:.1f} s); watching the reports of the {len(keys)} changed Deployments")
            results["expected_after_change"] = {k: vars(v) for k, v in expected.items()}
            watch = ReportWatch(e, keys)
            req_before = {op.name: op.proxy.counts() for op in ops}
            timings_before = leader.proxy.timings()
            t = time.monotonic()
            apply_files(e, [change_file], 1)
            results["change_apply_seconds"] = round(time.monotonic() - t, 1)
            watch.expect(want_reports)
            try:
                status_done, _, reports_done_at = wait_correct(e, ops, expected, slo_measured, slo_names, t, args.timeout,
                                                               reports=watch)
            except TimeoutError as exc:
                log(str(exc))
                results.update(change_after_apply_seconds=f"> {args.timeout:.0f}", failed=str(exc), per_replica=per)
                return results
            finally:
                watch.stop()
            assert reports_done_at is not None
            both = max(status_done, reports_done_at)
            results["changed_deployments"] = len(changed)
            results["change_converge_seconds"] = round(both, 1)
            results["change_after_apply_seconds"] = round(max(0.0, both - results["change_apply_seconds"]), 1)
            results["change_status_after_apply_seconds"] = round(max(0.0, status_done - results["change_apply_seconds"]), 1)
            results["change_reports_after_apply_seconds"] = round(max(0.0, reports_done_at - results["change_apply_seconds"]),
                                                                  1)
            results["change_report_results_checked"] = sum(v.count for v in want_reports.values())
            results["change_report_watch_events"] = watch.events
            time.sleep(2)
            for op in ops:
                per[op.name]["change_requests"] = dict(op.proxy.counts() - req_before[op.name])
            results["change_requests"] = per[leader.name]["change_requests"]
            results["change_report_writes"] = report_write_figures(timings_before, leader.proxy.timings())
            log(f"{len(changed)} changes reflected {both:.1f} s after kubectl apply started (statuses {status_done:.1f} s, "
                f"reports {reports_done_at:.1f} s; the apply took {results['change_apply_seconds']} s)")
            if args.pods:  # the changed templates rolled out: still right once the new pods are Ready?
                with contextlib.suppress(TimeoutError):
                    wait_pods(e, objects, args.timeout)
                results["change_statuses_correct_after_rollout"] = not mismatches(statuses(e), expected, slo_measured,
                                                                                  slo_names)

        for op in ops:
            per[op.name].update(peak_rss_mb=round(op.status_kb("VmHWM") / 1024, 1),
                                rss_mb_end=round(op.status_kb("VmRSS") / 1024, 1),
                                total_cpu_seconds=round(op.cpu_seconds(), 1))
        results["peak_rss_mb"] = per[leader.name]["peak_rss_mb"]
        results["rss_mb_end"] = per[leader.name]["rss_mb_end"]
        results["total_cpu_seconds"] = per[leader.name]["total_cpu_seconds"]
        results["peak_rss_mb_max_replica"] = max(v["peak_rss_mb"] for v in per.values())
        results["idle_cpu_percent_max_replica"] = max(v["idle_cpu_percent"] for v in per.values())
        for op in standby[:1]:
            for key in ("peak_rss_mb", "converge_cpu_seconds", "idle_cpu_percent", "total_cpu_seconds"):
                results[f"standby_{key}"] = per[op.name][key]
        if lease:
            try:
                lease_moves(e, ops, per, results)
            except (OSError, ValueError) as exc:
                results["lease_transitions"] = f"not read: {type(exc).__name__}: {exc}"
        results["per_replica"] = per
        peak = max(leader.samples, key=lambda x: x[1], default=(0.0, 0.0))
        results["rss_peak_sampled_at_seconds"] = peak[0]
        results["rss_timeline_mb"] = leader.samples[::20]  # every 10 s
        try:  # the API server may still be busy with the reports: the figures above are kept either way
            results["policy_reports"], results["policy_report_results"] = report_results(e)
        except (OSError, ValueError) as exc:
            results["policy_report_results"] = f"not read: {type(exc).__name__}: {exc}"
        results["policy_report_results_expected"] = expected_results(pol, expected)
        if (args.reuse or args.keep_cluster) and changed:  # undo the change, so the next --reuse run starts from the same objects
            originals = make_objects(args.deployments, args.namespaces)
            by_name = {(o["metadata"].get("namespace"), o["metadata"]["name"]): o for items in originals.values() for o in items}
            change_file.write_text("\n---\n".join(json.dumps(by_name[(o["metadata"]["namespace"], o["metadata"]["name"])])
                                                   for o in changed) + "\n")
            apply_files(e, [change_file], 1)
        if not e.own_cluster or args.keep_cluster:  # while the operator runs, so it removes its finalizer
            e.k("delete", "readinesspolicies", "-l", f"{NS_LABEL}=true", "--timeout=60s", check=False, timeout=90)
        for op in ops:
            op.stop()
    return results


def start_py_spy(prefix: str, ops: list[Operator], seconds: float) -> dict[str, tuple[subprocess.Popen[bytes], Path]]:
    """Sample every replica with py-spy (100 Hz, without pausing it) for the idle window."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")  # the venv running this
    spies = {}
    for op in ops:
        out = Path(f"{prefix}.{op.name}")
        spies[op.name] = (subprocess.Popen([spy, "record", "--pid", str(op.proc.pid), "--rate", "100",
                                            "--duration", str(int(seconds)), "--format", "raw", "--threads",
                                            "--output", str(out), "--nonblocking"],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), out)
    return spies


def finish_py_spy(spies: dict[str, tuple[subprocess.Popen[bytes], Path]]) -> dict[str, Any]:
    """Where each replica's idle CPU went: its busiest functions, self and inclusive, as shares of the samples."""
    summary: dict[str, Any] = {}
    for name, (proc, out) in spies.items():
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(60)
        if not out.exists():
            summary[name] = {"error": f"py-spy wrote nothing (exit {proc.returncode})"}
            continue
        summary[name] = spy_summary(out.read_text())
        summary[name]["raw"] = str(out)
    return summary


LINE_OF_FRAME = re.compile(r":\d+\)$")


def spy_summary(raw: str, top: int = 15) -> dict[str, Any]:
    """Self and inclusive sample shares per function of a py-spy raw (collapsed) profile."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        count = int(n)
        frames = [LINE_OF_FRAME.sub(")", frame) for frame in stack.split(";")]  # per function, not per line
        total += count
        threads[frames[0]] += count
        own[frames[-1]] += count
        for frame in set(frames[1:]):
            inclusive[frame] += count

    def shares(c: Counter[str]) -> list[tuple[str, float]]:
        return [(f, round(100 * v / total, 1)) for f, v in c.most_common(top)]

    return {"samples": total, "threads": shares(threads), "self_percent": shares(own),
            "inclusive_percent": shares(inclusive)} if total else {"samples": 0}


def memory_profiles(ops: list[Operator], timeout: float) -> dict[str, str]:
    """Ask every replica for what it holds now (SIGUSR1, see tracemalloc_site/) and return the dumps."""
    out: dict[str, str] = {}
    for op in ops:
        assert op.memory_profile is not None
        op.memory_profile.unlink(missing_ok=True)
        op.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while not op.memory_profile.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        out[op.name] = op.memory_profile.read_text() if op.memory_profile.exists() else "no dump within the timeout"
        log(f"memory profile of {op.name}:\n" + "\n".join(out[op.name].splitlines()[:30]))
    return out


def lease_moves(e: Env, ops: list[Operator], per: dict[str, dict[str, Any]], results: dict[str, Any]) -> None:
    """How often the Lease moved (a leader whose event loop is starved for 10 s steps down), from the
    Lease and each replica's log."""
    held = e.get(f"/apis/coordination.k8s.io/v1/namespaces/{BENCH_NAMESPACE}/leases/{LEASE}")
    results["lease_transitions"] = int((held.get("spec") or {}).get("leaseTransitions") or 0)
    for op in ops:
        text = op.log_path.read_text(errors="replace")
        per[op.name].update(leader_terms=text.count("is the leader now"), step_downs=text.count("stepping down"))


def leader_of(e: Env, ops: list[Operator]) -> Operator:
    """The replica holding the Lease (its holderIdentity is `<READINESS_POD_NAME>_<suffix>`)."""
    if len(ops) == 1:
        return ops[0]
    lease = e.get(f"/apis/coordination.k8s.io/v1/namespaces/{BENCH_NAMESPACE}/leases/{LEASE}")
    holder = str((lease.get("spec") or {}).get("holderIdentity") or "")
    for op in ops:
        if holder.startswith(op.name + "_"):
            return op
    raise RuntimeError(f"no replica holds Lease {BENCH_NAMESPACE}/{LEASE} (holder {holder!r})")


# ---------------------------------------------------------------------------------------------
# Output


def _writes(counts: Counter[str]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if not k.startswith(("GET", "LIST", "WATCH"))}


def _num(value: Any) -> float:
    """A figure, or infinity for a "> timeout" string."""
    return float(value) if isinstance(value, int | float) else float("inf")


def table(r: dict[str, Any]) -> str:
    req = Counter(r["requests_to_converge"])
    writes = _writes(req)
    reads = {k: v for k, v in req.items() if k.startswith(("GET", "LIST", "WATCH"))}

    def fmt(d: dict[str, int]) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(d.items(), key=lambda kv: -kv[1])) or "none"

    def ok(good: bool) -> str:
        return "yes" if good else "**no**"

    per = r.get("per_replica") or {}

    def each(key: str, unit: str) -> str:
        """One figure of every replica: 'replica-a (leader) 250.1 MB, replica-b (standby) 240.3 MB'."""
        return ", ".join(f"{name} ({v.get('role', '?')}) {v.get(key, '?')}{unit}" for name, v in sorted(per.items()))

    pods = (f"; {r['pods']:,} pods (kwok, Running and Ready) and {r.get('replicasets', 0):,} ReplicaSets on "
            f"{r.get('nodes', '?')} nodes" if r.get("with_pods") and "pods" in r else "; no pods (--no-pods)")
    setup = (f"created in {r['create_seconds']} s" + (f", every pod Ready {r['pods_ready_seconds']} s later"
                                                      if "pods_ready_seconds" in r else ""))
    floor_kinds = ", ".join(f"{k} {v:,}" for k, v in (r.get("floor_list_objects_by_resource") or {}).items() if v)
    peak = r.get("peak_rss_mb_max_replica", r["peak_rss_mb"])
    idle = r.get("idle_cpu_percent_max_replica", r["idle_cpu_percent"])
    cluster_idle = r.get("cluster_idle_cpu_percent") or {}
    rows = [
        ("Objects", f"{r['objects'].get('Deployment', 0):,} Deployments, {r['objects'].get('PodDisruptionBudget', 0):,} PDBs, "
                    f"{r['objects'].get('HorizontalPodAutoscaler', 0):,} HPAs in {r['namespaces']} namespaces"
                    f"{pods} ({setup})", ""),
        ("Operator", f"{r.get('replicas', 1)} replica(s)" + (f", leader election on a Lease (leader {r['leader']}; "
                                                             f"{r.get('lease_transitions', '?')} Lease transitions, "
                                                             f"terms: {each('leader_terms', '')})"
                                                             if r.get("replicas", 1) > 1 and "leader" in r
                                                             else ", --standalone"), ""),
        ("Expected (audit)", "; ".join(f"{k}: {v['targets']:,} targets, {v['compliant']:,} compliant"
                                        for k, v in r["expected"].items()), ""),
        ("Floor: a bare paginated LIST (limit 500) of the same objects, parsed", f"{r.get('floor_list_seconds', '?')} s "
         f"({r.get('floor_list_objects', '?'):,} objects{': ' + floor_kinds if floor_kinds else ''}; "
         f"best of {r.get('floor_list_seconds_runs', [])})", ""),
        ("Operator start -> every status complete and correct", f"{r['converge_seconds']} s "
         f"({', '.join(f'{k} {v} s' for k, v in r['converge_per_policy_seconds'].items())}); "
         f"{r['converge_cpu_seconds']} s CPU (leader)" + (f"; {each('converge_cpu_seconds', ' s CPU')}" if len(per) > 1 else "")
         + f"; {r.get('converge_vs_floor', '?')}x the floor",
         f"< 30 s: {ok(r['converge_seconds'] < 30)}; <= 2x floor: {ok(r.get('converge_vs_floor', 99) <= 2)}"),
        ("Operator start -> every PolicyReport written", f"{r['reports_complete_seconds']} s "
         f"({r['reports_complete_cpu_seconds']} s CPU; {r.get('reports_complete_vs_floor', '?')}x the floor"
         + (f"; writes: {fmt(_writes(Counter(r['requests_to_reports_complete'])))}"
            if "requests_to_reports_complete" in r else "")
         + ")", f"< 30 s: {ok(_num(r['reports_complete_seconds']) < 30)}; <= 2x floor: "
                f"{ok(r.get('reports_complete_vs_floor', 99) <= 2)}"),
        ("Peak RSS (VmHWM)" + (" per replica" if len(per) > 1 else ""),
         (each("peak_rss_mb", " MB") if len(per) > 1 else f"{r['peak_rss_mb']} MB")
         + f" (leader's RSS at the end {r['rss_mb_end']} MB)",
         f"< 300 MB: {ok(peak < 300)}"),
        ("Idle CPU (after every report is written)", (each("idle_cpu_percent", " %") if len(per) > 1 else
                                                      f"{r['idle_cpu_percent']} %") + " of a core "
         f"(leader {r['idle_cpu_seconds_per_30s']} CPU s per 30 s, {r['idle_window_seconds']} s idle window)"
         + (f"; the cluster's own processes meanwhile: {', '.join(f'{k} {v} %' for k, v in cluster_idle.items())}"
            if cluster_idle else ""),
         f"< 1 %: {ok(idle < 1)}"),
        ("API requests to converge" + (" (leader)" if len(per) > 1 else ""),
         f"{sum(req.values()):,}: writes: {fmt(writes)}; reads: {fmt(reads)}", ""),
        ("API requests when idle", (each("idle_requests_per_minute", " per minute") if len(per) > 1
                                    else f"{r['idle_requests_per_minute']} per minute")
         + f" (leader: {fmt(r['idle_requests'])})", ""),
        ("Prometheus queries per 30 s interval", f"{r['prometheus_queries_per_30s_interval']} "
         f"(expected {r.get('slo_queries_per_interval_expected', '?')}: every SLO of every policy; series for "
         f"{r['slo_series_for']} Deployments)", ""),
        *([
            (f"Change {r['changed_deployments']} Deployments (add a readinessProbe) -> "
             + ("statuses and their PolicyReport results correct" if "change_reports_after_apply_seconds" in r
                else "statuses correct"),
             f"{r.get('change_after_apply_seconds', '?')} s after `kubectl apply` returned"
             + (f" (statuses {r['change_status_after_apply_seconds']} s, the "
                f"{r.get('change_report_results_checked', 0):,} report results of the changed Deployments "
                f"{r['change_reports_after_apply_seconds']} s)" if "change_reports_after_apply_seconds" in r else "")
             + f"; {r['change_converge_seconds']} s after it started (the apply itself took "
             f"{r['change_apply_seconds']} s); requests: {fmt(r['change_requests'])}"
             + ("" if "change_statuses_correct_after_rollout" not in r else
                f"; statuses still correct after the rollouts: {ok(r['change_statuses_correct_after_rollout'])}"),
             f"< 5 s: {ok(_num(r.get('change_after_apply_seconds', 99)) < 5)}")
        ] if r.get("changed_deployments") else []),
        ("PolicyReports", f"{r['policy_reports']:,} reports, {r['policy_report_results']:,} results "
                          f"(expected {r['policy_report_results_expected']:,}: one per Deployment x check)", ""),
    ]
    lines = ["| measure | result | target |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def write_docs(r: dict[str, Any], before: str | None) -> None:
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n\n" + "\n\n".join(HEADINGS) + "\n"
    if SECTION not in text:
        text = text.rstrip() + f"\n\n{SECTION}\n"
    body = [
        "",
        f"`.venv/bin/python hack/bench/operator_scale.py --write-docs` ({r.get('date', time.strftime('%Y-%m-%d'))}): a local "
        "control plane (`hack/cluster.sh`, kube-apiserver v1.34 + etcd on loopback), the three example policies "
        f"plus the Pod Security restricted preset with `match` widened to all {r['namespaces']} benchmark namespaces "
        "(so each judges every Deployment) and SLO intervals "
        "of 30 s against a Prometheus (`hack/prometheus.sh`) holding backfilled series for every 20th Deployment. "
        "Expected counts come from `readiness-operator audit` on the same objects. "
        + ("The living cluster of `hack/cluster.sh` (kwok nodes, scheduler, kube-controller-manager, metrics-server): "
           "the Deployments' pods Running and Ready, PDB and HPA status filled, before the operator starts. "
           if r.get("with_pods") else
           "The kube-controller-manager is stopped during the run (with no scheduler or nodes it would only create "
           "ReplicaSets and Pending pods, competing with the operator for the 2 cores). ")
        + (f"{r['replicas']} operator replicas with leader election on a Lease, as the chart runs them. "
           if r.get("replicas", 1) > 1 else "")
        + "API requests are counted by a loopback proxy each replica talks to (`hack/bench/count_proxy.py`); "
        "Prometheus queries from its `prometheus_http_requests_total{handler=\"/api/v1/query\"}`.",
        "",
        f"Machine: {r['machine']}"
        + (f"; load average before the run {r['load_before']}" if "load_before" in r else "")
        + " (other sessions shared the machine: wall times are upper bounds).",
        "",
        table(r),
        "",
    ]
    if before:
        body += [before.strip(), ""]
    start = text.index(SECTION) + len(SECTION)
    nxt = min((i for i in (text.find(h, start) for h in HEADINGS if h != SECTION) if i != -1), default=len(text))
    text = text[:start] + "\n" + "\n".join(body) + "\n" + text[nxt:]
    DOCS.write_text(text.rstrip() + "\n")
    log(f"wrote the figures to {DOCS.relative_to(ROOT)}")


def main() -> int:
    parser = argparse.ArgumentParser(description="Operator at scale (see the module docstring).")
    parser.add_argument("--deployments", type=int, default=10_000)
    parser.add_argument("--namespaces", type=int, default=50)
    parser.add_argument("--pods", action=argparse.BooleanOptionalAction, default=True,
                        help="kwok nodes, scheduler and controller-manager: the Deployments' pods Running "
                             "(--no-pods: a bare control plane, no ReplicaSets or pods)")
    parser.add_argument("--nodes", type=int, default=100, help="kwok Nodes (with --pods)")
    parser.add_argument("--replicas", type=int, default=2,
                        help="operator processes: 2+ elect a leader on a Lease (as the chart runs them); 1 runs --standalone")
    parser.add_argument("--pods-timeout", type=float, default=3600.0, help="give up waiting for the pods after this")
    parser.add_argument("--kube-api-qps", type=int, default=500, help="controller-manager and scheduler client QPS")
    parser.add_argument("--hpa-sync-period", default="15s", help="the HPA controller's sync period (with --pods)")
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--slo-every", type=int, default=20, help="SLO series for every Nth Deployment")
    parser.add_argument("--parallel", type=int, default=4, help="kubectl apply processes at a time")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds after convergence before the idle window")
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--timeout", type=float, default=600.0, help="give up waiting for convergence after this")
    parser.add_argument("--cluster-dir", default="/tmp/operator-scale-cluster")
    parser.add_argument("--prom-dir", default="/tmp/operator-scale-prom")
    parser.add_argument("--keep-controller-manager", action="store_true")
    parser.add_argument("--keep-cluster", action="store_true", help="leave the control plane running (for --reuse)")
    parser.add_argument("--reuse", action="store_true",
                        help="with $KUBECONFIG: keep the benchmark objects of an earlier run when present")
    parser.add_argument("--profile", metavar="FILE", help="run the operator under cProfile, stats to FILE")
    parser.add_argument("--py-spy", metavar="PREFIX", help="sample each replica with py-spy during the idle window "
                        "(raw stacks to PREFIX.<replica>; the busiest functions go into the JSON as idle_profile)")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="trace every replica's allocations and print what each holds after the first pass "
                             "(memory_profiles in the JSON; tracing slows the run: its figures are not comparable)")
    parser.add_argument("--keep-work", action="store_true", help="keep manifests and logs")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--before", metavar="FILE", help="markdown to append under the table (e.g. before/after)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--from-json", metavar="FILE", help="print (and --write-docs) the figures of an earlier --json run")
    args = parser.parse_args()
    if args.deployments > 50_000 or args.namespaces > 500:
        parser.error("bounded: at most 50,000 Deployments in 500 namespaces")
    if not 1 <= args.replicas <= 4 or not 1 <= args.nodes <= 1000:
        parser.error("bounded: 1-4 replicas, 1-1,000 nodes")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanups on SIGTERM too
    results: dict[str, Any] = {}
    if args.from_json:
        results = json.loads(Path(args.from_json).read_text())
    else:
        try:
            run(args, results)
        except Exception as exc:  # print what was measured before the break, then fail
            results["failed"] = f"{type(exc).__name__}: {exc}"
            log(traceback.format_exc())
    if "failed" in results:
        print(json.dumps(results, indent=2))
        return 1
    print(json.dumps(results, indent=2) if args.json else table(results))
    if args.write_docs:
        write_docs(results, Path(args.before).read_text() if args.before else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
