#!/usr/bin/env python3
"""Benchmark the Deployment admission webhook (loopback only) or the decision function in process.

Webhook mode: send AdmissionReview v1 CREATE requests for a realistic Deployment (a new name each
time) at a fixed rate, open loop, and print latency percentiles, achieved rate, errors and
allowed/denied counts:

    hack/bench/admission.py --url https://127.0.0.1:9443/validate-deployments --cacert ca.pem \\
        --rate 200 --duration 10 [--concurrency 16] [--manifest deploy.yaml] [--json]

Only loopback hosts are accepted, and the run is bounded (rate x duration requests, at most
--max-requests, and --duration plus the timeout in time).

In-process mode: time ``review_deployment`` itself against the example policies with a synthetic
World of N indexed Deployments/PDBs/HPAs (per-namespace indexes, like the operator's kopf indexes):

    hack/bench/admission.py --in-process [--calls 5000] [--objects 10000] [--json]

Live mode (issue 16): a private control plane (`hack/cluster.sh up`, no nodes, controller-manager
stopped), N indexed Deployments (+ PDBs, HPAs) made as operator_scale.py makes them, the operator with
its webhook and self-signed TLS as in production, one Enforce policy (production.yaml's rules, no
SLOs) and its generated fail-safe VAP; then, in one run, the same dryRun=All Deployment create
through the API server in four namespaces that differ only in what admission applies (neither / VAP
only / webhook only / both, see CONFIGS below): sequential over one kept-alive connection (the
configurations taking turns), then open loop at --rate over --connections connections (rounds, each
configuration in turn), then AdmissionReviews POSTed straight to the webhook at --direct-rates; with
--baseline REV the operator of that git revision serves the same direct calls, right after ours:

    hack/bench/admission.py --live [--deployments 10000] [--baseline main] [--py-spy FILE] [--json]

The load generator is a small asyncio HTTP/1.1 client (raw streams, pre-encoded bodies), so it takes
little of the 2 cores it shares with kube-apiserver, etcd and the operator; its CPU is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import http.client
import ipaddress
import json
import os
import random
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "operator"))

from readiness_operator.admission.decide import review_deployment  # noqa: E402
from readiness_operator.engine import compile_policy  # noqa: E402
from readiness_operator.model import ReadinessPolicy, ReadinessPolicySpec  # noqa: E402
from readiness_operator.world import InMemoryView, SloMeasurement, Worlds  # noqa: E402

MAX_REQUESTS = 100_000
MAX_DURATION = 600.0


def realistic_deployment(name: str = "bench", namespace: str = "bench") -> dict[str, Any]:
    """A Deployment like a real service's: probes, resources, security context, spread."""
    labels = {"app": name, "tier": "production"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
                    "terminationGracePeriodSeconds": 30,
                    "affinity": {
                        "podAntiAffinity": {
                            "preferredDuringSchedulingIgnoredDuringExecution": [
                                {
                                    "weight": 100,
                                    "podAffinityTerm": {
                                        "topologyKey": "kubernetes.io/hostname",
                                        "labelSelector": {"matchLabels": {"app": name}},
                                    },
                                }
                            ]
                        }
                    },
                    "containers": [
                        {
                            "name": "api",
                            "image": "registry.example.com/shop/api:1.42.0",
                            "ports": [{"containerPort": 8080}],
                            "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
                            "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}},
                            "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
                            "securityContext": {
                                "readOnlyRootFilesystem": True,
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
                        }
                    ],
                },
            },
        },
    }


def admission_review(obj: Mapping[str, Any], name: str) -> dict[str, Any]:
    """An AdmissionReview v1 CREATE request for ``obj`` renamed to ``name``."""
    meta = dict(obj.get("metadata") or {})
    meta["name"] = name
    namespace = str(meta.get("namespace") or "default")
    meta["namespace"] = namespace
    body = {**obj, "metadata": meta}
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "requestKind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "requestResource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "name": name,
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "bench", "groups": ["system:authenticated"]},
            "object": body,
            "oldObject": None,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


def percentiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99), "max": ordered[-1]}


# --------------------------------------------------------------------------- webhook mode


def require_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        try:
            ips = {info[4][0] for info in socket.getaddrinfo(host, None)}
        except OSError as exc:
            raise SystemExit(f"cannot resolve {host}: {exc}") from exc
        if ips and all(ipaddress.ip_address(str(a).split("%")[0]).is_loopback for a in ips):
            return
        raise SystemExit(f"refusing non-loopback host {host!r}: this benchmark only targets 127.0.0.1/::1") from None
    if not ip.is_loopback:
        raise SystemExit(f"refusing non-loopback host {host!r}: this benchmark only targets 127.0.0.1/::1")


