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
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import json
import random
import socket
import ssl
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
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
    ap.add_argument("--namespaces", type=int, default=500, help="in-process: namespaces they spread over (default 500)")
    ap.add_argument(
        "--mode",
        choices=["Enforce", "Warn", "Audit", "as-is"],
        default="Enforce",
        help="in-process: mode forced on the example policies (default Enforce)",
    )
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    args = ap.parse_args(argv)
    if args.rate <= 0 or args.duration <= 0 or args.concurrency < 1:
        ap.error("--rate, --duration and --concurrency must be positive")
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
