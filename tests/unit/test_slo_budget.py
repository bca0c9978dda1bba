"""Error budgets, burn rates, SLIs on pod labels, and the freeze they drive (pure logic; issue 14)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from readiness_operator.admission.decide import review_deployment
from readiness_operator.checks.slo import slo_state
from readiness_operator.engine import evaluate
from readiness_operator.kube.reconcile import PassInput, run_pass
from readiness_operator.kube.reports import build_reports, digest, stable_digest
from readiness_operator.kube.state import Judged, PolicyRuntime
from readiness_operator.model import ReadinessPolicySpec
from readiness_operator.model.errors import format_validation_error
from readiness_operator.model.slo import Slo
from readiness_operator.slo.burn import AlertRule, Counts, budget_state, histogram_quantile, mean_of_ratios
from readiness_operator.slo.sli import read_sli, sli_query, with_matcher
from readiness_operator.slo.store import SloStore
from readiness_operator.world import SloMeasurement, World
from tests.unit.test_reconcile import View, Writer, deployment

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PAGE = AlertRule("page", "1h", "5m", 14.4)
TICKET = AlertRule("ticket", "1d", "2h", 3.0)
AVAILABILITY = {"name": "availability", "objective": 99.9, "period": "30d", "onBreach": "Block",
                "sli": {"ratio": {"bad": 'http_requests_total{code=~"5.."}', "total": "http_requests_total"}}}


# --- the maths -------------------------------------------------------------------------------------

def test_budget_remaining_and_burn_rates_by_hand() -> None:
    # 99.9%: the budget is 0.1% of requests. Over 30d, 1,000,000 requests with 400 errors: 40% spent.
    counts = {"30d": Counts(1_000_000, 400), "1h": Counts(10_000, 200), "5m": Counts(1_000, 20),
              "1d": Counts(200_000, 100), "2h": Counts(20_000, 10)}
    state = budget_state(0.999, "30d", counts, [PAGE, TICKET])
    assert state.sli == pytest.approx(0.9996)
    assert state.budget_remaining == pytest.approx(0.6)
    assert state.burn_rates["1h"] == pytest.approx(20.0)  # 2% errors / 0.1% allowed
    assert state.burn_rates["5m"] == pytest.approx(20.0)
    assert state.burn_rates["1d"] == pytest.approx(0.5)
    assert [a.rule for a in state.fired] == [PAGE]
    assert state.level == "page" and not state.exhausted
    assert "page burn 20x over 1h and 20x over 5m (> 14.4x)" in state.why()


def test_both_windows_must_burn_and_an_idle_window_burns_nothing() -> None:
    # The long window still burns, the short one recovered: the page stops.
    counts = {"30d": Counts(1_000_000, 100), "1h": Counts(10_000, 200), "5m": Counts(1_000, 0)}
    assert budget_state(0.999, "30d", counts, [PAGE]).fired == ()
    idle = budget_state(0.999, "30d", {"30d": Counts(1_000_000, 100), "1h": Counts(0, 0)}, [PAGE])
    assert idle.burn_rates["1h"] is None and idle.burn_rates["5m"] is None and idle.fired == ()


def test_an_exhausted_budget_freezes_without_any_burn() -> None:
    state = budget_state(0.999, "30d", {"30d": Counts(1000, 2), "1h": Counts(10, 0), "5m": Counts(1, 0)}, [PAGE])
    assert state.budget_remaining == pytest.approx(-1.0) and state.exhausted and state.level == "page"
    assert state.why().startswith("error budget over 30d exhausted")


def test_a_period_without_traffic_has_no_sli() -> None:
    state = budget_state(0.999, "30d", {}, [PAGE])
    assert state.sli is None and state.budget_remaining is None and state.level == "ok"


def test_period_sli_weighs_by_traffic_not_by_window() -> None:
    """Uneven traffic: a busy hour of 10,000 requests with 10 errors and a quiet hour of 10 requests
    with 5 errors. By requests, 15 of 10,010 failed: SLI 0.998501...; Sloth's mean of the two
    windows' ratios is (0.999 + 0.5) / 2 = 0.7495, as if half of all requests had failed."""
    busy, quiet = Counts(10_000, 10), Counts(10, 5)
    period = Counts(busy.total + quiet.total, busy.bad + quiet.bad)
    state = budget_state(0.99, "2h", {"2h": period}, [])
    assert state.sli == pytest.approx(1 - 15 / 10_010, abs=1e-12)
    assert state.budget_remaining == pytest.approx(1 - (15 / 10_010) / 0.01, abs=1e-12)  # 85.0% left
    assert mean_of_ratios([busy, quiet]) == pytest.approx(0.7495, abs=1e-12)


