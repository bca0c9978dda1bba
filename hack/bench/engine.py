#!/usr/bin/env python3
"""Engine vs peers: ``readiness-operator audit`` against kube-score and Polaris on the same files.

Generates N varied Deployments (plus PodDisruptionBudgets and HorizontalPodAutoscalers for a share of
them) into one multi-document file per namespace, as users keep them, and times every tool on the
same files in one run:

    .venv/bin/python hack/bench/engine.py [--sizes 1000,10000] [--runs 3] [--keep DIR]
                                          [--seed 7] [--write-docs] [--json]

- ours: ``readiness-operator audit --policy examples/policies/{production,hardened}.yaml -f DIR -o json``
- ``kube-score score -o json FILES...``
- ``polaris audit --audit-path DIR --format json`` (the binary named by ``POLARIS_BIN``: Polaris is
  not on the Go module proxy, build it from its public source; reported as not run when unset)
- the floor: the same files parsed by PyYAML with libyaml (``yaml.load_all(..., CSafeLoader)``) and
  nothing else, in a Python process like ours (garbage collector off, as ours runs): no tool that
  reads YAML into Python objects can cost less; ours is judged by its CPU time over the floor's.

With ``--json`` the tables go to stderr and stdout carries one JSON object (keys named after the
measures: ``ours_cpu_vs_floor``, ``kube_score_cpu_vs_ours``, ``polaris_cpu_vs_ours`` per size, with the
targets), so runs can be compared over time.

Peers are benchmark-only tools, ``go install``ed into ``~/.cache/readiness-operator/bin/<tool>-<version>``
on first use (never project dependencies). A peer that cannot be installed here is reported as such
(with the reason) and left out of the table, never faked.

Per tool: wall time (median of --runs), per-object cost (wall / Deployments), peak RSS (``ru_maxrss``
of the child via ``os.wait4``, max over runs) and the ratio peer / ours. Every Deployment carries the
labels both example policies select, so every tool judges all N; the counts parsed from each tool's
JSON are printed as a sanity check. Exit codes: ours 0 (compliant) / 1 (noncompliant) and kube-score
0 / 1 (critical findings) count as success; anything else (2 = bad input, a signal) aborts loudly.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## Engine vs peers"
CACHE_ROOT = Path(
    os.environ.get("READINESS_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "readiness-operator"
)

# Peers: benchmark-only tools, pinned (the cache directory is keyed by the version).
KUBE_SCORE_MODULE = "github.com/zegl/kube-score/cmd/kube-score"
KUBE_SCORE_VERSION = "v1.20.0"
# Polaris is not served by the Go module proxy (403 for its module path), so it is taken from a binary
# built from its public source: POLARIS_BIN=/path/to/polaris.
POLARIS_BIN_ENV = "POLARIS_BIN"

# Targets of issue 16 at 10,000 Deployments (CPU time ratios).
TARGET_OURS_VS_FLOOR = 1.5  # at most
TARGET_KUBE_SCORE_VS_OURS = 10.0  # at least
TARGET_POLARIS_VS_OURS = 50.0  # at least

# The floor: read every file the way a Python tool must before it can judge anything.
FLOOR_CODE = """
import gc, sys, pathlib, yaml
gc.disable()
n = 0
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.yaml")):
    with path.open("rb") as fh:
        for doc in yaml.load_all(fh, Loader=yaml.CSafeLoader):
            n += doc.get("kind") == "Deployment"
