"""Health probes on every app container and sidecar (restartable init container).

Regular init containers run to completion and the API server forbids probes on them; sidecars run
beside the app, are restarted and count for the pod's readiness, so they take probes like apps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from readiness_operator.checks.base import Cel, Context, Outcome, failed, passed, register
from readiness_operator.checks.cel import LONG_RUNNING, each_container, per_container
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
        for c in ctx.target.long_running()
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
    remediation="Add `livenessProbe` (httpGet, tcpSocket, grpc or exec) to every container and sidecar; keep it cheap "
    "and independent of downstream services.",
    group="probes",
    enabled=lambda rule: rule.liveness,
    reads={
        "Deployment": (
            "spec.template.spec.containers[].livenessProbe",
            "spec.template.spec.initContainers[].livenessProbe",
        )
    },
    cel=each_container(LONG_RUNNING, "has(c.livenessProbe)", "have a livenessProbe"),
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
    remediation="Add `readinessProbe` to every container and sidecar, pointing at an endpoint that reports whether "
    "the instance can serve requests now.",
    group="probes",
    enabled=lambda rule: rule.readiness,
    reads={
        "Deployment": (
            "spec.template.spec.containers[].readinessProbe",
            "spec.template.spec.initContainers[].readinessProbe",
        )
    },
    cel=each_container(LONG_RUNNING, "has(c.readinessProbe)", "have a readinessProbe"),
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
    reads={
        "Deployment": (
            "spec.template.spec.containers[].startupProbe",
            "spec.template.spec.initContainers[].startupProbe",
        )
    },
    cel=each_container(LONG_RUNNING, "has(c.startupProbe)", "have a startupProbe"),
)
def startup(ctx: Context, rule: ProbesRule) -> Outcome:
    """Every container has a startupProbe."""
    return _require(ctx, "startupProbe")


def _same_target(liveness: Mapping[str, Any], readiness: Mapping[str, Any]) -> bool:
    """Both probes ask the same thing: the same handler at the same port/path/service/command
    (timings differ by design, so they are not compared; the API server's defaults are applied)."""
    for kind, keys, defaults in (
        ("httpGet", ("port", "path", "host", "scheme"), {"path": "", "host": "", "scheme": "HTTP"}),
        ("tcpSocket", ("port", "host"), {"host": ""}),
        ("grpc", ("port", "service"), {"service": ""}),
        ("exec", ("command",), {"command": []}),
    ):
        a, b = liveness.get(kind), readiness.get(kind)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            return all(a.get(k, defaults.get(k)) == b.get(k, defaults.get(k)) for k in keys)
    return False


def _same_target_cel() -> str:
    lp, rp = "c.livenessProbe", "c.readinessProbe"

    def eq(kind: str, key: str, default: str | None) -> str:
        if default is None:
            return f"{lp}.{kind}.{key} == {rp}.{kind}.{key}"  # required by the API server
        return f"{lp}.{kind}.?{key}.orValue({default}) == {rp}.{kind}.?{key}.orValue({default})"

    alts = []
    for kind, keys in (
        ("httpGet", (("port", None), ("path", "''"), ("host", "''"), ("scheme", "'HTTP'"))),
        ("tcpSocket", (("port", None), ("host", "''"))),
        ("grpc", (("port", None), ("service", "''"))),
        ("exec", (("command", "[]"),)),
    ):
        same = " && ".join(eq(kind, k, d) for k, d in keys)
        alts.append(f"(has({lp}.{kind}) && has({rp}.{kind}) && {same})")
    return "(" + " || ".join(alts) + ")"


def _distinct_cel(check_id: str, rule: ProbesRule) -> Cel:
    cond = f"!has(c.livenessProbe) || !has(c.readinessProbe) || !{_same_target_cel()}"
    return per_container(check_id, LONG_RUNNING, cond, "have a livenessProbe that differs from its readinessProbe")


@register(
    "probes-distinct",
    category="probes",
    severity=Severity.WARNING,
    title="Liveness differs from readiness",
    why="A liveness probe that asks what the readiness probe asks restarts pods that are merely busy or "
    "waiting for a dependency: an overload or a database outage becomes a restart storm.",
    remediation="Point `livenessProbe` at a cheap endpoint that only says the process is alive (e.g. "
    "/healthz) and `readinessProbe` at one that says it can serve now (e.g. /ready).",
    group="probes",
    enabled=lambda rule: rule.distinct,
    reads={
        "Deployment": (
            "spec.template.spec.containers[].livenessProbe",
            "spec.template.spec.containers[].readinessProbe",
            "spec.template.spec.initContainers[].livenessProbe",
            "spec.template.spec.initContainers[].readinessProbe",
        )
    },
    cel=_distinct_cel,
)
def probes_distinct(ctx: Context, rule: ProbesRule) -> Outcome:
    """No container's livenessProbe probes the same target as its readinessProbe."""
    problems = []
    for c in ctx.target.long_running():
        liveness, readiness = c.get("livenessProbe"), c.get("readinessProbe")
        if isinstance(liveness, Mapping) and isinstance(readiness, Mapping) and _same_target(liveness, readiness):
            problems.append(
                f"{c.label}'s livenessProbe probes the same target as its readinessProbe; set "
                f"{c.path}.livenessProbe to a cheap liveness-only endpoint (e.g. httpGet /healthz)"
            )
    return failed(problems) if problems else passed("every livenessProbe differs from its readinessProbe")
