"""The load generator's arithmetic and exposition (hack/loadgen.py), without a cluster."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.cluster import HACK


def load_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("loadgen", HACK / "loadgen.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["loadgen"] = module
    spec.loader.exec_module(module)
    return module


loadgen = load_module()


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        ({}, (10.0, 0.0, 0.005, "web")),
        ({"readiness.dev/loadgen-rps": "40", "readiness.dev/loadgen-error-ratio": "0.25",
          "readiness.dev/loadgen-latency-seconds": "1.5", "readiness.dev/loadgen-job": "web-svc"}, (40.0, 0.25, 1.5, "web-svc")),
        ({"readiness.dev/loadgen-error-ratio": "1.5"}, (10.0, 0.0, 0.005, "web")),  # outside [0, 1]: the default
        ({"readiness.dev/loadgen-rps": "lots"}, (10.0, 0.0, 0.005, "web")),
        ({"readiness.dev/loadgen-latency-seconds": "nan"}, (10.0, 0.0, 0.005, "web")),
    ],
)
def test_traffic_from_annotations(annotations: dict[str, str], expected: tuple[float, float, float, str]) -> None:
    t = loadgen.Traffic.from_annotations("web", annotations)
    assert (t.rps, t.error_ratio, t.latency, t.job) == expected


def test_counts_are_exact_shares_of_the_rate() -> None:
    s = loadgen.PodSeries()
    s.add(loadgen.Traffic(rps=100, error_ratio=0.02, latency=0.1), elapsed=3)
    assert s.ok + s.errors == pytest.approx(300)
    assert s.errors == pytest.approx(6)
    assert s.count == pytest.approx(300)
    by_bound = dict(zip(loadgen.BUCKETS, s.buckets, strict=True))
    # 50% at 0.08 s, 40% at 0.1 s, 9% at 0.15 s, 1% at 0.2 s: cumulative buckets.
    assert by_bound[0.05] == 0 and by_bound[0.1] == pytest.approx(270) and by_bound[0.25] == pytest.approx(300)
    assert s.seconds == pytest.approx(300 * (0.5 * 0.08 + 0.4 * 0.1 + 0.09 * 0.15 + 0.01 * 0.2))


def samples(registry: CollectorRegistry) -> list[tuple[str, dict[str, str], float]]:
    text = generate_latest(registry).decode()
    return [(s.name, dict(s.labels), s.value) for f in text_string_to_metric_families(text) for s in f.samples]


def test_exposition_has_kube_prometheus_labels_and_forgets_pods_that_stop_serving() -> None:
    collector = loadgen.LoadCollector()
    registry = CollectorRegistry()
    registry.register(collector)
    a = loadgen.Target("shop", "web-5d9c7b8f6-abcde", "app", "web", "10.244.0.5:8080")
    b = loadgen.Target("shop", "web-5d9c7b8f6-fghij", "app", "web", "10.244.1.5:8080")
    collector.tick({a: loadgen.Traffic(error_ratio=0.5), b: loadgen.Traffic()})
    found = samples(registry)
    requests = [(labels, value) for name, labels, value in found if name == "http_requests_total"]
    assert {(labels["pod"], labels["code"]) for labels, _ in requests} == {
        (pod, code) for pod in (a.pod, b.pod) for code in ("200", "500")}
    for labels, _ in requests:
        assert set(labels) == {"namespace", "pod", "container", "job", "instance", "method", "code"}
    a_labels = {"namespace": "shop", "pod": a.pod, "container": "app", "job": "web", "instance": "10.244.0.5:8080"}
    [a_ok] = [v for labels, v in requests if labels == {**a_labels, "method": "GET", "code": "200"}]
    [a_bad] = [v for labels, v in requests if labels == {**a_labels, "method": "GET", "code": "500"}]
    assert a_ok == pytest.approx(a_bad)
    buckets = [labels for name, labels, _ in found if name == "http_request_duration_seconds_bucket"]
    assert {b["le"] for b in buckets} == {*(str(x) for x in loadgen.BUCKETS), "+Inf"}
    assert all("deployment" not in labels for _, labels, _ in found)
    collector.tick({a: loadgen.Traffic()})
    pods = {labels.get("pod") for _, labels, _ in samples(registry)}
    assert pods == {a.pod}


def test_working_set_memory_per_container_and_pod_cgroup_as_cadvisor_exports_it() -> None:
    collector = loadgen.LoadCollector()
    registry = CollectorRegistry()
    registry.register(collector)
    a = loadgen.Target("shop", "web-5d9c7b8f6-abcde", "app", "web", "10.244.0.5:8080")
    collector.tick({a: loadgen.Traffic.from_annotations("web", {"readiness.dev/loadgen-memory-bytes": "420e6"})})
    memory = {labels["container"]: v for name, labels, v in samples(registry)
              if name == "container_memory_working_set_bytes" and labels["pod"] == a.pod}
    assert memory == {"app": 420e6, "": 420e6}
    assert loadgen.Traffic.from_annotations("web", {}).memory == loadgen.DEFAULT_MEMORY
