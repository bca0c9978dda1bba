"""Policy model: aliases, defaults and validation messages that name the field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from readiness_operator.model import (
    ReadinessPolicy,
    ReadinessPolicySpec,
    ReadinessPolicyStatus,
    Severity,
    format_validation_error,
)
from readiness_operator.model.slo import duration_seconds


def errors_of(spec: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        ReadinessPolicy.model_validate(
            {"apiVersion": "readiness.dev/v1alpha1", "kind": "ReadinessPolicy", "spec": spec}
        )
    return format_validation_error(info.value)


SLO = {"name": "errors", "query": "sum(x)", "comparison": "<", "threshold": 0.01}


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ({"mode": "Block"}, "spec.mode"),
        ({"rules": {"probes": {"livenes": True}}}, "spec.rules.probes.livenes: unknown field"),
        ({"bogus": 1}, "spec.bogus: unknown field"),
        (
            {"rules": {"horizontalPodAutoscaler": {"minReplicas": 5, "maxReplicas": 3}}},
            "minReplicas (5) must be",
        ),
        ({"rules": {"horizontalPodAutoscaler": {"metrics": ["cpu", "cpu"]}}}, "must not repeat"),
        (
            {"rules": {"horizontalPodAutoscaler": {"metrics": ["gpu"]}}},
            "spec.rules.horizontalPodAutoscaler.metrics[0]",
        ),
        (
            {"rules": {"resources": {"limits": {"memory": {"max": "1GB"}}}}},
            "spec.rules.resources.limits.memory.max",
        ),
        (
            {"rules": {"resources": {"requests": {"memory": {"min": "2Gi", "max": "1Gi"}}}}},
            "min (2Gi) must be",
        ),
        ({"rules": {"replicas": {"min": 0}}}, "spec.rules.replicas.min"),
        ({"rules": {"rollingUpdate": {"maxUnavailable": "25"}}}, "percentage"),
        ({"rules": {"rollingUpdate": {"maxUnavailable": -1}}}, "must not be negative"),
        ({"weights": {"nope": 1}}, 'spec.weights[\'nope\']: unknown check id or category "nope"'),
        ({"weights": {"probe-liveness": -1}}, "spec.weights['probe-liveness']: Input should be greater than or equal to 0"),
        ({"weights": {"slo:missing": 1}}, '"slo:missing" names no SLO in spec.slos (defined: none)'),
        (
            {"exemptions": [{"checks": ["probe-livenes"], "reason": "x"}]},
            "spec.exemptions[0].checks[0]: unknown check id",
        ),
        ({"exemptions": [{"checks": ["probe-liveness"]}]}, "spec.exemptions[0].reason"),
        ({"exemptions": [{"checks": ["probe-liveness"], "reason": ""}]}, "spec.exemptions[0].reason"),
        ({"exemptions": [{"checks": [], "reason": "x"}]}, "spec.exemptions[0].checks"),
        ({"exemptions": [{"checks": ["slo:nope"], "reason": "x"}]}, 'checks[0]: "slo:nope" names no SLO'),
        (
            {"exemptions": [{"checks": ["*"], "reason": "x", "expires": "tomorrow"}]},
            "spec.exemptions[0].expires",
        ),
        ({"slos": [SLO, SLO]}, "duplicate name(s) errors"),
        ({"slos": [{**SLO, "query": "x{ns='{{namespce}}'}"}]}, "spec.slos[0].query: unknown placeholder {{namespce}}"),
        ({"slos": [{**SLO, "warning": 0.001}]}, "warning (0.001) must be >= threshold"),
        (
            {"slos": [{**SLO, "comparison": ">=", "threshold": 0.99, "warning": 0.995}]},
            "warning (0.995) must be <=",
        ),
        ({"slos": [{**SLO, "warning": 0.05, "critical": 0.02}]}, "critical (0.02) must be >= warning"),
        ({"slos": [{**SLO, "window": "5 minutes"}]}, "spec.slos[0].window"),
        ({"slos": [{**SLO, "comparison": "=="}]}, "spec.slos[0].comparison"),
        ({"slos": [{**SLO, "name": "Bad Name"}]}, "spec.slos[0].name"),
        ({"prometheus": {"url": "prometheus:9090"}}, "spec.prometheus.url"),
        (
            {"match": {"selector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}},
            "matchExpressions[0].values: must not be empty when operator is In",
        ),
        (
            {
                "match": {
                    "selector": {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}
                }
            },
            "empty",
        ),
    ],
)
def test_invalid_policies_name_the_field(spec: dict[str, Any], needle: str) -> None:
    assert needle in errors_of(spec)


def test_valid_policy_with_aliases_and_defaults() -> None:
    policy = ReadinessPolicy.model_validate(
        {
            "apiVersion": "readiness.dev/v1alpha1",
            "kind": "ReadinessPolicy",
            "metadata": {"name": "p"},
            "spec": {
                "rules": {"securityContext": {}, "resources": {}, "podDisruptionBudget": {"minAvailable": 2}},
                "weights": {"security": 5, "probe-liveness": 0, "slo:errors": 2},
                "slos": [{**SLO, "warning": 0.02, "critical": 0.05}],
                "exemptions": [
                    {"checks": ["*", "slo:errors"], "reason": "migration", "expires": "2030-01-01T00:00:00"}
                ],
            },
        }
    )
    spec = policy.spec
    assert policy.name == "p"
    assert spec.mode == "Audit"
    assert spec.rules.security_context is not None and spec.rules.security_context.run_as_non_root
    assert spec.rules.resources is not None
    assert spec.rules.resources.requests.cpu is not None and spec.rules.resources.requests.memory is not None
    assert spec.rules.resources.limits.cpu is None and spec.rules.resources.limits.memory is not None
    assert spec.rules.probes is None
    assert spec.exemptions[0].expires is not None and spec.exemptions[0].expires.tzinfo is not None
    assert (
        spec.slos[0].interval == "60s"
        and spec.slos[0].on_breach == "Report"
        and not spec.slos[0].block_on_unknown
    )
    assert spec.slos[0].severity == Severity.CRITICAL


def test_populate_by_name_and_camel_dump() -> None:
    spec = ReadinessPolicySpec.model_validate({"rules": {"pod_disruption_budget": {"min_available": 2}}})
    dumped = spec.model_dump(by_alias=True, exclude_none=True)
    assert dumped["rules"]["podDisruptionBudget"]["minAvailable"] == 2


def test_quantities_accept_ints() -> None:
    spec = ReadinessPolicySpec.model_validate(
        {"rules": {"resources": {"limits": {"memory": {"max": 1073741824}}}}}
    )
    assert spec.rules.resources is not None and spec.rules.resources.limits.memory is not None
    assert spec.rules.resources.limits.memory.max == "1073741824"


def test_slo_query_rendering() -> None:
    spec = ReadinessPolicySpec.model_validate(
        {"slos": [{**SLO, "query": 'x{namespace="{{ namespace }}", d="{{name}}", team="{{labels.team}}"}'}]}
    )
    assert spec.slos[0].render_query("demo", "web", {"team": "a"}) == 'x{namespace="demo", d="web", team="a"}'
    assert duration_seconds("1h30m") == 5400
    assert duration_seconds("30d") == 30 * 86400


def test_status_model_is_bounded() -> None:
    offender = {
        "namespace": "d",
        "name": "x",
        "score": 10,
        "level": "not-production-ready",
        "failedChecks": [],
    }
    ReadinessPolicyStatus.model_validate({"worstOffenders": [offender] * 10})
    with pytest.raises(ValidationError):
        ReadinessPolicyStatus.model_validate({"worstOffenders": [offender] * 11})
    with pytest.raises(ValidationError):
        ReadinessPolicyStatus.model_validate({"score": 101})
