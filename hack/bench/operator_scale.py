#!/usr/bin/env python3
"""Operator at scale: 10,000 Deployments in a real local control plane, 3 policies, real Prometheus.

    .venv/bin/python hack/bench/operator_scale.py [--deployments 10000] [--namespaces 50]
        [--changes 100] [--idle-seconds 60] [--write-docs] [--profile FILE] [--json]

What it does (loopback only, every loop bounded, every process it starts is stopped at the end):

1. Starts a control plane with `hack/cluster.sh up` in its own CLUSTER_DIR (or uses $KUBECONFIG,
   then cleans up only the namespaces and policies it created) and a Prometheus with
   `hack/prometheus.sh` in its own PROM_DIR, backfilled with healthy SLO series for a subset of
   the Deployments.
2. Stops the kube-controller-manager of the control plane it started (only that one, by pid): with
   no scheduler and no nodes the 10,000 Deployments would only make it create 10,000 ReplicaSets and
   tens of thousands of Pending pods, which on a 2-core machine measures the controller-manager,
   not the operator. Replicas stay realistic (1-5); Deployment status stays empty.
3. Creates the namespaces, Deployments, PDBs (~half) and HPAs (~third) with
   `kubectl apply --server-side` of one multi-object file per namespace, several in parallel.
4. Computes the expected result of each policy with `readiness-operator audit` (in process, per
   namespace: objects only relate within their namespace) on the same objects.
5. Applies the three example policies with `match` widened to the benchmark namespaces (so each
   judges every Deployment) and SLO intervals of 30 s, then starts the operator
   (`python -m readiness_operator run --standalone`) through a counting proxy (count_proxy.py) so
   every API request it makes is counted by verb and resource.
6. Measures: time until every policy's status is complete and correct (targets, compliant and
   noncompliant equal to the audit, SLO measured counts equal to the backfilled subset), peak RSS
   (VmHWM), CPU during convergence, steady-state CPU and API requests and Prometheus queries over
   an idle window, then adds a readinessProbe to 100 Deployments that lack one and measures the
   time until the statuses match the audit of the changed objects.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
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
        deployment = {
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
            metrics = [resource_metric("cpu", 70)]
            if good or rng.random() < 0.5:
                metrics.append(resource_metric("memory", 80))
            out[ns].append({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                            "metadata": {"name": name, "namespace": ns},
                            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                                     "minReplicas": 3, "maxReplicas": 10, "metrics": metrics}})
    return out


def resource_metric(name: str, utilization: int) -> dict[str, Any]:
    return {"type": "Resource",
            "resource": {"name": name, "target": {"type": "Utilization", "averageUtilization": utilization}}}


RESTRICTED_PRESET = ROOT / "operator" / "readiness_operator" / "presets" / "pod-security-restricted.yaml"


def policies() -> list[dict[str, Any]]:
    """The example policies plus the Pod Security restricted preset, selecting every benchmark
    namespace, with 30 s SLO intervals."""
    out = []
    for path in [*sorted((ROOT / "examples" / "policies").glob("*.yaml")), RESTRICTED_PRESET]:
        policy = yaml.safe_load(path.read_text())
        policy["spec"]["match"] = {"namespaceSelector": {"matchLabels": {NS_LABEL: "true"}}}
        # The hardened (Enforce) policy's fail-safe ValidatingAdmissionPolicy would deny the benchmark's
        # noncompliant Deployment updates; the webhook is not started either (admission is benchmarked apart).
        policy["spec"].setdefault("admission", {})["failSafe"] = False
        for slo in policy["spec"].get("slos") or ():
            slo["interval"] = SLO_INTERVAL
        out.append(policy)
    return out


def slo_series(keys: list[tuple[str, str]], now: int) -> str:
    """Healthy series (every SLO met) for the given Deployments, 10 min back to 50 min ahead."""
    start, end, step = now - 600, now + 3000, 30
    lines = ["# TYPE http_requests counter"]
    for ns, name in keys:
        for code, rate in (("200", 99.99), ("500", 0.01)):
            lines += [f'http_requests_total{{namespace="{ns}",deployment="{name}",code="{code}"}} {rate * (t - start):.3f} {t}'
                      for t in range(start, end, step)]
    lines.append("# TYPE http_request_duration_seconds histogram")
    for ns, name in keys:
        for le in ("0.005", "0.01", "+Inf"):
            series = f'http_request_duration_seconds_bucket{{namespace="{ns}",deployment="{name}",le="{le}"}}'
            lines += [f"{series} {100 * (t - start):.3f} {t}" for t in range(start, end, step)]
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Expected results: `readiness-operator audit` on the same objects


@dataclass
class Expected:
    targets: int = 0
    compliant: int = 0
    noncompliant: int = 0


def audit(policy_file: Path, manifest_files: list[Path]) -> Expected:
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
    cleanups: list[Callable[[], None]] = field(default_factory=list)

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
        e = Env(work, kubeconfig, kubectl, False, None, prom_dir)
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
    # NODES=0: the bare control plane. 10,000 Deployments on kwok's fake nodes would add tens of
    # thousands of simulated pods, which measures kwok and the scheduler rather than the operator.
    env = {**os.environ, "CLUSTER_DIR": str(cluster_dir), "NODES": os.environ.get("NODES", "0")}
    log(f"starting the control plane in {cluster_dir}")
    out = subprocess.run([str(HACK / "cluster.sh"), "up"], env=env, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"cluster.sh up failed: {out.stderr[-2000:]}")
    e = Env(work, Path(out.stdout.strip().splitlines()[-1]), kubectl, True, cluster_dir, prom_dir)
    if args.keep_cluster:
        log(f"keeping the control plane: export KUBECONFIG={e.kubeconfig}; CLUSTER_DIR={cluster_dir} hack/cluster.sh down")
    else:
        e.cleanups.append(lambda: subprocess.run([str(HACK / "cluster.sh"), "down"], env=env, capture_output=True, timeout=120))
    pid_file = cluster_dir / "controller-manager.pid"
    if pid_file.exists() and not args.keep_controller_manager:
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


class Proxy:
    def __init__(self, e: Env) -> None:
        port_file = e.work / "proxy.port"
        self.log = (e.work / "proxy.log").open("wb")
        self.proc = subprocess.Popen([PYTHON, str(HACK / "bench" / "count_proxy.py"), "--kubeconfig", str(e.kubeconfig),
                                      "--port-file", str(port_file)], stdout=self.log, stderr=subprocess.STDOUT)
        e.cleanups.append(self.stop)
        for _ in range(200):
            if port_file.exists() and port_file.read_text().strip():
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"count proxy exited: {(e.work / 'proxy.log').read_text()[-2000:]}")
            time.sleep(0.05)
        self.port = int(port_file.read_text())
        self.kubeconfig = e.work / "operator.kubeconfig"
        self.kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "bench",
            "clusters": [{"name": "proxy", "cluster": {"server": f"http://127.0.0.1:{self.port}"}}],
            "users": [{"name": "anonymous", "user": {}}],
            "contexts": [{"name": "bench", "context": {"cluster": "proxy", "user": "anonymous"}}],
        }))

    def counts(self) -> Counter[str]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/__counts", timeout=5) as r:
            return Counter(json.load(r)["requests"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Operator:
    def __init__(self, e: Env, proxy: Proxy, profile: str | None) -> None:
        self.liveness, self.metrics_port = free_port(), free_port()
        cmd = [PYTHON]
        if profile:
            cmd += ["-m", "cProfile", "-o", profile]
        cmd += ["-m", "readiness_operator", "run", "--standalone",
                "--liveness", f"http://127.0.0.1:{self.liveness}/healthz", "--metrics-port", str(self.metrics_port)]
        env = {**os.environ, "KUBECONFIG": str(proxy.kubeconfig), "READINESS_PROMETHEUS_URL": e.prom_url,
               "PYTHONPATH": str(ROOT / "operator"), "PYTHONFAULTHANDLER": "1"}  # SIGABRT dumps the stacks
        self.log_path = e.work / "operator.log"
        self.log = self.log_path.open("wb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        e.cleanups.append(self.stop)

    def alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"operator exited ({self.proc.returncode}): {self.log_path.read_text()[-3000:]}")

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
    items = json.loads(e.k("get", "readinesspolicies", "-o", "json", timeout=30))["items"]
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


def wait_correct(e: Env, op: Operator, expected: dict[str, Expected], slo_measured: dict[str, int],
                 slo_names: dict[str, list[str]], since: float, timeout: float) -> tuple[float, dict[str, float]]:
    """Seconds from `since` until every status is correct; also when each policy first was."""
    per_policy: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    last: list[str] = []
    while time.monotonic() < deadline:
        op.alive()
        try:
            current = statuses(e)
        except (RuntimeError, subprocess.TimeoutExpired):
            time.sleep(0.5)
            continue
        now = time.monotonic() - since
        for name in expected:
            if name not in per_policy and not mismatches({name: current.get(name) or {}}, {name: expected[name]},
                                                         slo_measured, slo_names):
                per_policy[name] = now
        last = mismatches(current, expected, slo_measured, slo_names)
        if not last:
            return now, per_policy
        time.sleep(0.25)
    raise TimeoutError(f"statuses not correct after {timeout:.0f}s: {last}")


def report_results(e: Env) -> tuple[int, int]:
    """(PolicyReports, results in them) from the server-side table (summary columns), not the bodies."""
    out = e.k("get", "policyreports", "-A", "-l", "app.kubernetes.io/managed-by=readiness-operator", "--no-headers",
              check=False, timeout=120)
    rows = [line.split() for line in out.splitlines() if line.strip()]
    # NAMESPACE NAME KIND NAME PASS FAIL WARN ERROR SKIP AGE
    return len(rows), sum(sum(int(c) for c in row[-6:-1] if c.isdigit()) for row in rows)


def wait_reports(e: Env, op: Operator, want: int, since: float, timeout: float) -> float | None:
    """Seconds from `since` until the PolicyReports hold `want` results (None: not within timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        op.alive()
        if report_results(e)[1] == want:
            return time.monotonic() - since
        time.sleep(2)
    return None


FLOOR_RESOURCES = ("/api/v1/namespaces", "/apis/apps/v1/deployments", "/apis/policy/v1/poddisruptionbudgets",
                   "/apis/autoscaling/v2/horizontalpodautoscalers")


def bare_list_seconds(base_url: str, limit: int = 500) -> tuple[float, int]:
    """The floor: a paginated LIST of every object the operator reads, each page parsed from JSON into
    Python objects and dropped -- nothing can converge before it has read the data once."""
    objects = 0
    start = time.monotonic()
    for path in FLOOR_RESOURCES:
        token = ""
        while True:
            query = f"?limit={limit}" + (f"&continue={urllib.parse.quote(token)}" if token else "")
            with urllib.request.urlopen(f"{base_url}{path}{query}", timeout=120) as r:
                page = json.loads(r.read())
            objects += len(page.get("items") or ())
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
        yield e
    finally:
        if e is not None:
            if not e.own_cluster and not args.reuse:  # --reuse keeps the namespaces for the next run
                with contextlib.suppress(Exception):
                    e.k("delete", "readinesspolicies", "-l", f"{NS_LABEL}=true", "--wait=false", check=False)
                    e.k("delete", "namespaces", "-l", f"{NS_LABEL}=true", "--wait=false", check=False)
            for cleanup in reversed(e.cleanups):
                with contextlib.suppress(Exception):
                    cleanup()
        if args.keep_work:
            log(f"work files kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"deployments": args.deployments, "namespaces": args.namespaces, "machine": machine(),
                               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                               "load_before": " / ".join(f"{x:.1f}" for x in os.getloadavg())}
    with environment(args) as e:
        objects = make_objects(args.deployments, args.namespaces)
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
        om.write_text(slo_series(subset, int(time.time())))
        log(f"starting Prometheus with SLO series for {len(subset)} Deployments")
        start_prometheus(e, om)
        slo_names = {p["metadata"]["name"]: [s["name"] for s in p["spec"].get("slos") or ()] for p in pol}
        slo_measured = {name: len(subset) for name in slo_names}
        results["slo_series_for"] = len(subset)
        results["slo_queries_per_interval_expected"] = sum(len(v) for v in slo_names.values())

        for f in policy_files:
            e.k("apply", "-f", str(f))
        proxy = Proxy(e)
        floor_runs = [bare_list_seconds(f"http://127.0.0.1:{proxy.port}") for _ in range(3)]
        results["floor_list_seconds"] = round(min(t for t, _ in floor_runs), 2)
        results["floor_list_seconds_runs"] = [round(t, 2) for t, _ in floor_runs]
        results["floor_list_objects"] = floor_runs[0][1]
        log(f"floor: a bare paginated LIST of {floor_runs[0][1]:,} objects takes {results['floor_list_seconds']} s "
            f"(best of 3: {results['floor_list_seconds_runs']})")
        proxy_reset = proxy.counts()
        prom_before = prom_queries(e)
        log("starting the operator")
        op = Operator(e, proxy, args.profile)
        op.start_sampling()
        try:
            converged, per_policy = wait_correct(e, op, expected, slo_measured, slo_names, op.started, args.timeout)
        except TimeoutError as exc:
            log(str(exc))
            results.update(converge_seconds=f"> {args.timeout:.0f}", converge_cpu_seconds=round(op.cpu_seconds(), 1),
                           peak_rss_mb=round(op.status_kb("VmHWM") / 1024, 1),
                           requests_to_converge=dict(proxy.counts() - proxy_reset),
                           failed=str(exc))
            return results
        results["converge_seconds"] = round(converged, 1)
        results["converge_vs_floor"] = round(converged / results["floor_list_seconds"], 2)
        results["peak_rss_mb_at_converge"] = round(op.status_kb("VmHWM") / 1024, 1)
        results["converge_per_policy_seconds"] = {k: round(v, 1) for k, v in sorted(per_policy.items())}
        results["converge_cpu_seconds"] = round(op.cpu_seconds(), 1)
        results["requests_to_converge"] = dict(proxy.counts() - proxy_reset)
        log(f"converged in {converged:.1f} s (CPU {results['converge_cpu_seconds']} s)")
        want_results = expected_results(pol, expected)
        reports_done = wait_reports(e, op, want_results, op.started, args.timeout)
        results["reports_complete_seconds"] = round(reports_done, 1) if reports_done is not None else f"> {args.timeout:.0f}"
        results["reports_complete_cpu_seconds"] = round(op.cpu_seconds(), 1)
        results["peak_rss_mb_first_pass"] = round(op.status_kb("VmHWM") / 1024, 1)
        if reports_done is not None:
            results["reports_complete_vs_floor"] = round(reports_done / results["floor_list_seconds"], 2)
        results["requests_to_reports_complete"] = dict(proxy.counts() - proxy_reset)
        log(f"PolicyReports complete ({want_results:,} results) {results['reports_complete_seconds']} s after start")

        # Let the tail of the first pass (events, resync marks) settle, then an idle window.
        time.sleep(args.settle)
        cpu0, req0, prom0, t0 = op.cpu_seconds(), proxy.counts(), prom_queries(e), time.monotonic()
        time.sleep(args.idle_seconds)
        cpu1, req1, prom1, t1 = op.cpu_seconds(), proxy.counts(), prom_queries(e), time.monotonic()
        window = t1 - t0
        results["idle_window_seconds"] = round(window, 1)
        results["idle_cpu_percent"] = round(100 * (cpu1 - cpu0) / window, 2)
        results["idle_cpu_seconds_per_30s"] = round((cpu1 - cpu0) * 30 / window, 2)
        results["idle_requests"] = dict(req1 - req0)
        results["idle_requests_per_minute"] = round(sum((req1 - req0).values()) * 60 / window, 1)
        results["prometheus_queries_in_window"] = prom1 - prom0
        results["prometheus_queries_per_30s_interval"] = round((prom1 - prom0) * 30 / window, 1)
        results["prometheus_queries_total"] = prom1 - prom_before
        log(f"idle: CPU {results['idle_cpu_percent']} %, {sum((req1 - req0).values())} API requests, "
            f"{prom1 - prom0} Prometheus queries in {window:.0f} s")

        # Change 100 Deployments: add a readinessProbe where one is missing.
        changed = pick_changes(objects, policy_files[0], args.changes)
        files = write_manifests(objects, e.work / "manifests")  # the audit sees the changed objects
        change_file = e.work / "changes.yaml"
        change_file.write_text("\n---\n".join(json.dumps(o) for o in changed) + "\n")
        t = time.monotonic()
        expected = {p["metadata"]["name"]: audit(f, files) for p, f in zip(pol, policy_files, strict=True)}
        log(f"after the change, expected: { {k: vars(v) for k, v in expected.items()} } "
            f"(audit {time.monotonic() - t:.1f} s)")
        results["expected_after_change"] = {k: vars(v) for k, v in expected.items()}
        req_before = proxy.counts()
        t = time.monotonic()
        apply_files(e, [change_file], 1)
        results["change_apply_seconds"] = round(time.monotonic() - t, 1)
        change_converged, _ = wait_correct(e, op, expected, slo_measured, slo_names, t, args.timeout)
        results["changed_deployments"] = len(changed)
        results["change_converge_seconds"] = round(change_converged, 1)
        results["change_after_apply_seconds"] = round(max(0.0, change_converged - results["change_apply_seconds"]), 1)
        time.sleep(2)
        results["change_requests"] = dict(proxy.counts() - req_before)
        log(f"{len(changed)} changes reflected {change_converged:.1f} s after kubectl apply started "
            f"(apply took {results['change_apply_seconds']} s)")

        results["peak_rss_mb"] = round(op.status_kb("VmHWM") / 1024, 1)

        results["rss_mb_end"] = round(op.status_kb("VmRSS") / 1024, 1)
        results["total_cpu_seconds"] = round(op.cpu_seconds(), 1)
        peak = max(op.samples, key=lambda x: x[1], default=(0.0, 0.0))
        results["rss_peak_sampled_at_seconds"] = peak[0]
        results["rss_timeline_mb"] = op.samples[::20]  # every 10 s
        results["policy_reports"], results["policy_report_results"] = report_results(e)
        results["policy_report_results_expected"] = expected_results(pol, expected)
        if args.reuse or args.keep_cluster:  # undo the change, so the next --reuse run starts from the same objects
            originals = make_objects(args.deployments, args.namespaces)
            by_name = {(o["metadata"].get("namespace"), o["metadata"]["name"]): o for items in originals.values() for o in items}
            change_file.write_text("\n---\n".join(json.dumps(by_name[(o["metadata"]["namespace"], o["metadata"]["name"])])
                                                   for o in changed) + "\n")
            apply_files(e, [change_file], 1)
        if not e.own_cluster or args.keep_cluster:  # while the operator runs, so it removes its finalizer
            e.k("delete", "readinesspolicies", "-l", f"{NS_LABEL}=true", "--timeout=60s", check=False, timeout=90)
        op.stop()
    return results


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

    rows = [
        ("Objects", f"{r['objects'].get('Deployment', 0):,} Deployments, {r['objects'].get('PodDisruptionBudget', 0):,} PDBs, "
                    f"{r['objects'].get('HorizontalPodAutoscaler', 0):,} HPAs in {r['namespaces']} namespaces "
                    f"(created in {r['create_seconds']} s)", ""),
        ("Expected (audit)", "; ".join(f"{k}: {v['targets']:,} targets, {v['compliant']:,} compliant"
                                        for k, v in r["expected"].items()), ""),
        ("Floor: a bare paginated LIST (limit 500) of the same objects, parsed", f"{r.get('floor_list_seconds', '?')} s "
         f"({r.get('floor_list_objects', '?'):,} objects; best of {r.get('floor_list_seconds_runs', [])})", ""),
        ("Operator start -> every status complete and correct", f"{r['converge_seconds']} s "
         f"({', '.join(f'{k} {v} s' for k, v in r['converge_per_policy_seconds'].items())}); "
         f"{r['converge_cpu_seconds']} s CPU; {r.get('converge_vs_floor', '?')}x the floor",
         f"< 30 s: {ok(r['converge_seconds'] < 30)}; <= 2x floor: {ok(r.get('converge_vs_floor', 99) <= 2)}"),
        ("Operator start -> every PolicyReport written", f"{r['reports_complete_seconds']} s "
         f"({r['reports_complete_cpu_seconds']} s CPU; {r.get('reports_complete_vs_floor', '?')}x the floor"
         + (f"; writes: {fmt(_writes(Counter(r['requests_to_reports_complete'])))}"
            if "requests_to_reports_complete" in r else "")
         + ")", f"< 30 s: {ok(_num(r['reports_complete_seconds']) < 30)}; <= 2x floor: "
                f"{ok(r.get('reports_complete_vs_floor', 99) <= 2)}"),
        ("Peak RSS (VmHWM)", f"{r['peak_rss_mb']} MB (RSS at the end {r['rss_mb_end']} MB)",
         f"< 300 MB: {ok(r['peak_rss_mb'] < 300)}"),
        ("Idle CPU (after every report is written)", f"{r['idle_cpu_percent']} % of a core "
         f"({r['idle_cpu_seconds_per_30s']} CPU s per 30 s, {r['idle_window_seconds']} s idle window)",
         f"< 1 %: {ok(r['idle_cpu_percent'] < 1)}"),
        ("API requests to converge", f"{sum(req.values()):,}: writes: {fmt(writes)}; reads: {fmt(reads)}", ""),
        ("API requests when idle", f"{r['idle_requests_per_minute']} per minute ({fmt(r['idle_requests'])})", ""),
        ("Prometheus queries per 30 s interval", f"{r['prometheus_queries_per_30s_interval']} "
         f"(expected {r.get('slo_queries_per_interval_expected', '?')}: every SLO of every policy; series for "
         f"{r['slo_series_for']} Deployments)", ""),
        (f"Change {r['changed_deployments']} Deployments (add a readinessProbe) -> statuses correct",
         f"{r.get('change_after_apply_seconds', '?')} s after `kubectl apply` returned "
         f"({r['change_converge_seconds']} s after it started; the apply itself took "
         f"{r['change_apply_seconds']} s); requests: {fmt(r['change_requests'])}",
         f"< 5 s: {ok(_num(r.get('change_after_apply_seconds', 99)) < 5)}"),
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
        "with `match` widened to all 50 benchmark namespaces (so each judges every Deployment) and SLO intervals "
        "of 30 s against a Prometheus (`hack/prometheus.sh`) holding backfilled series for every 20th Deployment. "
        "Expected counts come from `readiness-operator audit` on the same objects. The kube-controller-manager is "
        "stopped during the run (with no scheduler or nodes it would only create ReplicaSets and Pending pods, "
        "competing with the operator for the 2 cores). API requests are counted by a loopback proxy the operator "
        "talks to (`hack/bench/count_proxy.py`); Prometheus queries from its "
        "`prometheus_http_requests_total{handler=\"/api/v1/query\"}`.",
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
    parser.add_argument("--keep-work", action="store_true", help="keep manifests and logs")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--before", metavar="FILE", help="markdown to append under the table (e.g. before/after)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--from-json", metavar="FILE", help="print (and --write-docs) the figures of an earlier --json run")
    args = parser.parse_args()
    if args.deployments > 50_000 or args.namespaces > 500:
        parser.error("bounded: at most 50,000 Deployments in 500 namespaces")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanups on SIGTERM too
    results = json.loads(Path(args.from_json).read_text()) if args.from_json else run(args)
    if "failed" in results:
        print(json.dumps(results, indent=2))
        return 1
    print(json.dumps(results, indent=2) if args.json else table(results))
    if args.write_docs:
        write_docs(results, Path(args.before).read_text() if args.before else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