class _Client:
    """One keep-alive HTTPS connection per worker thread."""

    def __init__(self, host: str, port: int, path: str, ctx: ssl.SSLContext, timeout: float) -> None:
        self.host, self.port, self.path, self.ctx, self.timeout = host, port, path, ctx, timeout
        self.local = threading.local()

    def _conn(self) -> http.client.HTTPSConnection:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=self.timeout)
            self.local.conn = conn
        return conn

    def post(self, body: bytes) -> tuple[float, bool | None, str | None]:
        """(latency seconds, allowed or None on error, error text)."""
        start = time.perf_counter()
        try:
            conn = self._conn()
            conn.request("POST", self.path, body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            elapsed = time.perf_counter() - start
            if resp.status != 200:
                return elapsed, None, f"HTTP {resp.status}"
            allowed = json.loads(data)["response"]["allowed"]
            return elapsed, bool(allowed), None
        except Exception as exc:  # count every failure, keep going
            self.local.conn = None
            return time.perf_counter() - start, None, type(exc).__name__


def run_webhook(args: argparse.Namespace) -> dict[str, Any]:
    url = urlsplit(args.url)
    if url.scheme != "https" or not url.hostname:
        raise SystemExit("--url must be https://127.0.0.1:PORT/PATH")
    require_loopback(url.hostname)
    ctx = ssl.create_default_context(cafile=args.cacert)
    if args.insecure_hostname:
        ctx.check_hostname = False
    port = url.port or 443
    path = url.path or "/"
    template = realistic_deployment()
    if args.manifest:
        docs = [d for d in yaml.safe_load_all(Path(args.manifest).read_text()) if isinstance(d, dict)]
        deployments = [d for d in docs if d.get("kind") == "Deployment"]
        if not deployments:
            raise SystemExit(f"{args.manifest}: no Deployment in the file")
        template = deployments[0]
    duration = min(float(args.duration), MAX_DURATION)
    total = min(int(args.rate * duration), args.max_requests, MAX_REQUESTS)
    base = str(template["metadata"].get("name", "bench"))[:40]
    bodies = [json.dumps(admission_review(template, f"{base}-{i:06d}")).encode() for i in range(total)]
    client = _Client(url.hostname, port, path, ctx, args.timeout)
    results: list[tuple[float, bool | None, str | None]] = []
    lock = threading.Lock()
    max_lag = 0.0

    def job(body: bytes) -> None:
        r = client.post(body)
        with lock:
            results.append(r)

    interval = 1.0 / args.rate
    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        t0 = time.perf_counter()
        for i, body in enumerate(bodies):
            due = t0 + i * interval
            now = time.perf_counter()
            if due > now:
                time.sleep(due - now)
            else:
                max_lag = max(max_lag, now - due)
            pool.submit(job, body)
        # the pool drains on exit
    wall = time.perf_counter() - t0
    ok = [lat * 1000 for lat, allowed, _ in results if allowed is not None]
    errors: dict[str, int] = {}
    for _, allowed, err in results:
        if allowed is None:
            errors[err or "error"] = errors.get(err or "error", 0) + 1
    return {
        "mode": "webhook",
        "url": args.url,
        "requests": len(results),
        "target_rate": args.rate,
        "achieved_rate": round(len(results) / wall, 1) if wall > 0 else 0.0,
        "duration_s": round(wall, 3),
        "concurrency": args.concurrency,
        "latency_ms": {k: round(v, 3) for k, v in percentiles(ok).items()},
        "mean_ms": round(statistics.fmean(ok), 3) if ok else 0.0,
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "allowed": sum(1 for _, a, _ in results if a is True),
        "denied": sum(1 for _, a, _ in results if a is False),
        "max_schedule_lag_ms": round(max_lag * 1000, 3),
    }


# --------------------------------------------------------------------------- in-process mode


def example_policies(mode: str | None) -> list[tuple[str, ReadinessPolicySpec]]:
    """The example policies, with their mode replaced by ``mode`` unless None."""
    out = []
    for path in sorted((ROOT / "examples" / "policies").glob("*.yaml")):
        raw = yaml.safe_load(path.read_text())
        if mode:
            raw["spec"]["mode"] = mode
        p = ReadinessPolicy.model_validate(raw)
        out.append((p.name, p.spec))
    return out


def synthetic_index(objects: int, namespaces: int) -> tuple[list[dict[str, Any]], dict[str, list[Any]], dict[str, list[Any]]]:
    """``objects`` Deployments with one PDB and one HPA each, spread over ``namespaces``, indexed by namespace."""
    deployments: list[dict[str, Any]] = []
    pdbs: dict[str, list[Any]] = {}
    hpas: dict[str, list[Any]] = {}
    rng = random.Random(7)
    for i in range(objects):
        ns = f"ns-{i % namespaces:04d}"
        name = f"svc-{i:05d}"
        d = realistic_deployment(name, ns)
        if rng.random() < 0.5:  # half noncompliant in a few ways
            c = d["spec"]["template"]["spec"]["containers"][0]
            c.pop("readinessProbe")
            c["image"] = "registry.example.com/shop/api:latest"
            d["spec"]["replicas"] = 1
        deployments.append(d)
        pdbs.setdefault(ns, []).append(
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": name}}},
            }
        )
        hpas.setdefault(ns, []).append(
            {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": name, "namespace": ns},
                "spec": {
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                    "minReplicas": 3,
                    "maxReplicas": 20,
                    "metrics": [
                        {"type": "Resource", "resource": {"name": n, "target": {"type": "Utilization", "averageUtilization": u}}}
                        for n, u in (("cpu", 70), ("memory", 80))
                    ],
                },
            }
        )
    return deployments, pdbs, hpas


def run_in_process(args: argparse.Namespace) -> dict[str, Any]:
    # Compiled once, as the webhook's policy cache holds them.
    policies = [(name, compile_policy(spec)) for name, spec in example_policies(None if args.mode == "as-is" else args.mode)]
    deployments, pdbs, hpas = synthetic_index(args.objects, args.namespaces)
    view = InMemoryView(deployments, [p for ps in pdbs.values() for p in ps], [h for hs in hpas.values() for h in hs])
    slos = {
        "availability": SloMeasurement(0.9999),
        "latency-p99": SloMeasurement(0.4),
        "error-rate": SloMeasurement(0.0005),
        "latency-p95": SloMeasurement(0.005),
    }

    def review(req: Mapping[str, Any]) -> Any:
        worlds = Worlds(view, slos=lambda _policy, _key: slos)  # one builder per request, as in the webhook
        return review_deployment(req, policies, worlds.of, policy_world=worlds.of)

    rng = random.Random(11)
    requests = [admission_review(d, d["metadata"]["name"])["request"] for d in rng.choices(deployments, k=args.calls)]
    for req in requests[: min(200, len(requests))]:  # warm up
        review(req)
    times: list[float] = []
    allowed = denied = 0
    t0 = time.perf_counter()
    for req in requests:
        start = time.perf_counter_ns()
        decision = review(req)
        times.append((time.perf_counter_ns() - start) / 1000)
        allowed += decision.allowed
        denied += not decision.allowed
    wall = time.perf_counter() - t0
    return {
        "mode": "in-process",
        "calls": len(requests),
        "objects": args.objects,
        "namespaces": args.namespaces,
        "policies": [n for n, _ in policies],
        "policy_mode": args.mode,
        "latency_us": {k: round(v, 1) for k, v in percentiles(times).items()},
        "mean_us": round(statistics.fmean(times), 1) if times else 0.0,
        "calls_per_s": round(len(requests) / wall, 1) if wall > 0 else 0.0,
        "allowed": allowed,
        "denied": denied,
    }


