"""Error budget remaining of an SLO, per Deployment and per policy, and a short history of it.

An SLO here is ``value <comparison> threshold``; its *budget* is how far the value may move from a
perfect one before the objective breaks, and *remaining* is the share of it not used yet: 1 is a
perfect value, 0 is exactly at the objective, below 0 is breached (how far over budget).

- lower is better (``<``, ``<=``; error ratios, latencies), threshold > 0: the budget is the
  threshold itself (0 is perfect): ``remaining = 1 - value / threshold``.
- higher is better (``>``, ``>=``) with a ratio objective (0 <= threshold < 1; availability): the
  budget is ``1 - threshold``: ``remaining = (value - threshold) / (1 - threshold)``.
- higher is better with threshold >= 1 (a rate, a count): headroom relative to the objective,
  ``remaining = min(1, (value - threshold) / threshold)``.
- otherwise (a threshold of 0 or below for lower is better, a negative one for higher is better)
  there is no budget to speak of: None, and no series is exported.

Pure: the operator feeds it the measurements its SloStore holds; nothing here queries anything.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from readiness_operator.model import Slo
from readiness_operator.model.slo import holds

from .burn import BudgetState

__all__ = ["HISTORY_POINTS", "BudgetHistory", "SloBudget", "budget_remaining", "slo_budgets"]

Key = tuple[str, str]
HISTORY_POINTS = 120  # points kept per policy and SLO for the page's burn chart (one per measurement)


def budget_remaining(value: float, comparison: str, threshold: float) -> float | None:
    """The share of the error budget left at ``value`` (see the module docstring), or None."""
    if not math.isfinite(value) or not math.isfinite(threshold):
        return None
    if comparison in ("<", "<="):
        return 1.0 - value / threshold if threshold > 0 else None
    if 0 <= threshold < 1:
        return (value - threshold) / (1.0 - threshold)
    if threshold >= 1:
        return min(1.0, (value - threshold) / threshold)
    return None


@dataclass(frozen=True, slots=True)
class SloBudget:
    """One SLO of one policy over the Deployments it selects: the worst remaining budget and counts."""

    slo: str
    comparison: str
    threshold: float
    measured: int  # Deployments with a value
    breaching: int  # ... whose value breaks the objective
    remaining: float | None  # the lowest over the measured Deployments (None: nothing measured, or no budget)
    per_deployment: Mapping[Key, float] = field(default_factory=dict)  # remaining per Deployment
    measured_at: datetime | None = None
    error: str | None = None  # the last query failed: the values are Unknown


def slo_budgets(
    slos: Sequence[Slo], values: Mapping[str, Mapping[Key, float]], targets: Iterable[Key],
    measured_at: Mapping[str, datetime | None] | None = None, errors: Mapping[str, str | None] | None = None,
    objectives: Mapping[str, Mapping[Key, BudgetState]] | None = None,
) -> list[SloBudget]:
    """Each SLO's budget over ``targets`` from the latest values per Deployment. A failed query
    (``errors``) yields no remaining budget: a stale value must not look like a current one. An SLO
    with an ``objective`` takes its error budget over the period from ``objectives`` (slo/burn.py)
    instead, shown as ``good share >= objective``; it breaches at a ticket or page level."""
    targets = list(targets)
    out = []
    for slo in slos:
        error = (errors or {}).get(slo.name)
        measured = {} if error else {k: v for k in targets if (v := values.get(slo.name, {}).get(k)) is not None}
        if slo.objective is not None:
            states = (objectives or {}).get(slo.name, {})
            per = {k: r for k in measured if k in states and (r := states[k].budget_remaining) is not None}
            comparison, threshold = ">=", slo.objective / 100
            breaching = sum(1 for k in measured if k in states and states[k].level != "ok")
        else:
            assert slo.comparison is not None and slo.threshold is not None  # the model's threshold form
            comparison, threshold = slo.comparison, slo.threshold
            per = {k: r for k, v in measured.items() if (r := budget_remaining(v, comparison, threshold)) is not None}
            breaching = sum(1 for v in measured.values() if not holds(v, comparison, threshold))
        out.append(SloBudget(
            slo=slo.name, comparison=comparison, threshold=threshold, measured=len(measured),
            breaching=breaching, remaining=min(per.values()) if per else None, per_deployment=per,
            measured_at=(measured_at or {}).get(slo.name), error=error,
        ))
    return out


class BudgetHistory:
    """The last HISTORY_POINTS remaining budgets of each SLO (one per new measurement), in memory.

    What the readiness page draws its burn chart from: the operator holds only the latest value per
    Deployment, so the glue records the policy-wide figure each time a query answers.
    """

    def __init__(self, points: int = HISTORY_POINTS) -> None:
        self.points = points
        self._series: dict[str, deque[tuple[float, float]]] = {}

    def record(self, budgets: Iterable[SloBudget]) -> None:
        """Append each budget measured since the last record (same ``measured_at``: nothing new)."""
        for budget in budgets:
            if budget.remaining is None or budget.measured_at is None:
                continue
            at = budget.measured_at.timestamp()
            series = self._series.setdefault(budget.slo, deque(maxlen=self.points))
            if series and series[-1][0] >= at:
                continue
            series.append((at, budget.remaining))

    def keep(self, slos: Iterable[str]) -> None:
        """Drop the history of SLOs no longer in the policy."""
        wanted = set(slos)
        for gone in set(self._series) - wanted:
            del self._series[gone]

    def of(self, slo: str) -> list[tuple[float, float]]:
        """(epoch seconds, remaining) oldest first."""
        return list(self._series.get(slo, ()))
