"""Live checks: the living cluster's state of the Deployment, its HPA and its pods.

Judged only where the World is the cluster's (``World.live``: the operator's passes); Unknown in
the CLI and at admission. So they never deny a request, even in Enforce: a crash-looping
Deployment must stay fixable (its fix is a rollout the webhook judges on the spec alone). Their
failures show in the policy status, Events and PolicyReports.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from readiness_operator.checks.base import Context, Outcome, failed, passed, register, unknown
from readiness_operator.severity import Severity

if TYPE_CHECKING:
    from readiness_operator.model.rules import LiveStateRule

#: The category of the checks judged from the cluster's state only (never at admission).
LIVE_CATEGORY = "live"
_OFFLINE = "judged only from the living cluster (the operator), not in the CLI or at admission"
_MAX_PROBLEMS = 5  # per finding: enough to act on, small in status and reports


def _conditions(obj: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    conditions = (obj.get("status") or {}).get("conditions") or ()
    return {str(c.get("type")): c for c in conditions if isinstance(c, Mapping)}


def _said(condition: Mapping[str, Any]) -> str:
    reason, message = condition.get("reason"), condition.get("message")
    return ": ".join(str(x) for x in (reason, message) if x) or "no reason given"


@register(
    "rollout-healthy",
    category=LIVE_CATEGORY,
    severity=Severity.CRITICAL,
    title="Rollout healthy",
    why="A Deployment that is not Available, or whose rollout exceeded its progress deadline or stalled "
    "before all replicas run the current template, serves less than it should or runs two versions.",
    remediation="Make the new pods become ready (`kubectl rollout status`, pod events, `kubectl logs`), "
    "resume a paused rollout, or roll back with `kubectl rollout undo`.",
    group="live_state",
    enabled=lambda rule: rule.rollout_healthy,
    reads={
        "Deployment": (
            "metadata.generation",
            "spec.replicas",
            "status.observedGeneration",
            "status.conditions",
            "status.replicas",
            "status.updatedReplicas",
            "status.availableReplicas",
        )
    },
    cel_unavailable="live: reads the Deployment's status",
)
def rollout_healthy(ctx: Context, rule: LiveStateRule) -> Outcome:
    """Available, no ProgressDeadlineExceeded, updated replicas caught up (unless still progressing)."""
    if not ctx.world.live:
        return unknown(_OFFLINE)
    meta, status = ctx.deployment.get("metadata") or {}, ctx.deployment.get("status") or {}
    generation, observed = meta.get("generation"), status.get("observedGeneration")
    if observed is None or (generation is not None and observed < generation):
        return unknown("the Deployment controller has not reported on the current generation yet")
    conditions = _conditions(ctx.deployment)
    raw = ctx.target.spec.get("replicas")
    desired = 1 if raw is None else int(raw)
    problems = []
    progressing = conditions.get("Progressing") or {}
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        problems.append(f"the rollout exceeded its progress deadline ({_said(progressing)}); restore ready pods "
                        "(see kubectl rollout status and the pods' events) or roll back with kubectl rollout undo")
    available = conditions.get("Available") or {}
    if desired > 0 and available.get("status") != "True":
        problems.append(f"the Deployment is not Available ({_said(available)}, {status.get('availableReplicas', 0)} "
                        f"of {desired} available); restore ready pods")
    updated = int(status.get("updatedReplicas") or 0)
    current = int(status.get("replicas") or 0)
    if (updated < desired or current > updated) and progressing.get("status") != "True" and not problems:
        problems.append(f"only {updated} of {desired} replicas run the current template ({current} pods) and the "
                        f"rollout is not progressing ({_said(progressing)}); restore it with kubectl rollout resume "
                        "or roll back")
    if problems:
        return failed(problems)
    if updated < desired or current > updated:
        return passed(f"rollout in progress: {updated} of {desired} replicas updated")
    return passed(f"Available, {updated} of {desired} replicas updated")


#: The HPA conditions `hpa-active` judges, with the hint it gives for each one that is not True.
_HPA_CONDITIONS = (
    ("ScalingActive", "make its metrics available and set the requests it divides by"),
    ("AbleToScale", "fix its scaleTargetRef or the scale subresource"),
)


def hpa_conditions_read(conditions: Any) -> Any:
    """What `hpa-active` reads of an HPA's ``status.conditions``: of the two conditions it judges, a
    True one's type and status (the reason and message are quoted only when one is not True); of
    the others, their type. The operator keeps HPAs trimmed to this (kube/objects.py): ScalingLimited, reasons such
    as ScaleDownStabilized and transition times move with every HPA sync, and each move woke a pass
    (issue 16: 11-17 HPA changes a second at 2,000 Deployments). Odd shapes are kept as they are."""
    if not isinstance(conditions, list):
        return conditions
    wanted = {kind for kind, _ in _HPA_CONDITIONS}
    out = []
    for c in conditions:
        if not isinstance(c, Mapping):
            out.append(c)
        else:  # of another type only that it is there: an HPA with none has "not reported yet"
            keep = (("type",) if c.get("type") not in wanted else ("type", "status") if c.get("status") == "True"
                    else ("type", "status", "reason", "message"))
            out.append({k: c[k] for k in keep if k in c})
    return out


@register(
    "hpa-active",
    category=LIVE_CATEGORY,
    severity=Severity.WARNING,
    title="HPA active",
    why="An HPA whose ScalingActive or AbleToScale condition is False (no metrics, missing requests, a "
    "broken scale target) silently stops scaling: the Deployment stays at whatever count it had.",
    remediation="Read the HPA's conditions (`kubectl describe hpa`): make its metrics available (metrics-server "
    "or an adapter), set the requests it divides by, or fix its scaleTargetRef.",
    group="live_state",
    enabled=lambda rule: rule.hpa_active,
    reads={"HorizontalPodAutoscaler": ("status.conditions",)},
    cel_unavailable="live: reads the HorizontalPodAutoscaler's status",
)
def hpa_active(ctx: Context, rule: LiveStateRule) -> Outcome:
    """The HPA targeting the Deployment reports ScalingActive and AbleToScale True."""
    if ctx.hpa is None:
        return passed("no HorizontalPodAutoscaler targets the Deployment")
    if not ctx.world.live:
        return unknown(_OFFLINE)
    name = str((ctx.hpa.get("metadata") or {}).get("name", "?"))
    conditions = _conditions(ctx.hpa)
    if not conditions:
        return unknown(f"HPA '{name}' has no conditions yet (the HPA controller has not reported)")
    problems = [
        f"HPA '{name}' {kind} is {conditions.get(kind, {}).get('status', 'missing')} "
        f"({_said(conditions.get(kind, {}))}); restore it: {hint}"
        for kind, hint in _HPA_CONDITIONS
        if conditions.get(kind, {}).get("status") != "True"
    ]
    return failed(problems) if problems else passed(f"HPA '{name}' is active and able to scale")


def _statuses(pod: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Container and init container statuses (ephemeral debug containers are not the workload)."""
    status = pod.get("status") or {}
    for key in ("initContainerStatuses", "containerStatuses"):
        yield from (s for s in status.get(key) or () if isinstance(s, Mapping))


