"""Admission decisions: modes, strictest wins, SLO gates, change kinds, override, exclusions, limits."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from readiness_operator.admission.decide import (
    MAX_MESSAGE_CHARS,
    MAX_WARNING_CHARS,
    MAX_WARNINGS,
    AdmissionDecision,
    classify_change,
    pod_template_digest,
    review_deployment,
    scale_as_deployment_update,
)
from readiness_operator.engine import evaluate
from readiness_operator.model import ReadinessPolicySpec
from readiness_operator.names import OVERRIDE_ANNOTATION
from readiness_operator.world import SloMeasurement, World

NOW = datetime(2025, 6, 1, tzinfo=UTC)
PROBES: dict[str, Any] = {"livenessProbe": {"exec": {}}, "readinessProbe": {"exec": {}}}


def spec(mode: str = "Enforce", **raw: Any) -> ReadinessPolicySpec:
    raw.setdefault("rules", {"probes": {}})
    return ReadinessPolicySpec.model_validate({"mode": mode, **raw})


def deployment(
    *, probes: bool = False, replicas: int = 3, annotations: dict[str, str] | None = None, ns: str = "demo", **labels: str
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "web", "image": "web:1.0", **(PROBES if probes else {})}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": ns,
            "labels": {"app": "web", **labels},
            "annotations": annotations or {},
        },
        "spec": {
            "replicas": replicas,
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [container]}},
        },
    }


def request(
    obj: dict[str, Any] | None,
    *,
    op: str = "CREATE",
    old: dict[str, Any] | None = None,
    sub: str | None = None,
    user: str = "alice",
    groups: tuple[str, ...] = ("system:authenticated",),
    dry_run: bool = False,
    resource: str = "deployments",
) -> dict[str, Any]:
    req: dict[str, Any] = {
        "uid": "u1",
        "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
        "resource": {"group": "apps", "version": "v1", "resource": resource},
        "operation": op,
        "namespace": "demo",
        "name": "web",
        "object": obj,
        "oldObject": old,
        "userInfo": {"username": user, "groups": list(groups)},
        "dryRun": dry_run,
    }
    if sub:
        req["subResource"] = sub
    return req


def world(slos: Mapping[str, float | None] | None = None, ns_labels: Mapping[str, str] | None = None) -> Any:
    measurements = {k: SloMeasurement(v, NOW if v is not None else None) for k, v in (slos or {}).items()}

    def world_of(obj: Mapping[str, Any]) -> World:
        return World(namespace_labels=dict(ns_labels or {}), slo_measurements=measurements, now=NOW)

    return world_of


def review(req: dict[str, Any], *policies: tuple[str, ReadinessPolicySpec], **kw: Any) -> AdmissionDecision:
    world_of = kw.pop("world_of", world())
    return review_deployment(req, list(policies), world_of, **kw)


SLO_QUERY = 'sum(rate(x{namespace="{{namespace}}", deployment="{{name}}"}[5m]))'


def slo_spec(mode: str, on_breach: str, *, block_on_unknown: bool = False) -> ReadinessPolicySpec:
    return spec(
        mode,
        rules={},
        slos=[
            {
                "name": "availability",
                "query": SLO_QUERY,
                "comparison": ">=",
                "threshold": 0.999,
                "onBreach": on_breach,
                "blockOnUnknown": block_on_unknown,
            }
        ],
    )


# --------------------------------------------------------------------------- modes


@pytest.mark.parametrize(
    ("mode", "allowed", "n_warnings"),
    [("Enforce", False, 0), ("Warn", True, 2), ("Audit", True, 0)],
)
def test_mode_decides(mode: str, allowed: bool, n_warnings: int) -> None:
    d = review(request(deployment()), ("p", spec(mode)))
    assert d.allowed is allowed
    assert len(d.warnings) == n_warnings
    assert d.verdicts and d.verdicts[0][0] == "p"
    if not allowed:
        assert d.message.startswith('ReadinessPolicy "p" (Enforce) denies Deployment demo/web:\n- probe-liveness: ')
        assert "- probe-readiness: container 'web' has no readinessProbe" in d.message
        assert "Fix: " in d.message
        assert d.denied_by == ["p"]
    else:
        assert d.message == ""


def test_compliant_deployment_is_allowed_silently() -> None:
    d = review(request(deployment(probes=True)), ("p", spec("Enforce")))
    assert d.allowed and not d.warnings and d.skipped_reason is None and d.change == "create"


def test_enforce_info_failures_only_warn() -> None:
    p = spec("Enforce", rules={"probes": {"liveness": False, "readiness": False, "startup": True}})
    d = review(request(deployment(probes=True)), ("p", p))
    assert d.allowed
    assert d.warnings == [
        "ReadinessPolicy \"p\" (Enforce): probe-startup: container 'web' has no startupProbe; add "
        "spec.template.spec.containers[name=web].startupProbe (e.g. httpGet on /healthz with failureThreshold x "
        "periodSeconds >= the startup time)"
    ]


def test_strictest_wins_and_message_names_each_denying_policy() -> None:
    d = review(
        request(deployment()),
        ("audit", spec("Audit")),
        ("warn", spec("Warn")),
        ("enforce-a", spec("Enforce")),
        ("enforce-b", spec("Enforce", rules={"probes": {"liveness": False}})),
    )
    assert not d.allowed
    assert d.denied_by == ["enforce-a", "enforce-b"]
    assert 'ReadinessPolicy "enforce-a" (Enforce) denies' in d.message
    assert 'ReadinessPolicy "enforce-b" (Enforce) denies' in d.message
    assert 'ReadinessPolicy "warn" (Warn): probe-liveness' in "\n".join(d.warnings)
    assert not any('"audit"' in w for w in d.warnings)
    assert [name for name, _ in d.verdicts] == ["audit", "warn", "enforce-a", "enforce-b"]


def test_policies_that_do_not_match_are_ignored() -> None:
    p = spec("Enforce", match={"selector": {"matchLabels": {"tier": "production"}}})
    d = review(request(deployment()), ("p", p))
    assert d.allowed and d.skipped_reason == "no ReadinessPolicy selects this Deployment"
    d = review(request(deployment(tier="production")), ("p", p))
    assert not d.allowed


def test_namespace_labels_come_from_world() -> None:
    p = spec("Enforce", match={"namespaceSelector": {"matchLabels": {"env": "prod"}}})
    assert review(request(deployment()), ("p", p)).allowed
    assert not review(request(deployment()), ("p", p), world_of=world(ns_labels={"env": "prod"})).allowed


def test_namespace_from_request_when_object_has_none() -> None:
    obj = deployment()
    del obj["metadata"]["namespace"]
    p = spec("Enforce", match={"namespaces": ["demo"]})
    d = review(request(obj), ("p", p))
    assert not d.allowed and "Deployment demo/web" in d.message


def test_excluded_namespace_is_untouched() -> None:
    d = review(request(deployment(ns="kube-system")), ("p", spec()), excluded_namespaces={"kube-system"})
    assert d.allowed and not d.warnings and not d.verdicts
    assert d.skipped_reason == "namespace kube-system is excluded from admission"


# --------------------------------------------------------------------------- what is judged


@pytest.mark.parametrize(
    ("req", "reason"),
    [
        (request(deployment(), op="UPDATE", old=deployment(), sub="scale"), "the scale subresource is never judged"),
        (request(deployment(), op="UPDATE", old=deployment(), sub="status"), "the status subresource is never judged"),
        (request(None, op="DELETE", old=deployment()), "DELETE operations are never judged"),
        (request(deployment(), resource="statefulsets"), "not an apps/v1 Deployment"),
    ],
)
def test_never_judged(req: dict[str, Any], reason: str) -> None:
    d = review(req, ("p", spec()))
    assert d.allowed and d.skipped_reason == reason and not d.verdicts


@pytest.mark.parametrize(
    ("old_replicas", "new_replicas", "template_changed", "expected"),
    [
        (3, 3, False, "unchanged"),
        (3, 1, False, "scale-down"),
        (1, 3, False, "scale-up"),
        (3, 3, True, "rollout"),
        (3, 1, True, "rollout"),
    ],
)
def test_classify_change(old_replicas: int, new_replicas: int, template_changed: bool, expected: str) -> None:
    old = deployment(replicas=old_replicas)
    new = deployment(replicas=new_replicas, probes=template_changed)
    assert classify_change("UPDATE", new, old) == expected
    assert classify_change("CREATE", new, None) == "create"


@pytest.mark.parametrize(
    ("field", "value"),
    [("strategy", {"type": "Recreate"}), ("minReadySeconds", 30), ("progressDeadlineSeconds", 60),
     ("paused", True), ("revisionHistoryLimit", 1)],
)
def test_a_spec_change_besides_template_and_replicas_is_a_reconfigure(field: str, value: Any) -> None:
    old, new = deployment(), deployment()
    new["spec"][field] = value
    assert classify_change("UPDATE", new, old) == "reconfigure"
    assert classify_change("UPDATE", old, new) == "reconfigure"  # unsetting it, too
    new = deployment(team="x")
    new["metadata"]["annotations"] = {"a": "b"}
    assert classify_change("UPDATE", new, old) == "unchanged"  # metadata only


def test_strategy_only_change_to_recreate_is_denied() -> None:
    rolling = spec("Enforce", rules={"rollingUpdate": {"required": True}})
    old = deployment(probes=True)
    old["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    new = copy.deepcopy(old)
    new["spec"]["strategy"] = {"type": "Recreate"}
    d = review(request(new, op="UPDATE", old=old), ("p", rolling))
    assert not d.allowed and d.change == "reconfigure" and "rolling-update" in d.message


def test_a_scale_request_is_the_replicas_update_of_the_indexed_deployment() -> None:
    current = deployment(replicas=3, annotations={OVERRIDE_ANNOTATION: "old incident"})
    scale = {"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "web", "namespace": "demo"}}
    req = request({**scale, "spec": {"replicas": 0}}, op="UPDATE", old={**scale, "spec": {"replicas": 3}}, sub="scale")
    translated = scale_as_deployment_update(req, current)
    assert translated["object"]["spec"]["replicas"] == 0 and translated["oldObject"]["spec"]["replicas"] == 3
    assert translated["object"]["spec"]["template"] == current["spec"]["template"]
    d = review(translated, ("p", REPLICAS))  # the Scale carries no override: not overridable
    assert not d.allowed and d.change == "scale-down" and "replicas-min" in d.message
    up = scale_as_deployment_update(request({**scale, "spec": {"replicas": 5}}, op="UPDATE",
                                            old={**scale, "spec": {"replicas": 3}}, sub="scale"), current)
    assert review(up, ("p", REPLICAS)).allowed


def test_unchanged_update_is_not_blocked_for_preexisting_violations() -> None:
    old = deployment()
    new = deployment(team="payments")  # a label edit only
    d = review(request(new, op="UPDATE", old=old), ("p", spec()))
    assert d.allowed and d.change == "unchanged"
    assert d.skipped_reason == "neither spec.template nor spec.replicas changed"


def test_unchanged_update_judged_when_policy_opts_in() -> None:
    strict = spec("Enforce", admission={"judgeUnchangedUpdates": True})
    d = review(request(deployment(team="x"), op="UPDATE", old=deployment()), ("lax", spec()), ("strict", strict))
    assert not d.allowed and d.denied_by == ["strict"]
    assert [n for n, _ in d.verdicts] == ["strict"]


def test_template_change_is_judged() -> None:
    old = deployment(probes=True)
    new = deployment()
    d = review(request(new, op="UPDATE", old=old), ("p", spec()))
    assert not d.allowed and d.change == "rollout"


REPLICAS = spec("Enforce", rules={"probes": {}, "replicas": {"min": 3}})


def test_scale_down_only_judged_by_replica_checks() -> None:
    # Probes are missing (pre-existing) but a replicas-only change is judged by replica checks only.
    d = review(request(deployment(replicas=3), op="UPDATE", old=deployment(replicas=5)), ("p", REPLICAS))
    assert d.allowed and d.change == "scale-down" and not d.warnings
    d = review(request(deployment(replicas=2), op="UPDATE", old=deployment(replicas=5)), ("p", REPLICAS))
    assert not d.allowed
    assert "- replicas-min: spec.replicas is 2, below the minimum of 3" in d.message
    assert "probe-" not in d.message


def test_scale_up_never_denied() -> None:
    d = review(request(deployment(replicas=2), op="UPDATE", old=deployment(replicas=1)), ("p", REPLICAS))
    assert d.allowed and d.change == "scale-up"


# --------------------------------------------------------------------------- SLO gates


@pytest.mark.parametrize("mode", ["Enforce", "Warn", "Audit"])
@pytest.mark.parametrize(
    ("on_breach", "value", "allowed", "warned"),
    [
        ("Block", 0.5, False, False),
        ("Block", 0.9999, True, False),
        ("Block", None, True, False),
        ("Warn", 0.5, True, True),
        ("Warn", None, True, False),
        ("Report", 0.5, True, False),
    ],
)
def test_slo_on_breach(mode: str, on_breach: str, value: float | None, allowed: bool, warned: bool) -> None:
    d = review(request(deployment(probes=True)), ("p", slo_spec(mode, on_breach)), world_of=world({"availability": value}))
    assert d.allowed is allowed
    assert any("slo:availability" in w for w in d.warnings) is warned
    if not allowed:
        assert "- slo:availability: SLO 'availability' breached" in d.message
        assert "error-budget freeze" in d.message
        if mode != "Enforce":
            assert f'ReadinessPolicy "p" ({mode}, SLO gate) denies' in d.message


def test_block_on_unknown_opt_in() -> None:
    p = slo_spec("Audit", "Block", block_on_unknown=True)
    d = review(request(deployment()), ("p", p), world_of=world({"availability": None}))
    assert not d.allowed and "slo:availability: SLO 'availability' is unknown" in d.message
    d = review(request(deployment()), ("p", p), world_of=world({}))
    assert not d.allowed


def test_slo_block_never_denies_scale_down() -> None:
    d = review(
        request(deployment(replicas=1), op="UPDATE", old=deployment(replicas=3)),
        ("p", slo_spec("Enforce", "Block")),
        world_of=world({"availability": 0.1}),
    )
    assert d.allowed and d.change == "scale-down"


def test_slo_block_allows_rollback() -> None:
    old, new = deployment(probes=True), deployment()
    args = (request(new, op="UPDATE", old=old), ("p", slo_spec("Warn", "Block")))
    bad = world({"availability": 0.1})
    assert not review(*args, world_of=bad).allowed
    d = review(*args, world_of=bad, is_rollback=lambda new, old: True)
    assert d.allowed and any("slo:availability" in w for w in d.warnings)


def test_pod_template_digest_ignores_pod_template_hash() -> None:
    t = deployment()["spec"]["template"]
    rs = copy.deepcopy(t)
    rs["metadata"]["labels"]["pod-template-hash"] = "abc123"
    assert pod_template_digest(t) == pod_template_digest(rs)
    rs["spec"]["containers"][0]["image"] = "web:2"
    assert pod_template_digest(t) != pod_template_digest(rs)


# --------------------------------------------------------------------------- break-glass


def test_override_with_reason_admits_and_records() -> None:
    obj = deployment(annotations={OVERRIDE_ANNOTATION: "INC-42 hotfix"})
    d = review(request(obj), ("p", spec()))
    assert d.allowed and d.override_reason == "INC-42 hotfix"
    assert d.overridden == {"p": ["probe-liveness", "probe-readiness"]}
    assert d.warnings[0] == (
        f'{OVERRIDE_ANNOTATION}: admitted despite ReadinessPolicy "p" (probe-liveness, probe-readiness): INC-42 hotfix'
    )
    assert any("probe-readiness" in w for w in d.warnings[1:])  # the bypassed findings are still shown


def test_override_bypasses_slo_block() -> None:
    obj = deployment(annotations={OVERRIDE_ANNOTATION: "rollback of bad config"})
    d = review(request(obj), ("p", slo_spec("Audit", "Block")), world_of=world({"availability": 0.1}))
    assert d.allowed and d.override_reason == "rollback of bad config"


@pytest.mark.parametrize("reason", ["", "   "])
def test_override_without_reason_does_not_count(reason: str) -> None:
    d = review(request(deployment(annotations={OVERRIDE_ANNOTATION: reason})), ("p", spec()))
    assert not d.allowed and d.override_reason is None
    assert "a reason is required" in d.message
    assert any("a reason is required" in w for w in d.warnings)


def test_empty_override_on_compliant_object_only_warns() -> None:
    d = review(request(deployment(probes=True, annotations={OVERRIDE_ANNOTATION: ""})), ("p", spec()))
    assert d.allowed and d.override_reason is None and any("a reason is required" in w for w in d.warnings)


def test_override_without_denial_records_nothing() -> None:
    d = review(request(deployment(probes=True, annotations={OVERRIDE_ANNOTATION: "why not"})), ("p", spec()))
    assert d.allowed and d.override_reason is None and not d.warnings


RESTRICTED = spec("Enforce", admission={"overrideGroups": ["sre"], "overrideUsers": ["bob"]})


@pytest.mark.parametrize(
    ("user", "groups", "allowed"),
    [
        ("alice", ("system:authenticated",), False),
        ("alice", ("system:authenticated", "sre"), True),
        ("bob", (), True),
    ],
)
def test_override_restricted_to_users_and_groups(user: str, groups: tuple[str, ...], allowed: bool) -> None:
    obj = deployment(annotations={OVERRIDE_ANNOTATION: "INC-1"})
    d = review(request(obj, user=user, groups=groups), ("p", RESTRICTED))
    assert d.allowed is allowed
    if allowed:
        assert d.override_reason == "INC-1"
    else:
        assert d.override_reason is None and d.denied_by == ["p"]
        assert f'{OVERRIDE_ANNOTATION}: user "alice" may not override ReadinessPolicy "p"' in d.warnings[0]


def test_partial_override_still_denies() -> None:
    obj = deployment(annotations={OVERRIDE_ANNOTATION: "INC-1"})
    d = review(request(obj), ("open", spec()), ("restricted", RESTRICTED))
    assert not d.allowed and d.denied_by == ["restricted"] and d.override_reason is None
    assert 'ReadinessPolicy "open"' not in d.message


# --------------------------------------------------------------------------- misc


def test_dry_run_is_exposed() -> None:
    d = review(request(deployment(), dry_run=True), ("p", spec()))
    assert d.dry_run and not d.allowed
    assert review(request(deployment()), ("p", spec())).dry_run is False


def test_message_and_warnings_are_bounded() -> None:
    containers = [{"name": f"c{i:03d}-" + "x" * 40, "image": "x:1"} for i in range(150)]
    obj = deployment()
    obj["spec"]["template"]["spec"]["containers"] = containers
    policies = [(f"policy-{i}", spec("Enforce")) for i in range(30)]
    warn = [(f"warn-{i}", spec("Warn")) for i in range(30)]
    d = review(request(obj), *policies, *warn)
    assert not d.allowed
    assert len(d.message) < MAX_MESSAGE_CHARS <= 4096
    assert d.message.splitlines()[-1].startswith("... and ") and d.message.endswith(" more")
    assert 0 < len(d.warnings) <= MAX_WARNINGS
    assert all(len(w) <= MAX_WARNING_CHARS for w in d.warnings)
    assert d.warnings[-1].startswith("... and ") and d.warnings[-1].endswith("more readiness warnings")
    assert sum(len(w) for w in d.warnings) <= 4096


def test_response_shape() -> None:
    d = review(request(deployment()), ("p", spec()))
    resp = d.response("u1")
    assert resp["apiVersion"] == "admission.k8s.io/v1" and resp["kind"] == "AdmissionReview"
    assert resp["response"]["uid"] == "u1" and resp["response"]["allowed"] is False
    assert resp["response"]["status"]["code"] == 403 and resp["response"]["status"]["message"] == d.message
    ok = review(request(deployment()), ("p", spec("Warn"))).response("u2")["response"]
    assert ok["allowed"] is True and "status" not in ok and len(ok["warnings"]) == 2


def test_world_lookup_failure_fails_open() -> None:
    def broken(obj: Mapping[str, Any]) -> World:
        raise RuntimeError("index not ready")

    d = review(request(deployment()), ("p", spec()), world_of=broken)
    assert d.allowed and d.skipped_reason == "world lookup failed" and "index not ready" in d.warnings[0]


def test_malformed_object_does_not_crash() -> None:
    obj = deployment()
    obj["spec"]["template"]["spec"]["securityContext"] = {"runAsUser": "not-a-number"}
    p = spec("Enforce", rules={"securityContext": {}})
    d = review(request(obj), ("p", p))
    assert d.allowed and "could not evaluate" in d.warnings[0]


def test_minimal_request_without_resource_or_kind() -> None:
    req = {"operation": "CREATE", "namespace": "demo", "object": deployment(), "userInfo": {"username": "a"}}
    assert not review(req, ("p", spec())).allowed
    req["object"] = {**deployment(), "kind": "StatefulSet"}
    assert review(req, ("p", spec())).skipped_reason == "not an apps/v1 Deployment"


@pytest.mark.parametrize("order", [("strict", "relaxed"), ("relaxed", "strict")])
def test_each_policy_judges_with_its_own_slo_measurements(order: tuple[str, str]) -> None:
    """Two policies may both name an SLO "availability": each judges with its own measurement, so the
    breaching one blocks whatever the order (issue 14, 7a)."""
    measured = {"strict": 0.95, "relaxed": 0.9999}  # strict's measurement breaches; relaxed's holds

    def policy_world(obj: Mapping[str, Any], policy: str) -> World:
        return World(slo_measurements={"availability": SloMeasurement(measured[policy], NOW)}, now=NOW)

    policies = [(name, slo_spec("Audit", "Block")) for name in order]
    d = review_deployment(request(deployment()), policies, world(), policy_world=policy_world)
    assert not d.allowed and d.denied_by == ["strict"]
    assert "slo:availability" in d.message


def test_live_checks_never_deny_even_with_a_live_world() -> None:
    """A crash-looping, unavailable Deployment must stay fixable in Enforce: live checks judge the cluster's
    state, never the request (and the webhook's World is not live: there they are Unknown anyway)."""
    crashing = {
        "metadata": {"name": "web-5d8f9-x1", "namespace": "demo", "labels": {"pod-template-hash": "5d8f9"},
                     "ownerReferences": [{"kind": "ReplicaSet", "name": "web-5d8f9"}]},
        "status": {"containerStatuses": [{"name": "web", "restartCount": 9,
                                          "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]},
    }
    broken = {**deployment(), "status": {"observedGeneration": 1, "conditions": [
        {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"}]}}
    policy = spec("Enforce", rules={"liveState": {}})

    def live(obj: Mapping[str, Any]) -> World:
        return World(now=NOW, live=True, pods=[crashing])

    decision = review(request(broken), ("prod", policy), world_of=live)  # a create: every check is judged
    assert decision.allowed and not decision.warnings
    offline = review(request(broken, op="UPDATE", old=deployment(probes=True)), ("prod", policy))  # a rollout
    assert offline.allowed and not offline.warnings
    # the same World judged by the engine does fail: the guard above is what lets the fix through
    verdict = evaluate(policy, broken, live(broken))
    assert {f.check for f in verdict.failures} == {"pods-stable", "rollout-healthy"}
