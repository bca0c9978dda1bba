"""Rollout and shutdown: RollingUpdate within bounds, time and a hook to drain connections."""

from __future__ import annotations

from typing import TYPE_CHECKING

from readiness_operator.checks.base import Cel, Context, Outcome, failed, passed, register
from readiness_operator.checks.cel import APP_CONTAINERS, each_container, lit
from readiness_operator.checks.relations import scaled_value
from readiness_operator.severity import Severity

if TYPE_CHECKING:
    from readiness_operator.model.rules import GracefulShutdownRule, RollingUpdateRule

DEFAULT_GRACE_SECONDS = 30


def resolved_max_unavailable(ctx: Context, replicas: int) -> int | None:
    """The Deployment's maxUnavailable in pods, like the Deployment controller resolves it (default 25%,
    rounded down; when maxSurge is also 0 the controller uses 1)."""
    ru = (ctx.target.spec.get("strategy") or {}).get("rollingUpdate") or {}
    unavailable = scaled_value(ru.get("maxUnavailable", "25%"), replicas, round_up=False)
    surge = scaled_value(ru.get("maxSurge", "25%"), replicas, round_up=True)
    if unavailable is None or surge is None:
        return None
    if unavailable == 0 and surge == 0:
        return 1
    return unavailable


def _int_or_percent(expr: str, round_up: bool) -> str:
    """CEL resolving an IntOrString (``expr``) against variables.replicas like the Deployment controller."""
    pct = f"int(string({expr}).replace('%', ''))"
    scaled = f"(variables.replicas * {pct} + 99) / 100" if round_up else f"variables.replicas * {pct} / 100"
    return f"(type({expr}) == int ? int({expr}) : {scaled})"


def _rolling_update_cel(check_id: str, rule: RollingUpdateRule) -> Cel:
    """An HPA is invisible to CEL: a percentage limit resolves against ``spec.replicas``."""
    kind = "object.spec.?strategy.?type.orValue('RollingUpdate')"
    ru = "object.spec.?strategy.?rollingUpdate"
    if rule.max_unavailable is None:
        within = "true"
    else:
        mu = _int_or_percent(f"{ru}.?maxUnavailable.orValue('25%')", round_up=False)
        ms = _int_or_percent(f"{ru}.?maxSurge.orValue('25%')", round_up=True)
        actual = f"(({mu} == 0 && {ms} == 0) ? 1 : {mu})"
        limit = (
            str(int(rule.max_unavailable))
            if isinstance(rule.max_unavailable, int)
            else f"(variables.replicas * {int(str(rule.max_unavailable).rstrip('%'))} / 100)"
        )
        within = f"{actual} <= {limit}"
    recreate_ok = "false" if rule.required else "true"
    expr = f"{kind} == 'RollingUpdate' ? ({within}) : {recreate_ok}"
    msg = "rolling-update: use spec.strategy.type RollingUpdate"
    if rule.max_unavailable is not None:
        msg += f" with rollingUpdate.maxUnavailable at most {rule.max_unavailable}"
    return Cel(expr, msg, f"{lit(msg + ' (strategy is ')} + {kind} + ')'")


def _grace_period_cel(check_id: str, rule: GracefulShutdownRule) -> Cel:
    n = int(rule.min_termination_grace_period_seconds or 0)
    tgp = "variables.pod.?terminationGracePeriodSeconds.orValue(30)"
    return Cel(
        f"{tgp} >= {n}",
        f"termination-grace-period: terminationGracePeriodSeconds must be at least {n}",
        f"'termination-grace-period: terminationGracePeriodSeconds is ' + string({tgp}) + ', below {n}'",
    )


