"""SLO measurements per policy: queried once per interval, cached for passes and admission.

Outage semantics: a failed query keeps the previous values with their timestamp for status, but
the engine sees no value (Unknown): never a false verdict from stale or missing data.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from readiness_operator.model import Slo
from readiness_operator.model.slo import duration_seconds, holds
from readiness_operator.model.status import Condition
from readiness_operator.world import SloMeasurement

from .budget import SloBudget, slo_budgets
from .burn import BudgetState
from .promql import BatchQuery, QueryError, batch_query
from .rules import read_recorded, recordable, recorded_query
from .sli import OwnerOf, read_sli, replicaset_owner, sli_query

log = logging.getLogger(__name__)
Key = tuple[str, str]
EVERYTHING: Key = ("*", "*")  # in a changed set: re-judge every target
#: Runs one PromQL instant query; returns [{"metric": {...}, "value": [ts, "1.0"]}, ...] or raises.
QueryFn = Callable[[str], Awaitable[list[dict[str, Any]]]]


class QueryFailed(RuntimeError):
    """A failed query whose message is safe to show in status, Events and logs: a status code or a
    short reason, never a response body, a header or a credential."""


@dataclass
class SloSeries:
    """The latest answer to one SLO query."""

    values: dict[Key, float] = field(default_factory=dict)  # finite values only: they reach status and patches
    budgets: dict[Key, BudgetState] = field(default_factory=dict)  # objective SLOs: budget and burn rates
    problems: dict[Key, str] = field(default_factory=dict)  # Deployments whose answer is no verdict, and why
    measured_at: datetime | None = None  # last successful query
    attempted_at: datetime | None = None
    error: str | None = None  # why the last attempt failed (None: it succeeded)
    source: str = "direct"  # recorded (rules), recorded-windows (the period read directly) or direct
    source_why: str = ""  # why the recording rules were not (fully) used
    rules_missing_at: datetime | None = None  # when the recording rules were last found missing


@dataclass
class Refresh:
    """What one refresh did: the Deployments whose measurement changed (``EVERYTHING``: all may
    have), and the SLOs queried and failed (the glue counts them in its metrics)."""

    changed: set[Key] = field(default_factory=set)
    queried: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


@dataclass
class PolicySlos:
    series: dict[str, SloSeries] = field(default_factory=dict)
    queries: int = 0
    # kube_pod_owner (kube-state-metrics), for pods whose name does not say their ReplicaSet:
    # (namespace, pod) -> ReplicaSet, read at most every POD_OWNER_SECONDS and only when needed.
    pod_replicasets: dict[Key, str] = field(default_factory=dict)
    pod_owners_read_at: datetime | None = None
    version: int = 0  # moves with every query attempted or SLO dropped: what is derived from `series` is stale


#: Without usable recording rules, how long the direct query runs before the rules are looked for again
#: (one query per SLO per interval, not two; rules installed later are used within this time).
RULES_RECHECK_SECONDS = 60.0
#: How long kube_pod_owner answers are reused (pods keep their owner; new pods resolve by name).
POD_OWNER_SECONDS = 60.0
POD_OWNER_QUERY = 'max by (namespace, pod, owner_name) (kube_pod_owner{owner_kind="ReplicaSet"})'


class SloStore:
    def __init__(self) -> None:
        self.policies: dict[str, PolicySlos] = {}

    def forget(self, policy: str) -> None:
        self.policies.pop(policy, None)

    def seconds_until_due(self, policy: str, slo: Slo, now: datetime) -> float:
        """When this SLO's query next falls due: an interval after it last ran (0: due now)."""
        state = self.policies.get(policy)
        series = state.series.get(slo.name) if state is not None else None
        if series is None or series.attempted_at is None:
            return 0.0
        return max(0.0, duration_seconds(slo.interval) - (now - series.attempted_at).total_seconds())

    def refresh_due(self, policy: str, slos: Iterable[Slo], now: datetime) -> bool:
        """A `refresh` would do something: a query is due, or an SLO was added or dropped."""
        slos = list(slos)
        state = self.policies.get(policy)
        if state is None or set(state.series) != {s.name for s in slos}:
            return True
        return any(self.seconds_until_due(policy, s, now) <= 0 for s in slos)

    async def refresh(
        self, policy: str, slos: Iterable[Slo], query: QueryFn, now: datetime, *, namespaces: Iterable[str] = (),
        label_values: Mapping[str, Iterable[str]] | None = None, owner_of: OwnerOf | None = None,
    ) -> Refresh:
        """Run the due queries (one per SLO, for every Deployment at once). `owner_of` maps a pod to
        its Deployment for `sli` SLOs (without it they see no pod of any Deployment)."""
        state = self.policies.setdefault(policy, PolicySlos())
        done = Refresh()
        changed = done.changed
        slos = list(slos)
        for gone in set(state.series) - {s.name for s in slos}:
            changed.update(state.series.pop(gone).values)
            state.version += 1
        for slo in slos:
            series = state.series.setdefault(slo.name, SloSeries())
            if self.seconds_until_due(policy, slo, now) > 0:
                continue
            series.attempted_at = now
            state.version += 1
            before_error, before, before_problems = series.error, dict(series.values), dict(series.problems)
            before_budgets = dict(series.budgets)
            try:
                if slo.sli is not None:
                    done.queried.append(slo.name)
                    result = await self._sli_answer(policy, slo, state, series, query, namespaces, now)
                    mapped = await self._owners(state, result, owner_of or _no_owner, query, now)
                    measured = read_sli(slo, result, mapped)
                    series.values, series.budgets, series.problems = measured.values, measured.budgets, measured.problems
                else:
                    batch: BatchQuery = batch_query(slo.query or "", namespaces=namespaces, label_values=label_values)
                    done.queried.append(slo.name)
                    state.queries += 1
                    result = await query(batch.promql)
                    series.values, series.problems = read_samples(result, batch.namespace_label, batch.name_label)
                series.measured_at, series.error = now, None
            except QueryError as exc:
                series.error = f"query cannot be batched: {exc}"
            except Exception as exc:  # Prometheus unreachable, HTTP error, bad PromQL: all Unknown
                done.failed.append(slo.name)
                series.error = _describe(exc)
                log.warning("policy %s: SLO %s query failed: %s", policy, slo.name, series.error)
            if series.error != before_error or series.problems != before_problems:
                changed.update(before)
                changed.update(series.values)
                changed.add(EVERYTHING)  # every target may flip between known and Unknown
            else:
                changed.update(k for k in set(before) | set(series.values) if before.get(k) != series.values.get(k))
                changed.update(k for k in set(before_budgets) | set(series.budgets)
                               if before_budgets.get(k) != series.budgets.get(k))
        return done

    @staticmethod
    async def _sli_answer(
        policy: str, slo: Slo, state: PolicySlos, series: SloSeries, query: QueryFn, namespaces: Iterable[str],
        now: datetime,
    ) -> list[dict[str, Any]]:
        """The counts of an `sli` SLO: per ReplicaSet from its recording rules when they run (one query
        for every Deployment; the period read directly, per pod, until the rules cover it), else per
        pod from the direct query."""
        namespaces = list(namespaces)
        before = series.source
        try:
            return await SloStore._read_counts(slo, policy, state, series, query, namespaces, now)
        finally:
            if series.source != before:
                log.info("policy %s: SLO %s now reads %s%s", policy, slo.name, _SOURCES[series.source],
                         f" ({series.source_why})" if series.source_why else "")

    @staticmethod
    async def _read_counts(
        slo: Slo, policy: str, state: PolicySlos, series: SloSeries, query: QueryFn, namespaces: list[str],
        now: datetime,
    ) -> list[dict[str, Any]]:
        missing = series.rules_missing_at
        if recordable(slo) and (missing is None or (now - missing).total_seconds() >= RULES_RECHECK_SECONDS):
            state.queries += 1
            recorded = read_recorded(slo, await query(recorded_query(policy, slo, namespaces)))
            series.source_why = recorded.why
            series.rules_missing_at = None if recorded.usable else now
            if recorded.usable and recorded.period_usable:
                series.source = "recorded"
                return [dict(s) for s in recorded.samples]
            if recorded.usable:
                series.source = "recorded-windows"
                state.queries += 1
                period = await query(sli_query(slo, namespaces, windows=[slo.period]))
                return [dict(s) for s in recorded.samples if (s.get("metric") or {}).get("slo_window") != slo.period] + period
        series.source = "direct"
        state.queries += 1
        return await query(sli_query(slo, namespaces))

    async def _owners(
        self, state: PolicySlos, result: list[dict[str, Any]], owner_of: OwnerOf, query: QueryFn, now: datetime
    ) -> OwnerOf:
        """`owner_of`, falling back to kube_pod_owner's ReplicaSet for pods it cannot resolve by name
        (queried only when such pods appear, and at most once a minute; without kube-state-metrics
        the answer is empty and those pods stay unmapped)."""
        unresolved = {(str(m.get("namespace", "")), str(m.get("pod", ""))) for r in result
                      if (m := r.get("metric") or {}).get("pod") and owner_of(str(m.get("namespace", "")),
                                                                             str(m.get("pod", ""))) is None}
        stale = state.pod_owners_read_at is None or (now - state.pod_owners_read_at).total_seconds() >= POD_OWNER_SECONDS
        if unresolved - set(state.pod_replicasets) and stale:
            state.pod_owners_read_at = now
            try:
                answer = await query(POD_OWNER_QUERY)
                state.pod_replicasets = {
                    (str(m.get("namespace", "")), str(m.get("pod", ""))): str(m.get("owner_name", ""))
                    for r in answer if (m := r.get("metric") or {}).get("owner_name")}
            except Exception as exc:  # no verdict depends on it: the pods stay unmapped
                log.warning("kube_pod_owner query failed: %s", _describe(exc))
        replicasets = state.pod_replicasets

        def mapped(namespace: str, pod: str) -> str | None:
            found = owner_of(namespace, pod)
            if found is None and (rs := replicasets.get((namespace, pod))):
                found = replicaset_owner(owner_of, namespace, rs)
            return found

        return mapped

    def measurements(self, policy: str, key: Key) -> dict[str, SloMeasurement]:
        state = self.policies.get(policy)
        if state is None:
            return {}
        out = {}
        for name, series in state.series.items():
            if series.error is not None:
                out[name] = SloMeasurement(None, series.measured_at, series.error)
            elif key in series.problems:
                out[name] = SloMeasurement(None, series.measured_at, series.problems[key])
            elif key in series.values:
                out[name] = SloMeasurement(series.values[key], series.measured_at, budget=series.budgets.get(key))
            elif series.measured_at is not None:
                out[name] = SloMeasurement(None, series.measured_at, "no data for this Deployment")
        return out

    def condition(self, policy: str, slos: Iterable[Slo]) -> Condition | None:
        """PrometheusReachable: True when every SLO query last succeeded."""
        slos = list(slos)
        if not slos:
            return None
        state = self.policies.get(policy)
        errors = [(n, s.error) for n, s in (state.series.items() if state else ()) if s.error]
        if state is None or any(s.name not in state.series or state.series[s.name].attempted_at is None for s in slos):
            status, reason, message = "Unknown", "NotQueriedYet", "SLO queries have not run yet"
        elif errors:
            status, reason = "False", "QueryFailed"
            message = "; ".join(f"slo:{n}: {e}" for n, e in errors)[:1024]
        else:
            status, reason = "True", "QueriesSucceeded"
            message = f"{len(slos)} SLO quer{'y' if len(slos) == 1 else 'ies'} answered"
            sources = [f"{s.name}: {_SOURCES[state.series[s.name].source]}" for s in slos
                       if s.sli is not None and recordable(s)]
            if sources:
                message += f" ({'; '.join(sources)})"
        return Condition.model_validate({"type": "PrometheusReachable", "status": status, "reason": reason,
                                         "message": message})

    def version(self, policy: str) -> tuple[int, int]:
        """Moves whenever `status` or `budgets` could answer differently for the same targets (the
        state's identity too: a policy forgotten and measured again starts its count afresh)."""
        state = self.policies.get(policy)
        return (0, 0) if state is None else (id(state), state.version)

    def budgets(self, policy: str, slos: Iterable[Slo], targets: Iterable[Key]) -> list[SloBudget]:
        """Each SLO's remaining error budget over ``targets`` from the latest measurements."""
        state = self.policies.get(policy)
        series = state.series if state is not None else {}
        return slo_budgets(list(slos), {n: s.values for n, s in series.items()}, targets,
                           measured_at={n: s.measured_at for n, s in series.items()},
                           errors={n: s.error for n, s in series.items()},
                           objectives={n: s.budgets for n, s in series.items()})

    def status(self, policy: str, slos: Iterable[Slo], targets: Iterable[Key]) -> list[dict[str, Any]]:
        """A small per-SLO summary for the policy status: counts, worst values, last measurement; for an
        objective, the Deployments with the least budget left, their burn rates and what fired."""
        state = self.policies.get(policy)
        targets = list(targets)
        out = []
        for slo in slos:
            series = state.series.get(slo.name) if state else None
            entry: dict[str, Any] = {"name": slo.name}
            if slo.has_budget:
                entry.update(objective=slo.objective, period=slo.period)
            else:
                entry.update(comparison=slo.comparison, threshold=slo.threshold)
            if series is None:
                out.append({**entry, "state": "Unknown"})
                continue
            measured = {k: series.values[k] for k in targets if k in series.values}
            if slo.has_budget:
                budgets = {k: series.budgets[k] for k in measured if k in series.budgets}
                breaching = {k: v for k, v in measured.items() if k in budgets and budgets[k].level != "ok"}
                ordered = sorted(budgets.items(), key=lambda kv: (kv[1].budget_remaining or 0.0, kv[0]))
                worst = [_budget_entry(k, measured[k], b) for k, b in ordered if k in breaching][:5]
                entry["frozen"] = sum(1 for b in budgets.values() if b.level == "page")
                entry["lowestBudgetRemaining"] = round(ordered[0][1].budget_remaining or 0.0, 6) if ordered else None
            else:
                assert slo.comparison is not None and slo.threshold is not None
                comparison, threshold = slo.comparison, slo.threshold
                breaching = {k: v for k, v in measured.items() if not holds(v, comparison, threshold)}
                lower_is_better = comparison in ("<", "<=")
                ranked = sorted(breaching.items(), key=lambda kv: -kv[1] if lower_is_better else kv[1])[:5]
                worst = [{"namespace": k[0], "name": k[1], "value": v} for k, v in ranked]
            entry.update(
                state="Unknown" if series.error else ("Breaching" if breaching else "Met"),
                measured=len(measured), breaching=len(breaching), noData=len(targets) - len(measured), worst=worst,
            )
            if entry.get("lowestBudgetRemaining") is None:
                entry.pop("lowestBudgetRemaining", None)
            if series.measured_at is not None:
                entry["measuredAt"] = series.measured_at.isoformat().replace("+00:00", "Z")
            if series.error:
                entry["error"] = series.error[:512]
            out.append(entry)
        return out


