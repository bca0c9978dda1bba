#!/usr/bin/env python3
"""A load generator: live HTTP request metrics for every serving pod of the Deployments it watches.

The local cluster's pods are kwok fakes that serve nothing, so this process plays their traffic.
Every `--interval` it lists the Deployments (in `--namespace`s, matching `--selector`), their
ReplicaSets and pods, and for every Running and Ready pod (the ones a Service would send traffic
to) adds requests to per-pod series, as an instrumented app scraped by a standard kube-prometheus
install would expose them:

    http_requests_total{namespace, pod, container, job, instance, method, code}
    http_request_duration_seconds_bucket{namespace, pod, container, job, instance, le}  (+ _sum, _count)
    container_memory_working_set_bytes{namespace, pod, container, job="kubelet"}  (cAdvisor-style; plus
        the pod's own cgroup with container="", the sum, as the kubelet exports it)

`job` is what a ServiceMonitor gives (the Service's name: here the Deployment's, or the
`readiness.dev/loadgen-job` annotation), `instance` is `<pod IP>:<container port>`. There is no
`deployment` label: mapping pods to Deployments is the consumer's job. All series are served on one
port; Prometheus scrapes it with `honor_labels: true` (hack/prometheus.sh --scrape), so each series
keeps the `job`/`instance` of the pod it stands for, as if every pod had been scraped directly
(the fake pod IPs are not reachable, so one target per pod is not possible here).

Deployment annotations set the traffic, read again every interval, so a test or the demo can make
an SLO breach happen now:
    readiness.dev/loadgen-rps              requests per second per pod (default 10)
    readiness.dev/loadgen-error-ratio      share of requests answered 500 (default 0)
    readiness.dev/loadgen-latency-seconds  median latency (default 0.005); the distribution is fixed:
                                           50% at 0.8x, 40% at 1x, 9% at 1.5x, 1% at 2x the median
    readiness.dev/loadgen-memory-bytes     working-set bytes of each pod's container (default 100 MB)

Counts are exact, not sampled: over any window, errors/total is the annotated ratio.

    hack/loadgen.py --kubeconfig K [--namespace NS ...] [--selector SEL] [--port 0] [--port-file F]
"""

from __future__ import annotations

import argparse
import math
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config
from prometheus_client import start_http_server
from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

ANNOTATION = "readiness.dev/loadgen-"
DEFAULT_RPS = 10.0
DEFAULT_LATENCY = 0.005
DEFAULT_MEMORY = 100e6
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# (share of requests, multiple of the median latency)
LATENCY_SHAPE = ((0.5, 0.8), (0.4, 1.0), (0.09, 1.5), (0.01, 2.0))


@dataclass(frozen=True)
class Traffic:
    """What one Deployment's annotations ask for."""

    rps: float = DEFAULT_RPS
    error_ratio: float = 0.0
    latency: float = DEFAULT_LATENCY
    job: str = ""
    memory: float = DEFAULT_MEMORY

    @classmethod
    def from_annotations(cls, name: str, annotations: dict[str, str] | None) -> Traffic:
        notes = annotations or {}

        def number(key: str, default: float, low: float, high: float) -> float:
            raw = notes.get(ANNOTATION + key)
            if raw is None:
                return default
            try:
                value = float(raw)
            except ValueError:
                log(f"ignoring {ANNOTATION}{key}={raw!r} on {name}: not a number")
                return default
            if not math.isfinite(value) or not low <= value <= high:
                log(f"ignoring {ANNOTATION}{key}={raw!r} on {name}: outside [{low}, {high}]")
                return default
            return value

        return cls(
            rps=number("rps", DEFAULT_RPS, 0, 100_000),
            error_ratio=number("error-ratio", 0.0, 0, 1),
            latency=number("latency-seconds", DEFAULT_LATENCY, 0, 3600),
            job=notes.get(ANNOTATION + "job", name),
            memory=number("memory-bytes", DEFAULT_MEMORY, 0, 1e15),
        )


@dataclass(frozen=True)
class Target:
    """One serving pod, with the labels its series carry."""

    namespace: str
    pod: str
    container: str
    job: str
    instance: str

    def labels(self) -> list[str]:
        return [self.namespace, self.pod, self.container, self.job, self.instance]


@dataclass
class PodSeries:
    """Cumulative counts of one pod (floats: fractional requests carry over between ticks)."""

    ok: float = 0.0
    errors: float = 0.0
    buckets: list[float] = field(default_factory=lambda: [0.0] * len(BUCKETS))
    count: float = 0.0
    seconds: float = 0.0
    memory: float = DEFAULT_MEMORY

    def add(self, traffic: Traffic, elapsed: float) -> None:
        self.memory = traffic.memory
        requests = traffic.rps * elapsed
        self.errors += requests * traffic.error_ratio
        self.ok += requests * (1 - traffic.error_ratio)
        for share, factor in LATENCY_SHAPE:
            n = requests * share
            latency = traffic.latency * factor
            self.count += n
            self.seconds += n * latency
            for i, bound in enumerate(BUCKETS):
                if latency <= bound:
                    self.buckets[i] += n


LABELS = ["namespace", "pod", "container", "job", "instance"]


