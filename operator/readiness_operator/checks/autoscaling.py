"""HorizontalPodAutoscalers: the Deployment scales with load, within sane bounds.

Reads autoscaling/v2 (``metrics[].resource.target.averageUtilization``) and autoscaling/v1
(``targetCPUUtilizationPercentage``). When the policy does not require an HPA and none exists, the
bound and metric checks pass (there is nothing to misconfigure).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from readiness_operator.checks.base import Context, Outcome, failed, passed, register
from readiness_operator.severity import Severity

if TYPE_CHECKING:
    from readiness_operator.model.rules import HorizontalPodAutoscalerRule


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", "?"))


def resource_targets(hpa: Mapping[str, Any]) -> dict[str, int | None]:
    """Resource metric name -> averageUtilization target (None for value-based targets)."""
    spec = hpa.get("spec") or {}
    out: dict[str, int | None] = {}
    for metric in spec.get("metrics") or ():
        if metric.get("type") == "Resource":
            res = metric.get("resource") or {}
            target = res.get("target") or {}
            util = target.get("averageUtilization")
            out[str(res.get("name"))] = int(util) if util is not None else None
        elif metric.get("type") == "ContainerResource":
            res = metric.get("containerResource") or {}
            util = (res.get("target") or {}).get("averageUtilization")
            out.setdefault(str(res.get("name")), int(util) if util is not None else None)
    if spec.get("targetCPUUtilizationPercentage") is not None:
        out["cpu"] = int(spec["targetCPUUtilizationPercentage"])
    return out


def _missing_hpa(ctx: Context, rule: HorizontalPodAutoscalerRule) -> Outcome:
    if rule.required:
        return failed(
            [
                f"no HorizontalPodAutoscaler in namespace '{ctx.target.namespace}' targets Deployment "
                f"'{ctx.target.name}'; create one with scaleTargetRef "
                f"{{apiVersion: apps/v1, kind: Deployment, "
                f"name: {ctx.target.name}}}"
            ]
        )
    return passed("no HorizontalPodAutoscaler targets the Deployment and none is required")


@register(
    "hpa-present",
    category="autoscaling",
    severity=Severity.WARNING,
    title="HorizontalPodAutoscaler present",
    why="A fixed replica count is either wasteful at night or too small at peak.",
    remediation="Create an `autoscaling/v2` HorizontalPodAutoscaler whose `scaleTargetRef` is the "
    "Deployment.",
    group="horizontal_pod_autoscaler",
    enabled=lambda rule: rule.required,
    reads={"HorizontalPodAutoscaler": ("spec.scaleTargetRef",)},
    cel_unavailable="live: reads the namespace's HorizontalPodAutoscalers",
)
def hpa_present(ctx: Context, rule: HorizontalPodAutoscalerRule) -> Outcome:
    """An HPA in the namespace targets the Deployment."""
    if ctx.hpa is None:
        return _missing_hpa(ctx, rule)
    return passed(f"HorizontalPodAutoscaler '{_name(ctx.hpa)}' targets the Deployment")


@register(
    "hpa-min-replicas",
    category="autoscaling",
    severity=Severity.WARNING,
    title="HPA minimum replicas",
    why="An HPA that may scale down to one replica reintroduces a single point of failure at quiet times.",
    remediation="Raise the HPA's `spec.minReplicas` to the policy minimum.",
    group="horizontal_pod_autoscaler",
    enabled=lambda rule: rule.min_replicas is not None,
    reads={"HorizontalPodAutoscaler": ("spec.minReplicas",)},
    cel_unavailable="live: reads the namespace's HorizontalPodAutoscalers",
)
def hpa_min_replicas(ctx: Context, rule: HorizontalPodAutoscalerRule) -> Outcome:
    """HPA minReplicas (default 1) >= rule.min_replicas."""
    if ctx.hpa is None:
        return _missing_hpa(ctx, rule)
    need = rule.min_replicas or 1
    value = int((ctx.hpa.get("spec") or {}).get("minReplicas") or 1)
    if value >= need:
        return passed(f"HPA '{_name(ctx.hpa)}' minReplicas is {value} (minimum {need})")
    return failed(
        [f"HPA '{_name(ctx.hpa)}' minReplicas is {value}, below {need}; set spec.minReplicas: {need}"]
    )


@register(
    "hpa-max-replicas",
    category="autoscaling",
    severity=Severity.INFO,
    title="HPA room to scale out",
    why="An HPA whose maxReplicas is at (or barely above) its minimum cannot absorb a traffic peak.",
    remediation="Raise the HPA's `spec.maxReplicas` to at least the policy value, above `minReplicas`.",
    group="horizontal_pod_autoscaler",
    enabled=lambda rule: rule.max_replicas is not None,
    reads={"HorizontalPodAutoscaler": ("spec.minReplicas", "spec.maxReplicas")},
    cel_unavailable="live: reads the namespace's HorizontalPodAutoscalers",
)
def hpa_max_replicas(ctx: Context, rule: HorizontalPodAutoscalerRule) -> Outcome:
    """HPA maxReplicas >= rule.max_replicas and > its minReplicas."""
    if ctx.hpa is None:
        return _missing_hpa(ctx, rule)
    spec = ctx.hpa.get("spec") or {}
    need = rule.max_replicas or 1
    max_r = int(spec.get("maxReplicas") or 0)
    min_r = int(spec.get("minReplicas") or 1)
    problems = []
    if max_r < need:
        problems.append(
            f"HPA '{_name(ctx.hpa)}' maxReplicas is {max_r}, below {need}; set spec.maxReplicas: {need}"
        )
    elif max_r <= min_r and need > 1:
        problems.append(
            f"HPA '{_name(ctx.hpa)}' maxReplicas ({max_r}) is not above minReplicas ({min_r}); it "
            "cannot scale out"
        )
    return failed(problems) if problems else passed(f"HPA '{_name(ctx.hpa)}' maxReplicas is {max_r}")


@register(
    "hpa-metrics",
    category="autoscaling",
    severity=Severity.WARNING,
    title="HPA scales on the required metrics",
    why="An HPA that ignores memory (or CPU) lets the pods saturate on that resource without scaling out.",
    remediation="Add `type: Resource` metrics for each required resource to the HPA's `spec.metrics`, with "
    "`target.type: Utilization` and `averageUtilization` at or below the policy's target.",
    group="horizontal_pod_autoscaler",
    enabled=lambda rule: bool(rule.metrics) or rule.target_utilization is not None,
    reads={"HorizontalPodAutoscaler": ("spec.metrics", "spec.targetCPUUtilizationPercentage")},
    cel_unavailable="live: reads the namespace's HorizontalPodAutoscalers",
)
def hpa_metrics(ctx: Context, rule: HorizontalPodAutoscalerRule) -> Outcome:
    """Every required resource metric is present, with utilisation targets within the policy's maxima."""
    if ctx.hpa is None:
        return _missing_hpa(ctx, rule)
    targets = resource_targets(ctx.hpa)
    name = _name(ctx.hpa)
    problems = []
    limits: dict[str, int | None] = {"cpu": None, "memory": None}
    if rule.target_utilization is not None:
        limits = {"cpu": rule.target_utilization.cpu, "memory": rule.target_utilization.memory}
    for resource in ("cpu", "memory"):
        required = resource in rule.metrics
        limit = limits[resource]
        if resource not in targets:
            if required:
                example = f"averageUtilization: {limit or 80}"
                problems.append(
                    f"HPA '{name}' does not scale on {resource}; add a spec.metrics entry "
                    f"{{type: Resource, resource: {{name: {resource}, "
                    f"target: {{type: Utilization, {example}}}}}}}"
                )
            continue
        value = targets[resource]
        if limit is not None and (value is None or value > limit):
            shown = "a non-utilization target" if value is None else f"averageUtilization {value}%"
            problems.append(
                f"HPA '{name}' scales on {resource} at {shown}; set averageUtilization to at most {limit}"
            )
    if problems:
        return failed(problems)
    return passed(f"HPA '{name}' scales on {', '.join(sorted(targets)) or 'its metrics'}")
