"""Readiness at a glance: SLO budgets, the per-namespace/check overview, its metrics and its page."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import pytest

from readiness_operator.engine import DeploymentVerdict, Finding
from readiness_operator.kube.context import OperatorContext
from readiness_operator.kube.leadership import Leadership
from readiness_operator.kube.metrics import OperatorMetrics
from readiness_operator.kube.page_server import page_html
from readiness_operator.kube.reconcile import PassInput, run_pass
from readiness_operator.kube.state import PolicyRuntime, Registry
from readiness_operator.model import Slo
from readiness_operator.model.common import Severity
from readiness_operator.report.overview import cluster_overview, policy_overview
from readiness_operator.report.page import burn_chart, render_page, render_standby
from readiness_operator.settings import Settings
from readiness_operator.slo.budget import BudgetHistory, SloBudget, budget_remaining, slo_budgets
from readiness_operator.slo.store import SloStore
from tests.unit.test_reconcile import NOW, SPEC, View, Writer, deployment


def verdict(ns: str, name: str, score: int, *failed: str) -> DeploymentVerdict:
    findings = [Finding(c, "probes", Severity.CRITICAL, "fail", f"{c} failed on {name}", f"fix `{c}`", 3) for c in failed]
    return DeploymentVerdict(ns, name, not failed, score, "ready" if not failed else "not-ready", findings)


@pytest.mark.parametrize(("value", "comparison", "threshold", "expected"), [
    (0.0, "<", 0.01, 1.0),  # perfect
    (0.005, "<", 0.01, 0.5),
    (0.01, "<=", 0.01, 0.0),  # at the objective
    (0.02, "<", 0.01, -1.0),  # breached: one budget over
    (0.9995, ">=", 0.999, 0.5),  # availability: budget 0.001, half used
    (1.0, ">=", 0.999, 1.0),
    (150.0, ">", 100.0, 0.5),  # a rate: headroom relative to the objective
    (500.0, ">", 100.0, 1.0),  # capped at 1
    (1.0, "<", 0.0, None),  # no budget below a zero objective
    (float("nan"), "<", 1.0, None),
])
def test_budget_remaining(value: float, comparison: str, threshold: float, expected: float | None) -> None:
    got = budget_remaining(value, comparison, threshold)
    assert got == (pytest.approx(expected) if expected is not None else None)


SLO = Slo.model_validate({"name": "errors", "query": 'e{namespace="{{namespace}}", deployment="{{name}}"}',
                          "comparison": "<", "threshold": 0.01})


def test_slo_budgets_worst_deployment_and_failed_queries_are_unknown() -> None:
    values = {"errors": {("a", "web"): 0.001, ("a", "api"): 0.005, ("b", "worker"): 0.02, ("gone", "x"): 0.5}}
    targets = [("a", "web"), ("a", "api"), ("b", "worker"), ("b", "nodata")]
    [budget] = slo_budgets([SLO], values, targets, measured_at={"errors": NOW})
    assert budget.remaining == pytest.approx(-1.0) and (budget.measured, budget.breaching) == (3, 1)
    assert budget.per_deployment[("a", "api")] == pytest.approx(0.5) and ("gone", "x") not in budget.per_deployment
    [failed] = slo_budgets([SLO], values, targets, errors={"errors": "HTTP 503"})
    assert failed.remaining is None and failed.measured == 0 and failed.error == "HTTP 503"


def test_budget_history_records_each_measurement_once_and_is_bounded() -> None:
    history = BudgetHistory(points=3)
    for i in range(5):
        budget = SloBudget("errors", "<", 0.01, 1, 0, 1.0 - i / 10, measured_at=NOW + timedelta(seconds=i))
        history.record([budget, budget])  # the same measurement twice: one point
    assert [round(r, 2) for _, r in history.of("errors")] == [0.8, 0.7, 0.6]
    history.keep(["other"])
    assert history.of("errors") == []


def test_policy_overview_folds_by_namespace_and_check() -> None:
    verdicts = [verdict("a", "web", 100), verdict("a", "api", 60, "probe-liveness"),
                verdict("b", "worker", 40, "probe-liveness", "pdb-present")]
    overview = policy_overview("p", verdicts, now=NOW, max_offenders=1)
    assert (overview.targets, overview.compliant, overview.score) == (3, 1, 66)
    assert [(n.namespace, n.targets, n.compliant, n.score) for n in overview.namespaces] == [("a", 2, 1, 80), ("b", 1, 0, 40)]
    assert overview.failing_checks == {"probe-liveness": 2, "pdb-present": 1}
    [worst] = overview.offenders
    assert worst.name == "worker" and [f.check for f in worst.failures] == ["probe-liveness", "pdb-present"]
    assert worst.failures[0].remediation == "fix `probe-liveness`"
    other = policy_overview("q", [verdict("a", "web", 91), verdict("c", "x", 50, "pdb-present")])
    cluster = cluster_overview([other, overview])
    assert [p.policy for p in cluster.policies] == ["p", "q"]
    assert (cluster.targets, cluster.compliant, cluster.score) == (5, 2, (100 + 60 + 40 + 91 + 50) // 5)
    assert [(n.namespace, n.targets, n.score) for n in cluster.namespaces] == [("a", 3, 83), ("b", 1, 40), ("c", 1, 50)]
    empty = cluster_overview([])
    assert (empty.targets, empty.score, empty.namespaces) == (0, 100, ())


def sample(metrics: OperatorMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_metrics_follow_the_overview_and_stale_series_go() -> None:
    metrics = OperatorMetrics()
    budget = SloBudget("errors", "<", 0.01, 2, 1, -1.0, {("a", "api"): 0.5, ("b", "worker"): -1.0}, NOW)
    metrics.export_overview(policy_overview("p", [verdict("a", "api", 60, "probe-liveness"),
                                                  verdict("b", "worker", 40, "pdb-present")], [budget]))
    assert sample(metrics, "readiness_namespace_targets", policy="p", namespace="b") == 1
    assert sample(metrics, "readiness_namespace_score", policy="p", namespace="a") == 60
    assert sample(metrics, "readiness_check_failing_deployments", policy="p", check="pdb-present") == 1
    assert sample(metrics, "readiness_slo_budget_remaining", policy="p", slo="errors") == -1.0
    assert sample(metrics, "readiness_slo_breaching_deployments", policy="p", slo="errors") == 1
    assert sample(metrics, "readiness_deployment_slo_budget_remaining", policy="p", slo="errors",
                  namespace="a", deployment="api") is None  # opt-in only
    # Namespace b has no target any more, nobody fails pdb-present: their series go; the rest stay.
    metrics.export_overview(policy_overview("p", [verdict("a", "api", 60, "probe-liveness")]))
    assert sample(metrics, "readiness_namespace_targets", policy="p", namespace="b") is None
    assert sample(metrics, "readiness_check_failing_deployments", policy="p", check="pdb-present") is None
    assert sample(metrics, "readiness_slo_budget_remaining", policy="p", slo="errors") is None
    assert sample(metrics, "readiness_check_failing_deployments", policy="p", check="probe-liveness") == 1
    metrics.forget_verdicts("p")
    exported = [s for m in metrics.registry.collect() for s in m.samples if s.labels.get("policy") == "p"]
    assert exported == []


def test_per_deployment_slo_budgets_when_enabled() -> None:
    metrics = OperatorMetrics(deployment_slo_budgets=True)
    budget = SloBudget("errors", "<", 0.01, 1, 0, 0.5, {("a", "api"): 0.5}, NOW)
    metrics.export_overview(policy_overview("p", [verdict("a", "api", 100)], [budget]))
    assert sample(metrics, "readiness_deployment_slo_budget_remaining", policy="p", slo="errors",
                  namespace="a", deployment="api") == 0.5
    metrics.export_overview(policy_overview("p", [verdict("a", "api", 100)], []))
    assert sample(metrics, "readiness_deployment_slo_budget_remaining", policy="p", slo="errors",
                  namespace="a", deployment="api") is None


def test_a_pass_keeps_the_overview_and_exports_it() -> None:
    spec = {**SPEC, "slos": [{"name": "errors", "interval": "10s", "comparison": "<", "threshold": 0.01,
                              "query": 'e{namespace="{{namespace}}", deployment="{{name}}"}'}]}
    store, metrics = SloStore(), OperatorMetrics()

    async def query(_: str) -> list[dict[str, Any]]:
        return [{"metric": {"namespace": "a", "deployment": "bad"}, "value": [0, "0.0025"]}]

    view, writer, rt = View(), Writer(), PolicyRuntime("p", "uid-p")
    view.put(deployment("a", "good", True))
    view.put(deployment("a", "bad", False))
    item = PassInput("p", "uid-p", 1, spec, {})
    asyncio.run(run_pass(rt, item, view, writer, slo_store=store, slo_query=lambda _c: query, metrics=metrics, now=NOW))
    assert rt.overview is not None and rt.overview.failing_checks == {"probe-readiness": 1}
    assert [o.name for o in rt.overview.offenders] == ["bad"]
    assert sample(metrics, "readiness_namespace_targets", policy="p", namespace="a") == 2
    assert sample(metrics, "readiness_slo_budget_remaining", policy="p", slo="errors") == pytest.approx(0.75)
    [(at, remaining)] = rt.budget_history.of("errors")
    assert at == NOW.timestamp() and remaining == pytest.approx(0.75)
    # The policy becomes invalid: no verdicts to show, none exported.
    bad = PassInput("p", "uid-p", 2, {**spec, "rules": {"probes": {"nope": True}}}, {})
    asyncio.run(run_pass(rt, bad, view, writer, slo_store=store, metrics=metrics, now=NOW + timedelta(seconds=1)))
    assert rt.overview is None
    assert sample(metrics, "readiness_namespace_targets", policy="p", namespace="a") is None


class Collect(HTMLParser):
    """Every tag and attribute and the text, as a browser would parse them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parsed(html: str) -> Collect:
    collect = Collect()
    collect.feed(html)
    return collect