def test_histogram_quantile_matches_prometheus_interpolation() -> None:
    # 100 requests: 50 <= 0.1 s, 90 <= 0.2 s, 99 <= 0.5 s, all <= 1 s.
    buckets = {0.1: 50.0, 0.2: 90.0, 0.5: 99.0, 1.0: 100.0, float("inf"): 100.0}
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert histogram_quantile(0.95, buckets) == pytest.approx(0.2 + 0.3 * 5 / 9)
    assert histogram_quantile(0.999, buckets) == pytest.approx(0.5 + 0.5 * 0.9)
    assert histogram_quantile(0.99, {0.1: 0.0, float("inf"): 0.0}) is None
    assert histogram_quantile(0.99, {0.1: 1.0, float("inf"): 10.0}) == 0.1  # in the +Inf bucket


# --- SLIs on namespace/pod -------------------------------------------------------------------------

PODS = {("shop", "checkout-6d4b9c7f5-abcde"): "checkout", ("shop", "checkout-6d4b9c7f5-fghij"): "checkout",
        ("shop", "cart-59c8d7-zzzzz"): "cart"}


def owner_of(namespace: str, pod: str) -> str | None:
    return PODS.get((namespace, pod))


def sample(pod: str, value: float, **labels: str) -> dict[str, Any]:
    return {"metric": {"namespace": "shop", "pod": pod, **labels}, "value": [0, repr(value)]}


def test_the_query_selects_pods_and_narrows_to_the_policy_namespaces() -> None:
    slo = Slo.model_validate({**AVAILABILITY, "period": "10m",
                              "burnRates": [{"severity": "page", "longWindow": "1m", "shortWindow": "15s", "factor": 14.4}]})
    promql = sli_query(slo, ["shop"])
    assert promql.count("sum by (namespace, pod) (increase(") == 6  # 3 windows x (bad, total)
    assert 'http_requests_total{namespace=~"shop", code=~"5.."}[15s]' in promql
    assert 'http_requests_total{namespace=~"shop"}[10m]' in promql
    assert "deployment" not in promql
    assert with_matcher("up", 'a="b"') == 'up{a="b"}' and with_matcher("up{}", 'a="b"') == 'up{a="b"}'


