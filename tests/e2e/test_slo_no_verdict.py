"""Answers a real Prometheus gives that allow no verdict (issue #14, 7d/7e): an idle Deployment's 0/0
ratio is NaN and a query without aggregation returns one series per pod. Both are Unknown with a
reason, and the policy keeps updating (the API server rejects NaN in a status patch)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.support.cluster import Cluster, eventually
from tests.support.operator import OperatorProcess
from tests.support.prometheus import Prometheus

pytestmark = [pytest.mark.e2e, pytest.mark.prometheus]

NS = "e2e-slo-no-verdict"
STEP = 15


def series(now: int) -> str:
    start, end = now - 900, now + 3000
    lines = ["# TYPE nv_requests counter"]
    for name, rate in {"idle": 0.0, "busy": 10.0}.items():  # idle: flat counters, so rate() is 0 and 0/0 is NaN
        lines += [f'nv_requests_total{{namespace="{NS}",deployment="{name}"}} {rate * (t - start):.3f} {t}'
                  for t in range(start, end, STEP)]
    lines.append("# TYPE nv_memory gauge")
    for pod, value in (("per-pod-1", 100.0), ("per-pod-2", 900.0)):  # one series per pod of one Deployment
        lines += [f'nv_memory{{namespace="{NS}",deployment="per-pod",pod="{pod}"}} {value} {t}'
                  for t in range(start, end, STEP)]
    return "\n".join(lines)


def deployment(name: str) -> str:
    return yaml.safe_dump({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NS},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "app", "image": "app:1.0"}]}}},
    })


POLICY = yaml.safe_dump({
    "apiVersion": "readiness.dev/v1alpha1", "kind": "ReadinessPolicy", "metadata": {"name": "slo-no-verdict"},
    "spec": {
        "mode": "Audit", "match": {"namespaces": [NS]},
        "slos": [
            {"name": "ratio", "interval": "2s", "comparison": ">=", "threshold": 0.5,
             "query": 'sum(rate(nv_requests_total{namespace="{{namespace}}", deployment="{{name}}"}[5m])) / '
                      'sum(rate(nv_requests_total{namespace="{{namespace}}", deployment="{{name}}"}[5m]))'},
            {"name": "memory", "interval": "2s", "comparison": "<", "threshold": 500,
             "query": 'nv_memory{namespace="{{namespace}}", deployment="{{name}}"}'},
        ],
    },
})


@pytest.fixture(scope="module")
def operator(crds: Cluster, prometheus: Prometheus, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    prometheus.load(series(int(time.time())), name="no-verdict")
    crds.kubectl("create", "namespace", NS)
    for name in ("idle", "busy", "per-pod"):
        crds.apply(deployment(name))
    op = OperatorProcess(crds.kubeconfig, tmp_path_factory.mktemp("no-verdict") / "operator.log",
                         env={"READINESS_PROMETHEUS_URL": prometheus.url}).start()
    crds.apply(POLICY)
    yield op
    crds.kubectl("delete", "rp", "slo-no-verdict", "--ignore-not-found")
    op.stop()
    assert "Traceback" not in op.logs(), op.logs()[-5000:]


def results(cluster: Cluster) -> dict[tuple[str, str], dict[str, Any]]:
    report = cluster.get_json("-n", NS, "policyreport", "readiness-slo-no-verdict")
    return {(r["resources"][0]["name"], r["rule"]): r for r in report["results"]}


def test_nan_and_per_pod_series_are_unknown_with_a_reason(operator: OperatorProcess, crds: Cluster) -> None:
    def settled() -> dict[tuple[str, str], dict[str, Any]]:
        r = results(crds)
        assert r[("busy", "slo:ratio")]["result"] == "pass", r[("busy", "slo:ratio")]
        assert r[("idle", "slo:ratio")]["result"] == "error"  # Unknown: neither pass nor fail
        assert r[("per-pod", "slo:memory")]["result"] == "error"
        return r

    r = eventually(settled, timeout=90, what="SLO verdicts in the PolicyReport")
    assert "NaN" in r[("idle", "slo:ratio")]["message"] and "no verdict" in r[("idle", "slo:ratio")]["message"]
    per_pod = r[("per-pod", "slo:memory")]["message"]
    assert "several series" in per_pod and "pod" in per_pod
    status = crds.get_json("rp", "slo-no-verdict")["status"]
    assert status["targets"] == 3 and status["compliant"] == 3  # Unknown never makes a Deployment noncompliant


def test_the_policy_keeps_updating_after_a_nan(operator: OperatorProcess, crds: Cluster) -> None:
    eventually(lambda: crds.get_json("rp", "slo-no-verdict").get("status", {}).get("targets") == 3, timeout=90)
    crds.apply(deployment("late"))
    eventually(lambda: crds.get_json("rp", "slo-no-verdict")["status"]["targets"] == 4, timeout=60,
               what="a new Deployment counted after NaN answers (status patches still accepted)")
    assert "invalid character 'N'" not in operator.logs()