EVIL = '<script>alert(1)</script>"\'&'


def test_page_shows_scores_offenders_fixes_and_escapes_every_name() -> None:
    evil = verdict(EVIL, EVIL, 30, "probe-liveness")
    budget = SloBudget(EVIL, "<", 0.01, 1, 1, -1.0, measured_at=NOW)
    overview = policy_overview(EVIL, [evil, verdict("a", "web", 100)], [budget])
    history = {(EVIL, EVIL): [(NOW.timestamp() - 60, 0.5), (NOW.timestamp(), -1.0)]}
    html = render_page(cluster_overview([overview], history), now=NOW)
    page = parsed(html)
    assert [t for t, _ in page.tags].count("script") == 0 and "<script>" not in html
    text = "".join(page.text)
    assert EVIL in text  # shown as text, not markup
    assert "Fix: fix probe-liveness" in " ".join(text.split())
    offender = next(a for t, a in page.tags if t == "div" and a.get("class") == "offender")
    assert offender["data-name"] == EVIL and offender["data-namespace"] == EVIL
    assert next(a for t, a in page.tags if a.get("id") == "cluster-score") is not None
    assert 'id="cluster-score">65<' in html
    assert ("polyline" in [t for t, _ in page.tags]) and 'data-points="2"' in html
    standby = parsed(render_standby(EVIL, now=NOW))
    assert EVIL in "".join(standby.text) and "script" not in [t for t, _ in standby.tags]