print(n)
"""

POLICIES = ("production", "hardened", "pod-security-restricted", "full-catalogue")


def policy_file(name: str) -> Path:
    """The example policies, and hack/bench/policies/full-catalogue.yaml (every check switched on)."""
    bench = ROOT / "hack" / "bench" / "policies" / f"{name}.yaml"
    return bench if bench.is_file() else ROOT / "examples" / "policies" / f"{name}.yaml"


# --------------------------------------------------------------------------------------------------
# Manifest generation (deterministic for a seed)
# --------------------------------------------------------------------------------------------------

_IMAGES = (
    "nginx",
    "redis",
    "ghcr.io/acme/api",
    "registry.example.com/team/worker",
    "quay.io/prometheus/node-exporter",
    "docker.io/library/postgres",
)
_CPU = (None, "50m", "100m", "250m", "500m", "0.5", "1", "2", "1500m")
_MEMORY = (None, "64Mi", "128Mi", "256Mi", "512Mi", "600M", "1Gi", "0.5Gi", "1e9", "2Gi", "500M")


def _image(rng: random.Random) -> str:
    base = rng.choice(_IMAGES)
    pick = rng.random()
    if pick < 0.15:
        return base  # no tag
    if pick < 0.3:
        return f"{base}:latest"
    if pick < 0.45:
        return f"{base}@sha256:{rng.getrandbits(256):064x}"
    return f"{base}:{rng.randint(1, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}"


def _probe(rng: random.Random, port: int) -> dict[str, Any]:
    kind = rng.random()
    if kind < 0.6:
        handler: dict[str, Any] = {"httpGet": {"path": rng.choice(("/healthz", "/ready", "/")), "port": port}}
    elif kind < 0.85:
        handler = {"tcpSocket": {"port": port}}
    else:
        handler = {"exec": {"command": ["/bin/check", "--quick"]}}
    if rng.random() < 0.5:
        handler["periodSeconds"] = rng.choice((5, 10, 15))
    if rng.random() < 0.3:
        handler["failureThreshold"] = rng.choice((3, 6, 30))
    return handler


def _resources(rng: random.Random) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for section, chance in (("requests", 0.8), ("limits", 0.6)):
        if rng.random() >= chance:
            continue
        values = {k: v for k, v in (("cpu", rng.choice(_CPU)), ("memory", rng.choice(_MEMORY))) if v}
        if values:
            out[section] = values
    return out


def _container_security(rng: random.Random) -> dict[str, Any] | None:
    if rng.random() < 0.25:
        return None
    sc: dict[str, Any] = {}
    if rng.random() < 0.7:
        sc["readOnlyRootFilesystem"] = rng.random() < 0.8
    if rng.random() < 0.7:
        sc["allowPrivilegeEscalation"] = rng.random() < 0.2
    if rng.random() < 0.6:
        sc["capabilities"] = {"drop": ["ALL"]} if rng.random() < 0.8 else {"add": ["NET_ADMIN"]}
    if rng.random() < 0.05:
        sc["privileged"] = True
    if rng.random() < 0.3:
        sc["runAsUser"] = rng.choice((0, 999, 1000, 65532))
    if rng.random() < 0.2:
        sc["runAsNonRoot"] = True
    return sc


def _container(rng: random.Random, name: str, *, init: bool) -> dict[str, Any]:
    port = rng.choice((8080, 8443, 9090, 3000))
    c: dict[str, Any] = {"name": name, "image": _image(rng)}
    if rng.random() < 0.3:
        c["imagePullPolicy"] = rng.choice(("Always", "IfNotPresent"))
    if not init:
        c["ports"] = [{"containerPort": port, "name": "http"}]
        for probe, chance in (("livenessProbe", 0.75), ("readinessProbe", 0.8), ("startupProbe", 0.35)):
            if rng.random() < chance:
                c[probe] = _probe(rng, port)
        if rng.random() < 0.3:
            c["lifecycle"] = {"preStop": {"exec": {"command": ["sleep", str(rng.choice((5, 10, 15)))]}}}
    res = _resources(rng)
    if res:
        c["resources"] = res
    sc = _container_security(rng)
    if sc is not None:
        c["securityContext"] = sc
    if rng.random() < 0.4:
        c["env"] = [{"name": f"VAR_{i}", "value": str(rng.randint(0, 10**6))} for i in range(rng.randint(1, 6))]
    return c


def deployment(rng: random.Random, namespace: str, name: str) -> dict[str, Any]:
    """One varied Deployment; labels match both example policies so every tool judges it."""
    labels = {"app": name, "tier": "production", "readiness.dev/profile": "hardened"}
    if rng.random() < 0.5:
        labels["team"] = rng.choice(("payments", "search", "identity", "platform"))
    pod_labels = {"app": name, "tier": "production", "readiness.dev/profile": "hardened"}
    pod_spec: dict[str, Any] = {
        "containers": [_container(rng, f"c{i}" if i else "main", init=False) for i in range(rng.choice((1, 1, 1, 2, 3)))]
    }
    if rng.random() < 0.2:
        pod_spec["initContainers"] = [_container(rng, "init", init=True)]
    if rng.random() < 0.7:
        psc: dict[str, Any] = {}
        if rng.random() < 0.7:
            psc["runAsNonRoot"] = rng.random() < 0.85
        if rng.random() < 0.6:
            psc["runAsUser"] = rng.choice((0, 100, 1000, 10001, 65532))
        if rng.random() < 0.5:
            psc["seccompProfile"] = {"type": rng.choice(("RuntimeDefault", "RuntimeDefault", "Unconfined"))}
        if rng.random() < 0.3:
            psc["fsGroup"] = 2000
        pod_spec["securityContext"] = psc
    pick = rng.random()
    if pick < 0.35:
        term = {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": name}}}
        if rng.random() < 0.6:
            pod_spec["affinity"] = {
                "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": term}]}
            }
        else:
            pod_spec["affinity"] = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}
    elif pick < 0.5:
        pod_spec["topologySpreadConstraints"] = [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app": name}},
            }
        ]
    if rng.random() < 0.6:
        pod_spec["terminationGracePeriodSeconds"] = rng.choice((5, 10, 30, 45, 60))
    if rng.random() < 0.3:
        pod_spec["serviceAccountName"] = f"{name}-sa"
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": pod_labels}, "spec": pod_spec},
    }
    replicas = rng.choice((None, 1, 2, 3, 3, 5, 10))
    if replicas is not None:
        spec["replicas"] = replicas
    pick = rng.random()
    if pick < 0.15:
        spec["strategy"] = {"type": "Recreate"}
    elif pick < 0.75:
        spec["strategy"] = {
            "type": "RollingUpdate",
            "rollingUpdate": {
                "maxUnavailable": rng.choice(("25%", 0, 1, "50%")),
                "maxSurge": rng.choice(("25%", 1)),
            },
        }
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels}
    if rng.random() < 0.3:
        meta["annotations"] = {"owner": f"team-{rng.randint(1, 40)}@example.com"}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": spec}


def pdb(rng: random.Random, namespace: str, name: str) -> dict[str, Any]:
    """A PodDisruptionBudget selecting the Deployment's pods (minAvailable or maxUnavailable)."""
    spec: dict[str, Any] = {"selector": {"matchLabels": {"app": name}}}
    if rng.random() < 0.75:
        spec["minAvailable"] = rng.choice((1, 2, 2, "50%"))
    else:
        spec["maxUnavailable"] = rng.choice((1, "25%"))
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def hpa(rng: random.Random, namespace: str, name: str) -> dict[str, Any]:
    """An autoscaling/v2 HPA targeting the Deployment on CPU and/or memory utilization."""
    resources = rng.choice((("cpu",), ("cpu", "memory"), ("memory",), ("cpu", "memory")))
    metrics = [
        {
            "type": "Resource",
            "resource": {"name": r, "target": {"type": "Utilization", "averageUtilization": rng.choice((60, 70, 80))}},
        }
        for r in resources
    ]
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": rng.choice((1, 2, 3, 3)),
            "maxReplicas": rng.choice((5, 10, 20, 30)),
            "metrics": metrics,
        },
    }