def test_pods_are_summed_per_deployment_and_missing_error_series_count_zero() -> None:
    slo = Slo.model_validate({**AVAILABILITY, "period": "10m",
                              "burnRates": [{"severity": "page", "longWindow": "1m", "shortWindow": "15s", "factor": 14.4}]})
    result = []
    for w, (t1, b1, t2, b2) in {"10m": (6000, 3, 2000, 5), "1m": (600, 30, 200, 30), "15s": (150, 9, 50, 6)}.items():
        result += [sample("checkout-6d4b9c7f5-abcde", t1, slo_window=w, slo_part="total"),
                   sample("checkout-6d4b9c7f5-abcde", b1, slo_window=w, slo_part="bad"),
                   sample("checkout-6d4b9c7f5-fghij", t2, slo_window=w, slo_part="total"),
                   sample("checkout-6d4b9c7f5-fghij", b2, slo_window=w, slo_part="bad"),
                   sample("cart-59c8d7-zzzzz", 100, slo_window=w, slo_part="total"),  # never failed: no bad series
                   sample("stray-pod", 1e9, slo_window=w, slo_part="total")]  # not a Deployment's pod
    m = read_sli(slo, result, owner_of)
    checkout = m.budgets[("shop", "checkout")]
    assert checkout.sli == pytest.approx(1 - 8 / 8000)  # (3 + 5) of (6000 + 2000): traffic-weighted
    assert checkout.budget_remaining == pytest.approx(0.0) and checkout.exhausted
    assert checkout.burn_rates["1m"] == pytest.approx(60 / 800 / 0.001)
    assert [a.rule.long_window for a in checkout.fired] == ["1m"]
    assert m.budgets[("shop", "cart")].budget_remaining == pytest.approx(1.0)
    assert set(m.values) == {("shop", "checkout"), ("shop", "cart")}


def test_gauges_are_summed_per_pod_then_aggregated_and_quantiles_use_summed_buckets() -> None:
    memory = Slo.model_validate({"name": "memory", "comparison": "<", "threshold": 500e6,
                                 "sli": {"gauge": {"selector": 'container_memory_working_set_bytes{container!=""}'}}})
    assert sli_query(memory) == 'sum by (namespace, pod) (container_memory_working_set_bytes{container!=""})'
    m = read_sli(memory, [sample("checkout-6d4b9c7f5-abcde", 300e6), sample("checkout-6d4b9c7f5-fghij", 450e6)], owner_of)
    assert m.values == {("shop", "checkout"): 450e6}  # max over the pods: per instance

    p99 = Slo.model_validate({"name": "p99", "comparison": "<", "threshold": 2, "window": "5m",
                              "sli": {"latency": {"bucket": "http_request_duration_seconds_bucket", "quantile": 0.99}}})
    assert sli_query(p99) == "sum by (namespace, pod, le) (rate(http_request_duration_seconds_bucket[5m]))"
    result = []
    for pod, counts in (("checkout-6d4b9c7f5-abcde", (50, 90, 100)), ("checkout-6d4b9c7f5-fghij", (0, 0, 100))):
        result += [sample(pod, c, le=le) for le, c in zip(("0.5", "1.0", "+Inf"), counts, strict=True)]
    # Summed: 50 <= 0.5 s, 90 <= 1 s, 200 in all; the 99th percentile (rank 198) is in +Inf: 1 s.
    assert read_sli(p99, result, owner_of).values == {("shop", "checkout"): 1.0}


def test_a_non_finite_pod_value_makes_the_deployment_unknown() -> None:
    memory = Slo.model_validate({"name": "memory", "comparison": "<", "threshold": 500e6,
                                 "sli": {"gauge": {"selector": "container_memory_working_set_bytes"}}})
    m = read_sli(memory, [sample("checkout-6d4b9c7f5-abcde", 1.0),
                          {"metric": {"namespace": "shop", "pod": "checkout-6d4b9c7f5-fghij"}, "value": [0, "NaN"]}],
                 owner_of)
    assert m.values == {} and "not a finite number" in m.problems[("shop", "checkout")]


