"""Recording rules for SLOs (issue 14, item 3): generated from policies, accepted by promtool, read by
the store instead of the direct queries when they run, and not read when they do not (pure logic)."""

from __future__ import annotations

import asyncio
import io
import re
import shutil
import subprocess
from contextlib import redirect_stdout
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from readiness_operator.cli import main
from readiness_operator.model import ReadinessPolicy
from readiness_operator.model.slo import Slo
from readiness_operator.slo.rules import (
    EVENTS,
    INFO,
    POD_OF_REPLICASET,
    TILES,
    by_replicaset,
    definition,
    recorded_query,
    rule_groups,
)
from readiness_operator.slo.sli import sli_query
from readiness_operator.slo.store import SloStore

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 1, 1, tzinfo=UTC)
SLO = Slo.model_validate({
    "name": "availability", "objective": 99, "period": "1h", "interval": "1s",
    "sli": {"ratio": {"bad": 'http_requests_total{code=~"5.."}', "total": "http_requests_total"}},
    "burnRates": [{"severity": "page", "longWindow": "5m", "shortWindow": "1m", "factor": 14.4}]})


def promtool_check(groups: list[dict[str, Any]], tmp_path: Path) -> str:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is needed (hack/setup.sh installs Debian's prometheus package)"
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.parametrize("name", ["production", "web-service", "graded-slos", "hardened"])
def test_every_example_policy_gives_rules_promtool_accepts(name: str, tmp_path: Path) -> None:
    policy = ReadinessPolicy.model_validate(yaml.safe_load((ROOT / f"examples/policies/{name}.yaml").read_text()))
    groups = rule_groups(name, policy.spec.slos)
    assert groups
    assert "SUCCESS" in promtool_check(groups, tmp_path)


def test_objective_rules_record_every_window_and_tile_the_period() -> None:
    windows, period = rule_groups("p", [SLO], interval="15s", period_step="5m")
    assert (windows["name"], windows["interval"], period["name"], period["interval"]) == (
        "readiness-slo-p", "15s", "readiness-slo-p-period", "5m")
    ids = {"policy": "p", "slo": "availability", "definition": definition(SLO)}
    recorded = {(r["record"], r["labels"].get("slo_part")): r for r in windows["rules"]}
    assert set(recorded) == {(f"{EVENTS}{w}", p) for w in ("1m", "5m") for p in ("total", "bad")} | {(INFO, None)}
    bad_5m = recorded[(f"{EVENTS}5m", "bad")]
    assert bad_5m["expr"] == (
        'sum by (namespace, replicaset) (label_replace(sum by (namespace, pod) (increase(http_requests_total{'
        'pod=~"(.{1,56})-[^-]{5}", code=~"5.."}[5m])), "replicaset", "$1", "pod", "(.{1,56})-[^-]{5}")) '
        'or sum by (namespace, pod) (increase(http_requests_total{pod!~"(.{1,56})-[^-]{5}", code=~"5.."}[5m]))')
    assert bad_5m["labels"] == {**ids, "slo_window": "5m", "slo_part": "bad"}
    assert windows["rules"][-1] == {"record": INFO, "expr": "time()",
                                    "labels": {**ids, "rules": "windows", "interval": "15"}}
    tiles, summed, info = period["rules"][0], period["rules"][2], period["rules"][-1]
    assert tiles["record"] == f"{TILES}5m" and tiles["expr"] == by_replicaset("increase", "http_requests_total", "5m")
    assert summed["record"] == f"{EVENTS}1h" and summed["labels"] == {"slo_window": "1h"}
    assert summed["expr"].startswith(f'sum_over_time({TILES}5m{{policy="p", slo="availability"')
    assert summed["expr"].endswith("[3599999ms])")
    assert info["labels"]["source"] == "tiles" and info["labels"]["interval"] == "300" and info["expr"] == "time()"


def test_a_period_that_is_no_multiple_of_the_step_is_recorded_from_raw_series() -> None:
    _, period = rule_groups("p", [SLO], period_step="7m")
    assert all(TILES not in r["record"] for r in period["rules"])
    assert period["rules"][0]["expr"] == by_replicaset("increase", "http_requests_total", "1h")
    assert period["rules"][-1]["labels"]["source"] == "raw"


def test_windows_shorter_than_the_interval_and_unrecordable_slos() -> None:
    with pytest.raises(ValueError, match="window 1m is shorter than the evaluation interval 2m"):
        rule_groups("p", [SLO], interval="2m")
    with pytest.raises(ValueError, match="interval 5m is over 4m"):
        rule_groups("p", [SLO.model_copy(update={"burn_rates": None, "period": "30d"})], interval="5m")
    gauge = Slo.model_validate({"name": "memory", "comparison": "<", "threshold": 5e8,
                                "sli": {"gauge": {"selector": "container_memory_working_set_bytes"}}})
    assert rule_groups("p", [gauge]) == []


def test_quantile_buckets_are_summed_per_replicaset_by_le() -> None:
    p99 = Slo.model_validate({"name": "latency", "comparison": "<", "threshold": 0.3, "window": "5m",
                              "sli": {"latency": {"bucket": "http_request_duration_seconds_bucket", "quantile": 0.99}}})
    [windows] = rule_groups("p", [p99])
    expr = windows["rules"][0]["expr"]
    assert expr == by_replicaset("rate", "http_request_duration_seconds_bucket", "5m", le=True)
    assert expr.startswith("sum by (namespace, replicaset, le) (label_replace(sum by (namespace, pod, le) (rate(")
    assert " or sum by (namespace, pod, le) (rate(" in expr


@pytest.mark.parametrize(("pod", "replicaset"), [
    ("checkout-6d4b9c7f5-abcde", "checkout-6d4b9c7f5"),
    ("a-b", None),  # a suffix of other than 5 characters: not a ReplicaSet's pod name, kept per pod
    ("web-0", None),  # a StatefulSet's pod
    ("x" * 56 + "-abcde", "x" * 56),  # 62 characters: never cut
    ("x" * 57 + "-abcde", None),  # 63: maybe cut (a ReplicaSet name of 58+ loses its end), kept per pod
    ("x" * 58 + "abcde", None),  # cut: the ReplicaSet's name is not in it, kube_pod_owner resolves it
])
def test_pods_named_after_their_replicaset_are_summed_by_it_others_kept_per_pod(pod: str, replicaset: str | None) -> None:
    """The rules' regex (RE2 and Python agree on this one) gives what the operator's pod lookup
    (rsplit at the last "-") gives, and only for names the API server did not cut."""
    found = re.fullmatch(POD_OF_REPLICASET, pod)
    assert (found.group(1) if found else None) == replicaset
    if replicaset is not None:
        assert replicaset == pod.rsplit("-", 1)[0]


# Pods of two ReplicaSets of `web` (a rollout) and one named otherwise, 60 requests a minute each
# (6 of them errors for abcde): fghij goes away at 7m, klmno's counter resets at 6m, pqrst starts at 8m.
CHURN = {"web-6d4b9c7f5-abcde": "0+60x20", "web-6d4b9c7f5-fghij": "0+60x7",
         "web-7f8c9d6b4-klmno": "0+60x5 0+60x14", "web-7f8c9d6b4-pqrst": "_x8 0+60x12", "web-canary": "0+30x20"}
# The direct query's answer summed per ReplicaSet, as the operator sums it (the name less its last "-" part).
DIRECT = ('sum by (namespace, replicaset) (label_replace(sum by (namespace, pod) (increase({selector}[{window}])), '
          '"replicaset", "$1", "pod", "(.+)-[^-]+"))')


def test_per_replicaset_rules_equal_the_per_pod_counts_summed_through_churn_and_resets(tmp_path: Path) -> None:
    """Prometheus's own rule evaluation (`promtool test rules`): at each time the recorded series per
    ReplicaSet are the per-pod direct counts summed, through pods going, starting and resetting, and
    the pod named otherwise is recorded on its own."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool is needed (hack/setup.sh installs Debian's prometheus package)"
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups("p", [SLO], interval="1m")}))
    series = [{"series": f'http_requests_total{{namespace="shop", pod="{pod}", code="200"}}', "values": values}
              for pod, values in CHURN.items()]
    series.append({"series": 'http_requests_total{namespace="shop", pod="web-6d4b9c7f5-abcde", code="500"}',
                   "values": "0+6x20"})
    checks = []
    for window, part, selector in (("5m", "total", "http_requests_total"), ("1m", "total", "http_requests_total"),
                                   ("5m", "bad", 'http_requests_total{code=~"5.."}')):
        recorded = f'{EVENTS}{window}{{slo_part="{part}"'
        replicasets = ["web-6d4b9c7f5"] if part == "bad" else ["web-6d4b9c7f5", "web-7f8c9d6b4"]
        for minute in (3, 6, 7, 9, 12, 14, 20):
            checks.append({"expr": f'sum by (namespace, replicaset) ({recorded}, replicaset!=""}}) '
                                   f"- on (namespace, replicaset) {DIRECT.format(selector=selector, window=window)}",
                           "eval_time": f"{minute}m",
                           "exp_samples": [{"labels": f'{{namespace="shop", replicaset="{rs}"}}', "value": 0}
                                           for rs in replicasets]})
        pods = [f'{{replicaset="{rs}"}}' for rs in replicasets] + ([] if part == "bad" else ['{pod="web-canary"}'])
        checks.append({"expr": f"count by (replicaset, pod) ({recorded}}})", "eval_time": "10m",
                       "exp_samples": [{"labels": labels, "value": 1} for labels in pods]})
    checks.append({"expr": f'{EVENTS}5m{{slo_part="total", pod="web-canary"}} - on (namespace, pod) '
                           'increase(http_requests_total{pod="web-canary"}[5m])', "eval_time": "10m",
                   "exp_samples": [{"labels": '{namespace="shop", pod="web-canary"}', "value": 0}]})
    (tmp_path / "test.yaml").write_text(yaml.safe_dump({
        "rule_files": ["rules.yaml"], "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": checks}]}))
    result = subprocess.run([promtool, "test", "rules", "test.yaml"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_of_the_per_pod_release_are_not_read() -> None:
    """Rules printed before the counts were grouped per ReplicaSet carry another definition (this
    SLO's was 1931ff4aa3d2), so an operator reading per-ReplicaSet series never reads per-pod ones."""
    assert definition(SLO) != "1931ff4aa3d2"
    assert f'definition="{definition(SLO)}"' in recorded_query("p", SLO)


def test_the_definition_follows_what_is_measured_not_how_it_is_judged() -> None:
    other_selector = SLO.model_copy(update={"sli": Slo.model_validate({
        "name": "x", "objective": 99, "sli": {"ratio": {"bad": 'http_requests_total{code="500"}',
                                                        "total": "http_requests_total"}}}).sli})
    stricter = SLO.model_copy(update={"objective": 99.9})
    assert definition(SLO) != definition(other_selector)
    assert definition(SLO) != definition(SLO, ["shop"])
    assert definition(SLO) == definition(stricter)


def test_the_cli_prints_a_rules_file(tmp_path: Path) -> None:
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["slo-rules", str(ROOT / "examples/policies/production.yaml"), "--interval", "30s"]) == 0
    groups = yaml.safe_load(out.getvalue())["groups"]
    assert [g["name"] for g in groups] == ["readiness-slo-production", "readiness-slo-production-period"]
    assert "SUCCESS" in promtool_check(groups, tmp_path)
    assert main(["slo-rules", str(ROOT / "examples/policies/production.yaml"), "--interval", "10m"]) == 2


# --- the store reading recorded series -----------------------------------------------------------

QUERIED_AT = 1_800_000_000.0


def sample(value: float, **labels: str) -> dict[str, Any]:
    return {"metric": labels, "value": [QUERIED_AT, str(value)]}


def pod_counts(pod: str, prefix: str = "") -> list[dict[str, Any]]:
    """One pod's counts per window (1% errors over the hour, 20% over the last minutes)."""
    counts = {"1h": (100_000.0, 1_000.0), "5m": (10_000.0, 2_000.0), "1m": (2_000.0, 400.0)}
    return [sample(n, **({"__name__": f"{prefix}{w}"} if prefix else {}), namespace="shop", pod=pod,
                   slo_window=w, slo_part=part)
            for w, (total, bad) in counts.items() for part, n in (("total", total), ("bad", bad))]


def replicaset_counts(replicaset: str, pods: int, prefix: str = EVENTS) -> list[dict[str, Any]]:
    """What the rules record for a ReplicaSet of `pods` pods like pod_counts's: their counts summed."""
    return [sample(float(s["value"][1]) * pods, **{**{k: v for k, v in s["metric"].items() if k != "pod"},
                                                   "replicaset": replicaset})
            for s in pod_counts(f"{replicaset}-abcde", prefix)]


def signs(age: float = 3, tiles: int = 12) -> list[dict[str, Any]]:
    """The rules' signs: the windows every 15 s, the period in 5-minute tiles, written `age` s ago."""
    ids = {"policy": "p", "slo": "availability", "definition": definition(SLO)}
    return [sample(QUERIED_AT - age, **ids, rules="windows", interval="15", slo_check="loaded"),
            sample(QUERIED_AT - age, **ids, rules="period", interval="300", source="tiles", slo_check="period"),
            sample(tiles, **ids, rules="period", interval="300", source="tiles", slo_check="covered")]


def by_name(_namespace: str, pod: str) -> str | None:
    return "checkout" if pod.startswith("checkout-6d4b9c7f5-") else None


def measure(recorded: list[dict[str, Any]]) -> tuple[Any, list[str], str]:
    asked: list[str] = []
    direct = pod_counts("checkout-6d4b9c7f5-abcde")

    async def query(promql: str) -> list[dict[str, Any]]:
        asked.append(promql)
        if promql == recorded_query("p", SLO):
            return recorded
        if promql == sli_query(SLO, windows=["1h"]):
            return [s for s in direct if s["metric"]["slo_window"] == "1h"]
        assert promql == sli_query(SLO), promql
        return direct

    store = SloStore()
    asyncio.run(store.refresh("p", [SLO], query, NOW, owner_of=by_name))
    condition = store.condition("p", [SLO])
    assert condition is not None
    return store.measurements("p", ("shop", "checkout"))["availability"], asked, condition.message


def test_recorded_series_give_the_same_budget_as_the_direct_query_in_one_query() -> None:
    via_rules, asked, message = measure(replicaset_counts("checkout-6d4b9c7f5", 1) + signs())
    direct, direct_asked, direct_message = measure([])
    assert asked == [recorded_query("p", SLO)] and "availability: from recording rules" in message
    assert direct_asked == [recorded_query("p", SLO), sli_query(SLO)] and "availability: direct query" in direct_message
    assert via_rules.value == direct.value == pytest.approx(0.99)
    assert via_rules.budget is not None and direct.budget is not None
    assert via_rules.budget.burn_rates == direct.budget.burn_rates and via_rules.budget.level == "page"


def test_per_replicaset_series_give_what_the_per_pod_answer_gives() -> None:
    """Two ReplicaSets of one Deployment (a rollout), the old one's two pods summed into one series,
    and a pod whose cut name says no ReplicaSet, kept per pod: the same budget as the direct query's
    five pods."""
    cut = "checkout-" + "x" * 54  # 63 characters, resolved by by_name like a kube_pod_owner answer
    pods = ["checkout-6d4b9c7f5-abcde", "checkout-6d4b9c7f5-fghij", "checkout-7f8c9d6b4-klmno", cut]
    direct = [s for pod in pods for s in pod_counts(pod)]
    recorded = (replicaset_counts("checkout-6d4b9c7f5", 2) + replicaset_counts("checkout-7f8c9d6b4", 1)
                + pod_counts(cut, EVENTS) + replicaset_counts("other-5c6d7e8f9", 3))  # not checkout's

    def checkout(_namespace: str, pod: str) -> str | None:
        return "checkout" if pod.rsplit("-", 1)[0] in ("checkout-6d4b9c7f5", "checkout-7f8c9d6b4") or pod == cut else None

    via_rules, asked, message = measure_with(recorded + signs(), direct, checkout)
    via_pods, _, direct_message = measure_with([], direct, checkout)
    assert asked == [recorded_query("p", SLO)] and "availability: from recording rules" in message
    assert "availability: direct query" in direct_message
    assert via_rules.value == via_pods.value == pytest.approx(0.99)
    assert via_rules.budget is not None and via_pods.budget is not None
    assert via_rules.budget.burn_rates == via_pods.budget.burn_rates
    assert via_rules.budget.budget_remaining == pytest.approx(via_pods.budget.budget_remaining)


def measure_with(recorded: list[dict[str, Any]], direct: list[dict[str, Any]], owner_of: Any) -> tuple[Any, list[str], str]:
    asked: list[str] = []

    async def query(promql: str) -> list[dict[str, Any]]:
        asked.append(promql)
        if promql == recorded_query("p", SLO):
            return recorded
        assert promql == sli_query(SLO), promql
        return direct

    store = SloStore()
    asyncio.run(store.refresh("p", [SLO], query, NOW, owner_of=owner_of))
    condition = store.condition("p", [SLO])
    assert condition is not None
    return store.measurements("p", ("shop", "checkout"))["availability"], asked, condition.message


def test_the_period_is_read_directly_until_the_tiles_cover_it() -> None:
    partial = [s for s in replicaset_counts("checkout-6d4b9c7f5", 1) if s["metric"]["slo_window"] != "1h"]
    partial += [sample(1.0, __name__=f"{EVENTS}1h", namespace="shop", replicaset="checkout-6d4b9c7f5",
                       slo_window="1h", slo_part="total")]  # what 10 minutes of tiles add up to: not read
    got, asked, message = measure(partial + signs(tiles=2))
    assert asked == [recorded_query("p", SLO), sli_query(SLO, windows=["1h"])]
    assert "the period directly" in message and got.value == pytest.approx(0.99)


@pytest.mark.parametrize("recorded", [
    pod_counts("checkout-6d4b9c7f5-abcde", EVENTS),  # series without the rules' signs (another definition)
    pod_counts("checkout-6d4b9c7f5-abcde", EVENTS) + signs(age=40),  # a group that stopped evaluating
], ids=["no-signs", "stale"])
def test_rules_that_are_not_running_are_not_read(recorded: list[dict[str, Any]]) -> None:
    _, asked, message = measure(recorded)
    assert asked[-1] == sli_query(SLO) and "direct query" in message


# --- the chart ----------------------------------------------------------------------------------

def test_the_chart_wraps_the_printed_rules_in_a_prometheus_rule(tools: str, tmp_path: Path) -> None:
    from tests.unit.test_chart import render, template

    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["slo-rules", str(ROOT / "examples/policies/production.yaml")]) == 0
    printed = tmp_path / "slo-rules.yaml"
    printed.write_text(out.getvalue())
    assert not [d for d in render() if d["kind"] == "PrometheusRule"]  # off by default
    docs = render("--set", "metrics.sloRecordingRules.enabled=true", "--set", "metrics.sloRecordingRules.labels.release=kp",
                  "--set-file", f"metrics.sloRecordingRules.rules={printed}")
    [rule] = [d for d in docs if d["kind"] == "PrometheusRule"]
    assert rule["metadata"]["name"] == "readiness-operator-slo-recording-rules"
    assert rule["metadata"]["labels"]["release"] == "kp"
    assert rule["metadata"]["labels"]["app.kubernetes.io/part-of"] == "readiness-operator"
    assert rule["spec"]["groups"] == yaml.safe_load(out.getvalue())["groups"]
    assert "SUCCESS" in promtool_check(rule["spec"]["groups"], tmp_path)
    missing = template("--set", "metrics.sloRecordingRules.enabled=true", check=False)
    assert missing.returncode != 0 and "--set-file metrics.sloRecordingRules.rules=FILE" in missing.stderr
    (tmp_path / "not-rules.yaml").write_text("groups: nope\n")
    broken = template("--set", "metrics.sloRecordingRules.enabled=true",
                      "--set-file", f"metrics.sloRecordingRules.rules={tmp_path / 'not-rules.yaml'}", check=False)
    assert broken.returncode != 0 and "is not a Prometheus rules file with groups" in broken.stderr


def test_missing_rules_are_looked_for_again_only_after_a_minute() -> None:
    from datetime import timedelta

    asked: list[str] = []
    direct = pod_counts("checkout-6d4b9c7f5-abcde")
    loaded: list[dict[str, Any]] = []

    async def query(promql: str) -> list[dict[str, Any]]:
        asked.append(promql)
        return loaded if promql == recorded_query("p", SLO) else direct

    store = SloStore()
    for seconds in (0, 1, 30, 59):
        asyncio.run(store.refresh("p", [SLO], query, NOW + timedelta(seconds=seconds), owner_of=by_name))
    assert asked.count(recorded_query("p", SLO)) == 1 and asked.count(sli_query(SLO)) == 4
    loaded += pod_counts("checkout-6d4b9c7f5-abcde", EVENTS) + signs()  # the rules get installed
    asyncio.run(store.refresh("p", [SLO], query, NOW + timedelta(seconds=60), owner_of=by_name))
    assert asked[-1] == recorded_query("p", SLO) and asked.count(sli_query(SLO)) == 4
    condition = store.condition("p", [SLO])
    assert condition is not None and "availability: from recording rules)" in condition.message
