"""Sloth v0.16.0 as the oracle of our error budgets (issue 14, item 5), over 30 days of history.

Both Deployments' `http_requests_total` are backfilled over 30 days and 1 hour (a sample a minute,
labels `namespace`/`pod`/`code` only), Sloth's generated recording rules are backfilled over that
history by promtool (one dependency level at a time, tests/support/sloth.py), and then the same
Prometheus scrapes the load generator and evaluates Sloth's rules live while the operator measures.

- `steady`: two history pods at 6 and 2 req/s with 0.25% and 0.45% errors (0.3% together), then two
  live pods at 4 req/s with 0.3% errors. On steady traffic the definitions agree: our burn rates per
  window and budget remaining equal Sloth's recorded series to 1e-6, at the end of the history and live.
- `uneven`: 21 quiet days (0.2 req/s, no errors), a busy week (20 req/s, 0.5% errors), two days at
  0.5 req/s with 2% errors. Here Sloth's period SLI (the mean of its 5-minute ratios) and ours (a ratio
  of increases) part: each is checked against the number its definition gives, computed here from the
  series' definition (docs/slo.md, "The period SLI").

A Prometheus of the module's own: the session's holds samples other modules backfill into the future,
and live scrapes are refused before the newest sample.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
import yaml

from readiness_operator.model.slo import Slo
from readiness_operator.slo.burn import BudgetState
from readiness_operator.slo.sli import read_sli, sli_query
from tests.support.cluster import Cluster, eventually
from tests.support.loadgen import running_loadgen
from tests.support.operator import OperatorProcess, free_port
from tests.support.sloth import OraclePrometheus, oracle_prometheus, rule_levels, sloth_generate

pytestmark = [pytest.mark.e2e, pytest.mark.prometheus]

NS = "e2e-sloth"
DAY = 86_400
PERIOD = 30 * DAY
STEP = 120  # history: a sample every 2 minutes, 30 s past a minute (windows' edges: never there)
EVAL = 300  # Sloth's rules backfilled every 5 minutes
OBJECTIVE = 99.0
BUDGET = 1 - OBJECTIVE / 100
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")  # our default alert windows: Sloth's, for 30d
SECONDS = {"5m": 300, "30m": 1800, "1h": 3600, "2h": 7200, "6h": 21600, "1d": DAY, "3d": 3 * DAY, "30d": PERIOD}
STEADY_ERRORS = 0.003  # (6 x 0.25% + 2 x 0.45%) / 8
SLO = {"name": "availability", "objective": OBJECTIVE, "period": "30d", "interval": "5s",
       "sli": {"ratio": {"bad": 'http_requests_total{code=~"5.."}', "total": "http_requests_total"}}}
POLICY = {"apiVersion": "readiness.dev/v1alpha1", "kind": "ReadinessPolicy", "metadata": {"name": "sloth-oracle"},
          "spec": {"mode": "Audit", "match": {"namespaces": [NS]}, "slos": [SLO]}}


@dataclass(frozen=True)
class Segment:
    """From `start` to `end` (epoch seconds): `rps` requests per second, an `errors` share of them failed."""

    start: float
    end: float
    rps: float
    errors: float


@dataclass(frozen=True)
class PodHistory:
    """One pod's counters, defined by its traffic segments; sampled every STEP s from `first` to `last`."""

    pod: str
    segments: tuple[Segment, ...]
    first: int
    last: int

    def counted(self, t: float) -> tuple[float, float]:
        """(requests, errors) served from the first segment's start up to `t`."""
        total = bad = 0.0
        for s in self.segments:
            seconds = max(0.0, min(t, s.end) - s.start)
            total += s.rps * seconds
            bad += s.rps * seconds * s.errors
        return total, bad

    def samples(self) -> range:
        return range(self.first, self.last + 1, STEP)

    def counted_in(self, lo: float, hi: float) -> tuple[float, float]:
        """What Prometheus's increase() over the window (lo, hi] sees, up to the extrapolation factor it
        applies to every series with these timestamps alike: the counts between its first and last sample."""
        after = max(0, math.floor((lo - self.first) / STEP) + 1)  # the first sample later than lo
        upto = min((self.last - self.first) // STEP, math.floor((hi - self.first) / STEP))
        if upto <= after:
            return 0.0, 0.0
        (t0, b0), (t1, b1) = self.counted(self.first + after * STEP), self.counted(self.first + upto * STEP)
        return t1 - t0, b1 - b0


def error_ratio(pods: list[PodHistory], lo: float, hi: float) -> float:
    counts = [p.counted_in(lo, hi) for p in pods]
    return sum(b for _, b in counts) / sum(t for t, _ in counts)


def openmetrics(pods: list[PodHistory]) -> str:
    """The pods' counters, ordered by time (promtool requires it); counters start high so increase()
    never extrapolates towards zero."""
    lines: list[tuple[int, str]] = []
    for p in pods:
        for t in p.samples():
            total, bad = p.counted(t)
            for code, value in (("200", 1e6 + total - bad), ("500", 1e6 + bad)):
                lines.append((t, f'http_requests_total{{namespace="{NS}",pod="{p.pod}",code="{code}"}} {value!r} {t}'))
    lines.sort(key=lambda x: x[0])
    return "# TYPE http_requests counter\n" + "\n".join(line for _, line in lines)


def deployment(name: str, replicas: int, rps: str, errors: str) -> dict[str, Any]:
    annotations = {"readiness.dev/loadgen-rps": rps, "readiness.dev/loadgen-error-ratio": errors}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "annotations": annotations},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "app", "image": "app:1.0"}]}}},
    }


