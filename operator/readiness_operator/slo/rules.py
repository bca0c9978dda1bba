"""Prometheus recording rules for a policy's SLOs, and how the operator reads them (pure).

Without rules, every interval sends `sli_query` (slo/sli.py): `increase(...[window])` over the raw
per-pod series for every window, a 30-day one included. With these rules Prometheus keeps the same
counts precomputed **per ReplicaSet**, and one instant query per SLO reads them for every Deployment
at once (the operator maps each ReplicaSet to its Deployment, as it maps pods).

Per ReplicaSet: the per-pod counts of the direct query (`sum by (namespace, pod) (increase(...))`),
then summed by the ReplicaSet the pod's name gives (`<replicaset>-<5 characters>`, see `by_replicaset`):
label `replicaset`, no `pod`. A pod named otherwise (generated names cut at 63 characters, pods of
other owners) keeps its `pod` label and no `replicaset`, so the operator still resolves it (e.g. by
kube_pod_owner). Summing per-pod increases is exact: each pod's counter resets are handled on its own
series first, and a pod that came or went within the window adds what it counted while it ran, as
in the direct answer summed per Deployment by the operator. (The increase of a sum of counters
would not be: a pod that goes away drops the sum, which reads as a counter reset.)

Per SLO (`ratio` and `latency` SLIs; a `gauge` is an instant read already, a PromQL `query` is the
user's own), labelled `policy`, `slo`, `definition` (a hash of what is measured and how it is grouped,
so rules generated from an older version of the SLO, or by the per-pod rules of earlier releases, are
never read) and, like the direct query's answer, `slo_window`, `slo_part` (total, good or bad),
`namespace` and `replicaset` (or `pod`):

- group `readiness-slo-<policy>`, every `interval`:
  `readiness:slo_events:increase<W>` = the counts over W, per ReplicaSet, for every burn-rate window W
  (or the threshold form's `window`); a quantile SLI records `readiness:slo_buckets:rate<W>` by `le`
  instead. The direct query's expression, summed: exact, up to one `interval` of lag. Last,
  `readiness:slo_rules_info{rules="windows"}` = the evaluation time (label `interval`: the operator's
  sign that the group runs, and how fresh it is).
- group `readiness-slo-<policy>-period`, every `period_step` (objective form only):
  `readiness:slo_event_tiles:increase<step>`: the counts per step, back to back; the period's
  `readiness:slo_events:increase<period>` is their `sum_over_time` over the period, so each
  evaluation adds up period/step recorded samples instead of reading every raw sample of the period.
  Exact when the counters grow evenly within each step (between two tiles Prometheus extrapolates
  instead of seeing the real delta), and only once the tiles cover the period: the group records
  `readiness:slo_rules_info{rules="period", source="tiles"}` each step, whose `count_over_time` over
  the period says how much of it the tiles cover. A period that is not a multiple of the step
  (or not longer than it) is recorded from the raw series instead (`source="raw"`), exact at once.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from readiness_operator.model.slo import Slo, duration_seconds

from .sli import _GROUP, PART_LABEL, REPLICASET_LABEL, WINDOW_LABEL, _parts, _regex_union, windows_of, with_matcher

__all__ = [
    "EVENTS", "GROUPING", "INFO", "POD_OF_REPLICASET", "TILES", "Recorded", "by_replicaset", "definition",
    "read_recorded", "recordable", "recorded_query", "rule_groups",
]

EVENTS = "readiness:slo_events:increase"  # + window
BUCKETS = "readiness:slo_buckets:rate"  # + window (quantile SLIs, by le)
TILES = "readiness:slo_event_tiles:increase"  # + step
INFO = "readiness:slo_rules_info"
CHECK_LABEL = "slo_check"
#: The tiles must cover the period but for half a step and this share of it (Prometheus restarts and
#: missed evaluations leave gaps) before the period is read from them; until then it is read directly.
COVERAGE_SLACK = 0.001
#: The windows are read with an instant query (a pod's counts must vanish with the pod), so their
#: group must write more often than Prometheus's 5-minute lookback delta, with room for the evaluation.
MAX_INTERVAL_SECONDS = 240
#: The period's series change slowly and are read with last_over_time over this many seconds (a
#: group evaluated every few minutes is never out of sight), so its step may be longer.
PERIOD_LOOKBACK_SECONDS = 7200
MAX_PERIOD_STEP_SECONDS = 3600
#: A pod name that says its ReplicaSet: `<replicaset>-<5 characters>`, 62 characters at most (the API
#: server cuts generated names at 63, which may drop the end of the ReplicaSet's name). Anchored by
#: label_replace. The group `$1` is what `rsplit("-", 1)[0]` gives, as the operator's pod lookup does.
POD_OF_REPLICASET = "(.{1,56})-[^-]{5}"
#: How the recorded counts are grouped; part of the `definition`, so rules grouped otherwise are not read.
GROUPING = f"namespace, {REPLICASET_LABEL} | pod"


def recordable(slo: Slo) -> bool:
    """SLOs whose counts recording rules precompute: `ratio` and `latency` SLIs."""
    return slo.sli is not None and slo.sli.gauge is None


def definition(slo: Slo, namespaces: Iterable[str] = ()) -> str:
    """A short hash of what the rules measure for `slo`: the SLI, its windows and the namespaces.
    The operator reads only series of the same definition (an edited SLO falls back to direct queries
    until its rules are regenerated)."""
    assert slo.sli is not None
    text = json.dumps({"sli": slo.sli.model_dump(mode="json", by_alias=True, exclude_none=True),
                       "windows": windows_of(slo), "namespaces": sorted(set(namespaces)), "grouping": GROUPING},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _tiled(slo: Slo, step: str) -> bool:
    if not slo.has_budget:
        return False
    period, seconds = duration_seconds(slo.period), duration_seconds(step)
    return period > seconds and math.isclose(period / seconds, round(period / seconds))


def just_under(window: str) -> str:
    """`window` less a millisecond, for sums of evaluations a step apart: Prometheus 2 range selectors
    include both ends (Prometheus 3 excludes the start), so `[1h]` over tiles every 5m may hold 13; the
    range `[3599999ms]` holds 12 in both."""
    return f"{round(duration_seconds(window) * 1000) - 1}ms"


def by_replicaset(function: str, selector: str, window: str, *, le: bool = False) -> str:
    """`function(selector[window])` (increase or rate) summed per pod, then per ReplicaSet for pods
    named after theirs (`POD_OF_REPLICASET`: label `replicaset`, no `pod`), or with the other pods
    kept per pod (`pod`, no `replicaset`; series without a pod label too, as in the direct answer).
    Two selections, not one relabelled: dropping `pod` with label_replace would give series with the
    same labels, which Prometheus refuses. The per-pod sum first keeps only `namespace` and `pod` (and
    `le`), so a `replicaset` label of the scrape's own never mixes in."""
    extra = ", le" if le else ""
    named = with_matcher(selector, f'pod=~"{POD_OF_REPLICASET}"')
    other = with_matcher(selector, f'pod!~"{POD_OF_REPLICASET}"')
    per_pod = f"sum by ({_GROUP}{extra}) ({function}({named}[{window}]))"
    return (f"sum by (namespace, {REPLICASET_LABEL}{extra}) "
            f'(label_replace({per_pod}, "{REPLICASET_LABEL}", "$1", "pod", "{POD_OF_REPLICASET}")) '
            f"or sum by ({_GROUP}{extra}) ({function}({other}[{window}]))")


