"""The operator against the real API server: verdicts in `kubectl get rp`, flips, reports, Events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.support.cluster import REPO_ROOT, Cluster, KubectlError, eventually
from tests.support.operator import OperatorProcess

pytestmark = pytest.mark.e2e

EXAMPLES = REPO_ROOT / "examples"
# What the tests create, removed when the module ends (later modules must not inherit them).
POLICIES = ("flip", "hpa-replicas", "team-payments", "multi-probes", "multi-replicas", "restart", "idle", "idle-probe")
NAMESPACES = ("demo", "e2e-flip", "e2e-hpa", "e2e-nslabels", "e2e-multi", "e2e-restart", "e2e-idle")


@pytest.fixture(scope="module")
def operator(crds: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    op = OperatorProcess(crds.kubeconfig, tmp_path_factory.mktemp("operator") / "operator.log").start()
    yield op
    try:
        if op.process is None or op.process.poll() is not None:
            op.start()  # the finalizers need a running operator
        crds.kubectl("delete", "rp", *POLICIES, "--ignore-not-found", "--timeout=60s", timeout=90)
    finally:
        op.stop()
        crds.kubectl("delete", "namespace", *NAMESPACES, "--ignore-not-found", "--wait=false")
    assert "Traceback" not in op.logs(), op.logs()[-5000:]


def rp_table(cluster: Cluster) -> dict[str, dict[str, str]]:
    lines = cluster.kubectl("get", "rp").stdout.splitlines()
    header = lines[0].split()
    return {row.split()[0]: dict(zip(header, row.split(), strict=False)) for row in lines[1:]}


def status(cluster: Cluster, policy: str) -> dict[str, Any]:
    return dict(cluster.get_json("rp", policy).get("status") or {})


def counts(cluster: Cluster, policy: str) -> tuple[int, int, int] | None:
    s = status(cluster, policy)
    if "targets" not in s:
        return None
    return s["targets"], s["compliant"], s["noncompliant"]


def events(cluster: Cluster, namespace: str, name: str, reason: str) -> list[dict[str, Any]]:
    items = cluster.get_json("-n", namespace, "events", f"--field-selector=involvedObject.name={name},reason={reason}")
    return list(items["items"])


def deployment(namespace: str, name: str, *, labels: dict[str, str], probe: bool, replicas: int = 1) -> str:
    container: dict[str, Any] = {"name": "app", "image": "registry.example/app:1.2.3"}
    if probe:
        container["readinessProbe"] = {"httpGet": {"path": "/ready", "port": 8080}}
    return yaml.safe_dump({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name, **labels}}, "spec": {"containers": [container]}},
        },
    })


def policy(name: str, spec: dict[str, Any]) -> str:
    return yaml.safe_dump({"apiVersion": "readiness.dev/v1alpha1", "kind": "ReadinessPolicy",
                           "metadata": {"name": name}, "spec": spec})


def example_policies_scoped_to(namespace: str) -> str:
    """The example policies, limited to one namespace so other tests' Deployments don't count."""
    docs = []
    for path in sorted((EXAMPLES / "policies").glob("*.yaml")):
        policy_doc = yaml.safe_load(path.read_text())
        policy_doc["spec"].setdefault("match", {})["namespaces"] = [namespace]
        docs.append(yaml.safe_dump(policy_doc))
    return "---\n".join(docs)


def test_example_policies_show_real_verdicts(operator: OperatorProcess, crds: Cluster) -> None:
    cluster = crds
    cluster.kubectl("create", "namespace", "demo")
    cluster.kubectl("apply", "-f", str(EXAMPLES / "workloads"))
    policies = example_policies_scoped_to("demo")
    cluster.apply(policies)
    try:
        def all_counted() -> bool:
            table = rp_table(cluster)
            return all(table.get(p, {}).get("READY") == "True" for p in ("baseline", "production", "hardened"))

        eventually(all_counted, timeout=30, what="READY=True for the example policies")
        table = rp_table(cluster)
        for name, mode in (("baseline", "Audit"), ("production", "Warn"), ("hardened", "Enforce")):
            row = table[name]
            # each example policy selects one compliant and one noncompliant Deployment
            assert (row["MODE"], row["TARGETS"], row["COMPLIANT"], row["NONCOMPLIANT"]) == (mode, "2", "1", "1"), row
            assert 0 <= int(row["SCORE"]) < 100
        production = status(cluster, "production")
        [offender] = production["worstOffenders"]
        assert offender["namespace"] == "demo" and "pdb-present" in offender["failedChecks"]
        assert {c["type"]: c["status"] for c in production["conditions"]}["Compliant"] == "False"
        # kopf's bookkeeping stays out of the user-facing status
        assert "kopf" not in production

        # One PolicyReport per policy in the namespace, one result per Deployment x check.
        report = cluster.get_json("-n", "demo", "policyreport", "readiness-production")
        by_deployment: dict[str, set[str]] = {}
        for result in report["results"]:
            by_deployment.setdefault(result["resources"][0]["name"], set()).add(result["result"])
        assert len(by_deployment) == 2
        assert report["summary"]["fail"] > 0 and report["summary"]["pass"] > 0
        assert report["metadata"]["ownerReferences"][0]["kind"] == "ReadinessPolicy"
    finally:
        cluster.kubectl("delete", "-f", "-", "--ignore-not-found", input=policies)
    eventually(lambda: not cluster.get_json("-n", "demo", "policyreports")["items"], timeout=30,
               what="reports of deleted policies removed")


def test_fixing_a_deployment_flips_its_verdict_counts_and_events(operator: OperatorProcess, crds: Cluster) -> None:
    cluster, ns = crds, "e2e-flip"
    cluster.kubectl("create", "namespace", ns)
    cluster.apply(policy("flip", {
        "mode": "Audit", "match": {"namespaces": [ns]},
        "rules": {"probes": {"liveness": False, "readiness": True, "startup": False},
                  "podDisruptionBudget": {"required": True, "minAvailable": 1}},
    }))
    cluster.apply(deployment(ns, "web", labels={"team": "a"}, probe=False, replicas=2))
    cluster.apply(deployment(ns, "api", labels={"team": "a"}, probe=True, replicas=2))
    eventually(lambda: counts(cluster, "flip") == (2, 0, 2), what="two noncompliant")
    assert any("probe-readiness" in o["failedChecks"] for o in status(cluster, "flip")["worstOffenders"])

    # A PDB covering both pod templates: `api` now complies, `web` still lacks its probe.
    cluster.apply(yaml.safe_dump({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "all", "namespace": ns},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"team": "a"}}},
    }))
    eventually(lambda: counts(cluster, "flip") == (2, 1, 1), what="PDB makes api compliant")
    eventually(lambda: events(cluster, ns, "api", "ReadinessCompliant"), what="Normal Event on api")

    cluster.apply(deployment(ns, "web", labels={"team": "a"}, probe=True, replicas=2))
    eventually(lambda: counts(cluster, "flip") == (2, 2, 0), what="fixed web complies")
    compliant = {c["type"]: c for c in status(cluster, "flip")["conditions"]}["Compliant"]
    assert (compliant["status"], compliant["reason"]) == ("True", "AllCompliant")

    # `web` was born noncompliant (one Warning Event then); losing the PDB is one more transition.
    before = len(events(cluster, ns, "web", "ReadinessNoncompliant"))
    cluster.kubectl("-n", ns, "delete", "pdb", "all")
    eventually(lambda: counts(cluster, "flip") == (2, 0, 2), what="deleting the PDB flips both back")
    eventually(lambda: len(events(cluster, ns, "web", "ReadinessNoncompliant")) == before + 1,
               what="one more Warning Event on web")
    warning = max(events(cluster, ns, "web", "ReadinessNoncompliant"), key=lambda e: e["metadata"]["creationTimestamp"])
    assert warning["type"] == "Warning" and "pdb-present" in warning["message"]

    # Events only on transitions: an unrelated Deployment update does not repeat them.
    cluster.kubectl("-n", ns, "annotate", "deployment", "web", "touched=yes")
    cluster.kubectl("-n", ns, "delete", "deployment", "api")
    eventually(lambda: counts(cluster, "flip") == (1, 0, 1), what="deleted Deployment no longer counted")
    assert len(events(cluster, ns, "web", "ReadinessNoncompliant")) == before + 1


def test_hpa_min_replicas_counts_for_replicas_min(operator: OperatorProcess, crds: Cluster) -> None:
    cluster, ns = crds, "e2e-hpa"
    cluster.kubectl("create", "namespace", ns)
    cluster.apply(policy("hpa-replicas", {"match": {"namespaces": [ns]}, "rules": {"replicas": {"min": 3}}}))
    cluster.apply(deployment(ns, "web", labels={}, probe=True, replicas=1))
    eventually(lambda: counts(cluster, "hpa-replicas") == (1, 0, 1), what="1 replica fails replicas-min")
    cluster.apply(yaml.safe_dump({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web", "namespace": ns},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                 "minReplicas": 3, "maxReplicas": 6,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                                                               "target": {"type": "Utilization", "averageUtilization": 70}}}]},
    }))
    eventually(lambda: counts(cluster, "hpa-replicas") == (1, 1, 0), what="the HPA's minReplicas satisfies it")


def test_namespace_labels_change_the_selection(operator: OperatorProcess, crds: Cluster) -> None:
    cluster, ns = crds, "e2e-nslabels"
    cluster.kubectl("create", "namespace", ns)
    cluster.apply(deployment(ns, "web", labels={}, probe=False))
    cluster.apply(policy("team-payments", {
        "match": {"namespaceSelector": {"matchLabels": {"team": "payments"}}},
        "rules": {"probes": {"liveness": False, "readiness": True}},
    }))
    eventually(lambda: counts(cluster, "team-payments") == (0, 0, 0), what="nothing selected yet")
    cluster.kubectl("label", "namespace", ns, "team=payments")
    eventually(lambda: counts(cluster, "team-payments") == (1, 0, 1), what="labelled namespace selected")
    cluster.kubectl("label", "namespace", ns, "team-")
    eventually(lambda: counts(cluster, "team-payments") == (0, 0, 0), what="unlabelled namespace dropped")


def test_several_policies_select_one_deployment(operator: OperatorProcess, crds: Cluster) -> None:
    cluster, ns = crds, "e2e-multi"
    cluster.kubectl("create", "namespace", ns)
    cluster.apply(deployment(ns, "web", labels={}, probe=True, replicas=1))
    cluster.apply(policy("multi-probes", {"match": {"namespaces": [ns]},
                                          "rules": {"probes": {"liveness": False, "readiness": True}}}))
    cluster.apply(policy("multi-replicas", {"match": {"namespaces": [ns]}, "rules": {"replicas": {"min": 2}}}))
    eventually(lambda: counts(cluster, "multi-probes") == (1, 1, 0), what="probes policy passes")
    eventually(lambda: counts(cluster, "multi-replicas") == (1, 0, 1), what="replicas policy fails")
    names = {r["metadata"]["name"] for r in cluster.get_json("-n", ns, "policyreports")["items"]}
    assert names == {"readiness-multi-probes", "readiness-multi-replicas"}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"rules": {"horizontalPodAutoscaler": {"minReplicas": 5, "maxReplicas": 2}}},
         "spec.rules.horizontalPodAutoscaler"),
        ({"rules": {"probes": {"livenes": True}}}, 'unknown field "spec.rules.probes.livenes"'),
        ({"mode": "Block"}, "spec.mode"),
        ({"rules": {"replicas": {"min": -1}}}, "spec.rules.replicas.min"),
    ],
)
def test_invalid_policies_are_rejected_by_the_api_server(crds: Cluster, spec: dict[str, Any], expected: str) -> None:
    with pytest.raises(KubectlError) as rejected:
        crds.apply(policy("invalid", spec))
    assert expected in rejected.value.stderr


def test_operator_restart_converges_without_duplicates(operator: OperatorProcess, crds: Cluster) -> None:
    cluster, ns = crds, "e2e-restart"
    cluster.kubectl("create", "namespace", ns)
    cluster.apply(policy("restart", {"match": {"namespaces": [ns]},
                                     "rules": {"probes": {"liveness": False, "readiness": True}}}))
    for i in range(3):
        cluster.apply(deployment(ns, f"web-{i}", labels={}, probe=False))
    eventually(lambda: counts(cluster, "restart") == (3, 0, 3), what="three noncompliant")
    before = cluster.get_json("rp", "restart")

    # A restart with nothing changed writes nothing: same resourceVersion, same status.
    operator.stop()
    operator.start()
    cluster.apply(deployment(ns, "web-0", labels={}, probe=True))  # a change made after the restart
    eventually(lambda: counts(cluster, "restart") == (3, 1, 2), what="converged after restart")
    after = cluster.get_json("rp", "restart")
    assert after["status"]["observedGeneration"] == before["status"]["observedGeneration"]
    # SIGKILL mid-run, a change while down: the next start catches up.
    operator.kill()
    cluster.apply(deployment(ns, "web-1", labels={}, probe=True))
    operator.start()
    eventually(lambda: counts(cluster, "restart") == (3, 2, 1), what="converged after SIGKILL")
    reports = cluster.get_json("-n", ns, "policyreports")["items"]
    assert [r["metadata"]["name"] for r in reports] == ["readiness-restart"]
    assert len({(r["resources"][0]["name"], r["rule"]) for r in reports[0]["results"]}) == len(reports[0]["results"]) == 3
    for name in ("web-0", "web-1"):
        eventually(lambda name=name: len(events(cluster, ns, name, "ReadinessCompliant")) == 1,
                   what=f"one compliant Event for {name}")
    assert events(cluster, ns, "web-2", "ReadinessCompliant") == []


def test_idle_restart_writes_nothing(operator: OperatorProcess, crds: Cluster) -> None:
    cluster, ns = crds, "e2e-idle"
    cluster.kubectl("create", "namespace", ns)
    cluster.apply(policy("idle", {"match": {"namespaces": [ns]}, "rules": {"replicas": {"min": 2}}}))
    cluster.apply(deployment(ns, "web", labels={}, probe=True))
    eventually(lambda: counts(cluster, "idle") == (1, 0, 1), what="evaluated")
    version = cluster.get_json("rp", "idle")["metadata"]["resourceVersion"]
    report_version = cluster.get_json("-n", ns, "policyreport", "readiness-idle")["metadata"]["resourceVersion"]
    operator.stop()
    operator.start()
    # Let the restarted operator finish a pass on this policy (an edit elsewhere wakes nothing here).
    cluster.apply(policy("idle-probe", {"match": {"namespaces": [ns]}, "rules": {"replicas": {"min": 1}}}))
    eventually(lambda: counts(cluster, "idle-probe") == (1, 1, 0), what="restarted operator working")
    assert cluster.get_json("rp", "idle")["metadata"]["resourceVersion"] == version
    assert cluster.get_json("-n", ns, "policyreport", "readiness-idle")["metadata"]["resourceVersion"] == report_version

