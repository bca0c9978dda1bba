"""The operator's /metrics on a real cluster: build info, per-policy series, and removal on deletion."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from tests.support.cluster import Cluster, eventually
from tests.support.operator import OperatorProcess, free_port

pytestmark = pytest.mark.e2e

POLICY = """
apiVersion: readiness.dev/v1alpha1
kind: ReadinessPolicy
metadata: {name: metrics-e2e}
spec:
  mode: Audit
  match: {namespaces: [metrics-e2e]}
  rules: {probes: {liveness: true}}
"""
DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: metrics-e2e}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: app, image: "registry.example/web:1.0.0"}]}
"""


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return str(r.read().decode())


def test_policy_series_follow_the_policy_and_go_with_it(crds: Cluster, tmp_path: Path) -> None:
    crds.kubectl("create", "namespace", "metrics-e2e")
    crds.apply(DEPLOYMENT)
    port = free_port()
    op = OperatorProcess(crds.kubeconfig, tmp_path / "operator.log", "--metrics-port", str(port)).start()
    try:
        crds.apply(POLICY)
        series = 'readiness_policy_targets{policy="metrics-e2e",verdict="noncompliant"} 1.0'
        eventually(lambda: series in scrape(port), timeout=60, what="the policy's targets series")
        text = scrape(port)
        assert "readiness_build_info{version=" in text and "readiness_evaluations_total" in text
        assert "process_resident_memory_bytes" in text
        crds.kubectl("delete", "rp", "metrics-e2e", "--wait=true", timeout=60)
        eventually(lambda: 'policy="metrics-e2e"' not in scrape(port), timeout=30,
                   what="the deleted policy's series to disappear")
    finally:
        op.stop()
        crds.kubectl("delete", "namespace", "metrics-e2e", "--wait=false", check=False)
    assert "Traceback" not in op.logs(), op.logs()[-4000:]