@register(
    "rolling-update",
    category="rollout",
    severity=Severity.WARNING,
    title="RollingUpdate strategy",
    why="Recreate stops every pod before starting the new version: each deploy is an outage.",
    remediation="Use `spec.strategy.type: RollingUpdate` (the default) with `rollingUpdate.maxUnavailable` "
    "within the policy limit.",
    group="rolling_update",
    enabled=lambda rule: rule.required or rule.max_unavailable is not None,
    reads={"Deployment": ("spec.strategy", "spec.replicas"), "HorizontalPodAutoscaler": ("spec.minReplicas",)},
    cel=_rolling_update_cel,
)
def rolling_update(ctx: Context, rule: RollingUpdateRule) -> Outcome:
    """strategy.type RollingUpdate (default) and maxUnavailable within the limit, both resolved
    against the effective replicas (HPA minReplicas or spec.replicas) and rounded down."""
    strategy = ctx.target.spec.get("strategy") or {}
    kind = strategy.get("type", "RollingUpdate")
    if kind != "RollingUpdate":
        if rule.required:
            return failed([f"strategy is {kind}; set spec.strategy.type: RollingUpdate"])
        return passed(f"strategy is {kind} (RollingUpdate not required)")
    if rule.max_unavailable is None:
        return passed("strategy is RollingUpdate")
    replicas = ctx.replicas[0]
    actual = resolved_max_unavailable(ctx, replicas)
    limit = scaled_value(rule.max_unavailable, replicas, round_up=False)
    if actual is None:
        return failed(
            ["spec.strategy.rollingUpdate has an invalid maxUnavailable or maxSurge; use an int or 'N%'"]
        )
    if limit is not None and actual > limit:
        raw = (strategy.get("rollingUpdate") or {}).get("maxUnavailable", "25% (default)")
        return failed(
            [
                f"rollingUpdate.maxUnavailable {raw} lets {actual} of {replicas} pods go down at "
                "once, more than "
                f"the allowed {rule.max_unavailable}; set "
                f"spec.strategy.rollingUpdate.maxUnavailable: {rule.max_unavailable}"
            ]
        )
    return passed(f"RollingUpdate takes down at most {actual} of {replicas} pods")


@register(
    "termination-grace-period",
    category="rollout",
    severity=Severity.WARNING,
    title="Termination grace period",
    why="Too short a grace period kills in-flight requests and skips cleanup when a pod is stopped.",
    remediation="Set `spec.template.spec.terminationGracePeriodSeconds` to at least the policy minimum and "
    "handle SIGTERM in the app.",
    group="graceful_shutdown",
    enabled=lambda rule: rule.min_termination_grace_period_seconds is not None,
    reads={"Deployment": ("spec.template.spec.terminationGracePeriodSeconds",)},
    cel=_grace_period_cel,
)
def termination_grace_period(ctx: Context, rule: GracefulShutdownRule) -> Outcome:
    """terminationGracePeriodSeconds (default 30) >= the minimum."""
    need = rule.min_termination_grace_period_seconds or 0
    raw = ctx.target.pod_spec.get("terminationGracePeriodSeconds")
    value = DEFAULT_GRACE_SECONDS if raw is None else int(raw)
    shown = f"{value}s" + (" (default)" if raw is None else "")
    if value >= need:
        return passed(f"terminationGracePeriodSeconds is {shown}")
    return failed(
        [
            f"terminationGracePeriodSeconds is {shown}, below {need}s; set "
            f"spec.template.spec.terminationGracePeriodSeconds: {need}"
        ]
    )


@register(
    "pre-stop-hook",
    category="rollout",
    severity=Severity.INFO,
    title="preStop hook",
    why="Endpoints are removed asynchronously; without a short preStop pause the pod gets SIGTERM while "
    "load balancers still send it traffic.",
    remediation="Add `lifecycle.preStop` (e.g. `sleep: {seconds: 5}` or an exec sleep) to every container.",
    group="graceful_shutdown",
    enabled=lambda rule: rule.require_pre_stop_hook,
    reads={"Deployment": ("spec.template.spec.containers[].lifecycle",)},
    cel=each_container(APP_CONTAINERS, "c.?lifecycle.?preStop.hasValue()", "have a lifecycle.preStop hook"),
)
def pre_stop_hook(ctx: Context, rule: GracefulShutdownRule) -> Outcome:
    """Every app container has lifecycle.preStop."""
    problems = [
        f"{c.label} has no preStop hook; add {c.path}.lifecycle.preStop (e.g. sleep: {{seconds: 5}})"
        for c in ctx.target.containers
        if not (c.get("lifecycle") or {}).get("preStop")
    ]
    return failed(problems) if problems else passed("every container has a preStop hook")