def _selector(labels: Mapping[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def rule_groups(
    policy: str, slos: Sequence[Slo], *, namespaces: Iterable[str] = (), interval: str = "1m", period_step: str = "5m",
) -> list[dict[str, Any]]:
    """The rule groups of one policy (a Prometheus rules file's `groups`; empty: nothing to record).
    Raises ValueError when a window is shorter than `interval` (it would be evaluated too rarely), or
    when `interval` is over MAX_INTERVAL or `period_step` over MAX_PERIOD_STEP."""
    if duration_seconds(interval) > MAX_INTERVAL_SECONDS:
        raise ValueError(f"interval {interval} is over {MAX_INTERVAL_SECONDS / 60:g}m: recorded windows are read with "
                         "instant queries, which see a sample for 5 minutes (Prometheus's lookback delta)")
    if duration_seconds(period_step) > MAX_PERIOD_STEP_SECONDS:
        raise ValueError(f"period step {period_step} is over {MAX_PERIOD_STEP_SECONDS / 3600:g}h")
    namespaces = sorted(set(namespaces))
    ns = _regex_union(namespaces)

    def narrowed(selector: str) -> str:
        return with_matcher(selector, f'namespace=~"{ns}"') if ns else selector

    windows_rules: list[dict[str, Any]] = []
    period_rules: list[dict[str, Any]] = []
    infos: list[dict[str, Any]] = []
    period_infos: list[dict[str, Any]] = []
    for slo in slos:
        if not recordable(slo):
            continue
        assert slo.sli is not None
        ids = {"policy": policy, "slo": slo.name, "definition": definition(slo, namespaces)}
        tiled = _tiled(slo, period_step)
        windows = windows_of(slo)
        short = [w for w in windows if w != slo.period] if slo.has_budget else windows
        for window in short:
            if duration_seconds(window) < duration_seconds(interval):
                raise ValueError(f"SLO {slo.name!r}: window {window} is shorter than the evaluation interval "
                                 f"{interval}; pass a shorter interval")
        if slo.sli.latency is not None and slo.sli.latency.quantile is not None:
            for window in short:
                windows_rules.append({
                    "record": f"{BUCKETS}{window}",
                    "expr": by_replicaset("rate", narrowed(slo.sli.latency.bucket), window, le=True),
                    "labels": {**ids, WINDOW_LABEL: window}})
        else:
            for window in short:
                for part, sel in _parts(slo).items():
                    windows_rules.append({
                        "record": f"{EVENTS}{window}", "expr": by_replicaset("increase", narrowed(sel), window),
                        "labels": {**ids, WINDOW_LABEL: window, PART_LABEL: part}})
        infos.append({"record": INFO, "expr": "time()",
                      "labels": {**ids, "rules": "windows", "interval": f"{duration_seconds(interval):g}"}})
        if not slo.has_budget:
            continue
        if tiled:
            for part, sel in _parts(slo).items():
                period_rules.append({
                    "record": f"{TILES}{period_step}",
                    "expr": by_replicaset("increase", narrowed(sel), period_step),
                    "labels": {**ids, PART_LABEL: part}})
            period_rules.append({
                "record": f"{EVENTS}{slo.period}",
                "expr": f"sum_over_time({TILES}{period_step}{_selector(ids)}[{just_under(slo.period)}])",
                "labels": {WINDOW_LABEL: slo.period}})
        else:
            for part, sel in _parts(slo).items():
                period_rules.append({
                    "record": f"{EVENTS}{slo.period}",
                    "expr": by_replicaset("increase", narrowed(sel), slo.period),
                    "labels": {**ids, WINDOW_LABEL: slo.period, PART_LABEL: part}})
        period_infos.append({"record": INFO, "expr": "time()",
                             "labels": {**ids, "rules": "period", "interval": f"{duration_seconds(period_step):g}",
                                        "source": "tiles" if tiled else "raw"}})
    groups = []
    if windows_rules:  # the info last: once it shows, every rule of that evaluation before it has been written
        groups.append({"name": f"readiness-slo-{policy}", "interval": interval, "rules": windows_rules + infos})
    if period_rules:
        groups.append({"name": f"readiness-slo-{policy}-period", "interval": period_step,
                       "rules": period_rules + period_infos})
    return groups


def recorded_query(policy: str, slo: Slo, namespaces: Iterable[str] = ()) -> str:
    """The one instant query that reads an SLO's recorded counts for every Deployment, with the signs
    of the rules (`slo_check`): `loaded` and `period`, the time each group last wrote (labels
    `interval`, `source`), and `covered`, how many tiles the period holds."""
    ids = {"policy": policy, "slo": slo.name, "definition": definition(slo, namespaces)}
    labels = ", ".join(f'{k}="{v}"' for k, v in ids.items())
    lookback = f"{PERIOD_LOOKBACK_SECONDS}s"

    def tag(expr: str, check: str) -> str:
        return f'label_replace({expr}, "{CHECK_LABEL}", "{check}", "", "")'

    info = f'{INFO}{{{labels}, rules="windows"}}'
    if not slo.has_budget:
        return " or ".join([f'{{__name__=~"{EVENTS}.+|{BUCKETS}.+", {labels}}}', tag(f"last_over_time({info}[{lookback}])",
                                                                                    "loaded")])
    period_info = f'{INFO}{{{labels}, rules="period"}}'
    return " or ".join([
        f'{{__name__=~"{EVENTS}.+|{BUCKETS}.+", {labels}, {WINDOW_LABEL}!="{slo.period}"}}',
        f"last_over_time({EVENTS}{slo.period}{{{labels}}}[{lookback}])",
        tag(f"last_over_time({info}[{lookback}])", "loaded"),
        tag(f"last_over_time({period_info}[{lookback}])", "period"),
        tag(f"count_over_time({period_info}[{just_under(slo.period)}])", "covered"),
    ])


@dataclass
class Recorded:
    """What `recorded_query` answered: the samples in the direct query's shape (for read_sli), and
    whether they may be used: `usable` (the windows' group runs and is fresh), `period_usable` (the
    period's series are there and cover it; else the period is read directly), and why not."""

    samples: list[Mapping[str, Any]] = field(default_factory=list)
    usable: bool = False
    period_usable: bool = False
    why: str = ""


def _value(sample: Mapping[str, Any]) -> float | None:
    try:
        value = float(sample["value"][1])
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _number(text: Any) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _query_time(answer: Iterable[Mapping[str, Any]]) -> float:
    """When Prometheus evaluated the query (every sample of an instant answer carries it)."""
    for sample in answer:
        try:
            return float(sample["value"][0])
        except (KeyError, IndexError, TypeError, ValueError):
            continue
    return math.inf


def read_recorded(slo: Slo, answer: Iterable[Mapping[str, Any]]) -> Recorded:
    """Split the answer of `recorded_query` into samples and the rules' signs, and judge them: the
    group must have written within two of its intervals (a stuck or removed group is not read)."""
    answer = list(answer)
    checks: dict[str, tuple[float | None, Mapping[str, Any], float | None]] = {}
    out = Recorded()
    for sample in answer:
        labels = sample.get("metric") or {}
        check = labels.get(CHECK_LABEL)
        if check:
            checks[str(check)] = (_value(sample), labels, _number(labels.get("interval")))
        else:
            out.samples.append(sample)
    wrote, _, interval = checks.get("loaded", (None, {}, None))
    if wrote is None or interval is None:
        out.why = "no recording rules for this SLO's definition"
        return out
    age = _query_time(answer) - wrote
    if age > 2 * interval + 1:
        out.why = f"its recording rules last ran {age:.0f}s ago (every {interval:g}s)"
        return out
    out.usable = True
    if not slo.has_budget:
        out.period_usable = True
        return out
    wrote, labels, step = checks.get("period", (None, {}, None))
    if wrote is None or step is None or _query_time(answer) - wrote > 2 * step + 1:
        out.why = "the period's recording rules are not running"
        return out
    if labels.get("source") == "tiles":
        period = duration_seconds(slo.period)
        covered = (checks.get("covered", (None, {}, None))[0] or 0.0) * step
        if covered < period - step / 2 - COVERAGE_SLACK * period:
            out.why = f"the period's recorded tiles cover {covered:.0f}s of {period:.0f}s so far"
            return out
    out.period_usable = True
    return out