# --- validation ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("slo", "expected"), [
    ({**AVAILABILITY, "period": "10m"}, "spec.slos[0].burnRates: the default windows (up to 3d) do not fit"),
    ({**AVAILABILITY, "period": "10m", "burnRates": [{"severity": "page", "longWindow": "1h", "shortWindow": "1m",
                                                      "factor": 2}]},
     "spec.slos[0].burnRates[0].longWindow: 1h is longer than the period (10m)"),
    ({**AVAILABILITY, "burnRates": [{"severity": "page", "longWindow": "5m", "shortWindow": "1h", "factor": 2}]},
     "spec.slos[0].burnRates[0].shortWindow: shortWindow (1h) must be shorter than longWindow (5m)"),
    ({**AVAILABILITY, "sli": {"ratio": {"bad": 'sum(rate(x[5m]))', "total": "x"}}},
     "spec.slos[0].sli.ratio.bad: 'sum(rate(x[5m]))' is not a series selector"),
    ({**AVAILABILITY, "sli": {"ratio": {"total": "x"}}}, "spec.slos[0].sli.ratio.good: set exactly one of good and bad"),
    ({**AVAILABILITY, "threshold": 0.999}, "spec.slos[0].threshold: threshold belongs to the threshold form"),
    ({**AVAILABILITY, "objective": 100}, "spec.slos[0].objective: Input should be less than 100"),
    ({"name": "p99", "objective": 99, "sli": {"latency": {"bucket": "h_bucket", "quantile": 0.99}}},
     "spec.slos[0].sli: an objective needs an SLI that counts events"),
    ({"name": "m", "sli": {"gauge": {"selector": "m"}}}, "spec.slos[0].comparison: comparison is required"),
    ({**AVAILABILITY, "period": "30s"}, "spec.slos[0].period: Value error, period '30s' is shorter than 1m"),
])
def test_bad_slos_get_field_level_errors(slo: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError) as err:
        ReadinessPolicySpec.model_validate({"slos": [slo]})
    assert expected.replace("Value error, ", "") in format_validation_error(err.value, "spec.")


def test_short_periods_and_windows_are_allowed_for_tests() -> None:
    slo = Slo.model_validate({**AVAILABILITY, "period": "10m", "burnRates": [
        {"severity": "page", "longWindow": "1m", "shortWindow": "15s", "factor": 14.4}]})
    assert [r.long_window for r in slo.alert_rules()] == ["1m"]
    assert [(r.severity, r.long_window, r.short_window, r.factor) for r in Slo.model_validate(AVAILABILITY).alert_rules()] \
        == [("page", "1h", "5m", 14.4), ("page", "6h", "30m", 6.0), ("ticket", "1d", "2h", 3.0), ("ticket", "3d", "6h", 1.0)]


# --- the freeze ------------------------------------------------------------------------------------

def _measure(level: str) -> SloMeasurement:
    counts = {"30d": Counts(1_000_000, 300), "1h": Counts(10_000, 0), "5m": Counts(1000, 0),
              "1d": Counts(100_000, 0), "2h": Counts(10_000, 0)}
    if level == "page":
        counts |= {"1h": Counts(10_000, 300), "5m": Counts(1000, 30)}
    if level == "ticket":
        counts |= {"1d": Counts(100_000, 500), "2h": Counts(10_000, 50)}
    budget = budget_state(0.999, "30d", counts, [PAGE, TICKET])
    assert budget.level == level
    return SloMeasurement(budget.sli, NOW, budget=budget)


def _review(level: str, spec: dict[str, Any], new_image: str = "app:2", replicas: int = 3) -> Any:
    old = deployment("shop", "checkout", True)
    old["spec"]["replicas"] = 3
    new = {**old, "spec": {**old["spec"], "replicas": replicas, "template": {
        **old["spec"]["template"], "spec": {"containers": [{**old["spec"]["template"]["spec"]["containers"][0],
                                                            "image": new_image}]}}}}
    request = {"operation": "UPDATE", "object": new, "oldObject": old,
               "kind": {"group": "apps", "version": "v1", "kind": "Deployment"}}
    world = World(slo_measurements={"availability": _measure(level)}, now=NOW)
    return review_deployment(request, [("p", ReadinessPolicySpec.model_validate(spec))], lambda _o: world)


