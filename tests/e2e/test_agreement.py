"""The engine/webhook decision and the fail-safe VAP agree (issue #13 item 5), checked through
server-side dry-run on the real API server: name globs with classes, override values that are blank
only to a Unicode-aware reading, and quantities the API server stores with a huge exponent."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from readiness_operator.admission.decide import review_deployment
from readiness_operator.model import ReadinessPolicySpec
from readiness_operator.world import World
from tests.support.cluster import Cluster, eventually
from tests.support.operator import OperatorProcess
from tests.support.vap import holds

pytestmark = pytest.mark.e2e

NS = "agree"
SPEC: dict[str, Any] = {
    "mode": "Enforce", "match": {"namespaces": [NS]},
    "rules": {"probes": {"liveness": False, "readiness": True}, "resources": {"limits": {"memory": {}}}},
    "exemptions": [{"checks": ["probe-readiness"], "names": ["legacy-[ab]", "x?-[!0-9]"], "reason": "migrating",
                    "expires": "2099-01-01T00:00:00Z"}],
}


def deployment(name: str, *, probe: bool = False, memory: str = "128Mi", override: str | None = None) -> dict[str, Any]:
    resources = {"requests": {"cpu": "100m", "memory": memory}, "limits": {"cpu": "1", "memory": memory}}
    container: dict[str, Any] = {"name": "app", "image": "app:1.0", "resources": resources}
    if probe:
        container["readinessProbe"] = {"tcpSocket": {"port": 80}}
    meta: dict[str, Any] = {"name": name, "namespace": NS}
    if override is not None:
        meta["annotations"] = {"readiness.dev/override": override}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "agree"}},
                     "template": {"metadata": {"labels": {"app": "agree"}}, "spec": {"containers": [container]}}}}


CASES = [
    deployment("legacy-a"), deployment("legacy-b"), deployment("legacy-c"), deployment("legacy-[ab]"),
    deployment("xy-z"), deployment("xy-1"),
    deployment("blank-1", override="\x1f"), deployment("blank-2", override="\u200b"),
    deployment("blank-3", override=" \u00a0\t"), deployment("real", override="INC-1 approved by on-call"),
    deployment("huge", probe=True, memory="1e400"), deployment("big", probe=True, memory="1e100"),
    deployment("fine", probe=True),
]


@pytest.fixture(scope="module")
def vap_only(crds: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The generated VAP without a webhook: a dry-run's answer is the VAP's alone."""
    crds.kubectl("create", "namespace", NS)
    op = OperatorProcess(crds.kubeconfig, tmp_path_factory.mktemp("agree") / "operator.log").start()
    crds.apply(yaml.safe_dump({"apiVersion": "readiness.dev/v1alpha1", "kind": "ReadinessPolicy",
                               "metadata": {"name": "agree"}, "spec": SPEC}))
    eventually(lambda: holds(crds, "agree"), what="the VAP and its binding")

    def enforced() -> bool:  # the API server loads a new VAP from its informer a moment after it exists
        probe = crds.kubectl("create", "--dry-run=server", "-f", "-", check=False,
                             input=yaml.safe_dump(deployment("vap-loaded")))
        return probe.returncode != 0 and "ValidatingAdmissionPolicy 'readiness-operator'" in probe.stderr

    eventually(enforced, what="the API server enforcing the VAP")
    yield crds
    crds.kubectl("delete", "rp", "agree", "--timeout=30s")
    op.stop()


def webhook_allows(obj: dict[str, Any]) -> bool:
    request = {"operation": "CREATE", "object": obj, "namespace": NS, "userInfo": {"username": "admin"},
               "resource": {"group": "apps", "version": "v1", "resource": "deployments"}}
    policy = ReadinessPolicySpec.model_validate(SPEC)
    return review_deployment(request, [("agree", policy)], lambda _: World(namespace_labels={})).allowed


@pytest.mark.parametrize("obj", CASES, ids=[c["metadata"]["name"] for c in CASES])
def test_the_vap_answers_what_the_webhook_answers(vap_only: Cluster, obj: dict[str, Any]) -> None:
    if obj["metadata"]["name"] == "legacy-[ab]":
        obj = {**obj, "metadata": {**obj["metadata"], "name": "legacy-ab"}}  # not a valid name; a non-match
    result = vap_only.kubectl("create", "--dry-run=server", "-f", "-", input=yaml.safe_dump(obj), check=False)
    vap_allowed = result.returncode == 0
    assert vap_allowed or ("ValidatingAdmissionPolicy 'readiness-operator'" in result.stderr
                           and 'ReadinessPolicy "agree" (Enforce, fail-safe)' in result.stderr), result.stderr
    stored = obj
    if vap_allowed:  # judge what the API server would store (1e100 is kept, 1e400 becomes 10e399)
        stored = yaml.safe_load(vap_only.kubectl("create", "--dry-run=server", "-o", "yaml", "-f", "-",
                                                 input=yaml.safe_dump(obj)).stdout)
    assert webhook_allows(stored) == vap_allowed, (obj["metadata"], result.stderr)


def test_the_expected_answers() -> None:
    # The cases above would all pass if both sides were wrong the same way: pin the intended answers.
    allowed = {c["metadata"]["name"] for c in CASES if webhook_allows(c)}
    assert allowed == {"legacy-a", "legacy-b", "xy-z", "real", "fine", "big"}