@dataclass
class Generated:
    directory: Path
    files: list[Path]
    deployments: int
    pdbs: int
    hpas: int


def generate(n: int, directory: Path, *, seed: int) -> Generated:
    """Write N Deployments (+ PDBs for ~55%, HPAs for ~45%) into one file per namespace."""
    rng = random.Random(seed * 1_000_003 + n)
    namespaces = max(5, n // 200)
    per_ns: list[list[dict[str, Any]]] = [[] for _ in range(namespaces)]
    pdbs = hpas = 0
    for i in range(n):
        ns_index = i % namespaces
        ns = f"team-{ns_index:03d}"
        name = f"svc-{i:05d}-{rng.choice(('api', 'web', 'worker', 'cron', 'gateway'))}"
        docs = per_ns[ns_index]
        docs.append(deployment(rng, ns, name))
        if rng.random() < 0.55:
            docs.append(pdb(rng, ns, name))
            pdbs += 1
        if rng.random() < 0.45:
            docs.append(hpa(rng, ns, name))
            hpas += 1
    directory.mkdir(parents=True, exist_ok=True)
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    files = []
    for ns_index, docs in enumerate(per_ns):
        path = directory / f"team-{ns_index:03d}.yaml"
        with path.open("w") as fh:
            yaml.dump_all(docs, fh, Dumper=dumper, sort_keys=False, explicit_start=True)
        files.append(path)
    return Generated(directory, files, n, pdbs, hpas)


# --------------------------------------------------------------------------------------------------
# Peers: go install into the versioned cache
# --------------------------------------------------------------------------------------------------


@dataclass
class Tool:
    name: str
    version: str
    binary: Path | None
    error: str | None = None


def go_install(tool: str, module: str, version: str, binary: str) -> Tool:
    """``GOBIN=<cache>/bin/<tool>-<version> go install module@version`` unless already there."""
    target = CACHE_ROOT / "bin" / f"{tool}-{version}"
    exe = target / binary
    if exe.is_file() and os.access(exe, os.X_OK):
        return Tool(tool, version, exe)
    go = shutil.which("go")
    if go is None:
        return Tool(tool, version, None, "go is not on PATH")
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    env = dict(os.environ, GOBIN=str(tmp), CGO_ENABLED="0", GOFLAGS="-mod=mod")
    print(f"[bench] go install {module}@{version} (first run only)", file=sys.stderr)
    proc = subprocess.run(
        [go, "install", f"{module}@{version}"], env=env, capture_output=True, text=True, cwd=tempfile.gettempdir()
    )
    if proc.returncode != 0 or not (tmp / binary).is_file():
        shutil.rmtree(tmp, ignore_errors=True)
        lines = [ln.strip() for ln in proc.stderr.strip().splitlines() if ln.strip()]
        reason = " ".join(lines[-2:]) if lines else f"go install exited {proc.returncode}"
        return Tool(tool, version, None, reason)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return Tool(tool, version, exe)


def polaris_from_env() -> Tool:
    """Polaris from ``POLARIS_BIN`` (its version as it reports it), or why it is not run."""
    given = os.environ.get(POLARIS_BIN_ENV)
    if not given:
        return Tool("polaris", "-", None, f"{POLARIS_BIN_ENV} is not set (Polaris is not on the Go module proxy; "
                    "build it from github.com/FairwindsOps/polaris with `go build` and name the binary)")
    exe = Path(given)
    if not (exe.is_file() and os.access(exe, os.X_OK)):
        return Tool("polaris", "-", None, f"{POLARIS_BIN_ENV}={given} is not an executable file")
    version = _cmd([str(exe), "version"]).replace("Polaris version:", "").strip() or "?"
    return Tool("polaris", version, exe)


def install_peers() -> list[Tool]:
    """kube-score and Polaris, each either installed or with the reason it could not be."""
    return [go_install("kube-score", KUBE_SCORE_MODULE, KUBE_SCORE_VERSION, "kube-score"), polaris_from_env()]


def our_command() -> list[str]:
    exe = ROOT / ".venv" / "bin" / "readiness-operator"
    if exe.is_file():
        return [str(exe)]
    return [sys.executable, "-m", "readiness_operator"]


# --------------------------------------------------------------------------------------------------
# Running and measuring
# --------------------------------------------------------------------------------------------------


@dataclass
class Run:
    wall: float
    cpu: float  # user + system seconds of the child
    max_rss_kib: int
    exit_code: int
    output: Path
    stderr: str = ""


def run_measured(argv: Sequence[str], out: Path, *, env: dict[str, str] | None = None) -> Run:
    """Run argv with stdout to ``out``; wall time and the child's own peak RSS (wait4 rusage)."""
    with out.open("wb") as stdout, tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        stderr.seek(0)
        err = stderr.read().decode(errors="replace")
    cpu = usage.ru_utime + usage.ru_stime
    return Run(wall, cpu, int(usage.ru_maxrss), proc.returncode, out, err)


@dataclass
class Measured:
    tool: str
    label: str
    runs: list[Run] = field(default_factory=list)
    judged: int | None = None
    note: str = ""

    @property
    def wall(self) -> float:
        return statistics.median(r.wall for r in self.runs)

    @property
    def cpu(self) -> float:
        return statistics.median(r.cpu for r in self.runs)

    @property
    def rss_mib(self) -> float:
        return max(r.max_rss_kib for r in self.runs) / 1024


def _check_exit(label: str, run: Run, ok: Sequence[int]) -> None:
    if run.exit_code in ok:
        return
    tail = "\n".join(run.stderr.strip().splitlines()[-15:])
    what = f"killed by signal {-run.exit_code}" if run.exit_code < 0 else f"exit code {run.exit_code}"
    raise SystemExit(f"[bench] {label} failed ({what}); stderr tail:\n{tail}")


def count_ours(path: Path) -> int:
    return len(json.loads(path.read_text())["results"])


def count_kube_score(path: Path) -> int:
    data = json.loads(path.read_text())
    return sum(1 for obj in data if (obj.get("type_meta") or {}).get("kind") == "Deployment")


def count_floor(path: Path) -> int:
    return int(path.read_text().strip())


def count_polaris(path: Path) -> int:
    data = json.loads(path.read_text())
    return sum(1 for r in data.get("Results") or () if r.get("Kind") == "Deployment")


@dataclass
class Plan:
    """One tool invocation to time: what to run, which exit codes mean success, how to count."""

    label: str
    tool: str
    argv: list[str]
    ok_exit: tuple[int, ...]
    counter: Callable[[Path], int]
    runs: int | None = None  # fewer runs than the others (a slow peer); None: all of them


def measure_all(plans: list[Plan], work: Path, *, runs: int) -> list[Measured]:
    """Round-robin: run 1 of every tool, then run 2 of every tool, ... so background load on the
    machine hits every tool alike rather than whichever happened to run while it peaked."""
    results = [Measured(p.tool, p.label) for p in plans]
    for i in range(runs):
        for plan, m in zip(plans, results, strict=True):
            if plan.runs is not None and i >= plan.runs:
                continue
            run = run_measured(plan.argv, work / f"{plan.label}.{i}.out")
            _check_exit(plan.label, run, plan.ok_exit)
            m.runs.append(run)
            print(
                f"[bench]   {plan.label}: run {i + 1}/{runs} wall {run.wall:.2f}s cpu {run.cpu:.2f}s "
                f"rss {run.max_rss_kib / 1024:.0f} MiB",
                file=sys.stderr,
            )
            if i > 0:
                run.output.unlink(missing_ok=True)
    for plan, m in zip(plans, results, strict=True):
        try:
            m.judged = plan.counter(m.runs[0].output)
        except (ValueError, KeyError, TypeError) as exc:
            m.note = f"could not count Deployments in its output: {exc}"
    return results


FLOOR_LABEL = "floor: libyaml parse only"


@dataclass
class SizeResult:
    n: int
    generated: Generated
    results: list[Measured]
    skipped: list[Tool]


def bench_size(n: int, work: Path, *, seed: int, runs: int, peers: list[Tool], polaris_runs: int | None = None) -> SizeResult:
    gen = generate(n, work / f"manifests-{n}", seed=seed)
    print(
        f"[bench] N={n}: {gen.deployments} Deployments, {gen.pdbs} PDBs, {gen.hpas} HPAs "
        f"in {len(gen.files)} files under {gen.directory}",
        file=sys.stderr,
    )
    out = work / f"out-{n}"
    out.mkdir(exist_ok=True)
    python = ROOT / ".venv" / "bin" / "python"
    floor_argv = [str(python if python.is_file() else sys.executable), "-c", FLOOR_CODE, str(gen.directory)]
    plans: list[Plan] = [Plan(FLOOR_LABEL, "floor", floor_argv, (0,), count_floor)]
    for policy in POLICIES:
        argv = [*our_command(), "audit", "--policy", str(policy_file(policy))]
        argv += ["-f", str(gen.directory), "-o", "json"]
        plans.append(Plan(f"readiness-operator ({policy})", "ours", argv, (0, 1), count_ours))
    skipped = []
    for peer in peers:
        if peer.binary is None:
            skipped.append(peer)
        elif peer.name == "kube-score":
            argv = [str(peer.binary), "score", "-o", "json", *map(str, gen.files)]
            plans.append(Plan("kube-score", "kube-score", argv, (0, 1), count_kube_score))
        elif peer.name == "polaris":
            argv = [str(peer.binary), "audit", "--audit-path", str(gen.directory), "--format", "json"]
            plans.append(Plan("polaris", "polaris", argv, (0,), count_polaris, polaris_runs))
    results = measure_all(plans, out, runs=runs)
    return SizeResult(n, gen, results, skipped)


# --------------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------------


def _cmd(argv: Sequence[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def machine_info() -> dict[str, str]:
    cpu = "?"
    try:
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = match.group(1).strip() if match else "?"
    except OSError:
        pass
    mem = "?"
    try:
        match = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
        mem = f"{int(match.group(1)) / 1024 / 1024:.0f} GiB" if match else "?"
    except OSError:
        pass
    ours = _cmd([*our_command(), "version"])
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory": mem,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "go": _cmd(["go", "env", "GOVERSION"]) if shutil.which("go") else "?",
        "ours": ours,
        "yaml": "libyaml (CSafeLoader)" if getattr(yaml, "__with_libyaml__", False) else "pure-Python PyYAML",
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _ours_baseline(size: SizeResult) -> Measured:
    return next(m for m in size.results if m.tool == "ours" and "production" in m.label)


def _by_tool(size: SizeResult, tool: str) -> Measured | None:
    return next((m for m in size.results if m.tool == tool), None)


def ratios(size: SizeResult) -> dict[str, float | None]:
    """CPU-time ratios of this size: ours over the floor, each peer over ours (None: not run)."""
    base = _ours_baseline(size)
    floor = _by_tool(size, "floor")
    peers = {"kube_score": _by_tool(size, "kube-score"), "polaris": _by_tool(size, "polaris")}
    out: dict[str, float | None] = {
        "ours_cpu_s": round(base.cpu, 3),
        "floor_cpu_s": round(floor.cpu, 3) if floor else None,
        "ours_cpu_vs_floor": round(base.cpu / floor.cpu, 3) if floor else None,
    }
    for name, m in peers.items():
        out[f"{name}_cpu_s"] = round(m.cpu, 3) if m else None
        out[f"{name}_cpu_vs_ours"] = round(m.cpu / base.cpu, 3) if m else None
    return out


def targets_line(size: SizeResult) -> str:
    r = ratios(size)

    def verdict(value: float | None, target: float, at_most: bool) -> str:
        if value is None:
            return "not measured"
        met = value <= target if at_most else value >= target
        return f"{value:.2f}x: {'yes' if met else '**no**'}"

    return (
        f"Targets (CPU time, N={size.n:,}): ours <= {TARGET_OURS_VS_FLOOR}x the floor: "
        f"{verdict(r['ours_cpu_vs_floor'], TARGET_OURS_VS_FLOOR, True)}; kube-score >= {TARGET_KUBE_SCORE_VS_OURS:.0f}x "
        f"ours: {verdict(r['kube_score_cpu_vs_ours'], TARGET_KUBE_SCORE_VS_OURS, False)}; Polaris >= "
        f"{TARGET_POLARIS_VS_OURS:.0f}x ours: {verdict(r['polaris_cpu_vs_ours'], TARGET_POLARIS_VS_OURS, False)}."
    )


def table(size: SizeResult) -> list[str]:
    base = _ours_baseline(size)
    rows = [
        f"**N = {size.n:,}** Deployments (+ {size.generated.pdbs:,} PDBs, {size.generated.hpas:,} HPAs) "
        f"in {len(size.generated.files)} files; median of {len(base.runs)} runs"
        + "".join(f" ({m.label}: {len(m.runs)})" for m in size.results if len(m.runs) != len(base.runs)),
        "",
        "| tool | Deployments judged | wall (s) | CPU user+sys (s) | wall per Deployment (ms) | peak RSS (MiB) "
        "| wall / ours | CPU / ours |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in size.results:
        judged = "?" if m.judged is None else f"{m.judged:,}"
        per = m.wall / size.n * 1000
        ratio = m.wall / base.wall
        rows.append(
            f"| {m.label} | {judged} | {m.wall:.2f} | {m.cpu:.2f} | {per:.3f} | {m.rss_mib:.0f} | {ratio:.2f} "
            f"| {m.cpu / base.cpu:.2f} |"
        )
    for t in size.skipped:
        rows.append(f"| {t.name} | - | not run: {t.error} | - | - | - | - | - |")
    return rows


def counts_line(size: SizeResult) -> str:
    parts = [f"{m.label} {'?' if m.judged is None else m.judged}" for m in size.results]
    same = len({m.judged for m in size.results}) == 1 and size.results[0].judged == size.n
    verdict = "all equal N" if same else "MISMATCH"
    return f"Deployments judged at N={size.n:,}: " + ", ".join(parts) + f" ({verdict})."


def check_counts() -> dict[str, int]:
    """Checks each example policy runs per Deployment (from the engine's compiled plan)."""
    sys.path.insert(0, str(ROOT / "operator"))
    from readiness_operator.cli import load_policy
    from readiness_operator.engine import compile_policy

    return {
        p: len(compile_policy(load_policy(str(policy_file(p))).spec).check_ids) for p in POLICIES
    }


def load_average() -> str:
    try:
        return " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def render_section(sizes: list[SizeResult], peers: list[Tool], info: dict[str, str], seed: int, load: tuple[str, str]) -> str:
    counts = check_counts()
    out = [
        SECTION,
        "",
        "`readiness-operator audit` against the tools users would otherwise pick, on the same generated files "
        f"(`.venv/bin/python hack/bench/engine.py --write-docs`, seed {seed}): varied Deployments (probes, "
        "requests/limits with quantities such as `500m`, `0.5Gi`, `1e9`, security contexts, images with and "
        "without tags or digests, replicas, strategies, anti-affinity), a PodDisruptionBudget for ~55% and an "
        "HPA for ~45% of them, one multi-document file per namespace. Every Deployment carries the labels both "
        "example policies select, so every tool judges all of them (counts parsed from each tool's JSON "
        "output). Wall time is process start to exit (YAML parsing and JSON output included), median of the "
        "runs (the tools take turns: run 1 of each, then run 2 of each, ...); CPU is the child's user+system "
        "time; peak RSS is its `ru_maxrss`; the ratios divide the tool's figure by ours with `production.yaml` "
        "(above 1: ours is faster).",
        "",
        f"Machine: {info['nproc']} cores ({info['cpu']}), {info['memory']} RAM, {info['os']}; "
        f"Python {info['python']} with {info['yaml']}; {info['go']}; {info['ours']}; run {info['date']}; "
        f"load average (1/5/15 min) {load[0]} before, {load[1]} after (other work on the machine inflates "
        "wall times; CPU time is the steadier figure).",
        "",
        "Peers: "
        + "; ".join(
            (f"{t.name} {t.version} (from {POLARIS_BIN_ENV}, built from its public source)" if t.name == "polaris"
             else f"{t.name} {t.version} (`go install`ed into the cache)")
            if t.binary
            else f"{t.name}: **not run** ({t.error})"
            for t in peers
        )
        + ".",
        "",
    ]
    for size in sizes:
        out += table(size)
        out += ["", counts_line(size), "", targets_line(size), ""]
    out += [
        f"Work per Deployment differs: ours runs the policy's checks (production {counts['production']}, "
        f"hardened {counts['hardened']}, pod-security-restricted {counts['pod-security-restricted']}, "
        f"full-catalogue {counts['full-catalogue']}, SLO checks included, reported Unknown offline) with PDB/HPA lookups, "
        "scoring and remediation messages; kube-score runs its default checks on every object (Deployments, "
        "PDBs, HPAs), including cross-object ones.",
        "",
    ]
    return "\n".join(out)


def write_docs(section: str) -> None:
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n\n## Engine vs peers\n\n## Operator at scale\n\n## Admission\n"
    start = text.find(SECTION + "\n")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        nxt = text.find("\n## ", start + len(SECTION))
        end = len(text) if nxt < 0 else nxt + 1
        text = text[:start] + section.rstrip("\n") + "\n\n" + text[end:]
    DOCS.write_text(text.rstrip("\n") + "\n")
    print(f"[bench] wrote {DOCS.relative_to(ROOT)} ({SECTION})", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated Deployment counts")
    parser.add_argument("--runs", type=int, default=3, help="runs per tool and size (median reported)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", type=Path, default=None, help="write manifests and outputs here and keep them")
    parser.add_argument("--write-docs", action="store_true", help=f"update '{SECTION}' in docs/benchmarks.md")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object (tables to stderr)")
    parser.add_argument("--polaris-runs", type=int, default=None, help="runs of Polaris (slow) if fewer than --runs")
    args = parser.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    if args.runs < 1 or not sizes or min(sizes) < 1:
        parser.error("--runs and --sizes must be positive")

    peers = install_peers()
    for t in peers:
        if t.binary is None:
            print(f"[bench] {t.name} {t.version}: NOT AVAILABLE, left out: {t.error}", file=sys.stderr)
    info = machine_info()
    load_before = load_average()

    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        work, cleanup = args.keep.resolve(), None
    else:
        cleanup = tempfile.TemporaryDirectory(prefix="ro-bench-engine-")
        work = Path(cleanup.name)
    try:
        results = [
            bench_size(n, work, seed=args.seed, runs=args.runs, peers=peers, polaris_runs=args.polaris_runs) for n in sizes
        ]
    finally:
        if cleanup is not None:
            cleanup.cleanup()

    load_after = load_average()
    section = render_section(results, peers, info, args.seed, (load_before, load_after))
    print(section, file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(
            json.dumps(
                {
                    "machine": info,
                    "load_average_before": load_before,
                    "load_average_after": load_after,
                    "targets": {
                        "ours_cpu_vs_floor_at_most": TARGET_OURS_VS_FLOOR,
                        "kube_score_cpu_vs_ours_at_least": TARGET_KUBE_SCORE_VS_OURS,
                        "polaris_cpu_vs_ours_at_least": TARGET_POLARIS_VS_OURS,
                    },
                    "peers": [{"name": t.name, "version": t.version, "error": t.error} for t in peers],
                    "sizes": [
                        {
                            "n": s.n,
                            "pdbs": s.generated.pdbs,
                            "hpas": s.generated.hpas,
                            **ratios(s),
                            "tools": [
                                {
                                    "label": m.label,
                                    "judged": m.judged,
                                    "wall_s": round(m.wall, 4),
                                    "walls_s": [round(r.wall, 4) for r in m.runs],
                                    "cpu_s": round(m.cpu, 4),
                                    "per_object_ms": round(m.wall / s.n * 1000, 4),
                                    "peak_rss_mib": round(m.rss_mib, 1),
                                }
                                for m in s.results
                            ],
                        }
                        for s in results
                    ],
                },
                indent=2,
            )
        )
    if args.write_docs:
        write_docs(section)
    mismatched = [s.n for s in results if len({m.judged for m in s.results}) != 1 or s.results[0].judged != s.n]
    if mismatched:
        print(f"[bench] WARNING: tools judged different numbers of Deployments at N={mismatched}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
