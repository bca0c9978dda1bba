"""Spreading replicas across nodes: pod anti-affinity or a topology spread constraint."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from readiness_operator.checks.base import Cel, Context, Outcome, failed, passed, register
from readiness_operator.checks.cel import dyn_selector, lit
from readiness_operator.selectors import label_selector_matches
from readiness_operator.severity import Severity

if TYPE_CHECKING:
    from readiness_operator.model.rules import AntiAffinityRule


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
