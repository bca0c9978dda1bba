#!/usr/bin/env python3
"""Prometheus query time per SLO interval with many Deployments' series (issue 14, item 3).

Serves per-pod series for `--deployments` Deployments x `--pods` pods (kube-prometheus labels
`namespace`, `pod`, `container`, `code`; no `deployment` label) from an in-process exporter, has a
fresh Prometheus (hack/prometheus.sh, its own PROM_DIR) scrape them every 15 s for `--scrape-seconds`
(and until every series has two samples), then
times the queries one SLO interval sends for the example policy production.yaml (the batched direct
queries of the SLO model: one per SLO for every Deployment at once) next to a floor: an instant read
of the same raw series, `count by (namespace, pod) (http_requests_total)`. Also times the
operator-side part (pods summed per Deployment, budgets and burn rates) on the answer.

Then, in the same run and Prometheus, the recording rules (`readiness-operator slo-rules`, slo/rules.py)
are loaded; once both rule groups have evaluated, it times what an interval sends with them: one
instant read per SLO of the recorded series (`recorded_query`), and, for the objective, that read plus
the direct query of the period alone (what runs until the tiles cover the period), side by side with
the direct queries as ratios. It also reports what the rules cost Prometheus itself:
`prometheus_rule_group_last_duration_seconds` per group, next to the group's interval, and checks that
the recorded answers give the same Deployments and values as the direct ones.

With `--baseline REV` (e.g. `main`), the recording rules of that git revision are loaded next to ours
(its policy named `production-baseline`), and both are read in turns in the same run: the per-pod
rules of earlier releases against the per-ReplicaSet ones (series returned, read time, rule
evaluation time and samples written per evaluation, and both checked against the direct answers).

The windows hold only the scraped minutes here, so a 30-day window on 30 days of data costs the direct
query (and a rule recording it from raw series) more than measured; the tiled period does not grow so.

    hack/bench/slo_queries.py [--deployments 10000] [--pods 2] [--scrape-seconds 60] [--repeat 5]
                              [--rule-interval 1m] [--period-step 1m] [--no-rules] [--baseline REV] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "operator"))

import yaml  # noqa: E402

from readiness_operator.model import ReadinessPolicy  # noqa: E402
from readiness_operator.slo.rules import read_recorded, recordable, recorded_query, rule_groups  # noqa: E402
from readiness_operator.slo.sli import Measured, read_sli, sli_query  # noqa: E402

BUCKETS = ("0.005", "0.01", "0.1", "1.0", "+Inf")
SCRAPE_SECONDS = 15


class Synthetic:
    """`pods` pods per Deployment `d<i>` in 100 namespaces, counters growing with wall time. The
    exposition is formatted from precomputed prefixes (prometheus_client takes seconds for 180,000
    samples on a loaded machine, longer than a scrape may)."""

    def __init__(self, deployments: int, pods: int) -> None:
        self.pods = [(f"ns{i % 100}", f"d{i}-5d9c7b8f6-p{j:04d}") for i in range(deployments) for j in range(pods)]
        self.started = time.monotonic()
        self.lines: list[tuple[str, float]] = []  # (series, multiple of the request count)
        for k, (ns, pod) in enumerate(self.pods):
            labels = f'namespace="{ns}",pod="{pod}",container="app"'
            error = 0.001 if k % 50 else 0.05
            self.lines += [(f'http_requests_total{{{labels},code="200"}} ', 1 - error),
                           (f'http_requests_total{{{labels},code="500"}} ', error)]
            self.lines += [(f'http_request_duration_seconds_bucket{{{labels},le="{b}"}} ', share)
                           for b, share in zip(BUCKETS, (0.5, 0.9, 0.99, 1.0, 1.0), strict=True)]
            self.lines += [(f"http_request_duration_seconds_count{{{labels}}} ", 1.0),
                           (f"http_request_duration_seconds_sum{{{labels}}} ", 0.006)]

    def exposition(self) -> bytes:
        n = 10.0 * (time.monotonic() - self.started)
        head = "# TYPE http_requests_total counter\n# TYPE http_request_duration_seconds histogram\n"
        return (head + "".join(f"{series}{n * share:.3f}\n" for series, share in self.lines)).encode()


def serve(collector: Synthetic) -> int:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = collector.exposition()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return int(server.server_address[1])


def prometheus_sh(state: Path, *args: str) -> str:
    env = {**os.environ, "PROM_DIR": str(state), "SCRAPE_INTERVAL": f"{SCRAPE_SECONDS}s"}
    result = subprocess.run([str(ROOT / "hack" / "prometheus.sh"), *args], env=env, capture_output=True, text=True,
                            timeout=300, check=True)
    lines = result.stdout.strip().splitlines()
    return lines[-1] if lines else ""


def query(url: str, promql: str) -> tuple[float, list[dict[str, Any]]]:
    data = urllib.parse.urlencode({"query": promql}).encode()
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(f"{url}/api/v1/query", data=data, timeout=300) as r:
            body = json.load(r)
    except urllib.error.HTTPError as exc:  # e.g. 503: the query ran over Prometheus's --query.timeout (2m)
        raise SystemExit(f"Prometheus answered {exc.code} after {time.perf_counter() - started:.0f} s: "
                         f"{exc.read()[:300]!r}") from None
    seconds = time.perf_counter() - started
    if body.get("status") != "success":
        raise RuntimeError(body)
    return seconds, list(body["data"]["result"])


def _count(url: str, promql: str) -> int:
    _, result = query(url, promql)
    return int(float(result[0]["value"][1])) if result else 0


def rule_groups_state(url: str, names: set[str]) -> dict[str, dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/api/v1/rules?type=record", timeout=60) as r:
        body = json.load(r)
    return {g["name"]: g for g in body["data"]["groups"] if g["name"] in names}


def rule_metric(url: str, metric: str = "prometheus_rule_group_last_duration_seconds") -> dict[str, float]:
    """A per-group metric of Prometheus's own /metrics (last evaluation's duration, or samples written)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=60) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith(metric + "{"):
            labels, value = line.rsplit(" ", 1)
            group = labels.split('rule_group="', 1)[1].split('"', 1)[0].split(";", 1)[-1]
            out[group] = float(value)
    return out