@pytest.mark.parametrize("on_breach", ["Block", "Warn"])
def test_block_freezes_at_page_level_and_both_warn_at_ticket_level(on_breach: str) -> None:
    spec = {"mode": "Audit", "slos": [{**AVAILABILITY, "onBreach": on_breach}]}
    page = _review("page", spec)
    if on_breach == "Block":
        assert not page.allowed
        assert "slo:availability" in page.message and "page burn 30x over 1h" in page.message
        assert "of the error budget left" in page.message and "objective 99.9%" in page.message
    else:
        assert page.allowed and any("page burn" in w for w in page.warnings)
    ticket = _review("ticket", spec)
    assert ticket.allowed and any("ticket burn" in w and "over 1d" in w for w in ticket.warnings)
    ok = _review("ok", spec)
    assert ok.allowed and not ok.warnings


def test_the_freeze_allows_scale_downs() -> None:
    spec = {"mode": "Audit", "slos": [AVAILABILITY]}
    old_image = deployment("shop", "checkout", True)["spec"]["template"]["spec"]["containers"][0]["image"]
    assert _review("page", spec, new_image=old_image, replicas=1).allowed


# --- reports are rewritten for verdicts, not for live values ---------------------------------------

def test_stable_digest_ignores_live_values_but_not_levels() -> None:
    spec = ReadinessPolicySpec.model_validate({"slos": [AVAILABILITY]})
    d = deployment("shop", "checkout", True)

    def report(measurement: SloMeasurement) -> dict[str, Any]:
        verdict = evaluate(spec, d, World(slo_measurements={"availability": measurement}, now=NOW))
        return build_reports("p", "uid", "shop", [Judged(verdict, d, NOW)])[0]

    base = _measure("ok")
    assert base.budget is not None
    moved = budget_state(0.999, "30d", {"30d": Counts(1_000_001, 301), "1h": Counts(10_010, 1), "5m": Counts(1000, 0)},
                         [PAGE, TICKET])
    a, b = report(base), report(SloMeasurement(moved.sli, NOW + timedelta(seconds=10), budget=moved))
    props = next(r["properties"] for r in a["results"] if r["rule"] == "slo:availability")
    assert {"objective", "budgetRemaining", "burnRates", "firing", "state"} <= set(props)
    assert digest(a) != digest(b) and stable_digest(a) == stable_digest(b)
    assert stable_digest(report(_measure("page"))) != stable_digest(a)


class CountingWriter(Writer):
    def __init__(self) -> None:
        super().__init__()
        self.puts = 0

    async def put_policy_report(self, report: Mapping[str, Any]) -> None:
        self.puts += 1
        await super().put_policy_report(report)


