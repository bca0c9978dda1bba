"""Enough replicas to survive losing one."""

from __future__ import annotations

from readiness_operator.checks.base import Context, Outcome, failed, passed, register
from readiness_operator.model.common import Severity
from readiness_operator.model.rules import ReplicasRule


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