class LoadCollector(Collector):
    """Serves the current counts; `tick` advances them (guarded by one lock)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.series: dict[Target, PodSeries] = {}
        self.last = time.monotonic()

    def tick(self, targets: dict[Target, Traffic]) -> None:
        now = time.monotonic()
        with self.lock:
            elapsed, self.last = now - self.last, now
            # Pods that stopped serving disappear (their series go stale, as a deleted pod's do).
            self.series = {t: self.series.get(t) or PodSeries() for t in targets}
            for target, traffic in targets.items():
                self.series[target].add(traffic, elapsed)

    def collect(self) -> Iterator[Any]:
        requests = CounterMetricFamily("http_requests", "HTTP requests served, by status code.",
                                       labels=[*LABELS, "method", "code"])
        duration = HistogramMetricFamily("http_request_duration_seconds", "HTTP request latency.", labels=LABELS)
        memory = GaugeMetricFamily("container_memory_working_set_bytes", "Working set (cAdvisor-style).",
                                   labels=["namespace", "pod", "container", "job"])
        with self.lock:
            for target, s in self.series.items():
                requests.add_metric([*target.labels(), "GET", "200"], s.ok)
                requests.add_metric([*target.labels(), "GET", "500"], s.errors)
                cumulative = [(repr(b), v) for b, v in zip(BUCKETS, s.buckets, strict=True)]
                duration.add_metric(target.labels(), [*cumulative, ("+Inf", s.count)], s.seconds)
                memory.add_metric([target.namespace, target.pod, target.container, "kubelet"], s.memory)
                memory.add_metric([target.namespace, target.pod, "", "kubelet"], s.memory)  # the pod's cgroup
        yield requests
        yield duration
        yield memory


def serving(pod: Any) -> bool:
    status = pod.status
    if pod.metadata.deletion_timestamp or status is None or status.phase != "Running" or not status.pod_ip:
        return False
    return any(c.type == "Ready" and c.status == "True" for c in status.conditions or [])


def owner(obj: Any, kind: str) -> str | None:
    for ref in obj.metadata.owner_references or []:
        if ref.kind == kind and ref.controller:
            return str(ref.name)
    return None


class Discovery:
    """Lists Deployments, ReplicaSets and pods and maps each serving pod to its Deployment's traffic."""

    def __init__(self, namespaces: list[str], selector: str) -> None:
        self.apps = client.AppsV1Api()
        self.core = client.CoreV1Api()
        self.namespaces = namespaces
        self.selector = selector

    def _list(self, kind: str, **kwargs: Any) -> Iterable[Any]:
        api = self.core if kind == "pod" else self.apps
        if not self.namespaces:
            return list(getattr(api, f"list_{kind}_for_all_namespaces")(**kwargs).items)
        items: list[Any] = []
        for ns in self.namespaces:
            items += getattr(api, f"list_namespaced_{kind}")(ns, **kwargs).items
        return items

    def targets(self) -> dict[Target, Traffic]:
        deployments = {
            (d.metadata.namespace, d.metadata.name): Traffic.from_annotations(d.metadata.name, d.metadata.annotations)
            for d in self._list("deployment", label_selector=self.selector)
        }
        replica_sets = {
            (rs.metadata.namespace, rs.metadata.name): owner(rs, "Deployment") for rs in self._list("replica_set")
        }
        found: dict[Target, Traffic] = {}
        for pod in self._list("pod"):
            ns = pod.metadata.namespace
            rs = owner(pod, "ReplicaSet")
            deployment = replica_sets.get((ns, rs)) if rs else None
            traffic = deployments.get((ns, deployment)) if deployment else None
            if traffic is None or not serving(pod) or not pod.spec.containers:
                continue
            container = pod.spec.containers[0]
            port = next((p.container_port for p in container.ports or []), 8080)
            target = Target(ns, pod.metadata.name, container.name, traffic.job, f"{pod.status.pod_ip}:{port}")
            found[target] = traffic
        return found


def log(message: str) -> None:
    print(f"[loadgen] {message}", file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description="Live per-pod request metrics for Deployments (see the module doc).")
    parser.add_argument("--kubeconfig", help="default: $KUBECONFIG or ~/.kube/config")
    parser.add_argument("--namespace", action="append", default=[], help="repeatable; default: all namespaces")
    parser.add_argument("--selector", default="", help="Deployment label selector, e.g. tier=production")
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (see --port-file)")
    parser.add_argument("--port-file", type=Path, help="write the port here once serving")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between discovery ticks")
    args = parser.parse_args()

    config.load_kube_config(config_file=args.kubeconfig)
    discovery = Discovery(args.namespace, args.selector)
    collector = LoadCollector()
    REGISTRY.register(collector)
    server, _thread = start_http_server(args.port, addr=args.address)
    port = server.server_address[1]
    if args.port_file:
        args.port_file.write_text(f"{port}\n")
    log(f"serving http://{args.address}:{port}/metrics for {', '.join(args.namespace) or 'all namespaces'}")
    targets: dict[Target, Traffic] = {}
    while True:
        try:
            targets = discovery.targets()
        except Exception as exc:  # keep serving through API hiccups (e.g. an apiserver restart)
            log(f"discovery failed, keeping the last {len(targets)} pods: {exc}")
        collector.tick(targets)
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
