"""Engine: scoring, levels, compliance, weights, exemptions, SLO states and policy matching."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from readiness_operator.engine import compile_policy, evaluate, level_for, matches, remeasure
from readiness_operator.model import ReadinessPolicySpec
from readiness_operator.world import SloMeasurement, World

NOW = datetime(2025, 6, 1, tzinfo=UTC)


def spec(**raw: Any) -> ReadinessPolicySpec:
    return ReadinessPolicySpec.model_validate(raw)


def deployment(containers: list[dict[str, Any]] | None = None, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "demo", "labels": {"app": "web"}, **meta},
        "spec": {
            "replicas": 1,
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": containers if containers is not None else [{"name": "app", "image": "x:1"}]
                },
            },
        },
    }


PROBED: dict[str, Any] = {
    "name": "app",
    "image": "x:1",
    "livenessProbe": {"exec": {}},
    "readinessProbe": {"exec": {}},
}


@pytest.mark.parametrize(
    ("score", "level"),
    [
        (100, "ready"),
        (90, "ready"),
        (89, "nearly-ready"),
        (75, "nearly-ready"),
        (74, "not-ready"),
        (50, "not-ready"),
        (49, "not-production-ready"),
        (0, "not-production-ready"),
    ],
)
def test_levels(score: int, level: str) -> None:
    assert level_for(score) == level


def test_no_checks_scores_100_and_complies() -> None:
    v = evaluate(spec(), deployment(), World(now=NOW))
    assert (v.score, v.level, v.compliant, v.findings) == (100, "ready", True, [])


def test_weighted_score_by_default_severity() -> None:
    # readiness (critical, 3) fails, liveness (warning, 2) passes -> 2 / 5 = 40
    container = {"name": "app", "image": "x:1", "livenessProbe": {"exec": {}}}
    v = evaluate(spec(rules={"probes": {}}), deployment([container]), World(now=NOW))
    assert v.score == 40 and v.level == "not-production-ready" and not v.compliant
    assert v.failed_checks == ["probe-readiness"]


def test_weights_override_by_check_then_category() -> None:
    container = {"name": "app", "image": "x:1", "livenessProbe": {"exec": {}}}
    by_category = spec(rules={"probes": {}}, weights={"probes": 1})
    assert evaluate(by_category, deployment([container]), World(now=NOW)).score == 50
    by_check = spec(rules={"probes": {}}, weights={"probes": 1, "probe-readiness": 0})
    assert evaluate(by_check, deployment([container]), World(now=NOW)).score == 100


def test_group_severity_override_and_info_failures_keep_compliance() -> None:
    container = {"name": "app", "image": "x:1", "livenessProbe": {"exec": {}}}
    v = evaluate(spec(rules={"probes": {"severity": "info"}}), deployment([container]), World(now=NOW))
    assert v.compliant, "info failures only lower the score"
    assert v.score == 50
    assert {f.severity for f in v.findings} == {"info"}


def test_score_never_100_with_a_weighted_failure() -> None:
    # 1002 of 1003 weight points pass: the floor keeps the score below 100.
    s = spec(rules={"probes": {"startup": True, "severity": "info"}, "images": {}}, weights={"images": 1000})
    v = evaluate(s, deployment([PROBED]), World(now=NOW))
    assert v.failed_checks == ["probe-startup"] and v.score == 99 and v.compliant


def test_multiple_containers_are_all_reported() -> None:
    containers = [PROBED, {"name": "sidecar", "image": "y:1"}, {"name": "proxy", "image": "z:1"}]
    v = evaluate(spec(rules={"probes": {}}), deployment(containers), World(now=NOW))
    msg = next(f.message for f in v.findings if f.check == "probe-readiness")
    assert "'sidecar'" in msg and "'proxy'" in msg and "'app'" not in msg
    assert "spec.template.spec.containers[name=sidecar].readinessProbe" in msg


@pytest.mark.parametrize(
    ("exemption", "status"),
    [
        ({"checks": ["probe-readiness"], "reason": "r"}, "exempt"),
        ({"checks": ["*"], "reason": "r", "expires": "2099-01-01T00:00:00Z"}, "exempt"),
        ({"checks": ["probe-readiness"], "reason": "r", "namespaces": ["demo"]}, "exempt"),
        ({"checks": ["probe-readiness"], "reason": "r", "namespaces": ["prod"]}, "fail"),
        ({"checks": ["probe-readiness"], "reason": "r", "names": ["we*"]}, "exempt"),
        ({"checks": ["probe-readiness"], "reason": "r", "names": ["api"]}, "fail"),
        (
            {"checks": ["probe-readiness"], "reason": "r", "selector": {"matchLabels": {"app": "web"}}},
            "exempt",
        ),
        ({"checks": ["probe-readiness"], "reason": "r", "selector": {"matchLabels": {"app": "db"}}}, "fail"),
        ({"checks": ["probe-liveness"], "reason": "r"}, "fail"),
        ({"checks": ["probe-readiness"], "reason": "r", "expires": "2025-07-01T00:00:00Z"}, "exempt"),
        ({"checks": ["probe-readiness"], "reason": "r", "expires": "2025-05-01T00:00:00Z"}, "fail"),
    ],
)
def test_exemptions(exemption: dict[str, Any], status: str) -> None:
    container = {"name": "app", "image": "x:1", "livenessProbe": {"exec": {}}}
    v = evaluate(spec(rules={"probes": {}}, exemptions=[exemption]), deployment([container]), World(now=NOW))
    finding = next(f for f in v.findings if f.check == "probe-readiness")
    assert finding.status == status
    if status == "exempt":
        assert v.compliant and v.score == 100, "exempt checks count neither way"
        assert "r" in finding.message


def test_expired_exemption_says_so() -> None:
    exemption = {"checks": ["probe-readiness"], "reason": "legacy app", "expires": "2025-05-01T00:00:00Z"}
    container = {"name": "app", "image": "x:1", "livenessProbe": {"exec": {}}}
    v = evaluate(spec(rules={"probes": {}}, exemptions=[exemption]), deployment([container]), World(now=NOW))
    finding = next(f for f in v.findings if f.check == "probe-readiness")
    assert "exemption expired at 2025-05-01" in finding.message and "legacy app" in finding.message
    assert not v.compliant


SLO = {
    "name": "errors",
    "query": "x",
    "comparison": "<",
    "threshold": 0.001,
    "warning": 0.01,
    "critical": 0.05,
}


@pytest.mark.parametrize(
    ("value", "status", "state", "severity"),
    [
        (0.0005, "pass", "ok", "critical"),
        (0.005, "fail", "critical", "critical"),  # breaches the objective only: SLO severity decides
        (0.02, "fail", "warning", "warning"),
        (0.06, "fail", "critical", "critical"),
        (None, "unknown", "unknown", "critical"),
    ],
)
def test_slo_states(value: float | None, status: str, state: str, severity: str) -> None:
    measured = datetime(2025, 6, 1, tzinfo=UTC)
    world = World(
        now=NOW, slo_measurements={"errors": SloMeasurement(value, measured, None if value else "no data")}
    )
    v = evaluate(spec(slos=[SLO]), deployment(), world)
    (finding,) = v.findings
    assert (finding.check, finding.status, finding.state, finding.severity) == (
        "slo:errors",
        status,
        state,
        severity,
    )
    assert finding.threshold == 0.001 and finding.value == value and finding.measured_at == measured
    assert finding.to_dict()["measuredAt"] == measured.isoformat()
    if status == "unknown":
        assert v.compliant and v.score == 100 and "no data" in finding.message


def test_slo_warning_severity_without_levels() -> None:
    slo = {"name": "lat", "query": "x", "comparison": "<", "threshold": 2, "severity": "warning"}
    world = World(now=NOW, slo_measurements={"lat": SloMeasurement(3.0)})
    (finding,) = evaluate(spec(slos=[slo]), deployment(), world).findings
    assert finding.status == "fail" and finding.state == "warning" and finding.severity == "warning"


def test_slo_exemption() -> None:
    s = spec(slos=[SLO], exemptions=[{"checks": ["slo:errors"], "reason": "load test"}])
    world = World(now=NOW, slo_measurements={"errors": SloMeasurement(0.9)})
    (finding,) = evaluate(s, deployment(), world).findings
    assert finding.status == "exempt"


@pytest.mark.parametrize(
    ("match", "ns_labels", "expected"),
    [
        ({}, {}, True),
        ({"namespaces": ["demo"]}, {}, True),
        ({"namespaces": ["prod"]}, {}, False),
        ({"excludeNamespaces": ["demo"]}, {}, False),
        ({"namespaceSelector": {"matchLabels": {"env": "prod"}}}, {"env": "prod"}, True),
        ({"namespaceSelector": {"matchLabels": {"env": "prod"}}}, {"env": "dev"}, False),
        ({"selector": {"matchLabels": {"app": "web"}}}, {}, True),
        (
            {"selector": {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}},
            {},
            False,
        ),
    ],
)
def test_matches(match: dict[str, Any], ns_labels: dict[str, str], expected: bool) -> None:
    assert matches(spec(match=match), deployment(), ns_labels) is expected


def test_namespace_less_deployment_counts_as_default() -> None:
    dep = deployment()
    del dep["metadata"]["namespace"]
    assert matches(spec(match={"namespaces": ["default"]}), dep)
    assert evaluate(spec(), dep, World(now=NOW)).namespace == "default"


def test_a_compiled_policy_passes_through() -> None:
    plan = compile_policy(spec(rules={"probes": {}}))
    assert compile_policy(plan) is plan
    assert plan.check_ids == ["probe-liveness", "probe-readiness"]


def test_engine_does_not_mutate_inputs() -> None:
    dep = deployment()
    before = copy.deepcopy(dep)
    evaluate(spec(rules={"probes": {}, "securityContext": {}, "resources": {}}), dep, World(now=NOW))
    assert dep == before


def test_malformed_deployment_fails_checks_instead_of_crashing() -> None:
    v = evaluate(
        spec(rules={"probes": {}, "replicas": {}}), {"kind": "Deployment", "metadata": {"name": "x"}}, World()
    )
    assert not v.compliant
    assert "no containers" in next(f.message for f in v.findings if f.check == "probe-readiness")


def test_equal_findings_are_one_shared_object_and_different_ones_are_not(monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator keeps every finding of every Deployment: equal ones share one object."""
    plan = compile_policy(spec(rules={"probes": {}}))
    world = World(now=NOW)
    first = evaluate(plan, deployment([PROBED]), world)
    second = evaluate(plan, deployment([PROBED], name="api"), world)
    bare = evaluate(plan, deployment([{"name": "app", "image": "x:1"}]), world)
    other_name = evaluate(plan, deployment([{"name": "side", "image": "x:1"}]), world)
    probe = next(i for i, f in enumerate(first.findings) if f.check == "probe-liveness")
    assert first.findings[probe] is second.findings[probe]
    assert bare.findings[probe].status == "fail" and bare.findings[probe] is not first.findings[probe]
    assert "side" in other_name.findings[probe].message and "side" not in bare.findings[probe].message
    # An unseen text beyond the bound still gets its own, correct finding (nothing shared is evicted).
    monkeypatch.setattr("readiness_operator.engine.SHARED_FINDINGS_PER_CHECK", 0)
    fresh = compile_policy(spec(rules={"probes": {}}))
    a, b = (evaluate(fresh, deployment([PROBED]), world) for _ in range(2))
    assert a.findings[probe] == b.findings[probe] and a.findings[probe] is not b.findings[probe]


