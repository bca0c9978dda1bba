"""The merged ValidatingAdmissionPolicy on the real API server (issue #13 item 7), without the operator.

- Admission objects are exempt from admission: a ValidatingAdmissionPolicy that denies creating
  ValidatingAdmissionPolicies (and their bindings) has no effect on them. That is why the chart
  cannot ship a guard policy restricting what the operator's ServiceAccount changes; RBAC by name is
  the defence (docs/operations.md, "RBAC").
- Every example policy plus the built-in Pod Security restricted preset, all Enforce, in ONE policy:
  the API server accepts it and judges a Deployment that every one of them selects within CEL's cost
  budget, naming every policy and its failed checks.
- Per-policy scoping lives in CEL: a Deployment in namespace A is judged by policy A's rules only.
- The placeholders the chart installs (and the operator writes back with no Enforce policy) deny
  nothing: the policy has no validation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from readiness_operator import presets
from readiness_operator.admission.vap import generate_vap, placeholder_objects
from readiness_operator.engine import evaluate
from readiness_operator.model import ReadinessPolicy, ReadinessPolicySpec
from readiness_operator.world import World
from tests.support.cluster import REPO_ROOT, Cluster, eventually

pytestmark = pytest.mark.e2e

NAME, A, B = "readiness-merged-test", "merged-a", "merged-b"
GUARD = "admission-guard-test"
PLACEHOLDER = "readiness-placeholder-test"


def container(name: str) -> dict[str, Any]:
    return {"name": name, "image": "registry.example.com/app:1.0"}


def deployment(name: str, namespace: str, containers: int = 1) -> dict[str, Any]:
    """No probes, no resources, no securityContext: fails most checks of every policy."""
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [container(f"c{i}") for i in range(containers)]}}}}


def enforced_examples() -> dict[str, ReadinessPolicySpec]:
    """examples/policies/*.yaml and builtin:pod-security-restricted, Enforce, selecting namespace A."""
    raws = [yaml.safe_load(p.read_text()) for p in sorted((REPO_ROOT / "examples" / "policies").glob("*.yaml"))]
    preset = yaml.safe_load(presets.read("pod-security-restricted") or "")
    preset["metadata"]["name"] = "builtin-pod-security-restricted"
    out = {}
    for raw in [*raws, preset]:
        raw["spec"]["mode"] = "Enforce"
        raw["spec"]["match"] = {"namespaces": [A]}  # every one judges the same Deployment: the worst case
        policy = ReadinessPolicy.model_validate(raw)
        out[policy.name] = policy.spec
    return out


def dry_run(cluster: Cluster, obj: dict[str, Any]) -> str:
    """'' when admitted, else the API server's error."""
    result = cluster.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(obj), check=False)
    return "" if result.returncode == 0 else result.stderr


@pytest.fixture(scope="module")
def namespaces(crds: Cluster) -> Iterator[Cluster]:
    for ns, team in ((A, "a"), (B, "b")):
        crds.kubectl("create", "namespace", ns)
        crds.kubectl("label", "namespace", ns, f"team={team}")
    yield crds
    crds.kubectl("delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", NAME, "--ignore-not-found")
    crds.kubectl("delete", "namespace", A, B, "--wait=false")


def test_admission_objects_are_exempt_from_admission(crds: Cluster) -> None:
    """A deny-all guard on admission objects is loaded (it denies ConfigMaps) yet never applied to them."""
    match = {"resourceRules": [
        {"apiGroups": ["admissionregistration.k8s.io"], "apiVersions": ["*"], "operations": ["*"],
         "resources": ["validatingadmissionpolicies", "validatingadmissionpolicybindings",
                       "validatingwebhookconfigurations"]},
        {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["configmaps"]}]}
    guard = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
             "metadata": {"name": GUARD},
             "spec": {"failurePolicy": "Fail", "matchConstraints": match,
                      "validations": [{"expression": "false", "message": "guarded"}]}}
    binding = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
               "metadata": {"name": GUARD}, "spec": {"policyName": GUARD, "validationActions": ["Deny"]}}
    victim = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
              "metadata": {"name": f"{GUARD}-victim"},
              "spec": {"matchConstraints": {"resourceRules": match["resourceRules"][1:]},
                       "validations": [{"expression": "true"}]}}
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "probe", "namespace": "default"}}
    crds.apply(json.dumps(guard))
    crds.apply(json.dumps(binding))
    try:
        eventually(lambda: "guarded" in dry_run(crds, configmap), timeout=30, what="the guard in force")
        crds.apply(json.dumps(victim))  # created, changed and deleted despite the guard
        crds.kubectl("annotate", "validatingadmissionpolicy", f"{GUARD}-victim", "changed=yes")
        crds.kubectl("delete", "validatingadmissionpolicy", f"{GUARD}-victim")
        assert "guarded" in dry_run(crds, configmap)  # and the guard was in force all along
    finally:
        crds.kubectl("delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", GUARD, "--ignore-not-found")
        crds.kubectl("delete", "validatingadmissionpolicy", f"{GUARD}-victim", "--ignore-not-found")


def test_examples_and_the_restricted_preset_merged_are_accepted_and_judge_within_budget(
    namespaces: Cluster, tmp_path: Path
) -> None:
    cluster = namespaces
    policies = enforced_examples()
    assert len(policies) >= 8
    # Plus two policies told apart by their namespace selector only.
    policies["team-a"] = ReadinessPolicySpec.model_validate(
        {"mode": "Enforce", "match": {"namespaceSelector": {"matchLabels": {"team": "a"}}},
         "rules": {"probes": {"liveness": True, "readiness": False}}})
    policies["team-b"] = ReadinessPolicySpec.model_validate(
        {"mode": "Enforce", "match": {"namespaceSelector": {"matchLabels": {"team": "b"}}},
         "rules": {"replicas": {"min": 2}}})
    generated = generate_vap(policies, name=NAME, now=datetime.now(UTC), excluded_namespaces=["kube-system"])
    assert set(generated.policies) == set(policies)
    vap, binding = generated.objects
    size = len(json.dumps(vap, separators=(",", ":")))
    print(f"merged VAP of {len(policies)} Enforce policies: {size} bytes, "
          f"{sum(len(p.checks) for p in generated.policies.values())} checks")
    cluster.apply(json.dumps(vap))
    cluster.apply(json.dumps(binding))
    # 10 containers that fail nearly every check, judged by all ten policies in one request.
    wide = deployment("wide", A, containers=10)
    denial = eventually(lambda: dry_run(cluster, wide), timeout=60, what="the merged VAP in force")
    assert "cost" not in denial.lower(), denial  # no "CEL cost limit exceeded": judged, not failed
    assert f"ValidatingAdmissionPolicy '{NAME}'" in denial and "[...]" not in denial, denial
    named = named_failures(denial)
    world = World(namespace_labels={"team": "a", "kubernetes.io/metadata.name": A})
    expected = {}
    for policy, spec in policies.items():
        failed = {f.check for f in evaluate(spec, wide, world).findings
                  if f.status == "fail" and f.check in generated.policies[policy].checks}
        if failed and policy != "team-b":  # namespace B's policy does not judge namespace A
            expected[policy] = failed
    assert len(expected) >= 6 and named == expected, (named, expected)
    print(f"its denial of a 10-container Deployment: {len(denial.encode())} bytes, "
          f"{len(named)} policies, {sum(map(len, named.values()))} checks")
    # In namespace B only team-b judges: its own check, none of the rules that selected namespace A.
    in_b = dry_run(cluster, deployment("narrow", B))
    assert named_failures(in_b) == {"team-b": {"replicas-min"}}, in_b
    ok = deployment("narrow-ok", B)
    ok["spec"]["replicas"] = 2
    assert dry_run(cluster, ok) == ""


def test_the_placeholders_deny_nothing(namespaces: Cluster) -> None:
    """The placeholder policy under the placeholder binding (the merged one's), right after a
    deny-all policy of the same name under that binding was seen denying (so the binding is in force)."""
    cluster = namespaces
    placeholder, binding = placeholder_objects(PLACEHOLDER, ["kube-system"])
    deny_all = {**placeholder, "spec": {**placeholder["spec"], "failurePolicy": "Fail",
                                        "validations": [{"expression": "false", "message": "denied by the test"}]}}
    bare = deployment("bare", PLACEHOLDER)  # fails nearly every check; no other test's policy selects it
    cluster.kubectl("create", "namespace", PLACEHOLDER)
    try:
        for obj in (deny_all, binding):
            cluster.apply(json.dumps(obj))
        eventually(lambda: "denied by the test" in dry_run(cluster, bare), timeout=30, what="the deny-all policy in force")
        cluster.kubectl("replace", "-f", "-", input=json.dumps(placeholder))
        eventually(lambda: dry_run(cluster, bare) == "", timeout=30, what="the placeholder policy in force")
        for containers in (1, 3, 10):  # and it admits everything
            assert dry_run(cluster, deployment("bare", PLACEHOLDER, containers=containers)) == ""
    finally:
        cluster.kubectl("delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", PLACEHOLDER,
                        "--ignore-not-found")
        cluster.kubectl("delete", "namespace", PLACEHOLDER, "--wait=false")


def named_failures(denial: str) -> dict[str, set[str]]:
    """Policy -> the checks its part of the merged denial names."""
    parts = re.findall(r'ReadinessPolicy "([^"]+)" \(Enforce, fail-safe\) denies this Deployment: (.*?)(?= ReadinessPolicy "|$)',
                       denial.strip())
    return {policy: set(re.findall(r"(?:^|; )([a-z0-9-]+): ", body)) for policy, body in parts}
