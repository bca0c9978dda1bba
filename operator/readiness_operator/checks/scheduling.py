"""Spreading replicas across nodes: pod anti-affinity or a topology spread constraint."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from readiness_operator.checks.base import Cel, Context, Outcome, failed, passed, register
from readiness_operator.checks.cel import dyn_selector, lit
from readiness_operator.selectors import label_selector_matches
from readiness_operator.severity import Severity

if TYPE_CHECKING:
    from readiness_operator.model.rules import AntiAffinityRule, SchedulingRule


def _selects_own_pods(term: Mapping[str, Any], pod_labels: Mapping[str, str]) -> bool:
    """A term spreads *these* pods when its selector matches the template labels (or it uses
    matchLabelKeys); a null labelSelector selects no pods."""
    if term.get("matchLabelKeys"):
        return True
    selector = term.get("labelSelector")
    return selector is not None and label_selector_matches(selector, pod_labels)


def _anti_affinity_terms(pod_spec: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    anti = (pod_spec.get("affinity") or {}).get("podAntiAffinity") or {}
    yield from anti.get("requiredDuringSchedulingIgnoredDuringExecution") or ()
    for weighted in anti.get("preferredDuringSchedulingIgnoredDuringExecution") or ():
        yield weighted.get("podAffinityTerm") or {}


def _cel(check_id: str, rule: AntiAffinityRule) -> Cel:
    key = lit(rule.topology_key)
    selects = dyn_selector("t.labelSelector", "variables.podLabels")
    own = f"(t.?matchLabelKeys.orValue([]).size() > 0 || (has(t.labelSelector) && {selects}))"
    anti = "variables.pod.?affinity.?podAntiAffinity"
    required = f"{anti}.?requiredDuringSchedulingIgnoredDuringExecution.orValue([]).exists(t, t.topologyKey == {key} && {own})"
    preferred = (
        f"{anti}.?preferredDuringSchedulingIgnoredDuringExecution.orValue([])"
        f".map(w, w.podAffinityTerm).exists(t, t.topologyKey == {key} && {own})"
    )
    spread = f"variables.pod.?topologySpreadConstraints.orValue([]).exists(t, t.topologyKey == {key} && {own})"
    msg = (
        f"anti-affinity: spread the pods over {rule.topology_key} with a podAntiAffinity term or a "
        "topologySpreadConstraints entry whose labelSelector matches the pod labels"
    )
    return Cel(f"{required} || {preferred} || {spread}", msg)


@register(
    "anti-affinity",
    category="scheduling",
    severity=Severity.WARNING,
    title="Replicas spread across nodes",
    why="Replicas scheduled onto the same node all go down together when that node fails or is drained.",
    remediation="Add `affinity.podAntiAffinity` (required or preferred) with `topologyKey: "
    "kubernetes.io/hostname` "
    "and a labelSelector matching the pod labels, or a `topologySpreadConstraints` entry over the same key.",
    group="anti_affinity",
    enabled=lambda rule: rule.required,
    reads={
        "Deployment": (
            "spec.template.metadata.labels",
            "spec.template.spec.affinity",
            "spec.template.spec.topologySpreadConstraints",
        )
    },
    cel=_cel,
)
def anti_affinity(ctx: Context, rule: AntiAffinityRule) -> Outcome:
    """A pod anti-affinity term or spread constraint over the topology key selects the pods themselves."""
    key = rule.topology_key
    labels = ctx.target.pod_labels
    for term in _anti_affinity_terms(ctx.target.pod_spec):
        if term.get("topologyKey") == key and _selects_own_pods(term, labels):
            return passed(f"pod anti-affinity spreads the pods over {key}")
    for constraint in ctx.target.pod_spec.get("topologySpreadConstraints") or ():
        if constraint.get("topologyKey") == key and _selects_own_pods(constraint, labels):
            return passed(f"a topology spread constraint spreads the pods over {key}")
    shown = ", ".join(f"{k}: {v}" for k, v in sorted(labels.items())) or "the pod labels"
    return failed(
        [
            f"nothing spreads the pods over {key}; add spec.template.spec.affinity.podAntiAffinity."
            f"preferredDuringSchedulingIgnoredDuringExecution with topologyKey: {key} and labelSelector "
            f"matchLabels {{{shown}}}, or a topologySpreadConstraints entry with that key"
        ]
    )


def _priority_class_cel(check_id: str, rule: SchedulingRule) -> Cel:
    name = "variables.pod.?priorityClassName.orValue('')"
    conds, words = [], []
    if rule.require_priority_class:
        conds.append(f"{name} != ''")
        words.append("set spec.template.spec.priorityClassName")
    if rule.allowed_priority_classes:
        conds.append(f"({name} == '' || {name} in {lit(list(rule.allowed_priority_classes))})")
        words.append(f"use a priorityClassName from {', '.join(rule.allowed_priority_classes)}")
    return Cel(
        " && ".join(conds),
        f"{check_id}: {' and '.join(words)}",
        f"{lit(check_id + ': priorityClassName is ')} + ({name} == '' ? 'unset' : {name}) + "
        f"{lit('; ' + ' and '.join(words))}",
    )


@register(
    "priority-class",
    category="scheduling",
    severity=Severity.WARNING,
    title="Priority class",
    why="Without a priority class a production pod has the same priority as batch jobs: under pressure the "
    "scheduler may preempt it, or fail to place it, in their favour.",
    remediation="Set `spec.template.spec.priorityClassName` to one of the cluster's PriorityClasses the "
    "policy allows.",
    group="scheduling",
    enabled=lambda rule: rule.priority_class_active,
    reads={"Deployment": ("spec.template.spec.priorityClassName",)},
    cel=_priority_class_cel,
)
def priority_class(ctx: Context, rule: SchedulingRule) -> Outcome:
    """priorityClassName is set (when required) and one of the allowed names (when listed)."""
    name = str(ctx.target.pod_spec.get("priorityClassName") or "")
    allowed = list(rule.allowed_priority_classes)
    if not name:
        if rule.require_priority_class:
            example = allowed[0] if allowed else "production-high"
            return failed([f"the pod template sets no priorityClassName; set spec.template.spec.priorityClassName "
                           f"(e.g. {example})"])
        return passed("no priorityClassName (none required)")
    if allowed and name not in allowed:
        return failed([f"priorityClassName '{name}' is not allowed; set spec.template.spec.priorityClassName to "
                       f"one of {', '.join(allowed)}"])
    return passed(f"priorityClassName is '{name}'")


def _zone_spread_cel(check_id: str, rule: SchedulingRule) -> Cel:
    key = lit(rule.zone_topology_key)
    selects = dyn_selector("t.labelSelector", "variables.podLabels")
    own = f"(t.?matchLabelKeys.orValue([]).size() > 0 || (has(t.labelSelector) && {selects}))"
    skew = "true" if rule.max_skew is None else f"t.maxSkew <= {int(rule.max_skew)}"
    expr = f"variables.pod.?topologySpreadConstraints.orValue([]).exists(t, t.topologyKey == {key} && {own} && {skew})"
    within = "" if rule.max_skew is None else f" and maxSkew at most {rule.max_skew}"
    return Cel(
        expr,
        f"{check_id}: add a topologySpreadConstraints entry with topologyKey {rule.zone_topology_key}{within} "
        "whose labelSelector matches the pod labels",
    )


@register(
    "topology-spread",
    category="scheduling",
    severity=Severity.WARNING,
    title="Replicas spread across zones",
    why="Replicas that all land in one zone go down together when that zone fails; node anti-affinity "
    "alone does not prevent it.",
    remediation="Add a `spec.template.spec.topologySpreadConstraints` entry with `topologyKey: "
    "topology.kubernetes.io/zone`, a `labelSelector` matching the pod labels (or `matchLabelKeys: "
    "[pod-template-hash]`) and a small `maxSkew`.",
    group="scheduling",
    enabled=lambda rule: rule.zone_spread,
    reads={
        "Deployment": ("spec.template.metadata.labels", "spec.template.spec.topologySpreadConstraints")
    },
    cel=_zone_spread_cel,
)
def topology_spread(ctx: Context, rule: SchedulingRule) -> Outcome:
    """A spread constraint over the zone key selects the pods themselves (within maxSkew)."""
    key = rule.zone_topology_key
    labels = ctx.target.pod_labels
    skewed = []
    for constraint in ctx.target.pod_spec.get("topologySpreadConstraints") or ():
        if constraint.get("topologyKey") != key or not _selects_own_pods(constraint, labels):
            continue
        skew = constraint.get("maxSkew")
        if rule.max_skew is not None and (not isinstance(skew, int) or skew > rule.max_skew):
            skewed.append(skew)
            continue
        return passed(f"a topology spread constraint spreads the pods over {key}")
    if skewed:
        return failed([f"the spread constraint over {key} allows maxSkew {skewed[0]}; set its maxSkew to at most "
                       f"{rule.max_skew}"])
    shown = ", ".join(f"{k}: {v}" for k, v in sorted(labels.items())) or "the pod labels"
    return failed([f"nothing spreads the pods over {key}; add a spec.template.spec.topologySpreadConstraints entry "
                   f"with topologyKey: {key}, maxSkew: 1 and labelSelector matchLabels {{{shown}}}"])