def sloth_spec() -> dict[str, Any]:
    """Our SLO in Sloth's prometheus/v1 form, one per Deployment (its pods: `<Deployment>-...`)."""
    def events(deployment: str) -> dict[str, str]:
        pods = f'namespace="{NS}",pod=~"{deployment}-.*"'
        return {"error_query": f'sum(rate(http_requests_total{{{pods},code=~"5.."}}[{{{{.window}}}}]))',
                "total_query": f"sum(rate(http_requests_total{{{pods}}}[{{{{.window}}}}]))"}
    return {"version": "prometheus/v1", "service": "shop", "labels": {}, "slos": [
        {"name": name, "objective": OBJECTIVE, "description": f"{name}: our availability SLO",
         "sli": {"events": events(name)}, "alerting": {"page_alert": {"disable": True}, "ticket_alert": {"disable": True}}}
        for name in ("steady", "uneven")]}


@dataclass
class Oracle:
    prom: OraclePrometheus
    replicasets: dict[str, str]
    histories: dict[str, list[PodHistory]]
    history_end: float  # the last backfilled evaluation of Sloth's rules is at or before this
    backfill_from: float  # Sloth's 5-minute ratios are backfilled from here

    def ours(self, name: str, at: float) -> tuple[BudgetState, list[dict[str, Any]]]:
        """Our budget of Deployment `name` at `at`: the operator's own query and arithmetic (slo/), on the
        answer of this Prometheus; and the per-pod answer."""
        slo = Slo.model_validate(SLO)
        result = self.prom.query(sli_query(slo, [NS]), at=at)
        owners = {rs: d for d, rs in self.replicasets.items()}
        measured = read_sli(slo, result, lambda ns, pod: owners.get(pod.rsplit("-", 1)[0]) if ns == NS else None)
        return measured.budgets[(NS, name)], result

    def sloth(self, name: str, series: str, at: float) -> tuple[float, float]:
        """A series Sloth recorded for SLO `name`: (its timestamp, its value) at `at`."""
        # Live, a rule evaluation that finds no input for a moment marks the series stale: an absent
        # sample is an AssertionError, so the live checks' eventually() asks again.
        samples = self.prom.query(f'{series}{{sloth_slo="{name}"}}', at=at)
        stamps = self.prom.query(f'timestamp({series}{{sloth_slo="{name}"}})', at=at)
        assert len(samples) == len(stamps) == 1, f"Sloth's {series} for {name} at {at}: {samples}"
        return float(stamps[0]["value"][1]), float(samples[0]["value"][1])


