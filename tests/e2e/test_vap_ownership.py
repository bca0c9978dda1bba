"""The merged ValidatingAdmissionPolicy + binding against the real API server (issue #13 items 4 and 7):
a foreign object holding our fixed name is never changed or deleted; deleting a policy removes its
rules from the merged objects every time, and deleting the last Enforce policy puts the inert
placeholders back (the chart creates both objects; the operator never deletes them). Here the
operator runs with admin credentials, outside the chart: it creates them when they are missing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest
from kubernetes.client import ApiException

from readiness_operator.admission.vap import placeholder_objects
from tests.support.cluster import Cluster, eventually
from tests.support.operator import OperatorProcess

pytestmark = pytest.mark.e2e

OURS = "readiness-ownership"  # the operator's fixed name here (READINESS_VAP_NAME)
KINDS = ("validatingadmissionpolicy", "validatingadmissionpolicybinding")
CYCLES = 20

FOREIGN_VAP = {
    "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
    "metadata": {"name": OURS, "labels": {"team": "security"}},
    "spec": {"failurePolicy": "Fail",
             "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                                     "operations": ["CREATE"], "resources": ["configmaps"]}]},
             "validations": [{"expression": "!has(object.data) || !('forbidden' in object.data)",
                              "message": "forbidden key"}]},
}
FOREIGN_BINDING = {
    "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
    "metadata": {"name": OURS, "labels": {"team": "security"}},
    "spec": {"policyName": OURS, "validationActions": ["Deny"],
             "matchResources": {"namespaceSelector": {"matchLabels": {"protected": "yes"}}}},
}


def enforce_policy(name: str) -> dict[str, Any]:
    return {"apiVersion": "readiness.dev/v1alpha1", "kind": "ReadinessPolicy", "metadata": {"name": name},
            "spec": {"mode": "Enforce", "match": {"namespaces": [f"ns-{name}"]},
                     "rules": {"probes": {"liveness": False, "readiness": True}}}}


class Api:
    """Direct API calls (no kubectl process per poll: the cycles below poll a lot)."""

    def __init__(self, cluster: Cluster) -> None:
        self.custom = kubernetes.client.CustomObjectsApi(
            kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig)))

    def create_policies(self, *names: str) -> dict[str, str]:
        """Create Enforce policies; name -> uid."""
        created = [self.custom.create_cluster_custom_object("readiness.dev", "v1alpha1", "readinesspolicies",
                                                            enforce_policy(n)) for n in names]
        return {c["metadata"]["name"]: c["metadata"]["uid"] for c in created}

    def delete_policy(self, name: str) -> None:
        self.custom.delete_cluster_custom_object("readiness.dev", "v1alpha1", "readinesspolicies", name)

    def get(self, plural: str) -> dict[str, Any] | None:
        try:
            obj: dict[str, Any] = self.custom.get_cluster_custom_object("admissionregistration.k8s.io", "v1", plural, OURS)
            return obj
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise


@pytest.fixture(scope="module")
def api(crds: Cluster) -> Api:
    return Api(crds)


def merged(api: Api) -> tuple[dict[str, Any] | None, bool]:
    """The merged VAP (None when absent) and whether its binding exists."""
    return api.get("validatingadmissionpolicies"), api.get("validatingadmissionpolicybindings") is not None


def holds(api: Api, owners: dict[str, str]) -> bool:
    """The merged objects hold exactly these policies (their rules, and no owner reference: the
    garbage collector must never remove what the chart created and the operator may not recreate)."""
    vap, bound = merged(api)
    if vap is None or not bound:
        return False
    held = (vap["metadata"].get("annotations") or {}).get("readiness.dev/policies", "")
    rules = [v["name"] for v in vap["spec"].get("variables") or () if v["name"].startswith("policy")]
    return held == ",".join(sorted(owners)) and "ownerReferences" not in vap["metadata"] and len(rules) == len(owners)


def placeholders(api: Api) -> bool:
    """Both objects are the placeholders (as the chart installs them): no rules of any policy."""
    vap, binding = api.get("validatingadmissionpolicies"), api.get("validatingadmissionpolicybindings")
    if vap is None or binding is None:
        return False
    policy = placeholder_objects(OURS, [])[0]
    return ("validations" not in vap["spec"] and "variables" not in vap["spec"]
            and vap["spec"]["auditAnnotations"] == policy["spec"]["auditAnnotations"]
            and "readiness.dev/policies" not in (vap["metadata"].get("annotations") or {})
            and binding["spec"]["policyName"] == OURS)


@pytest.fixture(scope="module")
def operator(crds: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    # Other modules' leftover policies would be Enforce policies of this operator too: delete them
    # (their finalizers need an operator: this one removes them).
    crds.kubectl("delete", "rp", "--all", "--wait=false")
    op = OperatorProcess(crds.kubeconfig, tmp_path_factory.mktemp("vap-ownership") / "operator.log",
                         env={"READINESS_VAP_NAME": OURS}).start()
    eventually(lambda: not crds.get_json("rp")["items"], timeout=60, what="leftover policies gone")
    yield op
    op.stop()
    assert "Traceback" not in op.logs(), op.logs()[-5000:]


def foreign_specs(cluster: Cluster) -> tuple[Any, Any]:
    vap = cluster.get_json("validatingadmissionpolicy", OURS)
    binding = cluster.get_json("validatingadmissionpolicybinding", OURS)
    return ((vap["metadata"].get("labels"), vap["metadata"].get("ownerReferences"), vap["spec"]["validations"]),
            (binding["metadata"].get("labels"), binding["metadata"].get("ownerReferences"),
             binding["spec"]["matchResources"]))


def test_a_foreign_vap_and_binding_of_our_name_survive_the_policy(
    operator: OperatorProcess, crds: Cluster, api: Api
) -> None:
    crds.apply(json.dumps(FOREIGN_VAP))
    crds.apply(json.dumps(FOREIGN_BINDING))
    before = foreign_specs(crds)
    try:
        api.create_policies("victim")
        eventually(lambda: "targets" in (crds.get_json("rp", "victim").get("status") or {}), what="victim evaluated")
        eventually(lambda: f"ValidatingAdmissionPolicy {OURS} exists and is not managed by readiness-operator"
                   in operator.logs(), what="the operator reporting the foreign object")
        assert foreign_specs(crds) == before
        crds.kubectl("delete", "rp", "victim", "--timeout=30s")
        assert foreign_specs(crds) == before  # neither changed nor deleted
    finally:
        crds.kubectl("delete", ",".join(KINDS), OURS)


def test_deleting_policies_removes_their_rules_every_time(operator: OperatorProcess, crds: Cluster, api: Api) -> None:
    """Each cycle: two new Enforce policies are merged; deleting one removes its rules, deleting the
    last puts the placeholders back (never a deletion). Fresh names per cycle, so no cycle waits for
    the previous one's finalizers (they are checked once, at the end)."""
    for cycle in range(CYCLES):
        first, second = f"cycle-{cycle}-a", f"cycle-{cycle}-b"
        both = api.create_policies(first, second)
        eventually(lambda both=both: holds(api, both), timeout=30, interval=0.05, what=f"cycle {cycle}: both merged")
        api.delete_policy(first)
        left = {second: both[second]}
        eventually(lambda left=left: holds(api, left), timeout=30, interval=0.05,
                   what=f"cycle {cycle}: {first}'s rules removed")
        api.delete_policy(second)
        eventually(lambda: placeholders(api), timeout=30, interval=0.05, what=f"cycle {cycle}: the placeholders back")
    eventually(lambda: not crds.get_json("rp")["items"], timeout=60, what="every deleted policy's finalizer removed")


def test_rules_of_policies_deleted_while_the_operator_was_down_go_when_it_is_back(
    operator: OperatorProcess, crds: Cluster, api: Api
) -> None:
    """No owner references (the release owns the objects, so the garbage collector never removes
    them); a policy deleted while no operator runs (its finalizer removed by hand, as the docs say
    after an uninstall) loses its rules when the operator is back."""
    owners = api.create_policies("orphan-a", "orphan-b")
    eventually(lambda: holds(api, owners), what="both merged")
    operator.kill()  # no cleanup runs
    try:
        for name in owners:
            crds.kubectl("patch", "rp", name, "--type=merge", "-p", '{"metadata": {"finalizers": null}}')
            crds.kubectl("delete", "rp", name, "--timeout=30s")
        assert holds(api, owners)  # nothing else removes them (an uninstall would: the chart's objects)
    finally:
        operator.start()
    eventually(lambda: placeholders(api), timeout=60, what="the placeholders back after the restart")