def _budget_entry(key: Key, value: float, budget: BudgetState) -> dict[str, Any]:
    return {
        "namespace": key[0], "name": key[1], "value": round(value, 6),
        "budgetRemaining": round(budget.budget_remaining or 0.0, 6),
        "burnRates": {w: round(b, 3) for w, b in budget.burn_rates.items() if b is not None},
        "firing": budget.firing(),
    }


_SOURCES = {"recorded": "from recording rules", "recorded-windows": "from recording rules, the period directly",
            "direct": "direct query"}


def _no_owner(_namespace: str, _pod: str) -> str | None:
    return None


def read_samples(
    result: Iterable[Mapping[str, Any]], namespace_label: str, name_label: str
) -> tuple[dict[Key, float], dict[Key, str]]:
    """Values per Deployment from an instant vector, and the Deployments that get no verdict.

    A non-finite value (NaN from an idle Deployment's 0/0, +-Inf) or one that is not a number is
    Unknown with a reason, never a pass or a fail, and never reaches a JSON patch (the API server
    rejects NaN). Several series for one Deployment (e.g. one per pod) are an error naming the labels
    that tell them apart: taking any one of them would make the verdict depend on the answer's order.
    """
    values: dict[Key, float] = {}
    problems: dict[Key, str] = {}
    first_labels: dict[Key, Mapping[str, Any]] = {}
    for sample in result:
        labels = sample.get("metric") or {}
        key = (str(labels.get(namespace_label, "")), str(labels.get(name_label, "")))
        if key in first_labels:
            differing = sorted(k for k in set(labels) | set(first_labels[key]) if labels.get(k) != first_labels[key].get(k))
            problems[key] = (f"the query returned several series for this Deployment (they differ in "
                             f"{', '.join(differing) or 'nothing'}); aggregate them, e.g. with sum by "
                             f"({namespace_label}, {name_label}) or max by (...)")
            values.pop(key, None)
            continue
        first_labels[key] = labels
        try:
            value = float(sample["value"][1])
        except (KeyError, IndexError, TypeError, ValueError):
            problems[key] = "Prometheus returned a value that is not a number"
            continue
        if not math.isfinite(value):
            problems[key] = (f"Prometheus returned {value} (a ratio over no traffic is NaN); "
                             "no verdict until there is data")
            continue
        values[key] = value
    return values, problems


def _describe(exc: BaseException) -> str:
    """A short, secret-free reason. Only a QueryFailed's own text is shown; any other exception may
    carry a response body, a header or a token in its message, so only its type is named."""
    if isinstance(exc, QueryFailed):
        return " ".join(str(exc).split())[:300]
    return f"the query failed ({type(exc).__name__})"

