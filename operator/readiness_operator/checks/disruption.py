"""PodDisruptionBudgets: voluntary disruptions (drains, upgrades) must leave enough pods serving.

``minAvailable``/``maxUnavailable`` percentages are resolved like the disruption controller does
(GetScaledValueFromIntOrPercent with roundUp=true for both) against the effective replicas. A PDB
with neither field set protects nothing (desired healthy 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from readiness_operator.checks.base import Context, Outcome, failed, passed, register
from readiness_operator.checks.relations import scaled_value
from readiness_operator.severity import Severity

if TYPE_CHECKING:
    from readiness_operator.model.rules import PodDisruptionBudgetRule


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", "?"))


def guaranteed_available(pdb: Mapping[str, Any], replicas: int) -> int | None:
    """Pods the PDB keeps available at ``replicas`` (None when its values are invalid)."""
    spec = pdb.get("spec") or {}
    if spec.get("maxUnavailable") is not None:
        unavailable = scaled_value(spec["maxUnavailable"], replicas, round_up=True)
        return None if unavailable is None else max(replicas - unavailable, 0)
    if spec.get("minAvailable") is not None:
        available = scaled_value(spec["minAvailable"], replicas, round_up=True)
        return None if available is None else min(available, replicas)
    return 0


@register(
    "pdb-present",
    category="disruption",
    severity=Severity.CRITICAL,
    title="PodDisruptionBudget present",
    why="Without a PDB a node drain or cluster upgrade may evict every replica at once.",
    remediation="Create a `policy/v1` PodDisruptionBudget in the Deployment's namespace whose "
    "`spec.selector` "
    "matches the pod template labels.",
    group="pod_disruption_budget",
    enabled=lambda rule: rule.required,
    reads={"PodDisruptionBudget": ("spec.selector",)},
    cel_unavailable="live: reads the namespace's PodDisruptionBudgets",
)
def pdb_present(ctx: Context, rule: PodDisruptionBudgetRule) -> Outcome:
    """A PDB in the same namespace selects the pod template labels."""
    if ctx.pdbs:
        return passed(f"PodDisruptionBudget '{_name(ctx.pdbs[0])}' selects the pods")
    labels = ", ".join(f"{k}: {v}" for k, v in sorted(ctx.target.pod_labels.items())) or "(none)"
    return failed(
        [
            f"no PodDisruptionBudget in namespace '{ctx.target.namespace}' selects the pods; create one with "
            f"spec.selector.matchLabels from the pod template labels ({labels})"
        ]
    )


@register(
    "pdb-min-available",
    category="disruption",
    severity=Severity.WARNING,
    title="PodDisruptionBudget keeps enough pods",
    why="A PDB that allows all but one pod (or all pods) to go at once does not protect capacity.",
    remediation="Set the PDB's `minAvailable` to at least the policy minimum (or `maxUnavailable` so that "
    "replicas - maxUnavailable reaches it), and run enough replicas for it.",
    group="pod_disruption_budget",
    enabled=lambda rule: rule.min_available is not None,
    reads={
        "Deployment": ("spec.replicas",),
        "PodDisruptionBudget": ("spec.minAvailable", "spec.maxUnavailable"),
        "HorizontalPodAutoscaler": ("spec.minReplicas",),
    },
    cel_unavailable="live: reads the namespace's PodDisruptionBudgets",
    judges_scale_down=True,
)
def pdb_min_available(ctx: Context, rule: PodDisruptionBudgetRule) -> Outcome:
    """Some selecting PDB keeps >= rule.min_available pods at the effective replicas."""
    need = rule.min_available or 0
    replicas, source = ctx.replicas
    if not ctx.pdbs:
        return failed([f"no PodDisruptionBudget selects the pods; create one with minAvailable: {need}"])
    problems = []
    for pdb in ctx.pdbs:
        kept = guaranteed_available(pdb, replicas)
        if kept is None:
            problems.append(f"PodDisruptionBudget '{_name(pdb)}' has an invalid minAvailable/maxUnavailable")
            continue
        if kept >= need:
            return passed(f"PodDisruptionBudget '{_name(pdb)}' keeps {kept} of {replicas} pods available")
        hint = f"set minAvailable: {need}" + (
            f" and raise {source} above {replicas}" if replicas < need else ""
        )
        problems.append(
            f"PodDisruptionBudget '{_name(pdb)}' keeps only {kept} of {replicas} pods available "
            f"(policy requires {need}); {hint}"
        )
    return failed(problems)