@pytest.mark.parametrize("before", [0.0005, 0.02, None])
@pytest.mark.parametrize("after", [0.0005, 0.005, 0.06, None])
@pytest.mark.parametrize("exempt", [False, True])
def test_remeasure_equals_a_full_evaluation_when_only_the_measurement_moved(
    before: float | None, after: float | None, exempt: bool
) -> None:
    """An SLO tick judges only the SLO findings again (issue 16): the result must be the verdict a
    full evaluation gives, score and compliance included, with and without an SLO exemption."""
    exemptions = [{"checks": ["slo:errors"], "reason": "load test"}] if exempt else []
    plan = compile_policy(spec(rules={"probes": {"readiness": True}}, slos=[SLO], exemptions=exemptions))
    d = deployment()

    def world(value: float | None) -> World:
        return World(now=NOW, slo_measurements={"errors": SloMeasurement(value, NOW, None if value else "no data")})

    previous = evaluate(plan, d, world(before))
    redone = remeasure(plan, previous, d, World(now=NOW, slo_measurements=world(after).slo_measurements))
    assert redone == evaluate(plan, d, world(after))
    assert redone is not None and redone.findings[0] is previous.findings[0]  # the static finding is kept


def test_remeasure_refuses_a_verdict_of_another_plan() -> None:
    d = deployment()
    old = evaluate(spec(rules={"replicas": {"min": 2}}, slos=[SLO]), d, World(now=NOW))
    other_check = compile_policy(spec(rules={"rollingUpdate": {}}, slos=[SLO]))  # as many findings, other ids
    assert remeasure(other_check, old, d, World(now=NOW)) is None
    more = compile_policy(spec(rules={"replicas": {"min": 2}}, slos=[SLO, {**SLO, "name": "more"}]))
    assert remeasure(more, old, d, World(now=NOW)) is None
    other_deployment = deployment(name="other")
    assert remeasure(spec(rules={"replicas": {"min": 2}}, slos=[SLO]), old, other_deployment, World(now=NOW)) is None
