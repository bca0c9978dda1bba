"""SLO objectives: judged from measurements handed in through the World, never fetched here.

State from a value (``holds`` means ``value <comparison> level``):
critical when a ``critical`` level is set and breached; else warning when a ``warning`` level is set
and breached; else, when the objective itself is breached, the SLO's severity decides (critical ->
``critical``, otherwise ``warning``); else ok. No value -> unknown (not a failure, not a pass).

An SLO with an ``objective`` is judged by its error budget instead (slo/burn.py): critical while the
budget over the period is exhausted or a page-level burn-rate alert fires (``onBreach: Block`` freezes
rollouts then), warning while a ticket-level one fires, else ok.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from readiness_operator.checks.base import Context, Outcome, register
from readiness_operator.severity import Severity

if TYPE_CHECKING:
    from readiness_operator.model.slo import Slo
    from readiness_operator.slo.burn import BudgetState
    from readiness_operator.world import SloMeasurement

__all__ = ["SLO_CHECK_ID", "slo_state"]

#: Catalogue id of the SLO template; findings use ``slo:<name>``.
SLO_CHECK_ID = "slo"


def slo_state(slo: Slo, value: float | None, budget: BudgetState | None = None) -> tuple[str, Severity]:
    """(state, finding severity) for a measured value (or, for an objective, the budget)."""
    from readiness_operator.model.slo import holds  # here: the model imports this package

    if value is None or (slo.has_budget and budget is None):
        return "unknown", slo.severity
    if budget is not None:
        level = budget.level
        if level == "page":
            return "critical", Severity.CRITICAL
        return ("warning", Severity.WARNING) if level == "ticket" else ("ok", slo.severity)
    assert slo.comparison is not None and slo.threshold is not None
    if slo.critical is not None and not holds(value, slo.comparison, slo.critical):
        return "critical", Severity.CRITICAL
    if slo.warning is not None and not holds(value, slo.comparison, slo.warning):
        return "warning", Severity.WARNING
    if not holds(value, slo.comparison, slo.threshold):
        return ("critical" if slo.severity == Severity.CRITICAL else "warning"), slo.severity
    return "ok", slo.severity


def _percent(ratio: float) -> str:
    return f"{ratio * 100:.4g}%"


def _budget_outcome(slo: Slo, m: SloMeasurement, budget: BudgetState) -> Outcome:
    state, _ = slo_state(slo, m.value, budget)
    left = budget.budget_remaining or 0.0
    facts = (f"{_percent(budget.sli or 0.0)} good over {slo.period} (objective {slo.objective:g}%), "
             f"{_percent(max(left, 0.0)) if left > 0 else 'none'} of the error budget left")
    page = [r for r in slo.alert_rules() if r.severity == "page"]
    burns = ", ".join(f"{budget.burn_rates.get(r.long_window) or 0:.3g}x over {r.long_window}" for r in page[:2])
    detail = (
        ("objective", f"{slo.objective:g}"), ("period", slo.period), ("budgetRemaining", f"{left:.6g}"),
        ("burnRates", ",".join(f"{w}={b:.4g}" for w, b in budget.burn_rates.items() if b is not None)),
        ("firing", budget.firing()),
    )
    common = {"threshold": budget.objective, "measured_at": m.measured_at, "state": state, "value": budget.sli,
              "detail": detail}
    if state == "ok":
        return Outcome("pass", f"SLO '{slo.name}' within budget: {facts}; burn rate {burns or 'n/a'}", **common)  # type: ignore[arg-type]
    what = "error-budget freeze" if state == "critical" else "budget burning (ticket)"
    return Outcome(
        "fail",
        f"SLO '{slo.name}' {what}: {budget.why()}; {facts}; restore the service (roll back or fix) before the "
        "next rollout",
        **common,  # type: ignore[arg-type]
    )


@register(
    SLO_CHECK_ID,
    category="slo",
    severity=Severity.CRITICAL,
    title="Service level objective (`slo:<name>`)",
    why="A Deployment that is burning its error budget is not ready for another rollout, however good its "
    "configuration looks.",
    remediation="Restore the objective (roll back, fix, scale) before rolling out again; if "
    "Prometheus cannot "
    "answer, fix the query or the connection (the check is Unknown meanwhile).",
    group="slos",
    reads={"Prometheus": ()},
    cel_unavailable="live: judged from Prometheus measurements",
)
def slo_objective(ctx: Context, slo: Slo) -> Outcome:
    """``query <comparison> threshold`` holds for the measurement of this Deployment."""
    m = ctx.world.slo_measurements.get(slo.name)
    value = m.value if m is not None and m.value is not None and math.isfinite(m.value) else None
    if m is not None and value is not None and m.budget is not None and slo.has_budget:
        return _budget_outcome(slo, m, m.budget)
    state, _ = slo_state(slo, None if slo.has_budget else value)
    objective = f"{slo.comparison} {slo.threshold:g}" if not slo.has_budget else f"{slo.objective:g}% over {slo.period}"
    common = {"threshold": slo.threshold if not slo.has_budget else (slo.objective or 0) / 100,
              "measured_at": m.measured_at if m else None, "state": state}
    if value is None or slo.has_budget:
        why = m.error if m is not None and m.error else "no measurement from Prometheus yet"
        if m is not None and m.value is not None and not m.error:  # a non-finite value handed in directly
            why = f"the measurement is {m.value}, not a number a verdict can be based on"
        return Outcome("unknown", f"SLO '{slo.name}' is unknown: {why}", value=None, **common)  # type: ignore[arg-type]
    if state == "ok":
        return Outcome("pass", f"SLO '{slo.name}' holds: {value:g} {objective}", value=value, **common)  # type: ignore[arg-type]
    return Outcome(
        "fail",
        f"SLO '{slo.name}' breached ({state}): measured {value:g} over {slo.window}, objective {objective}; "
        "restore the service (roll back or fix) before the next rollout",
        value=value,
        **common,  # type: ignore[arg-type]
    )