@register(
    "pods-stable",
    category=LIVE_CATEGORY,
    severity=Severity.CRITICAL,
    title="Pods stable",
    why="Crash-looping or OOM-killed containers, or containers that keep restarting, serve intermittently "
    "and hide an outage behind a Running phase.",
    remediation="Find the cause (`kubectl logs --previous`, `kubectl describe pod`): fix the crash, raise a "
    "memory limit that OOM-kills, or loosen a liveness probe that kills a healthy container; then roll the "
    "pods.",
    group="live_state",
    enabled=lambda rule: rule.pods_stable,
    reads={
        "Pod": (
            "metadata.deletionTimestamp",
            "status.containerStatuses[].name",
            "status.containerStatuses[].restartCount",
            "status.containerStatuses[].state.waiting.reason",
            "status.containerStatuses[].lastState.terminated.reason",
            "status.initContainerStatuses[].name",
            "status.initContainerStatuses[].restartCount",
            "status.initContainerStatuses[].state.waiting.reason",
            "status.initContainerStatuses[].lastState.terminated.reason",
        )
    },
    cel_unavailable="live: reads the Deployment's pods",
)
def pods_stable(ctx: Context, rule: LiveStateRule) -> Outcome:
    """No container of the Deployment's pods is in CrashLoopBackOff or last OOMKilled, and none restarted
    more than maxRestarts times."""
    if not ctx.world.live:
        return unknown(_OFFLINE)
    problems = []
    pods = [p for p in ctx.world.pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    for pod in pods:
        pod_name = str((pod.get("metadata") or {}).get("name", "?"))
        for s in _statuses(pod):
            where = f"pod '{pod_name}' container '{s.get('name', '?')}'"
            waiting = str(((s.get("state") or {}).get("waiting") or {}).get("reason") or "")
            last = str(((s.get("lastState") or {}).get("terminated") or {}).get("reason") or "")
            restarts = int(s.get("restartCount") or 0)
            if waiting == "CrashLoopBackOff":
                problems.append(f"{where} is in CrashLoopBackOff (last exit: {last or 'unknown'}); restore it: fix "
                                "the crash (kubectl logs --previous) and roll the pods")
            elif last == "OOMKilled":
                problems.append(f"{where} was OOMKilled; raise its resources.limits.memory or fix the leak")
            elif restarts > rule.max_restarts:
                problems.append(f"{where} restarted {restarts} times (at most {rule.max_restarts}); restore it: "
                                "find why it exits (kubectl logs --previous)")
    if problems:
        more = len(problems) - _MAX_PROBLEMS
        return failed(problems[:_MAX_PROBLEMS] + ([f"and {more} more (same fix)"] if more > 0 else []))
    return passed(f"{len(pods)} pod(s) stable")
