"""Enough replicas to survive losing one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from readiness_operator.checks.base import Cel, Context, Outcome, failed, passed, register
from readiness_operator.severity import Severity

if TYPE_CHECKING:
    from readiness_operator.model.rules import ReplicasRule


def _cel(check_id: str, rule: ReplicasRule) -> Cel:
    """An HPA is invisible to CEL: ``spec.replicas`` must reach the minimum (see admission/vap.py)."""
    n = int(rule.min)
    return Cel(
        f"variables.replicas >= {n}",
        f"replicas-min: spec.replicas must be at least {n}",
        f"'replicas-min: spec.replicas is ' + string(variables.replicas) + ', below the minimum of {n}'",
    )



@register(
    "replicas-min",
    category="replicas",
    severity=Severity.CRITICAL,
    title="Minimum replicas",
    why="A single replica means downtime on every node drain, eviction or crash.",
    remediation="Raise `spec.replicas` (or the HPA's `minReplicas` when an HPA manages the "
    "Deployment) to the "
    "policy minimum.",
    group="replicas",
    reads={"Deployment": ("spec.replicas",), "HorizontalPodAutoscaler": ("spec.minReplicas",)},
    cel=_cel,
    judges_scale_down=True,
)
def replicas_min(ctx: Context, rule: ReplicasRule) -> Outcome:
    """Effective replicas (HPA minReplicas when an HPA targets the Deployment) >= rule.min."""
    count, source = ctx.replicas
    if count >= rule.min:
        return passed(f"{source} is {count} (minimum {rule.min})")
    where = source if ctx.hpa is not None else "spec.replicas"
    return failed(
        [f"{source} is {count}, below the minimum of {rule.min}; set {where} to at least {rule.min}"]
    )