# --------------------------------------------------------------------------- live mode (issue 16)
#
# One control plane, one operator (webhook + TLS as in production), one Enforce policy, and four
# namespaces that differ only in what admission applies to them, so the four configurations are
# measured in the same run, under the same load, with the same request:
#
#   adm-neither  labelled readiness.dev/ignore=true: the webhook's namespaceSelector skips it and
#                the ValidatingAdmissionPolicyBinding does not select it
#   adm-vap      ignore=true (no webhook call) + selected by the binding (the generated CEL runs)
#   adm-webhook  the webhook judges; the binding does not select it
#   adm-both     both, as in production
#
# The operator runs with READINESS_VAP=false and the bench installs the VAP that `generate_vap` (the
# operator's own generator) makes for the policy, with the binding's namespaceSelector narrowed to
# the two VAP namespaces. A namespace the webhook or binding does not select costs the API server a
# label-selector match (microseconds): that is "not installed" to within noise.

CONFIGS = ("neither", "vap", "webhook", "both")
NS_OF = {c: f"adm-{c}" for c in CONFIGS}
VAP_SELECT_LABEL = "bench.readiness.dev/vap"
BENCH_POLICY = "adm-bench"
BENCH_VAP = "bench-adm-vap"
WEBHOOK_CONFIG = "readiness-adm-bench"
APP = "web"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def bench_policy() -> dict[str, Any]:
    """examples/policies/production.yaml's rules, in Enforce, without SLOs (no Prometheus here),
    matching the four namespaces."""
    raw = yaml.safe_load((ROOT / "examples" / "policies" / "production.yaml").read_text())
    spec = raw["spec"]
    spec.pop("slos", None)
    spec["mode"] = "Enforce"
    spec["match"] = {"namespaces": [NS_OF[c] for c in CONFIGS]}
    return {"apiVersion": "readiness.dev/v1alpha1", "kind": "ReadinessPolicy",
            "metadata": {"name": BENCH_POLICY}, "spec": spec}


def bench_vap_objects(policy: dict[str, Any]) -> list[dict[str, Any]]:
    """The generated VAP + binding, renamed, the binding selecting only the VAP namespaces."""
    from readiness_operator.admission.vap import generate_vap
    from readiness_operator.settings import Settings

    parsed = ReadinessPolicy.model_validate(policy)
    objects = generate_vap({BENCH_POLICY: parsed.spec}, name=BENCH_VAP, now=datetime.now(UTC),
                           excluded_namespaces=Settings().excluded_namespaces).objects
    out = []
    for obj in objects:
        obj = json.loads(json.dumps(obj))
        obj["metadata"] = {"name": BENCH_VAP, "labels": {"app.kubernetes.io/part-of": "admission-bench"}}
        if obj["kind"] == "ValidatingAdmissionPolicyBinding":
            obj["spec"]["policyName"] = BENCH_VAP
            obj["spec"]["matchResources"]["namespaceSelector"] = {"matchLabels": {VAP_SELECT_LABEL: "true"}}
        out.append(obj)
    return out


def namespace_objects() -> list[dict[str, Any]]:
    """The four namespaces, each with the PDB and HPA the policy wants for the Deployment `web`."""
    out: list[dict[str, Any]] = []
    for c in CONFIGS:
        ns = NS_OF[c]
        labels = {"bench.readiness.dev/admission": "true"}
        if c in ("neither", "vap"):
            labels["readiness.dev/ignore"] = "true"
        if c in ("vap", "both"):
            labels[VAP_SELECT_LABEL] = "true"
        out.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}})
        out.append({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": APP, "namespace": ns},
                    "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": APP}}}})
        out.append({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                    "metadata": {"name": APP, "namespace": ns},
                    "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": APP},
                             "minReplicas": 3, "maxReplicas": 20,
                             "metrics": [{"type": "Resource", "resource": {"name": n, "target": {
                                 "type": "Utilization", "averageUtilization": u}}} for n, u in (("cpu", 70), ("memory", 80))]}})
    return out


def noncompliant(namespace: str) -> dict[str, Any]:
    d = realistic_deployment(APP, namespace)
    d["spec"]["template"]["spec"]["containers"][0].pop("readinessProbe")
    return d


