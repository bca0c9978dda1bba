"""Admission through `kubectl apply` against the real API server (issue 4): the operator's webhook
and its generated ValidatingAdmissionPolicies, never by calling the handler directly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.support.cluster import Cluster, KubectlError, eventually
from tests.support.operator import OperatorProcess, free_port
from tests.support.vap import DEFAULT_NAME as VAP
from tests.support.vap import holds

pytestmark = pytest.mark.e2e

CONFIG = "readiness-e2e"
RULES = {"probes": {"liveness": False, "readiness": True}, "replicas": {"min": 2}}


def policy(name: str, mode: str, namespace: str, **extra: Any) -> str:
    return yaml.safe_dump({"apiVersion": "readiness.dev/v1alpha1", "kind": "ReadinessPolicy",
                           "metadata": {"name": name},
                           "spec": {"mode": mode, "match": {"namespaces": [namespace]}, "rules": RULES, **extra}})


def deployment(namespace: str, name: str, *, probe: bool, replicas: int = 2,
               annotations: dict[str, str] | None = None, image: str = "app:1.0") -> str:
    container: dict[str, Any] = {"name": "app", "image": image}
    if probe:
        container["readinessProbe"] = {"httpGet": {"path": "/ready", "port": 8080}}
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations:
        meta["annotations"] = annotations
    return yaml.safe_dump({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}}},
    })


def webhook_operator(cluster: Cluster, log: Any) -> OperatorProcess:
    port = free_port()
    return OperatorProcess(cluster.kubeconfig, log, "--webhook-port", str(port), env={
        "READINESS_WEBHOOK_URL": f"https://127.0.0.1:{port}", "READINESS_WEBHOOK_ADDR": "127.0.0.1",
        "READINESS_NAMESPACE": "readiness-system", "READINESS_WEBHOOK_CONFIGURATION": CONFIG,
        "READINESS_WEBHOOK_FAILURE_POLICY": "Ignore", "READINESS_WEBHOOK_TIMEOUT_SECONDS": "5",
    })


@pytest.fixture(scope="module")
def admission(crds: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    cluster = crds
    for ns in ("adm-enforce", "adm-warn", "adm-audit", "adm-ignored"):
        cluster.kubectl("create", "namespace", ns)
    cluster.kubectl("label", "namespace", "adm-ignored", "readiness.dev/ignore=true")
    op = webhook_operator(cluster, tmp_path_factory.mktemp("admission") / "operator.log").start()
    cluster.apply(yaml.safe_dump({
        "apiVersion": "readiness.dev/v1alpha1", "kind": "ReadinessPolicy", "metadata": {"name": "adm-enforce"},
        "spec": {"mode": "Enforce", "match": {"namespaces": ["adm-enforce"]},
                 "rules": {**RULES, "podDisruptionBudget": {"required": True, "minAvailable": 1},
                           "rollingUpdate": {"required": True}},
                 "exemptions": [{"checks": ["probe-readiness", "replicas-min", "pdb-present", "pdb-min-available"],
                                 "names": ["legacy-*"], "reason": "migrating in Q1"}]}}))
    cluster.apply(policy("adm-warn", "Warn", "adm-warn"))
    cluster.apply(policy("adm-audit", "Audit", "adm-audit"))
    cluster.apply(policy("adm-ignored", "Enforce", "adm-ignored"))

    def webhook_warns() -> bool:
        result = cluster.kubectl("apply", "--dry-run=server", "-f", "-",
                                 input=deployment("adm-warn", "probe", probe=False))
        return "probe-readiness" in result.stderr

    eventually(webhook_warns, timeout=60, what="the webhook answering")
    eventually(lambda: holds(cluster, "adm-enforce"), what="the fail-safe VAP and binding")
    yield op
    for name in ("adm-enforce", "adm-warn", "adm-audit", "adm-ignored"):
        cluster.kubectl("delete", "rp", name, "--ignore-not-found", "--wait=false")
    op.stop()
    cluster.kubectl("delete", "validatingwebhookconfiguration", CONFIG, "--ignore-not-found")
    assert "Traceback" not in op.logs(), op.logs()[-5000:]


def test_enforce_denies_with_each_finding_and_fix(admission: OperatorProcess, crds: Cluster) -> None:
    # Static checks fail: the webhook or the generated ValidatingAdmissionPolicy (whichever the API
    # server asks first) denies, listing every failed check with its fix.
    with pytest.raises(KubectlError) as denied:
        crds.apply(deployment("adm-enforce", "web", probe=False, replicas=1))
    err = denied.value.stderr
    assert ('ReadinessPolicy "adm-enforce" (Enforce, fail-safe) denies' in err
            or 'admission webhook "deployments.readiness.dev" denied the request' in err), err
    assert "probe-readiness" in err and "replicas-min" in err and "readinessProbe" in err
    assert crds.kubectl("-n", "adm-enforce", "get", "deployment", "web", check=False).returncode != 0

    # Static checks pass, a live one fails (no PDB covers it): the webhook denies, with the fix.
    with pytest.raises(KubectlError) as live:
        crds.apply(deployment("adm-enforce", "web", probe=True))
    err = live.value.stderr
    assert 'admission webhook "deployments.readiness.dev" denied the request' in err
    assert 'ReadinessPolicy "adm-enforce"' in err and "pdb-present" in err and "PodDisruptionBudget" in err

    crds.apply(yaml.safe_dump({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                               "metadata": {"name": "web", "namespace": "adm-enforce"},
                               "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}}))
    eventually(lambda: crds.apply(deployment("adm-enforce", "web", probe=True)), what="admitted once its PDB exists")


def test_warn_admits_with_warnings_and_audit_admits_silently(admission: OperatorProcess, crds: Cluster) -> None:
    warned = crds.apply(deployment("adm-warn", "web", probe=False, replicas=1))
    assert "Warning:" in warned.stderr and "probe-readiness" in warned.stderr and "replicas-min" in warned.stderr
    audited = crds.apply(deployment("adm-audit", "web", probe=False, replicas=1))
    assert "Warning" not in audited.stderr
    for ns in ("adm-warn", "adm-audit"):
        assert crds.get_json("-n", ns, "deployment", "web")["metadata"]["name"] == "web"


def test_exempted_and_excluded_deployments_are_admitted(admission: OperatorProcess, crds: Cluster) -> None:
    crds.apply(deployment("adm-enforce", "legacy-billing", probe=False, replicas=1))
    crds.apply(deployment("adm-ignored", "web", probe=False, replicas=1))  # namespace opted out by label
    assert crds.get_json("-n", "adm-ignored", "deployment", "web")["spec"]["replicas"] == 1


def test_override_admits_records_an_event_and_the_report(admission: OperatorProcess, crds: Cluster) -> None:
    with pytest.raises(KubectlError) as blank:
        crds.apply(deployment("adm-enforce", "hotfix", probe=False, annotations={"readiness.dev/override": " "}))
    assert "probe-readiness" in blank.value.stderr  # a blank reason is no override
    admitted = crds.apply(deployment("adm-enforce", "hotfix", probe=False,
                                     annotations={"readiness.dev/override": "incident 4711, approved by SRE"}))
    assert "readiness.dev/override" in admitted.stderr

    def override_event() -> list[dict[str, Any]]:
        items = crds.get_json("-n", "adm-enforce", "events",
                              "--field-selector=involvedObject.name=hotfix,reason=ReadinessOverride")["items"]
        return list(items)

    [event] = eventually(override_event, what="ReadinessOverride Event")
    assert "incident 4711" in event["message"] and "probe-readiness" in event["message"]

    def report_override() -> bool:
        report = crds.get_json("-n", "adm-enforce", "policyreport", "readiness-adm-enforce")
        return any(r["resources"][0]["name"] == "hotfix" and "incident 4711" in r["properties"].get("override", "")
                   for r in report["results"])

    eventually(report_override, what="override recorded in the PolicyReport")


def test_the_report_records_who_approved_an_override_and_nothing_for_an_annotation_alone(
    admission: OperatorProcess, crds: Cluster
) -> None:
    """Issue #13.5: a user outside overrideUsers adding the annotation in a metadata-only edit (never
    judged) made the report say `override: approved by nobody`; an override the webhook admitted is
    recorded with the user the API server authenticated."""
    ns = "adm-override"
    crds.kubectl("create", "namespace", ns)
    crds.apply(deployment(ns, "old", probe=False))  # noncompliant, from before the policy
    crds.apply(policy("adm-override", "Enforce", ns, admission={"overrideUsers": ["alice"]}))
    as_alice, as_mallory = (("--as", user, "--as-group", "system:masters") for user in ("alice", "mallory"))
    hotfix = deployment(ns, "hotfix", probe=False, annotations={"readiness.dev/override": "INC-42, alice on call"})

    def mallory_denied() -> bool:
        result = crds.kubectl("apply", *as_mallory, "--dry-run=server", "-f", "-", input=hotfix, check=False)
        return result.returncode != 0 and "probe-readiness" in result.stderr

    eventually(mallory_denied, what="the policy enforced, mallory not allowed to override")
    try:
        crds.kubectl("annotate", *as_mallory, "-n", ns, "deployment", "old", "readiness.dev/override=approved by nobody")
        crds.kubectl("apply", *as_alice, "-f", "-", input=hotfix)

        def recorded() -> dict[str, dict[str, str]]:
            report = crds.get_json("-n", ns, "policyreport", "readiness-adm-override")
            props = {r["resources"][0]["name"]: r["properties"] for r in report["results"]}
            assert set(props) == {"old", "hotfix"} and "override" in props["hotfix"]
            return props

        props = eventually(recorded, what="the override recorded in the PolicyReport")
        assert "override" not in props["old"] and "overrideBy" not in props["old"], props["old"]
        assert (props["hotfix"]["override"], props["hotfix"]["overrideBy"]) == ("INC-42, alice on call", "alice")
        [event] = crds.get_json("-n", ns, "events", "--field-selector=involvedObject.name=hotfix,reason=ReadinessOverride",
                                "-l", "readiness.dev/event=override")["items"]
        assert event["metadata"]["annotations"]["readiness.dev/override-user"] == "alice"
    finally:
        crds.kubectl("delete", "rp", "adm-override", "--ignore-not-found", "--wait=false")


def pdb(namespace: str, name: str) -> str:
    return yaml.safe_dump({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                           "metadata": {"name": name, "namespace": namespace},
                           "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": name}}}})


def test_scaling_a_noncompliant_deployment_still_works(admission: OperatorProcess, crds: Cluster) -> None:
    crds.apply(deployment("adm-enforce", "scalable", probe=False,
                          annotations={"readiness.dev/override": "pre-existing workload"}))
    crds.kubectl("-n", "adm-enforce", "scale", "deployment", "scalable", "--replicas=3")  # up: never denied
    eventually(lambda: crds.get_json("-n", "adm-enforce", "deployment", "scalable")["spec"]["replicas"] == 3,
               what="scaled")
    # An update that does not touch the spec is not blocked by old violations.
    crds.kubectl("-n", "adm-enforce", "label", "deployment", "scalable", "owner=team-a")


def test_scale_subresource_below_the_minimum_is_denied(admission: OperatorProcess, crds: Cluster) -> None:
    # `kubectl scale` goes through deployments/scale (an autoscaling/v1 Scale): judged like a patch of
    # spec.replicas, by the webhook (from the indexed Deployment) and by the fail-safe VAP.
    crds.apply(pdb("adm-enforce", "scaled"))
    eventually(lambda: crds.apply(deployment("adm-enforce", "scaled", probe=True, replicas=2)), what="created")
    for replicas in ("0", "1"):
        with pytest.raises(KubectlError) as denied:
            crds.kubectl("-n", "adm-enforce", "scale", "deployment", "scaled", f"--replicas={replicas}")
        assert "replicas-min" in denied.value.stderr, denied.value.stderr
    patch = '{"spec": {"replicas": 0}}'
    with pytest.raises(KubectlError) as patched:  # the same answer as a patch of spec.replicas
        crds.kubectl("-n", "adm-enforce", "patch", "deployment", "scaled", "--type=merge", "-p", patch)
    assert "replicas-min" in patched.value.stderr
    crds.kubectl("-n", "adm-enforce", "scale", "deployment", "scaled", "--replicas=4")
    crds.kubectl("-n", "adm-enforce", "scale", "deployment", "scaled", "--replicas=2")  # down, not below
    assert crds.get_json("-n", "adm-enforce", "deployment", "scaled")["spec"]["replicas"] == 2


def test_strategy_only_change_and_server_side_apply_are_judged(admission: OperatorProcess, crds: Cluster) -> None:
    crds.apply(pdb("adm-enforce", "strategy"))
    owned = yaml.safe_load(deployment("adm-enforce", "strategy", probe=True))
    # Owning rollingUpdate lets the second apply (Recreate) drop it.
    owned["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}
    manifest = yaml.safe_dump(owned)
    eventually(lambda: crds.kubectl("apply", "--server-side", "--field-manager=e2e", "-f", "-", input=manifest),
               what="created by server-side apply")
    recreate = '{"spec": {"strategy": {"type": "Recreate", "rollingUpdate": null}}}'
    with pytest.raises(KubectlError) as denied:
        crds.kubectl("-n", "adm-enforce", "patch", "deployment", "strategy", "--type=merge", "-p", recreate)
    assert "rolling-update" in denied.value.stderr, denied.value.stderr
    as_applied = yaml.safe_load(manifest)
    as_applied["spec"]["strategy"] = {"type": "Recreate"}
    with pytest.raises(KubectlError) as applied:  # the same change through server-side apply
        crds.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=e2e", "-f", "-",
                     input=yaml.safe_dump(as_applied))
    assert "rolling-update" in applied.value.stderr
    noncompliant = deployment("adm-enforce", "strategy-bad", probe=False)
    with pytest.raises(KubectlError) as created:
        crds.kubectl("apply", "--server-side", "--field-manager=e2e", "-f", "-", input=noncompliant)
    assert "probe-readiness" in created.value.stderr
    assert crds.get_json("-n", "adm-enforce", "deployment", "strategy")["spec"]["strategy"]["type"] == "RollingUpdate"


def test_rollout_undo_is_a_judged_rollout(admission: OperatorProcess, crds: Cluster) -> None:
    # `kubectl rollout undo` patches the pod template back to an earlier revision: a rollout, judged
    # by every static check (only SLO Block gates let rollbacks through).
    crds.apply(pdb("adm-enforce", "undo"))
    eventually(lambda: crds.apply(deployment("adm-enforce", "undo", probe=True, image="app:1.0")), what="v1")
    crds.apply(deployment("adm-enforce", "undo", probe=True, image="app:2.0"))

    def revisions() -> bool:
        items = crds.get_json("-n", "adm-enforce", "replicasets")["items"]
        return len([rs for rs in items if rs["metadata"]["name"].startswith("undo-")]) >= 2

    eventually(revisions, timeout=60, what="two ReplicaSets (revisions)")
    crds.kubectl("-n", "adm-enforce", "rollout", "undo", "deployment/undo")
    image = crds.get_json("-n", "adm-enforce", "deployment", "undo")["spec"]["template"]["spec"]["containers"][0]
    assert image["image"] == "app:1.0"
    bad = yaml.safe_load(deployment("adm-enforce", "undo", probe=False, image="app:3.0"))
    with pytest.raises(KubectlError) as denied:
        crds.kubectl("apply", "-f", "-", input=yaml.safe_dump(bad))
    assert "probe-readiness" in denied.value.stderr


def test_policy_webhook_rejects_what_the_schema_cannot(admission: OperatorProcess, crds: Cluster) -> None:
    bad = yaml.safe_dump({"apiVersion": "readiness.dev/v1alpha1", "kind": "ReadinessPolicy",
                          "metadata": {"name": "adm-bad"},
                          "spec": {"rules": RULES, "slos": [{
                              "name": "broken", "comparison": "<", "threshold": 1,
                              "query": 'sum(rate(x{namespace="{{namespace}}", deployment="{{name}}"}[5m])'}]}})
    with pytest.raises(KubectlError) as rejected:
        crds.apply(bad)
    err = rejected.value.stderr
    assert 'admission webhook "readinesspolicies.readiness.dev" denied' in err
    assert "spec.slos[0].query" in err


@pytest.mark.parametrize(("slo", "field", "says"), [
    ({"interval": "0s"}, "spec.slos[0].interval", "shorter than 1s"),
    ({"query": 'rate({{name}}_total{namespace="{{namespace}}", deployment="{{name}}"}[5m])'},
     "spec.slos[0].query", "only allowed as label matcher values"),
    ({"query": 'rate(x{namespace="{{namespace}}", deployment=~"{{name}}"}[5m])'},
     "spec.slos[0].query", "an equality matcher"),
])
def test_slos_that_cannot_run_are_rejected_at_apply_time(
    admission: OperatorProcess, crds: Cluster, slo: dict[str, str], field: str, says: str
) -> None:
    """Issue 14, 7g: a 0s interval (a query loop) and placeholders the batcher cannot rewrite."""
    base = {"name": "s", "comparison": "<", "threshold": 1,
            "query": 'sum(rate(x{namespace="{{namespace}}", deployment="{{name}}"}[5m]))'}
    bad = yaml.safe_dump({"apiVersion": "readiness.dev/v1alpha1", "kind": "ReadinessPolicy",
                          "metadata": {"name": "adm-bad-slo"}, "spec": {"slos": [{**base, **slo}]}})
    with pytest.raises(KubectlError) as rejected:
        crds.apply(bad)
    err = rejected.value.stderr
    assert f"{field}: " in err and says in err, err


def test_fail_safe_vap_enforces_static_checks_while_the_operator_is_down(
    admission: OperatorProcess, crds: Cluster
) -> None:
    eventually(lambda: holds(crds, "adm-enforce"), what="generated ValidatingAdmissionPolicy")
    admission.stop()
    try:
        with pytest.raises(KubectlError) as denied:
            crds.apply(deployment("adm-enforce", "while-down", probe=False))
        err = denied.value.stderr
        assert f"ValidatingAdmissionPolicy '{VAP}'" in err and "probe-readiness" in err
        assert 'ReadinessPolicy "adm-enforce" (Enforce, fail-safe) denies' in err
        assert "deployments.readiness.dev" not in err  # the webhook is down; the VAP alone decided
        # The webhook is unreachable and fails open (Ignore): compliant Deployments still go through,
        # and so does anything in namespaces without an Enforce policy.
        crds.apply(deployment("adm-enforce", "ok-while-down", probe=True))
        crds.apply(deployment("adm-audit", "also-ok", probe=False, replicas=1))
        with pytest.raises(KubectlError) as scaled:  # the scale subresource, judged by the VAP alone
            crds.kubectl("-n", "adm-enforce", "scale", "deployment", "ok-while-down", "--replicas=0")
        assert f"ValidatingAdmissionPolicy '{VAP}'" in scaled.value.stderr
        assert 'ReadinessPolicy "adm-enforce" (Enforce, fail-safe) denies' in scaled.value.stderr
        assert "replicas-min" in scaled.value.stderr
        patch = '{"spec": {"strategy": {"type": "Recreate", "rollingUpdate": null}}}'
        with pytest.raises(KubectlError) as recreated:  # a strategy-only change, judged by the VAP alone
            crds.kubectl("-n", "adm-enforce", "patch", "deployment", "ok-while-down", "--type=merge", "-p", patch)
        assert "rolling-update" in recreated.value.stderr
    finally:
        admission.start()


def test_an_oversized_deployment_is_judged_not_failed_open(admission: OperatorProcess, crds: Cluster) -> None:
    # ~2.5 MiB of env (2,500 x 1 KiB): the AdmissionReview is far above aiohttp's 1 MiB default. The
    # webhook must judge it (no PDB: pdb-present, a live check only the webhook makes) instead of
    # answering 413, which the API server (failurePolicy Ignore) would take as "admit".
    big = yaml.safe_load(deployment("adm-enforce", "oversized", probe=True))
    big["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": f"VAR_{i}", "value": "v" * 1024} for i in range(2500)]
    body = json.dumps(big)
    assert len(body) > int(2.5 * 1024 * 1024)
    with pytest.raises(KubectlError) as denied:
        crds.kubectl("create", "-f", "-", input=body)  # create: apply's annotation would double the size
    err = denied.value.stderr
    assert 'admission webhook "deployments.readiness.dev" denied the request' in err, err[-2000:]
    assert "pdb-present" in err
    assert crds.kubectl("-n", "adm-enforce", "get", "deployment", "oversized", check=False).returncode != 0


def test_webhook_judges_the_pod_security_checks_without_echoing_secrets(
    admission: OperatorProcess, crds: Cluster
) -> None:
    ns, secret = "adm-podsec", "hunter2-e2e-value"
    crds.kubectl("create", "namespace", ns)
    crds.apply(yaml.safe_dump({
        "apiVersion": "readiness.dev/v1alpha1", "kind": "ReadinessPolicy", "metadata": {"name": ns},
        "spec": {"mode": "Warn", "match": {"namespaces": [ns]}, "rules": {
            "podSecurity": {"noHostNetwork": True, "noPlainSecretEnv": True, "capabilities": {}},
            "images": {"forbidLatest": False, "allowedRegistries": ["registry.example.com"]}}}}))
    manifest = yaml.safe_load(deployment(ns, "web", probe=True, image="nginx:1.27"))
    pod = manifest["spec"]["template"]["spec"]
    pod["hostNetwork"] = True
    pod["containers"][0]["env"] = [{"name": "DB_PASSWORD", "value": secret}]
    pod["containers"][0]["securityContext"] = {"capabilities": {"add": ["NET_ADMIN"]}}

    def warned() -> str:
        result = crds.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(manifest))
        assert "no-host-network" in result.stderr, result.stderr
        return result.stderr

    err = eventually(warned, timeout=30, what="the webhook judging the new policy")
    for check in ("no-host-network", "no-plain-secret-env", "capabilities-allowed", "image-registry-allowed"):
        assert check in err, err
    assert "DB_PASSWORD" in err and secret not in err
    crds.kubectl("delete", "rp", ns, "--wait=false")
    crds.kubectl("delete", "namespace", ns, "--wait=false")


def test_webhook_sees_the_namespaces_network_policies(admission: OperatorProcess, crds: Cluster) -> None:
    ns = "adm-netpol"
    crds.kubectl("create", "namespace", ns)
    crds.apply(yaml.safe_dump({
        "apiVersion": "readiness.dev/v1alpha1", "kind": "ReadinessPolicy", "metadata": {"name": ns},
        "spec": {"mode": "Warn", "match": {"namespaces": [ns]}, "rules": {"networkPolicy": {}}}}))
    manifest = deployment(ns, "web", probe=True)

    def warnings() -> str:
        return crds.kubectl("apply", "--dry-run=server", "-f", "-", input=manifest).stderr

    eventually(lambda: "network-policy" in warnings(), timeout=30, what="a warning without a NetworkPolicy")
    crds.apply(yaml.safe_dump({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "default-deny", "namespace": ns},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}))
    eventually(lambda: "network-policy" not in warnings(), timeout=30, what="no warning once a policy selects the pods")
    crds.kubectl("delete", "rp", ns, "--wait=false")
    crds.kubectl("delete", "namespace", ns, "--wait=false")
