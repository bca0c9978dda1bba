"""Live checks on the living cluster (issue 12): the operator judges rollout-healthy, hpa-active and
pods-stable from the Deployment's, the HPA's and the pods' state (kwok's chaos stage crash-loops and
OOM-kills pods on demand), pdb-allows-disruption from the disruption controller's PDB status, and in
Enforce the live checks never deny the fix of a broken Deployment.

One policy, one namespace, five Deployments applied at once, so the waits overlap.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.e2e.test_living_cluster import deployment
from tests.support.cluster import Cluster, KubectlError, eventually
from tests.support.operator import OperatorProcess

pytestmark = pytest.mark.e2e

NS = "live-checks"
POLICY = "live-checks"


@pytest.fixture(scope="module")
def operator(crds: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    op = OperatorProcess(crds.kubeconfig, tmp_path_factory.mktemp("operator") / "operator.log").start()
    yield op
    op.stop()
    assert "Traceback" not in op.logs(), op.logs()[-5000:]


def pdb(name: str) -> str:
    return yaml.safe_dump({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name, "namespace": NS},
                           "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": name}}}})


def _results(cluster: Cluster) -> dict[tuple[str, str], dict[str, Any]]:
    """(Deployment, check) -> its PolicyReport result."""
    report = cluster.get_json("-n", NS, "policyreport", f"readiness-{POLICY}")
    return {(r["resources"][0]["name"], r["rule"]): r for r in report["results"]}


def _verdicts(cluster: Cluster, expected: dict[tuple[str, str], str]) -> dict[tuple[str, str], dict[str, Any]]:
    results = _results(cluster)
    seen = {key: results.get(key, {}).get("result") for key in expected}
    assert seen == expected, {k: (v, results.get(k, {}).get("message")) for k, v in seen.items()}
    return results


def test_live_checks_judge_the_cluster_and_never_block_the_fix(operator: OperatorProcess, crds: Cluster) -> None:
    cluster = crds
    cluster.kubectl("create", "namespace", NS)
    stuck = yaml.safe_load(deployment(NS, "stuck", 2))
    stuck["spec"]["progressDeadlineSeconds"] = 5  # impossible: its pods cannot be scheduled
    stuck["spec"]["template"]["spec"]["nodeSelector"] = {"readiness.dev/no-such-node": "true"}
    blind_hpa = {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "blind", "namespace": NS},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "blind"},
                 "minReplicas": 1, "maxReplicas": 3,
                 "metrics": [{"type": "External", "external": {  # no external metrics adapter serves this
                     "metric": {"name": "queue_depth"}, "target": {"type": "AverageValue", "averageValue": "5"}}}]},
    }
    cluster.apply("---\n".join([
        deployment(NS, "steady", 2),
        deployment(NS, "crashy", 1, pod_labels={"readiness.dev/chaos": "crash-loop"}),
        deployment(NS, "oomy", 2, pod_labels={"readiness.dev/chaos": "oom-kill"}),
        *(pdb(name) for name in ("steady", "oomy")),
        yaml.safe_dump(stuck),
        deployment(NS, "blind", 1),
        yaml.safe_dump(blind_hpa),
    ]))
    cluster.apply(yaml.safe_dump({
        "apiVersion": "readiness.dev/v1alpha1", "kind": "ReadinessPolicy", "metadata": {"name": POLICY},
        "spec": {"mode": "Enforce", "match": {"namespaces": [NS]},
                 # env: a static check, so the Enforce policy has a fail-safe VAP that judges the fix too
                 "rules": {"liveState": {"maxRestarts": 1000}, "env": {},
                           "podDisruptionBudget": {"required": False, "allowsDisruption": True}}},
    }))
    try:
        expected = {
            ("steady", "rollout-healthy"): "pass", ("steady", "pods-stable"): "pass", ("steady", "hpa-active"): "pass",
            ("crashy", "pods-stable"): "fail", ("crashy", "rollout-healthy"): "fail",
            ("oomy", "pods-stable"): "fail",
            # minAvailable 1 of 2 permits a drain on paper; with both pods OOM-killed the controller allows 0
            ("steady", "pdb-allows-disruption"): "pass", ("oomy", "pdb-allows-disruption"): "fail",
            ("stuck", "rollout-healthy"): "fail",
            ("blind", "hpa-active"): "fail", ("blind", "rollout-healthy"): "pass",
        }
        results = eventually(lambda: _verdicts(cluster, expected), timeout=120, interval=1,
                             what="live verdicts in the PolicyReport")
        assert "CrashLoopBackOff" in results[("crashy", "pods-stable")]["message"]
        assert "OOMKilled" in results[("oomy", "pods-stable")]["message"]
        assert "allows 0 disruptions now" in results[("oomy", "pdb-allows-disruption")]["message"]
        assert "ScalingActive is False" in results[("blind", "hpa-active")]["message"]
        assert any(word in results[("stuck", "rollout-healthy")]["message"]
                   for word in ("progress deadline", "not Available"))
        status = cluster.get_json("rp", POLICY)["status"]
        assert status["noncompliant"] >= 4 and status["compliant"] >= 1, status

        # Enforce: the fail-safe VAP is in force (a duplicate env name is denied) ...
        def denied() -> bool:
            bad = yaml.safe_load(deployment(NS, "crashy", 1, pod_labels={"readiness.dev/chaos": "crash-loop"}))
            bad["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "A", "value": "1"}, {"name": "A"}]
            try:
                cluster.apply(yaml.safe_dump(bad), "--dry-run=server")
            except KubectlError as exc:
                return "env-duplicate-keys" in str(exc)
            return False

        eventually(denied, timeout=60, what="the policy's VAP in force")
        # ... and the crash-looping Deployment's fix is admitted: live checks never deny.
        cluster.apply(deployment(NS, "crashy", 1))
        expected_fixed = {("crashy", "pods-stable"): "pass", ("crashy", "rollout-healthy"): "pass"}
        eventually(lambda: _verdicts(cluster, expected_fixed), timeout=90, interval=1, what="crashy healed")
    finally:
        cluster.kubectl("delete", "readinesspolicy", POLICY, "--ignore-not-found")
        cluster.kubectl("delete", "namespace", NS, "--wait=false")
