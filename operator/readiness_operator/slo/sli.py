"""SLIs on the labels Prometheus has: one query per SLO for every pod, pods mapped to Deployments here.

An `sli` names series selectors only; this module wraps them in `increase(...[window])` (or `rate`,
for a quantile) and `sum by (namespace, pod)`, so the answer has one series per pod (per window and
part), whatever labels the scrape adds. The caller maps each pod to its Deployment (ReplicaSet
names, see kube/ownership) and the counts are summed per Deployment here: sums of increases are
exact, so the Deployment's ratio is traffic-weighted across its pods. The recording rules'
answers (slo/rules.py) come summed per ReplicaSet already (label `replicaset` instead of `pod`) and
are summed here the same way. Pure string and number work.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from readiness_operator.model.slo import Slo

from .burn import AlertRule, BudgetState, Counts, budget_state, histogram_quantile

__all__ = ["REPLICASET_LABEL", "Measured", "OwnerOf", "read_sli", "replicaset_owner", "sli_query", "with_matcher"]

Key = tuple[str, str]
#: (namespace, pod) -> the Deployment owning the pod, or None (not a Deployment's pod, or unknown).
OwnerOf = Callable[[str, str], str | None]
WINDOW_LABEL, PART_LABEL = "slo_window", "slo_part"
_GROUP = "namespace, pod"
REPLICASET_LABEL = "replicaset"
#: A pod name suffix no generated name has (their 5 characters never include 0): `<replicaset>-00000`
#: asks the pod lookup for the ReplicaSet's Deployment.
_ANY_POD = "00000"


def replicaset_owner(owner_of: OwnerOf, namespace: str, replicaset: str) -> str | None:
    """The Deployment owning a ReplicaSet, through the pod lookup `owner_of`, which resolves a pod
    named `<replicaset>-<suffix>` by its ReplicaSet (kube/view.py IndexView.owner_of_pod)."""
    return owner_of(namespace, f"{replicaset}-{_ANY_POD}")


def _deployment_of(labels: Mapping[str, Any], owner_of: OwnerOf) -> tuple[str, str | None]:
    """(namespace, Deployment or None) of a sample labelled by pod, or by ReplicaSet (recorded answers)."""
    ns, pod, rs = (str(labels.get(k) or "") for k in ("namespace", "pod", REPLICASET_LABEL))
    if not ns:
        return ns, None
    if pod:
        return ns, owner_of(ns, pod)
    return ns, replicaset_owner(owner_of, ns, rs) if rs else None


def with_matcher(selector: str, matcher: str) -> str:
    """`metric{a="b"}` + `namespace=~"x"` -> `metric{namespace=~"x", a="b"}`."""
    selector = selector.strip()
    brace = selector.find("{")
    if brace < 0:
        return f"{selector}{{{matcher}}}"
    rest = selector[brace + 1:].lstrip()
    return f"{selector[:brace]}{{{matcher}{'' if rest.startswith('}') else ', '}{rest}"


def _regex_union(values: Iterable[str]) -> str:
    return "|".join(sorted({re.escape(v).replace("\\", "\\\\") for v in values if v}))


def _le_values(bound: float) -> str:
    """The spellings a bucket bound may have in `le` (Go's %g, Python's repr, Prometheus 3's 1.0)."""
    spellings = {format(bound, "g"), repr(float(bound))}
    if float(bound).is_integer():
        spellings.add(str(int(bound)))
    return _regex_union(spellings)


def _tagged(expr: str, window: str, part: str) -> str:
    return (f'label_replace(label_replace({expr}, "{WINDOW_LABEL}", "{window}", "", ""), '
            f'"{PART_LABEL}", "{part}", "", "")')


def _parts(slo: Slo) -> dict[str, str]:
    """Counter selectors by part: total and good or bad."""
    assert slo.sli is not None
    if slo.sli.ratio is not None:
        r = slo.sli.ratio
        return {"total": r.total, **({"good": r.good} if r.good is not None else {"bad": r.bad or ""})}
    lat = slo.sli.latency
    assert lat is not None and lat.below is not None
    return {"total": with_matcher(lat.bucket, 'le="+Inf"'), "good": with_matcher(lat.bucket, f'le=~"{_le_values(lat.below)}"')}


def windows_of(slo: Slo) -> list[str]:
    """The windows an SLO's counts are needed over: the period and every alert's two (or `window`)."""
    if not slo.has_budget:
        return [slo.window]
    return sorted({slo.period} | {w for r in slo.alert_rules() for w in (r.long_window, r.short_window)})


def sli_query(slo: Slo, namespaces: Iterable[str] = (), windows: Iterable[str] | None = None) -> str:
    """The one PromQL query of an `sli` SLO for every pod of every Deployment (in `namespaces`), over
    all its windows or only `windows` (e.g. the period, when recording rules give the others)."""
    assert slo.sli is not None
    ns = _regex_union(namespaces)

    def narrowed(selector: str) -> str:
        return with_matcher(selector, f'namespace=~"{ns}"') if ns else selector

    sli = slo.sli
    if sli.gauge is not None:
        return f"sum by ({_GROUP}) ({narrowed(sli.gauge.selector)})"
    if sli.latency is not None and sli.latency.quantile is not None:
        return f"sum by ({_GROUP}, le) (rate({narrowed(sli.latency.bucket)}[{slo.window}]))"
    return " or ".join(
        _tagged(f"sum by ({_GROUP}) (increase({narrowed(sel)}[{window}]))", window, part)
        for window in (windows_of(slo) if windows is None else windows) for part, sel in _parts(slo).items()
    )


@dataclass
class Measured:
    """Per Deployment: the value (threshold form: the SLI; objective form: the good share over the
    period), the budget (objective form) and the Deployments that get no verdict, with why."""

    values: dict[Key, float] = field(default_factory=dict)
    budgets: dict[Key, BudgetState] = field(default_factory=dict)
    problems: dict[Key, str] = field(default_factory=dict)


def _number(sample: Mapping[str, Any]) -> float | None:
    try:
        value = float(sample["value"][1])
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def read_sli(slo: Slo, result: Iterable[Mapping[str, Any]], owner_of: OwnerOf) -> Measured:
    """Sum the per-pod answer of `sli_query` (or the rules' per-ReplicaSet one) per Deployment and
    judge the numbers it gives."""
    assert slo.sli is not None
    sli = slo.sli
    out = Measured()
    sums: dict[Key, dict[tuple[str, str], float]] = {}  # deployment -> (window or le, part) -> sum
    per_pod: dict[Key, list[float]] = {}  # gauges: one value per pod
    broken: set[Key] = set()
    for sample in result:
        labels = sample.get("metric") or {}
        ns, deployment = _deployment_of(labels, owner_of)
        if deployment is None:
            continue
        key = (ns, deployment)
        value = _number(sample)
        if value is None:
            broken.add(key)
            continue
        if sli.gauge is not None:
            per_pod.setdefault(key, []).append(value)
            continue
        slot = (str(labels.get("le", "")), "bucket") if sli.latency is not None and sli.latency.quantile is not None \
            else (str(labels.get(WINDOW_LABEL, "")), str(labels.get(PART_LABEL, "")))
        bucket = sums.setdefault(key, {})
        bucket[slot] = bucket.get(slot, 0.0) + value
    for key in broken:
        out.problems[key] = "Prometheus returned a value that is not a finite number for a pod of this Deployment"
    for key, values in per_pod.items():
        if key not in broken:
            out.values[key] = _aggregate(sli.gauge.aggregate if sli.gauge is not None else "max", values)
    rules = [AlertRule(r.severity, r.long_window, r.short_window, r.factor) for r in slo.alert_rules()]
    counts_bad = sli.ratio is not None and sli.ratio.bad is not None  # else good + total (ratio or latency)
    for key, slots in sums.items():
        if key in broken:
            continue
        if sli.latency is not None and sli.latency.quantile is not None:
            buckets = {float(le): v for (le, _), v in slots.items() if _is_float(le)}
            q = histogram_quantile(sli.latency.quantile, buckets)
            if q is None:
                out.problems[key] = "no requests in the window (no quantile without observations)"
            else:
                out.values[key] = q
            continue
        counts = {w: _counts(slots, w, counts_bad) for w in {w for w, _ in slots}}
        if slo.has_budget:
            assert slo.objective is not None
            state = budget_state(slo.objective / 100, slo.period, counts, rules)
            if state.sli is None:
                out.problems[key] = f"no requests over the period ({slo.period}): no budget spent or left to judge"
                continue
            out.budgets[key], out.values[key] = state, state.sli
        else:
            c = counts.get(slo.window)
            ratio = c.error_ratio if c is not None else None
            if ratio is None:
                out.problems[key] = f"no requests in the window ({slo.window}): the ratio is undefined"
                continue
            out.values[key] = ratio if counts_bad else 1.0 - ratio
    return out


def _counts(slots: Mapping[tuple[str, str], float], window: str, counts_bad: bool) -> Counts:
    """A window's counts; a missing numerator series counts 0 (a pod that never failed has no 5xx series)."""
    total = slots.get((window, "total"), 0.0)
    if counts_bad:
        return Counts(total, slots.get((window, "bad"), 0.0))
    return Counts(total, total - slots.get((window, "good"), 0.0))


def _aggregate(how: str, values: list[float]) -> float:
    if how == "max":
        return max(values)
    if how == "min":
        return min(values)
    return sum(values) if how == "sum" else sum(values) / len(values)


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