BASELINE_POLICY = "production-baseline"
GROUPS_KEY = {"rules": "rule_groups", "baseline_rules": "baseline_rule_groups"}
_BASELINE_RULES = """
import json, sys, yaml
from readiness_operator.model import ReadinessPolicy
from readiness_operator.slo.rules import recordable, recorded_query, rule_groups
policy = ReadinessPolicy.model_validate(yaml.safe_load(open(sys.argv[1])))
name, interval, step = sys.argv[2:5]
print(json.dumps({"groups": rule_groups(name, policy.spec.slos, interval=interval, period_step=step),
                  "queries": {s.name: recorded_query(name, s) for s in policy.spec.slos if recordable(s)}}))
"""


def baseline_rules(rev: str, work: Path, args: argparse.Namespace) -> tuple[str, list[dict[str, Any]], dict[str, str]]:
    """The rule groups and recorded queries of production.yaml as git revision `rev` makes them."""
    source = work / "baseline"
    source.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "operator"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    printed = subprocess.run([sys.executable, "-c", _BASELINE_RULES, str(ROOT / "examples/policies/production.yaml"),
                              BASELINE_POLICY, args.rule_interval, args.period_step], check=True, capture_output=True,
                             text=True, env={**os.environ, "PYTHONPATH": str(source / "operator")}).stdout
    made = json.loads(printed)
    short = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", rev], check=True, capture_output=True,
                           text=True).stdout.strip()
    return short, made["groups"], made["queries"]


def _epoch(text: str) -> float:
    from datetime import datetime
    return datetime.fromisoformat(text.replace("Z", "+00:00")[:26] + "+00:00" if "." in text else
                                  text.replace("Z", "+00:00")).timestamp()


def differences(direct: Measured, recorded: Measured) -> dict[str, Any]:
    """How far the recorded answer's values are from the direct one's (same Deployments?)."""
    same = set(direct.values) == set(recorded.values)
    value = max((abs(direct.values[k] - recorded.values[k]) for k in direct.values if k in recorded.values), default=0.0)
    burn, worst = 0.0, None
    for k, b in direct.budgets.items():
        other = recorded.budgets.get(k)
        if other is None:
            continue
        for w in b.burn_rates:
            mine, theirs = b.burn_rates[w], other.burn_rates.get(w)
            if abs((mine or 0.0) - (theirs or 0.0)) > burn:
                burn, worst = abs((mine or 0.0) - (theirs or 0.0)), {"deployment": "/".join(k), "window": w,
                                                                      "direct": mine, "recorded": theirs}
    return {"same_deployments": same, "max_value_difference": value, "max_burn_rate_difference": burn,
            "largest_burn_rate_difference_at": worst}


