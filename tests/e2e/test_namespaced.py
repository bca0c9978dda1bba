"""`readiness-operator run --namespace`: namespaced mode (its own module: no other operator runs)."""

from __future__ import annotations

import pytest

from tests.e2e.test_policy_operator import counts, deployment, policy, status
from tests.support.cluster import Cluster, eventually
from tests.support.operator import OperatorProcess

pytestmark = pytest.mark.e2e

def test_namespaced_mode_sees_only_its_namespaces(crds: Cluster, tmp_path_factory: pytest.TempPathFactory) -> None:
    """`readiness-operator run --namespace X` watches Deployments in X only (policies stay cluster-wide)."""
    cluster = crds
    for ns in ("e2e-scoped-in", "e2e-scoped-out"):
        cluster.kubectl("create", "namespace", ns)
        cluster.apply(deployment(ns, "web", labels={}, probe=False))
    scoped = OperatorProcess(crds.kubeconfig, tmp_path_factory.mktemp("scoped") / "operator.log",
                             "--namespace", "e2e-scoped-in").start()
    try:
        cluster.apply(policy("scoped", {"match": {"namespaces": ["e2e-scoped-in", "e2e-scoped-out"]},
                                        "rules": {"probes": {"liveness": False, "readiness": True}}}))
        eventually(lambda: counts(cluster, "scoped") == (1, 0, 1), what="only the watched namespace counted")
        assert status(cluster, "scoped")["worstOffenders"][0]["namespace"] == "e2e-scoped-in"
        cluster.kubectl("delete", "rp", "scoped")
    finally:
        scoped.stop()
    assert "Traceback" not in scoped.logs()
