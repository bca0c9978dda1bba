"""Validation of ReadinessPolicy objects for the policy webhook: each problem named by its field."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args, get_origin

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from readiness_operator.model import (
    Exemption,
    LabelSelector,
    ReadinessPolicy,
    ReadinessPolicyStatus,
    check_promql_balance,
    format_validation_error,
    label_key_problem,
    label_value_problem,
)
from readiness_operator.model.errors import MAP_FIELDS
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
                        "expires": "2099-01-01T00:00:00Z",
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


# --------------------------------------------------------------------------------------------------
# One model, one run: the rules live in the model, so every entry point sees the same problems.
# --------------------------------------------------------------------------------------------------


def model_lines(obj: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as info:
        ReadinessPolicy.model_validate(obj)
    return format_validation_error(info.value).splitlines()


@pytest.mark.parametrize(
    "spec",
    [
        {"exemptions": [{"checks": ["probe-livenes", "slo:x"], "reason": "r"}], "weights": {"securty": 1}},
        {"slos": [slo('x{pod="{{pod}}"}'), slo("rate(x[5m)]", name="b")]},
        {"match": {"namespaces": ["Prod"], "selector": {"matchLabels": {"bad key": "-x"}}}},
    ],
)
def test_model_alone_reports_what_the_webhook_reports(spec: dict[str, Any]) -> None:
    # Same lines (the webhook only orders them as written), so the CLI and the operator's status
    # name the same problems as the webhook's denial.
    assert sorted(model_lines(policy(**spec))) == sorted(validate_policy_object(policy(**spec)))


def test_slo_references_are_reported_when_other_fields_are_wrong_too() -> None:
    problems = validate_policy_object(
        policy(
            mode="Block",
            rules={"probes": {"x": 1}},
            slos=[slo('x{pod="{{pod}}"}', name="a")],  # a broken SLO still defines its name
            exemptions=[{"checks": ["slo:a", "slo:b"], "reason": "r"}],
            weights={"slo:a": 1, "slo:c": 2},
        )
    )
    assert problems == [
        "spec.mode: Input should be 'Enforce', 'Warn' or 'Audit'",
        "spec.rules.probes.x: unknown field (not part of the ReadinessPolicy schema)",
        "spec.slos[0].query: unknown placeholder {{pod}}; allowed: {{namespace}}, {{name}}, {{labels.<key>}}",
        'spec.exemptions[0].checks[1]: "slo:b" names no SLO in spec.slos (defined: slo:a)',
        'spec.weights[\'slo:c\']: "slo:c" names no SLO in spec.slos (defined: slo:a)',
    ]


def test_duplicate_slo_names_are_reported_with_field_errors() -> None:
    problems = validate_policy_object(policy(mode="Block", slos=[slo(QUERY), slo(QUERY)]))
    assert problems == ["spec: slos: duplicate name(s) a", "spec.mode: Input should be 'Enforce', 'Warn' or 'Audit'"]


def test_known_slo_refs_are_suggested_and_listed() -> None:
    (problem,) = validate_policy_object(
        policy(slos=[slo(QUERY, name="availability")], exemptions=[{"checks": ["sl:availability"], "reason": "r"}])
    )
    assert problem.startswith(
        'spec.exemptions[0].checks[0]: unknown check id "sl:availability"; did you mean "slo:availability"?'
    )
    assert problem.endswith("pods-stable, slo:availability, slo:<name>, *")


def test_every_placeholder_problem_and_level_problem_of_one_slo() -> None:
    bad = {**slo('x{a="{{pod}}", b="{{labels.-x}}"}'), "warning": 0.5, "critical": 0.2}
    problems = validate_policy_object(policy(slos=[bad]))
    assert [p.split(": ", 1)[0] for p in problems] == [
        "spec.slos[0].query",
        "spec.slos[0].query",
        "spec.slos[0].warning",
        "spec.slos[0].critical",
    ]
    assert "unknown placeholder {{pod}}" in problems[0] and "{{labels.-x}} names an invalid label key" in problems[1]
    assert problems[2] == "spec.slos[0].warning: warning (0.5) must be >= threshold (1.0) when comparison is '<'"


def test_critical_is_checked_against_warning() -> None:
    problems = validate_policy_object(policy(slos=[{**slo(QUERY), "warning": 2, "critical": 1.5}]))
    assert problems == ["spec.slos[0].critical: critical (1.5) must be >= warning (2.0) when comparison is '<'"]


def test_label_placeholders_follow_kubernetes_label_keys() -> None:
    # The model used to allow only [A-Za-z0-9._/-] after "labels."; Kubernetes label keys may contain "_".
    assert validate_policy_object(policy(slos=[slo('x{a="{{labels.team_name}}", b="{{labels.example.com/tier}}"}')])) == []
    (problem,) = validate_policy_object(policy(slos=[slo('x{a="{{labels.a/b/c}}"}')]))
    assert problem.startswith("spec.slos[0].query: placeholder {{labels.a/b/c}} names an invalid label key: prefix 'a/b'")


def test_map_entries_are_named_by_key() -> None:
    # Label keys contain dots, so a map entry is ['key'], whether its key or its value is wrong.
    problems = validate_policy_object(
        policy(weights={"probe-liveness": 5000}, match={"selector": {"matchLabels": {"app.kubernetes.io/name": "a b"}}})
    )
    assert problems == [
        "spec.weights['probe-liveness']: Input should be less than or equal to 1000",
        "spec.match.selector.matchLabels['app.kubernetes.io/name']: invalid label value: value 'a b' must be empty or "
        "at most 63 characters, start and end with an alphanumeric and contain only alphanumerics, '-', '_' and '.'",
    ]


def test_map_fields_are_the_models_dict_fields() -> None:
    found: set[str] = set()

    def walk(model: type[BaseModel]) -> None:
        for name, field in model.model_fields.items():
            for tp in _types_in(field.annotation):
                if get_origin(tp) is dict and name != "metadata":  # metadata is never validated inside
                    found.update({name, field.alias or name})
                elif isinstance(tp, type) and issubclass(tp, BaseModel) and tp is not ReadinessPolicyStatus:
                    walk(tp)

    walk(ReadinessPolicy)
    assert found == MAP_FIELDS


def _types_in(tp: Any) -> list[Any]:
    """``tp`` and every type nested in it (Annotated, Optional, list and dict arguments)."""
    return [tp, *(t for arg in get_args(tp) for t in _types_in(arg))]


def test_problems_follow_the_order_of_the_document() -> None:
    obj = policy(weights={"bogus": 1}, mode="Block")
    obj["spec"]["exemptions"] = [{"checks": ["nope"]}]  # reason missing: listed after the entry's fields
    assert [p.split(": ", 1)[0] for p in validate_policy_object(obj)] == [
        "spec.weights['bogus']",
        "spec.mode",
        "spec.exemptions[0].checks[0]",
        "spec.exemptions[0].reason",
    ]


def test_exemption_alone_checks_only_the_shape_of_slo_references() -> None:
    # Outside a spec the SLOs are unknown: slo:<name> is accepted, a bare "slo:" is not.
    assert Exemption.model_validate({"checks": ["slo:anything"], "reason": "r"}).checks == ["slo:anything"]
    with pytest.raises(ValidationError, match=r"an SLO reference needs a name"):
        Exemption.model_validate({"checks": ["slo:"], "reason": "r"})


def test_selector_requirement_reports_key_operator_and_values_at_once() -> None:
    with pytest.raises(ValidationError) as info:
        LabelSelector.model_validate(
            {
                "matchExpressions": [
                    {"key": "-a", "operator": "Has", "values": ["x"]},
                    {"key": "b", "operator": "Exists", "values": ["y"]},
                ]
            }
        )
    assert [line.split(": ", 1)[0] for line in format_validation_error(info.value).splitlines()] == [
        "matchExpressions[0].key",
        "matchExpressions[0].operator",
        "matchExpressions[1].values",
    ]


@pytest.mark.parametrize(
    ("namespaces", "ok"),
    [(["default", "team-1", "a" * 63], True), (["a" * 64], False), (["-x"], False), (["a.b"], False), ([""], False)],
)
def test_namespaces_are_dns_labels(namespaces: list[str], ok: bool) -> None:
    spec = {
        "match": {"excludeNamespaces": namespaces},
        "exemptions": [{"checks": ["*"], "reason": "r", "namespaces": namespaces,
                        "expires": "2099-01-01T00:00:00Z"}],
    }
    problems = validate_policy_object(policy(**spec))
    assert (problems == []) is ok, problems
    if not ok:
        assert [p.split(": ", 1)[0] for p in problems] == ["spec.match.excludeNamespaces[0]", "spec.exemptions[0].namespaces[0]"]


@pytest.mark.parametrize(("slo", "problem"), [
    ({"interval": "0s"}, "spec.slos[0].interval: interval '0s' is shorter than 1s"),
    ({"interval": "500ms"}, "spec.slos[0].interval:"),
    ({"query": 'rate(x_{{labels.app}}{namespace="{{namespace}}", deployment="{{name}}"}[5m])'},
     "spec.slos[0].query: cannot be run for all Deployments at once: placeholders are only allowed as label matcher"),
    ({"query": 'rate(x{namespace="{{namespace}}", deployment="{{name}}"}[{{labels.window}}])'},
     "spec.slos[0].query: cannot be run for all Deployments at once: placeholders are only allowed"),
    ({"query": 'rate(x{namespace="{{namespace}}", deployment!="{{name}}"}[5m])'},
     'spec.slos[0].query: cannot be run for all Deployments at once: use deployment="{{name}}" (an equality matcher)'),
])
def test_slos_that_cannot_run_are_field_errors(slo: dict[str, str], problem: str) -> None:
    base = {"name": "s", "comparison": "<", "threshold": 1,
            "query": 'sum(rate(x{namespace="{{namespace}}", deployment="{{name}}"}[5m]))'}
    problems = validate_policy_object({"apiVersion": "readiness.dev/v1alpha1", "kind": "ReadinessPolicy",
                                       "metadata": {"name": "p"}, "spec": {"slos": [{**base, **slo}]}})
    assert any(p.startswith(problem) for p in problems), problems


def test_a_batchable_slo_is_accepted() -> None:
    slo = {"name": "s", "comparison": "<", "threshold": 1, "interval": "1s",
           "query": 'sum(rate(x{namespace="{{namespace}}", deployment="{{name}}", team="{{labels.team}}"}[5m]))'}
    assert validate_policy_object({"apiVersion": "readiness.dev/v1alpha1", "kind": "ReadinessPolicy",
                                   "metadata": {"name": "p"}, "spec": {"slos": [slo]}}) == []
