"""Validation of ReadinessPolicy objects for the policy webhook: each problem named by its field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from readiness_operator.model import check_promql_balance, label_key_problem, label_value_problem
from readiness_operator.model.validation import validate_policy_object

ROOT = Path(__file__).resolve().parents[2]
QUERY = 'sum(rate(http_requests_total{namespace="{{namespace}}", deployment="{{name}}"}[5m]))'


def policy(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "readiness.dev/v1alpha1", "kind": "ReadinessPolicy", "metadata": {"name": "p"}, "spec": spec}


def slo(query: str, name: str = "a") -> dict[str, Any]:
    return {"name": name, "query": query, "comparison": "<", "threshold": 1}


@pytest.mark.parametrize("path", sorted((ROOT / "examples" / "policies").glob("*.yaml")), ids=lambda p: p.name)
def test_examples_are_valid(path: Path) -> None:
    assert validate_policy_object(yaml.safe_load(path.read_text())) == []


def test_valid_policy_with_status_and_server_metadata() -> None:
    obj = policy(mode="Enforce", slos=[slo(QUERY)], exemptions=[{"checks": ["slo:a"], "reason": "r"}])
    obj["metadata"].update(uid="123", resourceVersion="5", generation=2, managedFields=[{}])
    obj["status"] = {"anything": True}
    assert validate_policy_object(obj) == []


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"exemptions": [{"checks": ["probe-readiness", "probe-livenes"], "reason": "r"}]},
            'spec.exemptions[0].checks[1]: unknown check id "probe-livenes"; did you mean "probe-liveness"? known: '
            "probe-liveness, probe-readiness,",
        ),
        (
            {"exemptions": [{"checks": ["slo:nope"], "reason": "r"}], "slos": [slo(QUERY)]},
            'spec.exemptions[0].checks[0]: "slo:nope" names no SLO in spec.slos (defined: slo:a)',
        ),
        (
            {"weights": {"securty": 2}},
            'spec.weights[\'securty\']: unknown check id or category "securty"; did you mean "security"?',
        ),
        ({"weights": {"slo:x": 2}}, "spec.weights['slo:x']: \"slo:x\" names no SLO in spec.slos"),
        (
            {"slos": [slo('x{pod="{{pod}}"}')]},
            "spec.slos[0].query: unknown placeholder {{pod}}; allowed: {{namespace}}, {{name}}, {{labels.<key>}}",
        ),
        (
            {"slos": [slo('x{app="{{labels.-bad}}"}')]},
            "spec.slos[0].query: placeholder {{labels.-bad}} names an invalid label key:",
        ),
        (
            {"slos": [slo('sum(rate(x{ns="{{namespace}}"}[5m])')]},
            "spec.slos[0].query: broken PromQL after substituting placeholders: '(' at offset 3 is never closed",
        ),
        (
            {"slos": [slo('x{ns="{{namespace}}}')]},
            'spec.slos[0].query: broken PromQL after substituting placeholders: string starting with " at offset 5',
        ),
        (
            {"slos": [slo("rate(x[5m)]")]},
            "spec.slos[0].query: broken PromQL after substituting placeholders: ')' at offset 9 does not match '['",
        ),
        (
            {"match": {"selector": {"matchExpressions": [{"key": "tier", "operator": "In"}]}}},
            "spec.match.selector.matchExpressions[0].values: must not be empty when operator is In",
        ),
        (
            {"match": {"selector": {"matchExpressions": [{"key": "tier", "operator": "Exists", "values": ["a"]}]}}},
            "spec.match.selector.matchExpressions[0].values: must be empty when operator is Exists",
        ),
        (
            {"match": {"namespaceSelector": {"matchExpressions": [{"key": "tier", "operator": "Has"}]}}},
            "spec.match.namespaceSelector.matchExpressions[0].operator: unknown operator 'Has'",
        ),
        (
            {"match": {"selector": {"matchLabels": {"bad key": "x"}}}},
            "spec.match.selector.matchLabels['bad key']: invalid label key: name 'bad key'",
        ),
        (
            {"match": {"selector": {"matchLabels": {"Example.COM/app": "x"}}}},
            "spec.match.selector.matchLabels['Example.COM/app']: invalid label key: prefix 'Example.COM'",
        ),
        (
            {"match": {"selector": {"matchLabels": {"app": "-x"}}}},
            "spec.match.selector.matchLabels['app']: invalid label value: value '-x'",
        ),
        (
            {
                "exemptions": [
                    {
                        "checks": ["*"],
                        "reason": "r",
                        "selector": {"matchExpressions": [{"key": "a", "operator": "In", "values": ["ok", "not ok"]}]},
                    }
                ]
            },
            "spec.exemptions[0].selector.matchExpressions[0].values[1]: invalid label value",
        ),
        (
            {"match": {"namespaces": ["Prod"]}},
            "spec.match.namespaces[0]: 'Prod' is not a valid namespace name (DNS-1123 label)",
        ),
        ({"rules": {"probes": {"livness": True}}}, "spec.rules.probes.livness: unknown field"),
        ({"mode": "Block"}, "spec.mode: Input should be 'Enforce', 'Warn' or 'Audit'"),
        (
            {"slos": [slo(QUERY), slo(QUERY)]},
            "spec: slos: duplicate name(s) a",
        ),
    ],
)
def test_problem_messages(spec: dict[str, Any], expected: str) -> None:
    problems = validate_policy_object(policy(**spec))
    assert any(p.startswith(expected) for p in problems), problems


def test_no_duplicate_messages_for_one_problem() -> None:
    problems = validate_policy_object(
        policy(
            exemptions=[{"checks": ["probe-livenes"], "reason": "r"}],
            slos=[slo('x{pod="{{pod}}"}')],
            match={"selector": {"matchExpressions": [{"key": "a", "operator": "In"}]}},
        )
    )
    assert len(problems) == 3, problems


def test_all_problems_reported_at_once() -> None:
    problems = validate_policy_object(
        policy(
            mode="Enforce",
            exemptions=[{"checks": ["nope"], "reason": "r"}],
            weights={"bogus": 1},
            rules={"probes": {"x": 1}},
        )
    )
    assert [p.split(":")[0] for p in problems] == [
        "spec.exemptions[0].checks[0]",
        "spec.weights['bogus']",
        "spec.rules.probes.x",
    ]


def test_not_an_object() -> None:
    assert validate_policy_object([]) == ["<root>: a ReadinessPolicy must be an object"]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("up", None),
        ('sum by (le) (rate(x{a="}{)("}[5m]))', None),
        ("x # comment with ( unbalanced\n", None),
        ("`raw ( string`", None),
        ('x{a="\\"("}', None),
        ("", "the query is empty"),
        ("x)", "')' at offset 1 closes nothing"),
        ("(x", "'(' at offset 0 is never closed"),
        ("x{a='b}", "string starting with ' at offset 4 is never closed"),
    ],
)
def test_promql_balance(query: str, problem: str | None) -> None:
    assert check_promql_balance(query) == problem


@pytest.mark.parametrize(
    ("key", "ok"),
    [
        ("app", True),
        ("app.kubernetes.io/name", True),
        ("a_b.c-d", True),
        ("", False),
        ("/app", False),
        ("a/b/c", False),
        ("-app", False),
        ("x" * 64, False),
        ("UPPER.example.com/x", False),
    ],
)
def test_label_keys(key: str, ok: bool) -> None:
    assert (label_key_problem(key) is None) is ok


@pytest.mark.parametrize(("value", "ok"), [("", True), ("v1.2_3-x", True), ("a b", False), ("x" * 64, False), (3, False)])
def test_label_values(value: object, ok: bool) -> None:
    assert (label_value_problem(value) is None) is ok