def measure_rules(url: str, state: Path, policy: ReadinessPolicy, owner_of: Any, direct: dict[str, Measured],
                  args: argparse.Namespace, figures: dict[str, Any]) -> None:
    groups = rule_groups("production", policy.spec.slos, interval=args.rule_interval, period_step=args.period_step)
    queries = {s.name: recorded_query("production", s) for s in policy.spec.slos if recordable(s)}
    sets: dict[str, tuple[list[dict[str, Any]], dict[str, str]]] = {"rules": (groups, queries)}
    if args.baseline:
        figures["baseline"], base_groups, base_queries = baseline_rules(args.baseline, state.parent, args)
        sets["baseline_rules"] = (base_groups, base_queries)
    names = {g["name"] for groups, _ in sets.values() for g in groups}
    loaded = time.time()
    for key, (groups, _) in sets.items():
        rules_file = state.parent / f"slo-{key}.yaml"
        rules_file.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
        prometheus_sh(state, "rules", str(rules_file))
    # Every group evaluated fully once after loading (lastEvaluation is when that evaluation started).
    deadline = time.monotonic() + args.rules_timeout
    while True:
        seen = rule_groups_state(url, names)
        if len(seen) == len(names) and all(g.get("lastEvaluation", "").startswith("2") and
                                           _epoch(g["lastEvaluation"]) >= loaded for g in seen.values()):
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"the rule groups did not evaluate within {args.rules_timeout:g} s: {seen}")
        time.sleep(5)
    durations, written = rule_metric(url), rule_metric(url, "prometheus_rule_group_last_evaluation_samples")
    for key, (groups, _) in sets.items():
        figures[GROUPS_KEY[key]] = {g["name"]: {"interval": g["interval"], "rules": len(g["rules"]),
                                                "last_duration_seconds": durations.get(g["name"]),
                                                "samples_written": written.get(g["name"])} for g in groups}
    for key in sets:
        figures[f"{key}_queries"] = {}
    for slo in policy.spec.slos:
        if not recordable(slo):
            continue
        runs: dict[str, list[tuple[float, list[dict[str, Any]]]]] = {key: [] for key in sets}
        for _ in range(args.repeat):  # the rule sets in turns, so both see the same Prometheus
            for key, (_, slo_queries) in sets.items():
                runs[key].append(query(url, slo_queries[slo.name]))
        period_answer: list[dict[str, Any]] = []
        period_seconds = 0.0
        if slo.has_budget:
            period_runs = [query(url, sli_query(slo, windows=[slo.period])) for _ in range(args.repeat)]
            period_seconds, period_answer = statistics.median(r[0] for r in period_runs), period_runs[-1][1]
        for key in sets:
            recorded = read_recorded(slo, runs[key][-1][1])
            entry: dict[str, Any] = {"seconds": statistics.median(r[0] for r in runs[key]), "usable": recorded.usable,
                                     "series_returned": len(runs[key][-1][1]), "why_not": recorded.why}
            samples = [dict(x) for x in recorded.samples]
            if slo.has_budget:
                entry["period_direct_seconds"] = period_seconds
                samples = [x for x in samples if x["metric"].get("slo_window") != slo.period] + period_answer
            measured = read_sli(slo, samples, owner_of)
            entry.update(deployments_measured=len(measured.values), **differences(direct[slo.name], measured))
            figures[f"{key}_queries"][slo.name] = entry


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", type=int, default=10_000)
    parser.add_argument("--pods", type=int, default=2)
    parser.add_argument("--scrape-seconds", type=float, default=60.0, help="scrape for this long (every 15 s)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rule-interval", default="1m", help="the windows' rule group interval (default 1m)")
    parser.add_argument("--period-step", default="1m", help="the period's tiles (default 1m; the CLI's is 5m)")
    parser.add_argument("--rules-timeout", type=float, default=1800, help="seconds to wait for the rules' first evaluation")
    parser.add_argument("--no-rules", dest="rules", action="store_false", help="time the direct queries only")
    parser.add_argument("--baseline", metavar="REV", help="also load and read the recording rules of this git revision")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    collector = Synthetic(args.deployments, args.pods)
    port = serve(collector)
    policy = ReadinessPolicy.model_validate(yaml.safe_load((ROOT / "examples/policies/production.yaml").read_text()))
    # As the operator's pod lookup (kube/view.py owner_of_pod): a pod's ReplicaSet from its name, the
    # ReplicaSet's Deployment from an index; a ReplicaSet is looked up as `<replicaset>-<suffix>`.
    replicasets = {(ns, pod.rsplit("-", 1)[0]): pod.split("-", 1)[0] for ns, pod in collector.pods}

    def owner_of(namespace: str, pod: str) -> str | None:
        return replicasets.get((namespace, pod.rsplit("-", 1)[0]))

    direct: dict[str, Measured] = {}
    figures: dict[str, Any] = {"deployments": args.deployments, "pods": len(collector.pods),
                               "series": len(collector.pods) * (2 + len(BUCKETS) + 2), "queries": {}}
    with tempfile.TemporaryDirectory(prefix="bench-slo-") as tmp:
        state = Path(tmp) / "prometheus"
        url = prometheus_sh(state, "up", "--scrape", f"127.0.0.1:{port}")
        try:
            stop = time.monotonic() + args.scrape_seconds
            while time.monotonic() < stop:
                time.sleep(1)
            # At least two scrapes of every pod, or the windows hold nothing to compute a rate from.
            want, deadline = len(collector.pods) * 2, time.monotonic() + 300
            while (got := _count(url, "count(increase(http_requests_total[5m]))")) < want:
                if time.monotonic() > deadline:
                    raise SystemExit(f"only {got} of {want} series have two samples after 5 minutes more; "
                                     f"see {state}/prometheus.log")
                time.sleep(5)
            floor = [query(url, "count by (namespace, pod) (http_requests_total)")[0] for _ in range(args.repeat)]
            figures["floor_seconds"] = statistics.median(floor)
            for slo in policy.spec.slos:
                promql = sli_query(slo)
                runs = [query(url, promql) for _ in range(args.repeat)]
                answer = runs[-1][1]
                started = time.perf_counter()
                measured = direct[slo.name] = read_sli(slo, answer, owner_of)
                figures["queries"][slo.name] = {
                    "seconds": statistics.median(r[0] for r in runs), "series_returned": len(answer),
                    "deployments_measured": len(measured.values), "operator_seconds": time.perf_counter() - started,
                }
            if args.rules:
                measure_rules(url, state, policy, owner_of, direct, args, figures)
        finally:
            prometheus_sh(state, "down")
    total = sum(q["seconds"] for q in figures["queries"].values())
    figures["interval_seconds"] = total
    figures["interval_vs_floor"] = total / figures["floor_seconds"] if figures["floor_seconds"] else None
    if args.rules:
        for key in ("rules", "baseline_rules"):
            if f"{key}_queries" not in figures:
                continue
            entries = figures[f"{key}_queries"].values()
            covered = sum(q["seconds"] for q in entries)
            first = covered + sum(q.get("period_direct_seconds", 0.0) for q in entries)
            figures[f"{key}_interval_seconds"], figures[f"{key}_first_period_interval_seconds"] = covered, first
            figures[f"direct_vs_{key}"] = total / covered if covered else None
            figures[f"direct_vs_{key}_first_period"] = total / first if first else None
        if "baseline_rules_interval_seconds" in figures and figures["rules_interval_seconds"]:
            figures["baseline_vs_rules"] = figures["baseline_rules_interval_seconds"] / figures["rules_interval_seconds"]
    figures["load"] = os.getloadavg()
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"{args.deployments} Deployments, {len(collector.pods)} pods, {figures['series']} series, "
          f"{args.scrape_seconds:g} s scraped every {SCRAPE_SECONDS} s (load {figures['load'][0]:.1f})")
    print(f"floor (instant read of the raw series): {figures['floor_seconds'] * 1000:.0f} ms")
    for name, q in figures["queries"].items():
        print(f"  slo:{name:<12} {q['seconds'] * 1000:8.0f} ms  {q['series_returned']:7d} series  "
              f"{q['deployments_measured']:6d} Deployments  operator {q['operator_seconds'] * 1000:.0f} ms")
    print(f"one interval: {total * 1000:.0f} ms = {figures['interval_vs_floor']:.1f}x the floor")
    if not args.rules:
        return 0
    for key, what in (("baseline_rules", f"the recording rules of {figures.get('baseline')} (per pod)"),
                      ("rules", "the recording rules (per ReplicaSet)")):
        if f"{key}_queries" not in figures:
            continue
        print(f"with {what}, windows every {args.rule_interval}, period tiles of {args.period_step}:")
        for name, q in figures[f"{key}_queries"].items():
            period = f"  + period directly {q['period_direct_seconds'] * 1000:.0f} ms" if "period_direct_seconds" in q else ""
            print(f"  slo:{name:<12} {q['seconds'] * 1000:8.0f} ms  {q['series_returned']:7d} series  usable={q['usable']}"
                  f"{period}  same Deployments={q['same_deployments']}  max |value diff| {q['max_value_difference']:.2g}"
                  f"  max |burn diff| {q['max_burn_rate_difference']:.2g}")
        print(f"  one interval: {figures[f'{key}_interval_seconds'] * 1000:.0f} ms (direct / rules = "
              f"{figures[f'direct_vs_{key}']:.2f}x); until the tiles cover the period: "
              f"{figures[f'{key}_first_period_interval_seconds'] * 1000:.0f} ms "
              f"({figures[f'direct_vs_{key}_first_period']:.2f}x)")
        for name, g in figures[GROUPS_KEY[key]].items():
            print(f"  rule group {name}: {g['rules']} rules every {g['interval']}, last evaluation took "
                  f"{g['last_duration_seconds']:.2f} s and wrote {g['samples_written']:.0f} samples")
    if "baseline_vs_rules" in figures:
        print(f"per pod / per ReplicaSet, one interval's reads: {figures['baseline_vs_rules']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