class Http:
    """A minimal HTTP/1.1 client connection over TLS (asyncio streams): cheap per request, so the load
    generator takes little of the 2 cores it shares with the API server, etcd and the operator."""

    def __init__(self, host: str, port: int, ctx: ssl.SSLContext) -> None:
        self.host, self.port, self.ctx = host, port, ctx
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, ssl=self.ctx)

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            await self.connect()
        assert self.reader is not None and self.writer is not None
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
                f"Accept: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        try:
            self.writer.write(head + body)
            status_line = await self.reader.readline()
            if not status_line:
                raise ConnectionError("connection closed")
            status = int(status_line.split(b" ", 2)[1])
            length, chunked, close = -1, False, False
            while True:
                line = await self.reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"transfer-encoding" and b"chunked" in value.lower():
                    chunked = True
                elif name == b"connection" and b"close" in value.lower():
                    close = True
            if chunked:
                parts = []
                while True:
                    size = int((await self.reader.readline()).split(b";")[0], 16)
                    if size == 0:
                        await self.reader.readline()
                        break
                    parts.append(await self.reader.readexactly(size))
                    await self.reader.readline()
                data = b"".join(parts)
            else:
                data = await self.reader.readexactly(length) if length > 0 else b""
            if close:
                self.close()
            return status, data
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class Samples:
    """Latencies (ms) of one configuration in one mode, plus what went wrong. (No dataclasses in
    this file: tests load it with importlib, outside sys.modules.)"""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.statuses: Counter[str] = Counter()
        self.late_ms = 0.0  # the worst delay between a request's due time and its send (open loop)
        self.wall_s = 0.0

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        if not ordered:
            return {"requests": 0, "statuses": dict(self.statuses)}

        def pick(q: float) -> float:
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

        return {"requests": len(ordered), "p50": pick(0.50), "p90": pick(0.90), "p99": pick(0.99),
                "max": round(ordered[-1], 2), "mean": round(statistics.fmean(ordered), 2),
                "statuses": dict(self.statuses),
                **({"achieved_rate": round(len(ordered) / self.wall_s, 1)} if self.wall_s else {}),
                **({"max_send_delay_ms": round(self.late_ms, 2)} if self.late_ms else {})}


async def closed_loop(conn: Http, requests: list[tuple[str, str, bytes]], out: dict[str, Samples],
                      expect: int) -> None:
    """One request at a time over one kept-alive connection; the configurations take turns."""
    for key, path, body in requests:
        start = time.perf_counter()
        try:
            status, _ = await conn.post(path, body)
            label = str(status)
        except Exception as exc:
            status, label = 0, type(exc).__name__
        elapsed = (time.perf_counter() - start) * 1000
        s = out.setdefault(key, Samples())
        s.statuses[label] += 1
        if status == expect:
            s.latencies.append(elapsed)


async def open_loop(conns: list[Http], path: str, bodies: list[bytes], rate: float, expect: int) -> Samples:
    """Send at a fixed rate whatever the answers (open loop); latency runs from each request's due
    time, so waiting for a free connection counts (no coordinated omission)."""
    free: asyncio.Queue[Http] = asyncio.Queue()
    for c in conns:
        free.put_nowait(c)
    s = Samples()

    async def one(body: bytes, due: float) -> None:
        conn = await free.get()
        try:
            status, _ = await conn.post(path, body)
            label = str(status)
        except Exception as exc:
            status, label = 0, type(exc).__name__
        finally:
            free.put_nowait(conn)
        s.statuses[label] += 1
        if status == expect:
            s.latencies.append((time.perf_counter() - due) * 1000)

    tasks = []
    t0 = time.perf_counter() + 0.01
    for i, body in enumerate(bodies):
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            s.late_ms = max(s.late_ms, -delay * 1000)
        tasks.append(asyncio.create_task(one(body, due)))
    await asyncio.gather(*tasks)
    s.wall_s = time.perf_counter() - t0
    return s


def compare(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Each configuration's p50/p99 minus and over the same figure with neither installed."""
    base = results.get("neither") or {}
    out: dict[str, dict[str, float]] = {}
    for key, r in results.items():
        if key == "neither" or "p50" not in r or "p50" not in base:
            continue
        out[key] = {f"{q}_added_ms": round(r[q] - base[q], 2) for q in ("p50", "p90", "p99")}
        out[key].update({f"{q}_ratio": round(r[q] / base[q], 2) for q in ("p50", "p99") if base[q]})
    return out


class LiveEnv:
    def __init__(self, work: Path, kubeconfig: Path, kubectl: str, cluster_dir: Path | None) -> None:
        self.work, self.kubeconfig, self.kubectl, self.cluster_dir = work, kubeconfig, kubectl, cluster_dir
        self.cleanups: list[Any] = []

    def k(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 300) -> str:
        r = subprocess.run([self.kubectl, "--kubeconfig", str(self.kubeconfig), *args], input=input,
                           capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args[:4])} failed: {r.stderr.strip()[-2000:]}")
        return r.stdout


