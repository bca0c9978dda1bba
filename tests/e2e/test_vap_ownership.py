"""The generated ValidatingAdmissionPolicies against the real API server (issue #13 item 4): a foreign
object of our name is never changed or deleted, and deleting a policy removes its VAP and binding
every time (owner references let the garbage collector finish what the daemon's cleanup misses)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.support.cluster import Cluster, eventually
from tests.support.operator import OperatorProcess

pytestmark = pytest.mark.e2e

FOREIGN_VAP = {
    "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
    "metadata": {"name": "readiness-victim", "labels": {"team": "security"}},
    "spec": {"failurePolicy": "Fail",
             "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                                     "operations": ["CREATE"], "resources": ["configmaps"]}]},
             "validations": [{"expression": "!has(object.data) || !('forbidden' in object.data)",
                              "message": "forbidden key"}]},
}
FOREIGN_BINDING = {
    "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
    "metadata": {"name": "readiness-victim", "labels": {"team": "security"}},
    "spec": {"policyName": "readiness-victim", "validationActions": ["Deny"],
             "matchResources": {"namespaceSelector": {"matchLabels": {"protected": "yes"}}}},
}


def enforce_policy(name: str) -> str:
    return yaml.safe_dump({"apiVersion": "readiness.dev/v1alpha1", "kind": "ReadinessPolicy", "metadata": {"name": name},
                           "spec": {"mode": "Enforce", "match": {"namespaces": [f"ns-{name}"]},
                                    "rules": {"probes": {"liveness": False, "readiness": True}}}})


@pytest.fixture(scope="module")
def operator(crds: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    op = OperatorProcess(crds.kubeconfig, tmp_path_factory.mktemp("vap-ownership") / "operator.log").start()
    yield op
    op.stop()
    assert "Traceback" not in op.logs(), op.logs()[-5000:]


def specs(cluster: Cluster) -> tuple[Any, Any]:
    vap = cluster.get_json("validatingadmissionpolicy", "readiness-victim")
    binding = cluster.get_json("validatingadmissionpolicybinding", "readiness-victim")
    return (vap["metadata"].get("labels"), vap["spec"]["validations"]), (binding["metadata"].get("labels"),
                                                                        binding["spec"]["matchResources"])


def test_a_foreign_vap_and_binding_of_our_name_survive_the_policy(operator: OperatorProcess, crds: Cluster) -> None:
    crds.apply(json.dumps(FOREIGN_VAP))
    crds.apply(json.dumps(FOREIGN_BINDING))
    before = specs(crds)
    crds.apply(enforce_policy("victim"))
    eventually(lambda: "targets" in (crds.get_json("rp", "victim").get("status") or {}), what="victim evaluated")
    eventually(lambda: "not managed by readiness-operator" in operator.logs(), what="the operator noticing")
    assert specs(crds) == before
    crds.kubectl("delete", "rp", "victim", "--timeout=30s")
    eventually(lambda: crds.kubectl("get", "rp", "victim", check=False).returncode != 0, what="victim deleted")
    assert specs(crds) == before  # neither changed nor deleted
    crds.kubectl("delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", "readiness-victim")


def test_deleting_a_policy_removes_its_vap_and_binding_every_time(operator: OperatorProcess, crds: Cluster) -> None:
    def gone() -> bool:
        return all(crds.kubectl("get", kind, "readiness-cycle", check=False).returncode != 0
                   for kind in ("validatingadmissionpolicy", "validatingadmissionpolicybinding"))

    for cycle in range(20):
        crds.apply(enforce_policy("cycle"))
        vap = eventually(lambda: crds.get_json("validatingadmissionpolicy", "readiness-cycle"), timeout=30,
                         interval=0.1, what=f"cycle {cycle}: VAP created")
        policy_uid = crds.get_json("rp", "cycle")["metadata"]["uid"]
        assert [o["uid"] for o in vap["metadata"]["ownerReferences"]] == [policy_uid]
        crds.kubectl("delete", "rp", "cycle", "--timeout=30s")
        eventually(gone, timeout=30, interval=0.1, what=f"cycle {cycle}: VAP and binding deleted")


def test_the_garbage_collector_removes_them_when_the_operator_cannot(operator: OperatorProcess, crds: Cluster) -> None:
    crds.apply(enforce_policy("orphan"))
    eventually(lambda: crds.get_json("validatingadmissionpolicybinding", "readiness-orphan"), what="binding created")
    operator.kill()  # no cleanup runs; remove the finalizer by hand (what the docs say after an uninstall)
    try:
        crds.kubectl("patch", "rp", "orphan", "--type=merge", "-p", '{"metadata": {"finalizers": null}}')
        crds.kubectl("delete", "rp", "orphan", "--timeout=30s")

        def collected() -> bool:
            return all(crds.kubectl("get", kind, "readiness-orphan", check=False).returncode != 0
                       for kind in ("validatingadmissionpolicy", "validatingadmissionpolicybinding"))

        # The controller-manager's garbage collector learns a new CRD within ~30s of its install.
        eventually(collected, timeout=90, what="VAP and binding garbage-collected through their owner reference")
    finally:
        operator.start()
