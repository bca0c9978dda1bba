"""Health probes on every app container (init containers run to completion and take no probes)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from readiness_operator.checks.base import Context, Outcome, failed, passed, register
from readiness_operator.checks.cel import APP_CONTAINERS, each_container
from readiness_operator.severity import Severity

if TYPE_CHECKING:
    from readiness_operator.model.rules import ProbesRule

_HINTS = {
    "livenessProbe": "e.g. httpGet on /healthz, so a hung process is restarted",
    "readinessProbe": "e.g. httpGet on /ready, so traffic only reaches pods that can serve it",
    "startupProbe": "e.g. httpGet on /healthz with failureThreshold x periodSeconds >= the startup time",
}


def _require(ctx: Context, field: str) -> Outcome:
    problems = [
        f"{c.label} has no {field}; add {c.path}.{field} ({_HINTS[field]})"
        for c in ctx.target.containers
        if not c.get(field)
    ]
    if not ctx.target.containers:
        return failed(["the pod template has no containers"])
    return failed(problems) if problems else passed(f"every container has a {field}")


@register(
    "probe-liveness",
    category="probes",
    severity=Severity.WARNING,
    title="Liveness probe",
    why="Without a liveness probe a deadlocked process keeps its pod Running and never restarts.",
    remediation="Add `livenessProbe` (httpGet, tcpSocket, grpc or exec) to every container; keep it cheap "
    "and independent of downstream services.",
    group="probes",
    enabled=lambda rule: rule.liveness,
    reads={"Deployment": ("spec.template.spec.containers[].livenessProbe",)},
    cel=each_container(APP_CONTAINERS, "has(c.livenessProbe)", "have a livenessProbe"),
)
def liveness(ctx: Context, rule: ProbesRule) -> Outcome:
    """Every container has a livenessProbe."""
    return _require(ctx, "livenessProbe")


@register(
    "probe-readiness",
    category="probes",
    severity=Severity.CRITICAL,
    title="Readiness probe",
    why="Without a readiness probe a pod receives traffic before it can serve it and during shutdown, "
    "and rolling updates cannot tell a broken version from a working one.",
    remediation="Add `readinessProbe` to every container, pointing at an endpoint that reports whether "
    "the instance can serve requests now.",
    group="probes",
    enabled=lambda rule: rule.readiness,
    reads={"Deployment": ("spec.template.spec.containers[].readinessProbe",)},
    cel=each_container(APP_CONTAINERS, "has(c.readinessProbe)", "have a readinessProbe"),
)
def readiness(ctx: Context, rule: ProbesRule) -> Outcome:
    """Every container has a readinessProbe."""
    return _require(ctx, "readinessProbe")


@register(
    "probe-startup",
    category="probes",
    severity=Severity.INFO,
    title="Startup probe",
    why="Slow-starting containers get killed by their liveness probe unless a startup probe holds it off.",
    remediation="Add `startupProbe` with `failureThreshold * periodSeconds` longer than the worst "
    "startup time.",
    group="probes",
    enabled=lambda rule: rule.startup,
    reads={"Deployment": ("spec.template.spec.containers[].startupProbe",)},
    cel=each_container(APP_CONTAINERS, "has(c.startupProbe)", "have a startupProbe"),
)
def startup(ctx: Context, rule: ProbesRule) -> Outcome:
    """Every container has a startupProbe."""
    return _require(ctx, "startupProbe")