def live_log(msg: str) -> None:
    print(f"[admission {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def api_tls(e: LiveEnv) -> tuple[str, int, ssl.SSLContext]:
    """Host, port and a client TLS context (admin client certificate) from the kubeconfig."""
    cfg = yaml.safe_load(e.kubeconfig.read_text())
    cluster = cfg["clusters"][0]["cluster"]
    user = cfg["users"][0]["user"]
    url = urlsplit(cluster["server"])
    assert url.hostname
    require_loopback(url.hostname)
    files = {}
    for key, name in (("certificate-authority-data", "ca.crt"), ("client-certificate-data", "client.crt"),
                      ("client-key-data", "client.key")):
        source = cluster if key.startswith("certificate-authority") else user
        path = e.work / name
        if key in source:
            path.write_bytes(base64.b64decode(source[key]))
        else:
            path.write_bytes(Path(source[key.removesuffix("-data")]).read_bytes())
        files[name] = path
    ctx = ssl.create_default_context(cafile=str(files["ca.crt"]))
    ctx.load_cert_chain(str(files["client.crt"]), str(files["client.key"]))
    return url.hostname, url.port or 443, ctx


def start_live_cluster(args: argparse.Namespace, e_work: Path) -> LiveEnv:
    path = subprocess.run([str(ROOT / "hack" / "build.sh"), "path"], capture_output=True, text=True,
                          check=True).stdout.strip()
    os.environ["PATH"] = f"{path}:{os.environ['PATH']}"
    kubectl = shutil.which("kubectl") or "kubectl"
    cluster_dir = e_work / "cluster"
    env = {**os.environ, "CLUSTER_DIR": str(cluster_dir), "NODES": "0"}
    live_log(f"starting the control plane in {cluster_dir}")
    out = subprocess.run([str(ROOT / "hack" / "cluster.sh"), "up"], env=env, capture_output=True, text=True,
                         timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"cluster.sh up failed: {out.stderr[-2000:]}")
    e = LiveEnv(e_work, Path(out.stdout.strip().splitlines()[-1]), kubectl, cluster_dir)
    e.cleanups.append(lambda: subprocess.run([str(ROOT / "hack" / "cluster.sh"), "down"], env=env,
                                             capture_output=True, timeout=120))
    pid_file = cluster_dir / "controller-manager.pid"
    if pid_file.exists():  # with no nodes it would only make ReplicaSets and Pending pods for the CPU
        pid = int(pid_file.read_text())
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            pid_file.unlink()
            live_log(f"stopped kube-controller-manager (pid {pid})")
    return e


def create_indexed(e: LiveEnv, deployments: int, namespaces: int) -> dict[str, int]:
    """Varied Deployments (+ PDBs, HPAs) as operator_scale.py makes them, applied in bulk."""
    sys.path.insert(0, str(ROOT / "hack" / "bench"))
    import operator_scale

    objects = operator_scale.make_objects(deployments, namespaces)
    files = operator_scale.write_manifests(objects, e.work / "manifests")
    kinds = Counter(o["kind"] for items in objects.values() for o in items)
    live_log(f"creating {dict(kinds)}")

    def one(f: Path) -> None:
        e.k("apply", "--server-side", "--field-manager", "bench", "-f", str(f), "-o", "name", timeout=900)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, files))
    return dict(kinds)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def component_pids(e: LiveEnv) -> dict[str, int]:
    out = {}
    if e.cluster_dir:
        for name in ("apiserver", "etcd"):
            f = e.cluster_dir / f"{name}.pid"
            if f.exists():
                out[name] = int(f.read_text())
    return out


def start_operator(e: LiveEnv, source: Path = ROOT / "operator", config: str = WEBHOOK_CONFIG,
                   name: str = "operator") -> tuple[subprocess.Popen[bytes], int, int]:
    webhook_port, liveness, metrics = free_port(), free_port(), free_port()
    env = {**os.environ, "KUBECONFIG": str(e.kubeconfig), "PYTHONPATH": str(source),
           "READINESS_WEBHOOK_URL": f"https://127.0.0.1:{webhook_port}", "READINESS_WEBHOOK_ADDR": "127.0.0.1",
           "READINESS_NAMESPACE": "readiness-system", "READINESS_WEBHOOK_CONFIGURATION": config,
           # Fail, not the chart's Ignore: a failed call must show as an error here, not as a fast "allowed".
           "READINESS_WEBHOOK_FAILURE_POLICY": "Fail", "READINESS_WEBHOOK_TIMEOUT_SECONDS": "10",
           "READINESS_VAP": "false"}
    python = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
    log_file = (e.work / f"{name}.log").open("wb")
    proc = subprocess.Popen([python, "-m", "readiness_operator", "run", "--standalone", "--webhook-port", str(webhook_port),
                             "--liveness", f"http://127.0.0.1:{liveness}/healthz", "--metrics-port", str(metrics)],
                            env=env, stdout=log_file, stderr=subprocess.STDOUT)

    def stop() -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    e.cleanups.append(stop)
    return proc, webhook_port, metrics


def wait_until(what: str, probe: Any, timeout: float, proc: subprocess.Popen[bytes] | None = None,
               log_path: Path | None = None) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:] if log_path else ""
            raise RuntimeError(f"operator exited ({proc.returncode}) while waiting for {what}:\n{tail}")
        try:
            last = probe()
            if last:
                return last
        except Exception as exc:  # not there yet
            last = exc
        time.sleep(0.5)
    raise RuntimeError(f"timed out waiting for {what} (last: {last!r})")


async def _post_once(host: str, port: int, ctx: ssl.SSLContext, path: str, body: bytes) -> tuple[int, bytes]:
    conn = Http(host, port, ctx)
    try:
        return await conn.post(path, body)
    finally:
        conn.close()


def sanity(host: str, port: int, ctx: ssl.SSLContext) -> dict[str, str]:
    """Prove each namespace gets exactly its configuration: a noncompliant Deployment is admitted
    in adm-neither, denied by the CEL in adm-vap, by the webhook in adm-webhook, by either in
    adm-both; the compliant one is admitted everywhere."""
    seen = {}
    for c in CONFIGS:
        ns = NS_OF[c]
        path = f"/apis/apps/v1/namespaces/{ns}/deployments?dryRun=All"
        status, data = asyncio.run(_post_once(host, port, ctx, path, json.dumps(noncompliant(ns)).encode()))
        try:
            text = str(json.loads(data).get("message") or "")
        except ValueError:
            text = data.decode(errors="replace")
        by_vap = f"ValidatingAdmissionPolicy '{BENCH_VAP}'" in text
        by_webhook = 'admission webhook "deployments.readiness.dev" denied' in text
        want = {"neither": status == 201, "vap": status != 201 and by_vap and not by_webhook,
                "webhook": status != 201 and by_webhook and not by_vap, "both": status != 201 and (by_vap or by_webhook)}
        if not want[c]:
            raise RuntimeError(f"{ns}: a noncompliant Deployment got {status}: {text[:600]}")
        seen[c] = "admitted" if status == 201 else ("denied by the VAP" if by_vap else "denied by the webhook")
        status, data = asyncio.run(_post_once(host, port, ctx, path, json.dumps(realistic_deployment(APP, ns)).encode()))
        if status != 201:
            raise RuntimeError(f"{ns}: the compliant Deployment got {status}: {data[:600]!r}")
    return seen