def test_a_report_is_rewritten_when_the_level_changes_not_when_a_value_moves() -> None:
    spec = {"match": {"namespaces": ["shop"]}, "slos": [{**AVAILABILITY, "interval": "10s", "period": "10m",
            "burnRates": [{"severity": "page", "longWindow": "1m", "shortWindow": "15s", "factor": 14.4}]}]}
    view, writer, rt, store = ViewWithPods(), CountingWriter(), PolicyRuntime("p", "uid-p"), SloStore()
    rt.resync_seconds = 300  # the tick below falls after a resync
    view.put(deployment("shop", "checkout", True))
    errors = {"bad": 1.0}

    async def query(_: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for w, total in {"10m": 100_000.0, "1m": 10_000.0, "15s": 2_500.0}.items():
            bad = errors["bad"] * total / 100_000 if w == "10m" else errors["bad"] * total / 1000
            out += [sample("checkout-6d4b9c7f5-abcde", total, slo_window=w, slo_part="total"),
                    sample("checkout-6d4b9c7f5-abcde", bad, slo_window=w, slo_part="bad")]
        return out

    item = PassInput("p", "uid-p", 1, spec, {})

    def tick(seconds: int) -> None:
        asyncio.run(run_pass(rt, item, view, writer, slo_store=store, slo_query=lambda _c: query,
                             now=NOW + timedelta(seconds=seconds)))

    tick(0)
    assert writer.puts == 1
    first = writer.statuses[-1]["slos"][0]
    assert first["objective"] == 99.9 and first["state"] == "Met"
    for i, bad in enumerate((1.1, 1.3, 0.9), start=1):  # live values move, the level stays ok
        errors["bad"] = bad
        tick(10 * i)
    assert writer.puts == 1
    errors["bad"] = 50.0  # 5% errors in both short windows: 50x burn, page
    tick(40)
    assert writer.puts == 2
    assert ("checkout", "ErrorBudgetFreeze") in writer.events
    result = next(r for r in writer.reports[("shop", "readiness-p")]["results"] if r["rule"] == "slo:availability")
    assert result["properties"]["firing"] == "page 1m/15s"  # 0.05% over the period: half the budget left
    status = writer.statuses[-1]["slos"][0]
    assert status["state"] == "Breaching" and status["frozen"] == 1
    assert status["worst"][0]["name"] == "checkout" and status["worst"][0]["firing"] == "page 1m/15s"
    errors["bad"] = 51.0
    tick(50)
    assert writer.puts == 2  # still page: not rewritten for a value
    tick(50 + 301)  # the resync re-judges everything: still page, only the values moved
    assert writer.puts == 2  # idle stays idle (issue 16): a value alone never rewrites a report
    assert writer.statuses[-1]["slos"][0]["state"] == "Breaching"  # status carries the current values
    errors["bad"] = 1.0
    tick(400)
    assert writer.events.count(("checkout", "ErrorBudgetFreeze")) == 1
    assert ("checkout", "ErrorBudgetFreezeLifted") in writer.events


class ViewWithPods(View):
    def owner_of_pod(self, namespace: str, pod: str) -> str | None:
        return owner_of(namespace, pod)

    def deployments(self, namespace: str) -> Iterable[Mapping[str, Any]]:
        return super().deployments(namespace)


def test_the_worked_examples_of_docs_slo_md() -> None:
    # 1. success rate 99% over 30d: 18,000 of 3,000,000 failed; the quantiles of the example buckets.
    web = budget_state(0.99, "30d", {"30d": Counts(3_000_000, 18_000), "1h": Counts(10_000, 600),
                                     "5m": Counts(800, 50)}, [PAGE])
    assert web.budget_remaining == pytest.approx(0.4) and web.fired == ()
    assert (web.burn_rates["1h"], web.burn_rates["5m"]) == (pytest.approx(6.0), pytest.approx(6.25))
    buckets = {0.005: 1200.0, 0.01: 3900.0, 0.025: 8600.0, 0.05: 9700.0, 0.1: 9960.0, 0.25: 9993.0, 0.5: 9999.0,
               1.0: 10000.0, float("inf"): 10000.0}
    assert [round(histogram_quantile(q, buckets) or 0, 4) for q in (0.5, 0.95, 0.99, 0.999)] == [0.0135, 0.0455, 0.0885,
                                                                                                 0.2364]
    # 2. availability 99.95%: 60% of the budget left, and still a page on the 1h/5m burn.
    prod = budget_state(0.9995, "30d", {"30d": Counts(10_000_000, 2_000), "1h": Counts(100_000, 1_000),
                                        "5m": Counts(8_000, 120)}, [PAGE])
    assert prod.budget_remaining == pytest.approx(0.6) and prod.level == "page"
    assert (prod.burn_rates["1h"], prod.burn_rates["5m"]) == (pytest.approx(20.0), pytest.approx(30.0))
    # 4. p95 of the load generator's default shape (90% <= 5 ms, all <= 10 ms).
    assert histogram_quantile(0.95, {0.005: 90.0, 0.01: 100.0, float("inf"): 100.0}) == pytest.approx(0.0075)
    # 3. graded: error rate 0.4% ok, 2% warning, 6% critical; p99 350 ms ok, 700 ms warning, 1.2 s critical.
    graded = yaml.safe_load((Path(__file__).resolve().parents[2] / "examples/policies/graded-slos.yaml").read_text())
    errors, p99 = (Slo.model_validate(s) for s in graded["spec"]["slos"])
    assert [slo_state(errors, v)[0] for v in (0.004, 0.02, 0.06)] == ["ok", "warning", "critical"]
    assert [slo_state(p99, v)[0] for v in (0.35, 0.7, 1.2)] == ["ok", "warning", "critical"]


def test_pods_named_otherwise_are_mapped_through_kube_pod_owner_at_most_once_a_minute() -> None:
    slo = Slo.model_validate({"name": "memory", "comparison": "<", "threshold": 500e6, "interval": "1s",
                              "sli": {"gauge": {"selector": "container_memory_working_set_bytes"}}})
    asked: list[str] = []

    async def query(promql: str) -> list[dict[str, Any]]:
        asked.append(promql)
        if "kube_pod_owner" in promql:
            return [{"metric": {"namespace": "shop", "pod": "legacy-worker", "owner_name": "checkout-6d4b9c7f5"},
                     "value": [0, "1"]}]
        return [sample("checkout-6d4b9c7f5-abcde", 100e6), sample("legacy-worker", 600e6)]

    def by_name(namespace: str, pod: str) -> str | None:  # the ReplicaSet index: <replicaset>-<suffix>
        return "checkout" if pod.rsplit("-", 1)[0] == "checkout-6d4b9c7f5" else None

    store = SloStore()
    asyncio.run(store.refresh("p", [slo], query, NOW, owner_of=by_name))
    assert store.measurements("p", ("shop", "checkout"))["memory"].value == 600e6
    assert sum("kube_pod_owner" in q for q in asked) == 1
    asyncio.run(store.refresh("p", [slo], query, NOW + timedelta(seconds=2), owner_of=by_name))
    assert sum("kube_pod_owner" in q for q in asked) == 1  # known pods: not asked again


def test_share_of_requests_under_a_bound_reads_that_bucket_over_the_inf_bucket() -> None:
    slo = Slo.model_validate({"name": "fast", "objective": 99, "period": "10m", "sli": {"latency": {
        "bucket": 'http_request_duration_seconds_bucket{job="api"}', "below": 1}},
        "burnRates": [{"severity": "page", "longWindow": "1m", "shortWindow": "15s", "factor": 14.4}]})
    promql = sli_query(slo)
    assert 'http_request_duration_seconds_bucket{le=~"1|1\\\\.0", job="api"}[10m]' in promql
    assert 'http_request_duration_seconds_bucket{le="+Inf", job="api"}[1m]' in promql
    result = []
    for w in ("10m", "1m", "15s"):
        result += [sample("checkout-6d4b9c7f5-abcde", 1000, slo_window=w, slo_part="total"),
                   sample("checkout-6d4b9c7f5-abcde", 995, slo_window=w, slo_part="good")]
    budget = read_sli(slo, result, owner_of).budgets[("shop", "checkout")]
    assert budget.sli == pytest.approx(0.995) and budget.budget_remaining == pytest.approx(0.5)


def test_the_readiness_page_budget_of_an_objective_is_its_error_budget_over_the_period() -> None:
    from readiness_operator.slo.budget import slo_budgets

    slo = Slo.model_validate(AVAILABILITY)
    page, ok = _measure("page").budget, _measure("ok").budget
    assert page is not None and ok is not None
    [budget] = slo_budgets([slo], {"availability": {("shop", "a"): 0.9997, ("shop", "b"): 0.9997}},
                           [("shop", "a"), ("shop", "b")],
                           objectives={"availability": {("shop", "a"): page, ("shop", "b"): ok}})
    assert (budget.comparison, budget.measured, budget.breaching) == (">=", 2, 1)
    assert budget.threshold == pytest.approx(0.999)
    assert budget.remaining == pytest.approx(min(page.budget_remaining or 1, ok.budget_remaining or 1))