def test_burn_chart_without_points_says_so() -> None:
    assert "no measurement yet" in burn_chart([], "x")
    one = burn_chart([(NOW.timestamp(), 0.2)], "x")
    assert 'data-points="1"' in one and "polyline" in one


def test_page_without_policies() -> None:
    html = render_page(cluster_overview([]), now=datetime(2026, 1, 1, tzinfo=UTC))
    assert 'id="cluster-score">100<' in html and "no policy" in html


class NoApi:
    """Any attribute access is an API call the page must not make."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the page called the API ({name})")


def test_page_is_served_from_memory_and_a_standby_names_the_leader() -> None:
    ctx = OperatorContext.__new__(OperatorContext)  # no KubeApi, no Prometheus clients: nothing to call
    ctx.api = NoApi()  # type: ignore[assignment]
    ctx.leadership = Leadership("lease", "ns", "me")
    ctx.leadership.holder = "operator-7d9f_ab12cd34"
    ctx.settings = Settings()
    ctx.registry = Registry()
    assert 'id="leader">operator-7d9f_ab12cd34<' in page_html(ctx, NOW)
    ctx.leadership.leading = True
    runtime = ctx.registry.ensure("p", "uid-p")
    runtime.overview = policy_overview("p", [verdict("a", "web", 40, "probe-liveness")])
    html = page_html(ctx, NOW)
    assert 'id="cluster-score">40<' in html and 'data-name="web"' in html and "leader," in html


def test_page_and_per_deployment_budgets_are_off_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().page_port is None and not Settings().metrics_deployment_slo_budgets
    monkeypatch.setenv("READINESS_PAGE_PORT", "8090")
    monkeypatch.setenv("READINESS_METRICS_DEPLOYMENT_SLO_BUDGETS", "true")
    settings = Settings()
    assert settings.page_port == 8090 and settings.metrics_deployment_slo_budgets
    monkeypatch.setenv("READINESS_PAGE_PORT", "0")
    assert Settings().page_port is None
    monkeypatch.setenv("READINESS_PAGE_PORT", "70000")
    with pytest.raises(ValueError, match="page_port"):
        Settings()