def run_live(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="admission-bench-"))
    result: dict[str, Any] = {
        "mode": "live", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
        "uptime_before": uptime(), "indexed_deployments": args.deployments,
        "note": (f"{os.cpu_count()} cores shared by kube-apiserver, etcd, the operator and this load generator "
                 "(and whatever else runs on the machine)"),
    }
    e: LiveEnv | None = None
    try:
        e = start_live_cluster(args, work)
        e.k("apply", "--server-side", "-f", str(ROOT / "manifests" / "crds.yaml"))
        e.k("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        if args.deployments:
            t = time.monotonic()
            result["indexed_objects"] = create_indexed(e, args.deployments, args.namespaces)
            result["create_seconds"] = round(time.monotonic() - t, 1)
        e.k("apply", "-f", "-", input="\n---\n".join(json.dumps(o) for o in namespace_objects()))
        policy = bench_policy()
        e.k("apply", "-f", "-", input=json.dumps(policy))
        for obj in bench_vap_objects(policy):
            e.k("apply", "-f", "-", input=json.dumps(obj))
        proc, webhook_port, metrics_port = start_operator(e)
        live_log(f"operator pid {proc.pid}, webhook on 127.0.0.1:{webhook_port}")
        baseline: tuple[subprocess.Popen[bytes], int, int] | None = None
        if args.baseline:
            # The same operator at another git revision, for the direct webhook calls only: its own
            # webhook configuration is deleted once written, so the API server never calls it.
            source = work / "baseline"
            source.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.baseline, "operator"], check=True,
                                     capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
            result["baseline"] = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.baseline],
                                                check=True, capture_output=True, text=True).stdout.strip()
            baseline = start_operator(e, source / "operator", "readiness-adm-baseline", "baseline")
            live_log(f"baseline operator ({args.baseline}) pid {baseline[0].pid}, webhook on 127.0.0.1:{baseline[1]}")

        def ready(port: int) -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                return r.status == 200

        t = time.monotonic()
        wait_until("the operator's /readyz (indexes filled, webhook serving)", lambda: ready(metrics_port),
                   args.ready_timeout, proc, work / "operator.log")
        result["operator_ready_seconds"] = round(time.monotonic() - t, 1)
        if baseline is not None:
            wait_until("the baseline operator's /readyz", lambda: ready(baseline[2]), args.ready_timeout, baseline[0],
                       work / "baseline.log")
            wait_until("the baseline's webhook configuration", lambda: e.k(
                "get", "validatingwebhookconfiguration", "readiness-adm-baseline", check=False), 120)
            baseline_ca = base64.b64decode(json.loads(e.k("get", "validatingwebhookconfiguration", "readiness-adm-baseline",
                                                          "-o", "json"))["webhooks"][0]["clientConfig"]["caBundle"])
            e.k("delete", "validatingwebhookconfiguration", "readiness-adm-baseline")
        e.k("get", "validatingwebhookconfiguration", WEBHOOK_CONFIG)
        host, port, ctx = api_tls(e)
        seen = wait_until("each namespace's admission configuration in effect", lambda: sanity(host, port, ctx), 120)
        result["sanity"] = seen
        live_log(f"configurations in effect: {seen}")
        ca = base64.b64decode(json.loads(e.k("get", "validatingwebhookconfiguration", WEBHOOK_CONFIG, "-o", "json"))
                              ["webhooks"][0]["clientConfig"]["caBundle"])
        (work / "webhook-ca.pem").write_bytes(ca)
        webhook_ctx = ssl.create_default_context(cadata=ca.decode())
        pids = {"operator": proc.pid, **component_pids(e)}
        targets = {"current": (webhook_port, proc.pid, webhook_ctx)}
        if baseline is not None:
            pids["baseline_operator"] = baseline[0].pid
            targets["baseline"] = (baseline[1], baseline[0].pid, ssl.create_default_context(cadata=baseline_ca.decode()))
        result.update(asyncio.run(measure(args, host, port, ctx, targets, pids)))
        result["uptime_after"] = uptime()
        tracebacks = (work / "operator.log").read_text(errors="replace").count("Traceback")
        result["operator_log_tracebacks"] = tracebacks
        return result
    finally:
        if e is not None:
            for cleanup in reversed(e.cleanups):
                with contextlib.suppress(Exception):
                    cleanup()
        if args.keep_work:
            live_log(f"work files kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def api_body(ns: str, i: int) -> bytes:
    d = realistic_deployment(APP, ns)
    d["metadata"]["labels"] = {**d["metadata"]["labels"], "bench-request": str(i)}  # every body differs, same work
    return json.dumps(d).encode()


async def measure(args: argparse.Namespace, host: str, port: int, ctx: ssl.SSLContext,
                  targets: dict[str, tuple[int, int, ssl.SSLContext]], pids: dict[str, int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    paths = {c: f"/apis/apps/v1/namespaces/{NS_OF[c]}/deployments?dryRun=All" for c in CONFIGS}
    cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
    self0 = time.process_time()
    wall0 = time.monotonic()

    # Warm-up: every path once over a few connections (TLS handshakes, caches, the API server's
    # admission plugin set-up), then the figures.
    conn = Http(host, port, ctx)
    warm: dict[str, Samples] = {}
    await closed_loop(conn, [(c, paths[c], api_body(NS_OF[c], i)) for i in range(args.warmup) for c in CONFIGS],
                      warm, 201)

    live_log(f"closed loop: {args.sequential} sequential dryRun=All creates per configuration, one connection, "
             "configurations taking turns")
    seq: dict[str, Samples] = {}
    await closed_loop(conn, [(c, paths[c], api_body(NS_OF[c], i)) for i in range(args.sequential) for c in CONFIGS],
                      seq, 201)
    conn.close()
    out["sequential"] = {c: seq[c].summary() for c in CONFIGS}
    out["sequential_vs_neither"] = compare(out["sequential"])

    conns = [Http(host, port, ctx) for _ in range(args.connections)]
    for cn in conns:
        await cn.connect()
    n = int(args.rate * args.seconds)
    live_log(f"open loop: {args.rate:g} req/s for {args.seconds:g} s per configuration x {args.rounds} rounds "
             f"({args.connections} connections)")
    open_samples = {c: Samples() for c in CONFIGS}
    for r in range(args.rounds):
        order = CONFIGS[r % 4:] + CONFIGS[: r % 4]  # a different configuration goes first each round
        for c in order:
            s = await open_loop(conns, paths[c], [api_body(NS_OF[c], i) for i in range(n)], args.rate, 201)
            acc = open_samples[c]
            acc.latencies += s.latencies
            acc.statuses.update(s.statuses)
            acc.late_ms = max(acc.late_ms, s.late_ms)
            acc.wall_s += s.wall_s
    for cn in conns:
        cn.close()
    out["open_loop"] = {c: open_samples[c].summary() for c in CONFIGS}
    out["open_loop_vs_neither"] = compare(out["open_loop"])
    out["open_loop_rate"] = args.rate

    # The webhook alone: AdmissionReviews POSTed straight to it (as the API server does); with
    # --baseline, the baseline revision's webhook right after ours at each rate.
    review_path = "/validate-deployment"
    template = realistic_deployment(APP, NS_OF["both"])
    out["direct"] = {}
    for rate in args.direct_rates:
        for which, (webhook_port, pid, webhook_ctx) in targets.items():
            total = int(rate * args.direct_seconds)
            bodies = [json.dumps(admission_review(template, APP)).encode() for _ in range(total)]
            wconns = [Http("127.0.0.1", webhook_port, webhook_ctx) for _ in range(args.connections)]
            for cn in wconns:
                await cn.connect()
            live_log(f"webhook direct ({which}): {rate:g} req/s for {args.direct_seconds:g} s")
            profiler = None
            if args.py_spy and rate == max(args.direct_rates):
                spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")  # the venv running this
                profiler = subprocess.Popen([spy, "record", "--pid", str(pid), "--rate", "250",
                                             "--duration", str(int(args.direct_seconds)), "--format", "raw",
                                             "--output", f"{args.py_spy}.{which}", "--nonblocking"],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            op0 = cpu_seconds(pid)
            s = await open_loop(wconns, review_path, bodies, rate, 200)
            op_cpu = cpu_seconds(pid) - op0
            for cn in wconns:
                cn.close()
            if profiler is not None:
                profiler.wait(60)
            summary = s.summary()
            summary["operator_cpu_ms_per_request"] = round(1000 * op_cpu / max(1, total), 3)
            key = f"{rate:g}" if which == "current" else f"{rate:g} baseline"
            out["direct"][key] = summary
            await asyncio.sleep(1)

    out["wall_seconds"] = round(time.monotonic() - wall0, 1)
    out["cpu_seconds"] = {name: round(cpu_seconds(pid) - cpu0[name], 1) for name, pid in pids.items()}
    out["cpu_seconds"]["load_generator"] = round(time.process_time() - self0, 1)
    return out


def uptime() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f}"


def machine() -> str:
    import operator_scale  # the same machine line as the operator bench

    return str(operator_scale.machine())


def print_live(r: dict[str, Any]) -> None:
    print(f"admission through the real API server, {r['date']}; {r['machine']}")
    print(f"  {r['note']}")
    print(f"  {r['uptime_before']} before, {r.get('uptime_after', '?')} after; "
          f"{r['indexed_deployments']:,} indexed Deployments; sanity: {r.get('sanity')}")

    def table(title: str, rows: dict[str, Any], base: dict[str, Any]) -> None:
        print(f"\n{title}")
        print(f"  {'configuration':<14}{'n':>7}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>8}   added p50 / p99 (ms)   errors")
        for c, s in rows.items():
            if "p50" not in s:
                print(f"  {c:<14} no successful request: {s.get('statuses')}")
                continue
            added = base.get(c)
            extra = f"{added['p50_added_ms']:+.2f} / {added['p99_added_ms']:+.2f}" if added else "-"
            errors = {k: v for k, v in s["statuses"].items() if k not in ("200", "201")}
            print(f"  {c:<14}{s['requests']:>7}{s['p50']:>8}{s['p90']:>8}{s['p99']:>8}{s['max']:>8}   {extra:<22} "
                  f"{errors or 0}")

    table("sequential dryRun=All creates (closed loop, one connection), ms:", r["sequential"], r["sequential_vs_neither"])
    table(f"open loop at {r['open_loop_rate']:g} req/s, ms:", r["open_loop"], r["open_loop_vs_neither"])
    label = {"": "", " baseline": f" ({r.get('baseline', 'baseline')})"}
    table("webhook called directly (AdmissionReview over HTTPS, open loop), ms:",
          {f"{k.split(' ')[0]} req/s{label[k[len(k.split(' ')[0]):]]}": v for k, v in r["direct"].items()}, {})
    for k, v in r["direct"].items():
        print(f"  {k} req/s: achieved {v.get('achieved_rate')} req/s, operator CPU "
              f"{v.get('operator_cpu_ms_per_request')} ms per request")
    print(f"\nCPU seconds during the measurement: {r['cpu_seconds']} in {r['wall_seconds']} s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="https://127.0.0.1:PORT/PATH of the Deployment webhook (loopback only)")
    ap.add_argument("--cacert", help="CA bundle (PEM) that signed the webhook's serving certificate")
    ap.add_argument("--rate", type=float, default=200.0, help="requests per second (default 200)")
    ap.add_argument("--duration", type=float, default=10.0, help=f"seconds (default 10, at most {MAX_DURATION:g})")
    ap.add_argument("--concurrency", type=int, default=16, help="worker connections (default 16)")
    ap.add_argument("--manifest", help="YAML file whose first Deployment is sent (default: a built-in one)")
    ap.add_argument("--timeout", type=float, default=10.0, help="per-request timeout in seconds")
    ap.add_argument("--max-requests", type=int, default=MAX_REQUESTS, help="upper bound on requests sent")
    ap.add_argument("--insecure-hostname", action="store_true", help="do not check the certificate's host name")
    ap.add_argument("--in-process", action="store_true", help="time review_deployment directly (no server)")
    ap.add_argument("--calls", type=int, default=5000, help="in-process: number of calls (default 5000)")
    ap.add_argument("--objects", type=int, default=10000, help="in-process: Deployments/PDBs/HPAs each (default 10000)")
    ap.add_argument("--namespaces", type=int, default=None,
                    help="namespaces the objects spread over (in-process default 500, live default 10)")
    ap.add_argument(
        "--mode",
        choices=["Enforce", "Warn", "Audit", "as-is"],
        default="Enforce",
        help="in-process: mode forced on the example policies (default Enforce)",
    )
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    live = ap.add_argument_group("live mode (--live): the four configurations through the real API server")
    live.add_argument("--live", action="store_true", help="start a control plane and the operator, measure")
    live.add_argument("--deployments", type=int, default=500,
                      help="indexed Deployments (+ PDBs, HPAs) created first (default 500; 10000 for issue 16)")
    live.add_argument("--sequential", type=int, default=1000,
                      help="sequential creates per configuration (default 1000)")
    live.add_argument("--warmup", type=int, default=50, help="warm-up creates per configuration (default 50)")
    live.add_argument("--seconds", type=float, default=10.0, help="open loop: seconds per configuration and round")
    live.add_argument("--rounds", type=int, default=2, help="open loop: rounds over the four configurations")
    live.add_argument("--connections", type=int, default=8, help="open loop: kept-alive connections (default 8)")
    live.add_argument("--direct-rates", type=lambda v: [float(x) for x in v.split(",")], default=[200.0, 1000.0],
                      help="webhook direct: comma-separated rates (default 200,1000)")
    live.add_argument("--direct-seconds", type=float, default=10.0, help="webhook direct: seconds per rate")
    live.add_argument("--ready-timeout", type=float, default=900.0, help="seconds to wait for the operator")
    live.add_argument("--py-spy", metavar="FILE", help="record the operator with py-spy (raw stacks) during "
                      "the fastest direct run")
    live.add_argument("--baseline", metavar="GIT_REF", help="also run the operator of this git revision and call "
                      "its webhook directly after ours (before/after in one run)")
    live.add_argument("--keep-work", action="store_true", help="keep the work directory (logs, manifests)")
    args = ap.parse_args(argv)
    if args.rate <= 0 or args.duration <= 0 or args.concurrency < 1:
        ap.error("--rate, --duration and --concurrency must be positive")
    if args.namespaces is None:
        args.namespaces = 10 if args.live else 500
    if args.live:
        if args.deployments > 50_000 or args.sequential > MAX_REQUESTS or args.seconds * args.rate > MAX_REQUESTS:
            ap.error("bounded: at most 50,000 Deployments and 100,000 requests per phase")
        if max(args.direct_rates) * args.direct_seconds > MAX_REQUESTS or args.seconds > MAX_DURATION:
            ap.error("bounded: at most 100,000 requests per phase")
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanups on SIGTERM too
        result = run_live(args)
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            print_live(result)
        return 0
    if args.in_process:
        result = run_in_process(args)
    else:
        if not args.url or not args.cacert:
            ap.error("--url and --cacert are required (or use --in-process)")
        result = run_webhook(args)
    if args.json:
        print(json.dumps(result, indent=2))
    elif result["mode"] == "in-process":
        lat = result["latency_us"]
        print(
            f"review_deployment x{result['calls']} with {result['objects']} Deployments/PDBs/HPAs in "
            f"{result['namespaces']} namespaces, policies {', '.join(result['policies'])} ({result['policy_mode']})"
        )
        print(
            f"  per call: p50 {lat['p50']} us  p95 {lat['p95']} us  p99 {lat['p99']} us  max {lat['max']} us  "
            f"(mean {result['mean_us']} us, {result['calls_per_s']} calls/s)"
        )
        print(f"  allowed {result['allowed']}  denied {result['denied']}")
    else:
        lat = result["latency_ms"]
        print(
            f"{result['requests']} requests to {result['url']} in {result['duration_s']} s: "
            f"{result['achieved_rate']} req/s achieved (target {result['target_rate']:g}), concurrency {result['concurrency']}"
        )
        print(f"  latency: p50 {lat['p50']} ms  p95 {lat['p95']} ms  p99 {lat['p99']} ms  max {lat['max']} ms")
        print(
            f"  allowed {result['allowed']}  denied {result['denied']}  errors {result['errors']} {result['error_kinds'] or ''}"
            f"  max schedule lag {result['max_schedule_lag_ms']} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
