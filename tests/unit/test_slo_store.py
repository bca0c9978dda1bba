"""SLO answers that cannot give a verdict (issue #14, 7d/7e): NaN, +-Inf, garbage and several series
per Deployment are Unknown with a reason, never a pass or a fail, and never reach a status patch."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from readiness_operator.engine import evaluate
from readiness_operator.model import ReadinessPolicySpec, Slo
from readiness_operator.slo.store import EVERYTHING, SloStore, read_samples
from readiness_operator.world import SloMeasurement, World

NOW = datetime(2026, 12, 1, tzinfo=UTC)
SLO = Slo.model_validate({"name": "errors", "query": 'rate(x{namespace="{{namespace}}", deployment="{{name}}"}[5m])',
                          "comparison": "<", "threshold": 0.01})


def sample(ns: str, name: str, value: Any, **extra: str) -> dict[str, Any]:
    return {"metric": {"namespace": ns, "deployment": name, **extra}, "value": [1.0, value]}


@pytest.mark.parametrize(("raw", "reason"), [("NaN", "NaN"), ("+Inf", "inf"), ("-Inf", "-inf"), ("abc", "not a number"),
                                             (None, "not a number")])
def test_non_finite_or_garbage_values_are_problems_not_values(raw: Any, reason: str) -> None:
    values, problems = read_samples([sample("a", "web", raw), sample("a", "ok", "0.5")], "namespace", "deployment")
    assert values == {("a", "ok"): 0.5}
    assert reason in problems[("a", "web")]


def test_several_series_for_one_deployment_name_the_labels_that_differ_in_any_order() -> None:
    one = sample("a", "web", "0.1", pod="web-1", container="app")
    two = sample("a", "web", "0.9", pod="web-2", container="app")
    for result in ([one, two], [two, one]):
        values, problems = read_samples(result, "namespace", "deployment")
        assert ("a", "web") not in values
        assert "several series" in problems[("a", "web")] and "pod" in problems[("a", "web")]
        assert "container" not in problems[("a", "web")].split("differ in")[1].split(")")[0]


def refresh(store: SloStore, answer: list[dict[str, Any]], now: datetime = NOW) -> set[Any]:
    async def query(_: str) -> list[dict[str, Any]]:
        return answer

    return asyncio.run(store.refresh("p", [SLO], query, now)).changed


def test_a_nan_answer_is_unknown_and_the_status_stays_valid_json() -> None:
    store = SloStore()
    refresh(store, [sample("a", "web", "NaN"), sample("a", "busy", "0.5")])
    measured = store.measurements("p", ("a", "web"))["errors"]
    assert measured.value is None and measured.error is not None and "NaN" in measured.error
    status = store.status("p", [SLO], [("a", "web"), ("a", "busy")])
    json.dumps(status, allow_nan=False)  # what the API server accepts; raises on NaN/Infinity
    assert status[0]["measured"] == 1 and status[0]["noData"] == 1


def test_a_value_turning_nan_marks_every_target_for_re_judging() -> None:
    store = SloStore()
    refresh(store, [sample("a", "web", "0.001")])
    later = NOW.replace(hour=1)
    changed = refresh(store, [sample("a", "web", "NaN")], later)
    assert ("a", "web") in changed and EVERYTHING in changed


def test_the_engine_never_judges_a_non_finite_measurement() -> None:
    spec = ReadinessPolicySpec.model_validate({"slos": [SLO.model_dump(by_alias=True)]})
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "a"},
           "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "x:1"}]}}}}
    for value in (float("nan"), float("inf"), float("-inf")):
        verdict = evaluate(spec, dep, World(slo_measurements={"errors": SloMeasurement(value, NOW)}, now=NOW))
        finding = verdict.findings[-1]
        assert finding.status == "unknown" and finding.value is None, value
        assert verdict.compliant  # Unknown is not a failure


def test_a_refresh_is_due_only_when_a_query_is_or_the_slos_changed() -> None:
    """A pass asks first (issue 16: gathering every Deployment's label values in each pass an HPA
    status woke was an idle leader's cost); each answer moves the version status summaries key on."""
    from datetime import timedelta

    store = SloStore()
    assert store.refresh_due("p", [SLO], NOW)  # never measured
    version = store.version("p")
    refresh(store, [sample("a", "web", "0.001")])
    assert store.version("p") != version
    assert not store.refresh_due("p", [SLO], NOW + timedelta(seconds=1))
    assert store.refresh_due("p", [SLO], NOW + timedelta(minutes=10))  # the interval passed
    other = Slo.model_validate({"name": "latency", "query": SLO.query, "comparison": "<", "threshold": 1})
    assert store.refresh_due("p", [SLO, other], NOW)  # an SLO added
    assert store.refresh_due("p", [], NOW)  # one dropped: its series must go
    version = store.version("p")
    asyncio.run(store.refresh("p", [], _no_query, NOW))
    assert store.version("p") != version and not store.refresh_due("p", [], NOW)


async def _no_query(_: str) -> list[dict[str, Any]]:
    raise AssertionError("nothing is due")
