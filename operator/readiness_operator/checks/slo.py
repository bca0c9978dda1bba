"""SLO objectives: judged from measurements handed in through the World, never fetched here.

State from a value (``holds`` means ``value <comparison> level``):
critical when a ``critical`` level is set and breached; else warning when a ``warning`` level is set
and breached; else, when the objective itself is breached, the SLO's severity decides (critical ->
``critical``, otherwise ``warning``); else ok. No value -> unknown (not a failure, not a pass).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from readiness_operator.checks.base import Context, Outcome, register
from readiness_operator.severity import Severity

if TYPE_CHECKING:
    from readiness_operator.model.slo import Slo

__all__ = ["SLO_CHECK_ID", "slo_state"]

#: Catalogue id of the SLO template; findings use ``slo:<name>``.
SLO_CHECK_ID = "slo"


def slo_state(slo: Slo, value: float | None) -> tuple[str, Severity]:
    """(state, finding severity) for a measured value."""
    from readiness_operator.model.slo import holds  # here: the model imports this package

    if value is None:
        return "unknown", slo.severity
    if slo.critical is not None and not holds(value, slo.comparison, slo.critical):
        return "critical", Severity.CRITICAL
    if slo.warning is not None and not holds(value, slo.comparison, slo.warning):
        return "warning", Severity.WARNING
    if not holds(value, slo.comparison, slo.threshold):
        return ("critical" if slo.severity == Severity.CRITICAL else "warning"), slo.severity
    return "ok", slo.severity


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
    state, _ = slo_state(slo, value)
    objective = f"{slo.comparison} {slo.threshold:g}"
    common = {"threshold": slo.threshold, "measured_at": m.measured_at if m else None, "state": state}
    if value is None:
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
