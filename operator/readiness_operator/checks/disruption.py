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


def _blocks_at(pdb: Mapping[str, Any], replicas: int) -> bool | None:
    """The PDB permits no voluntary disruption with ``replicas`` healthy pods (None: invalid values)."""
    kept = guaranteed_available(pdb, replicas)
    if kept is None:
        return None
    return replicas > 0 and kept >= replicas


def _spec_words(pdb: Mapping[str, Any]) -> str:
    spec = pdb.get("spec") or {}
    if spec.get("maxUnavailable") is not None:
        return f"maxUnavailable: {spec['maxUnavailable']}"
    return f"minAvailable: {spec.get('minAvailable')}"


@register(
    "pdb-allows-disruption",
    category="disruption",
    severity=Severity.WARNING,
    title="PodDisruptionBudget allows a drain",
    why="A PDB that permits no voluntary disruption (maxUnavailable 0, minAvailable 100% or >= the replicas) "
    "blocks every node drain and cluster upgrade until someone deletes it by hand.",
    remediation="Let the PDB lose at least one pod: `maxUnavailable: 1`, or `minAvailable` below the "
    "replicas (raise `spec.replicas` if needed), and keep the pods healthy so `status.disruptionsAllowed` "
    "stays above 0.",
    group="pod_disruption_budget",
    enabled=lambda rule: rule.allows_disruption,
    reads={
        "Deployment": ("spec.replicas",),
        "PodDisruptionBudget": (
            "spec.minAvailable",
            "spec.maxUnavailable",
            "status.disruptionsAllowed",
            "status.currentHealthy",
            "status.desiredHealthy",
            "status.expectedPods",
        ),
    },
    cel_unavailable="live: reads the namespace's PodDisruptionBudgets and their status",
    judges_scale_down=True,
)
def pdb_allows_disruption(ctx: Context, rule: PodDisruptionBudgetRule) -> Outcome:
    """Every selecting PDB permits a disruption at spec.replicas and, in the cluster, its status
    says disruptionsAllowed > 0 (the disruption controller's own verdict, health included)."""
    raw = ctx.target.spec.get("replicas")
    replicas = 1 if raw is None else int(raw)
    if not ctx.pdbs:
        return passed("no PodDisruptionBudget restricts disruptions of the pods")
    problems = []
    for pdb in ctx.pdbs:
        blocks = _blocks_at(pdb, replicas)
        if blocks is None:
            problems.append(f"PodDisruptionBudget '{_name(pdb)}' has an invalid minAvailable/maxUnavailable; "
                            "set maxUnavailable: 1")
            continue
        if blocks:
            problems.append(
                f"PodDisruptionBudget '{_name(pdb)}' ({_spec_words(pdb)}) permits no disruption of "
                f"{replicas} replicas, so every drain blocks; set maxUnavailable: 1 or a minAvailable below "
                f"{replicas}"
            )
            continue
        status = pdb.get("status") or {}
        if ctx.world.live and status.get("disruptionsAllowed") == 0 and (status.get("expectedPods") or 0) > 0:
            problems.append(
                f"PodDisruptionBudget '{_name(pdb)}' allows 0 disruptions now ({status.get('currentHealthy', 0)} "
                f"healthy, {status.get('desiredHealthy', 0)} required); restore the unhealthy pods or raise "
                "spec.replicas so a drain can proceed"
            )
    if problems:
        return failed(problems)
    return passed(f"every PodDisruptionBudget selecting the pods permits a disruption of {replicas} replicas")


@register(
    "pdb-hpa-min-replicas",
    category="disruption",
    severity=Severity.WARNING,
    title="PodDisruptionBudget below the HPA's minimum",
    why="When the HPA scales in to its minReplicas, a PDB that keeps that many pods (or more) available "
    "permits no disruption: every drain at quiet hours blocks.",
    remediation="Keep the PDB's guaranteed pods below the HPA's `spec.minReplicas`: lower `minAvailable` "
    "(or use `maxUnavailable: 1`), or raise `minReplicas`.",
    group="pod_disruption_budget",
    enabled=lambda rule: rule.below_hpa_min_replicas,
    reads={
        "PodDisruptionBudget": ("spec.minAvailable", "spec.maxUnavailable"),
        "HorizontalPodAutoscaler": ("spec.minReplicas",),
    },
    cel_unavailable="live: reads the namespace's PodDisruptionBudgets and HorizontalPodAutoscalers",
)
def pdb_hpa_min_replicas(ctx: Context, rule: PodDisruptionBudgetRule) -> Outcome:
    """With an HPA, every selecting PDB permits a disruption at the HPA's minReplicas."""
    if ctx.hpa is None or not ctx.pdbs:
        return passed("no HorizontalPodAutoscaler and PodDisruptionBudget both apply to the pods")
    min_replicas = int((ctx.hpa.get("spec") or {}).get("minReplicas") or 1)
    problems = []
    for pdb in ctx.pdbs:
        blocks = _blocks_at(pdb, min_replicas)
        if blocks is None:
            problems.append(f"PodDisruptionBudget '{_name(pdb)}' has an invalid minAvailable/maxUnavailable; "
                            "set maxUnavailable: 1")
        elif blocks:
            problems.append(
                f"PodDisruptionBudget '{_name(pdb)}' ({_spec_words(pdb)}) permits no disruption at HPA "
                f"'{_name(ctx.hpa)}' minReplicas {min_replicas}; set minAvailable below {min_replicas} (or "
                f"maxUnavailable: 1), or raise the HPA's spec.minReplicas"
            )
    if problems:
        return failed(problems)
    return passed(f"every PodDisruptionBudget permits a disruption at HPA minReplicas {min_replicas}")