@pytest.fixture(scope="module")
def oracle(crds: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Oracle]:
    started = time.monotonic()
    phases: list[str] = []

    def phase(what: str) -> None:
        phases.append(f"{what} {time.monotonic() - started:.1f}s")

    state = tmp_path_factory.mktemp("sloth")
    pool = ThreadPoolExecutor(3)  # Sloth and promtool run while the cluster and the operator get ready
    generated = pool.submit(sloth_generate, sloth_spec(), state / "sloth")
    crds.kubectl("create", "namespace", NS)
    crds.apply(yaml.safe_dump_all([deployment("steady", 2, "4", str(STEADY_ERRORS)), deployment("uneven", 1, "0", "0")]))
    eventually(lambda: all(crds.get_json("-n", NS, "deployment", d).get("status", {}).get("availableReplicas")
                           for d in ("steady", "uneven")), timeout=60, what="Deployments Available")
    replicasets = {d: str(crds.get_json("-n", NS, "replicasets", "-l", f"app={d}")["items"][0]["metadata"]["name"])
                   for d in ("steady", "uneven")}
    phase("available")
    end = int(time.time()) // 60 * 60  # the history ends here; live samples follow
    start = end - PERIOD - 3600
    first, last = start + 30, end - 30

    def pod(d: str, i: int, *segments: tuple[float, float, float, float]) -> PodHistory:
        return PodHistory(f"{replicasets[d]}-hist{i}", tuple(Segment(*s) for s in segments), first, last)

    histories = {
        "steady": [pod("steady", 0, (start, end, 6.0, 0.0025)), pod("steady", 1, (start, end, 2.0, 0.0045))],
        "uneven": [pod("uneven", 0, (start, end - 9 * DAY, 0.2, 0.0), (end - 9 * DAY, end - 2 * DAY, 20.0, 0.005),
                       (end - 2 * DAY, end, 0.5, 0.02))],
    }
    with ExitStack() as stack:
        stack.callback(pool.shutdown)
        prom = stack.enter_context(oracle_prometheus(state / "prometheus"))
        history = pool.submit(prom.backfill_openmetrics,
                              openmetrics([p for pods in histories.values() for p in pods]), "history")
        # The load generator and the operator start now, while the history is written (no policy yet).
        loadgen_context = running_loadgen(crds, state / "loadgen", NS)
        loadgen_started = pool.submit(loadgen_context.__enter__)
        port = free_port()
        op = OperatorProcess(crds.kubeconfig, state / "operator.log", "--webhook-port", str(port), env={
            "READINESS_PROMETHEUS_URL": prom.url, "READINESS_WEBHOOK_URL": f"https://127.0.0.1:{port}",
            "READINESS_WEBHOOK_ADDR": "127.0.0.1", "READINESS_WEBHOOK_CONFIGURATION": "readiness-sloth-e2e",
        }).start(wait=False)

        def clean_up() -> None:
            crds.kubectl("delete", "rp", "sloth-oracle", "--ignore-not-found")  # its finalizer needs the operator
            op.stop(timeout=2)  # nothing left to finish
            crds.kubectl("delete", "validatingwebhookconfiguration", "readiness-sloth-e2e", "--ignore-not-found")
            crds.kubectl("delete", "namespace", NS, "--wait=false")

        stack.callback(clean_up)
        loadgen = loadgen_started.result()
        stack.push(loadgen_context.__exit__)
        phase("loadgen")
        rules = generated.result()
        (state / "sloth-rules.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
        levels = rule_levels(rules["groups"])
        history.result()
        phase("history")
        prom.start(targets=[loadgen.target])  # live samples (newer than any block) from now on
        # Level by level (each reads the one before, so Prometheus must serve its blocks first). Only the
        # 5-minute ratios are needed over the whole period (Sloth's 30-day SLI averages them); the rest
        # only near the end, where the tests look. Every level is evaluated in one group of one file:
        # the same evaluation times (promtool offsets them by a hash of the group).
        backfill_from = end - PERIOD + EVAL + 1
        for n, level in enumerate(levels):
            five = [r for r in level if r["record"] == "slo:sli_error:ratio_rate5m"]
            rest = [r for r in level if r not in five]
            if five:
                prom.backfill_rules([{"name": "sloth-backfill", "rules": five}], backfill_from, end, f"{EVAL}s",
                                    "sloth-backfill")
            if rest:
                prom.backfill_rules([{"name": "sloth-backfill", "rules": rest}], end - 3 * EVAL, end, f"{EVAL}s",
                                    "sloth-backfill")
            prom.start(targets=[loadgen.target])
            assert n < 4, "Sloth's rules have more dependency levels than expected"
            phase(f"level {n}")
        prom.start(targets=[loadgen.target], rule_files=[state / "sloth-rules.yaml"])
        op.wait_live()
        crds.apply(yaml.safe_dump(POLICY))
        phase("live")
        print("sloth oracle set up:", ", ".join(phases))
        yield Oracle(prom, replicasets, histories, end, backfill_from)
    assert "Traceback" not in op.logs(), op.logs()[-5000:]


def report_result(cluster: Cluster, name: str) -> dict[str, Any]:
    report = cluster.get_json("-n", NS, "policyreport", "readiness-sloth-oracle")
    return next(r for r in report["results"] if r["rule"] == "slo:availability" and r["resources"][0]["name"] == name)


def burn_rates(text: str) -> dict[str, float]:
    return {w: float(b) for w, b in (item.split("=") for item in text.split(","))}


def compare(oracle: Oracle, name: str, at: float) -> dict[str, float]:
    """Our burn rate per window and budget remaining against Sloth's series recorded at `at`, to 1e-6;
    the absolute differences, by window."""
    ours, _ = oracle.ours(name, at)
    diffs: dict[str, float] = {}
    for window in (*WINDOWS, "30d"):
        stamp, ratio = oracle.sloth(name, f"slo:sli_error:ratio_rate{window}", at)
        assert stamp == pytest.approx(at, abs=1e-3), (window, stamp, at)  # recorded at `at` itself
        theirs = ratio / BUDGET
        diffs[window] = abs((ours.burn_rates[window] or 0.0) - theirs)
        assert ours.burn_rates[window] == pytest.approx(theirs, abs=1e-6), (name, window)
    _, remaining = oracle.sloth(name, "slo:period_error_budget_remaining:ratio", at)
    assert ours.budget_remaining == pytest.approx(remaining, abs=1e-6), name
    diffs["remaining"] = abs((ours.budget_remaining or 0.0) - remaining)
    return diffs


def test_steady_traffic_our_burn_rates_and_budget_equal_sloths(oracle: Oracle, crds: Cluster) -> None:
    # At the end of the history, where Sloth's levels were backfilled together (one evaluation time).
    at, _ = oracle.sloth("steady", "slo:period_error_budget_remaining:ratio", oracle.history_end)
    diffs = compare(oracle, "steady", at)
    ours, _ = oracle.ours("steady", at)
    assert ours.budget_remaining == pytest.approx(1 - STEADY_ERRORS / BUDGET, abs=1e-9)  # 0.7, by hand
    assert all(b == pytest.approx(STEADY_ERRORS / BUDGET, abs=1e-9) for b in ours.burn_rates.values())

    # Live: the load generator's pods in every window, Sloth's rules evaluated by Prometheus itself.
    live_pod = re.compile(rf"{re.escape(oracle.replicasets['steady'])}-(?!hist)[a-z0-9]{{5}}")

    def live_in_5m() -> float:
        at, _ = oracle.sloth("steady", "slo:sli_error:ratio_rate5m", time.time())
        _, answer = oracle.ours("steady", at)
        served = [float(r["value"][1]) for r in answer if live_pod.fullmatch(r["metric"]["pod"])
                  and (r["metric"]["slo_window"], r["metric"]["slo_part"]) == ("5m", "total")]
        assert len(served) == 2 and min(served) > 0, served  # both live pods, serving
        return at

    at = eventually(live_in_5m, timeout=60, interval=1, what="live samples in the 5m window")
    _, slo_total = oracle.sloth("steady", "slo:sli_error:ratio_rate30d", at)  # the 30 days, evaluated live
    live_diffs = compare(oracle, "steady", at)
    print("steady, max |ours - Sloth| per window: history", diffs, "live", live_diffs)

    # End to end: what the operator reports (PolicyReport: budget to 6, burn rates to 4 significant
    # digits) against Sloth's latest live values.
    result = eventually(lambda: report_result(crds, "steady"), timeout=60, what="steady in the PolicyReport")
    props = result["properties"]
    assert (result["result"], props["state"], props["firing"]) == ("pass", "ok", "none")
    now = time.time()
    _, remaining = oracle.sloth("steady", "slo:period_error_budget_remaining:ratio", now)
    assert float(props["budgetRemaining"]) == pytest.approx(remaining, abs=1e-6)
    reported = burn_rates(props["burnRates"])
    assert set(reported) == {*WINDOWS, "30d"}, reported
    for window, burn in reported.items():
        _, ratio = oracle.sloth("steady", f"slo:sli_error:ratio_rate{window}", now)
        assert burn == pytest.approx(ratio / BUDGET, abs=1e-6), window
    assert float(props["value"]) == pytest.approx(1 - slo_total, abs=1e-6)


def test_uneven_traffic_we_weigh_by_requests_where_sloth_averages_windows(oracle: Oracle, crds: Cluster) -> None:
    pods = oracle.histories["uneven"]
    at, sloth_remaining = oracle.sloth("uneven", "slo:period_error_budget_remaining:ratio", oracle.history_end)
    # Ours, by hand: errors over requests in the 30 days, 62,208 of 12,545,280 (SLI 99.504%): 50.4% of a
    # 1% budget left.
    by_requests = error_ratio(pods, at - PERIOD, at)
    assert by_requests == pytest.approx(62_208 / 12_545_280, rel=1e-3)  # the round numbers, less the edges
    ours, _ = oracle.ours("uneven", at)
    assert ours.sli == pytest.approx(1 - by_requests, abs=1e-9)
    assert ours.budget_remaining == pytest.approx(1 - by_requests / BUDGET, abs=1e-9)
    # Sloth's, by hand: the mean of its 5-minute ratios, one per evaluation (every 5 minutes, at the
    # times promtool chose, from `backfill_from` on). 21 days at 0, 7 at 0.5%, 2 at 2%: 0.25%, 75% left.
    evaluations = [at - k * EVAL for k in range(int(PERIOD / EVAL)) if at - k * EVAL >= oracle.backfill_from]
    [count] = oracle.prom.query('count_over_time(slo:sli_error:ratio_rate5m{sloth_slo="uneven"}[30d])', at=at)
    assert int(count["value"][1]) == len(evaluations)
    mean_of_ratios = sum(error_ratio(pods, e - 300, e) for e in evaluations) / len(evaluations)
    assert mean_of_ratios == pytest.approx(0.0025, rel=1e-3)
    assert sloth_remaining == pytest.approx(1 - mean_of_ratios / BUDGET, abs=1e-9)
    # Sloth would say a quarter of the budget is spent, where half of it is.
    assert ours.budget_remaining is not None and sloth_remaining - ours.budget_remaining > 0.2
    # Over the alert windows both are ratios of increases: they agree on uneven traffic too.
    for window in WINDOWS:
        _, ratio = oracle.sloth("uneven", f"slo:sli_error:ratio_rate{window}", at)
        hand = error_ratio(pods, at - SECONDS[window], at)
        assert ratio == pytest.approx(hand, abs=1e-9) and ours.burn_rates[window] == pytest.approx(hand / BUDGET, abs=1e-9)
    print(f"uneven: ours {ours.budget_remaining:.9f} (hand {1 - by_requests / BUDGET:.9f}), "
          f"Sloth {sloth_remaining:.9f} (hand {1 - mean_of_ratios / BUDGET:.9f})")

    # End to end: the operator's first measurement (the report keeps it), now that live series are
    # scraped too (the uneven Deployment's live pod serves nothing), against the same hand count at its
    # measuredAt. Tolerance: the budget's 6 significant digits, and one quiet minute (12 requests)
    # crossing the window's edge between the operator's clock and Prometheus's.
    result = eventually(lambda: report_result(crds, "uneven"), timeout=60, what="uneven in the PolicyReport")
    props = result["properties"]
    measured_at = datetime.fromisoformat(props["measuredAt"]).timestamp()
    expected = error_ratio(pods, measured_at - PERIOD, measured_at)
    assert float(props["value"]) == pytest.approx(1 - expected, abs=1e-8)
    assert float(props["budgetRemaining"]) == pytest.approx(1 - expected / BUDGET, abs=2e-6)
    assert props["objective"] == "99" and props["period"] == "30d"


def test_rule_levels_order_sloths_rules_by_what_they_read() -> None:
    """Why the backfill runs level by level (promtool answers each rule from the server, which does not
    serve the blocks it has just written): the dependency order of Sloth's rules."""
    rules = {"groups": [{"name": "g", "rules": [
        {"record": "slo:sli_error:ratio_rate5m", "expr": "sum(rate(x[5m]))"},
        {"record": "slo:sli_error:ratio_rate30d", "expr": "avg_over_time(slo:sli_error:ratio_rate5m[30d])"},
        {"record": "slo:error_budget:ratio", "expr": "vector(0.01)"},
        {"record": "slo:period_burn_rate:ratio", "expr": "slo:sli_error:ratio_rate30d / slo:error_budget:ratio"},
        {"record": "slo:period_error_budget_remaining:ratio", "expr": "1 - slo:period_burn_rate:ratio"}]}]}
    levels = [[r["record"] for r in level] for level in rule_levels(rules["groups"])]
    assert levels == [["slo:sli_error:ratio_rate5m", "slo:error_budget:ratio"], ["slo:sli_error:ratio_rate30d"],
                      ["slo:period_burn_rate:ratio"], ["slo:period_error_budget_remaining:ratio"]]
