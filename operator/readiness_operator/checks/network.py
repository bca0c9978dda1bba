"""Network isolation: a NetworkPolicy of the namespace selects the pods, for ingress and for egress."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from readiness_operator.checks.base import Context, Outcome, failed, passed, register
from readiness_operator.selectors import label_selector_matches
from readiness_operator.severity import Severity
from readiness_operator.world import namespace_of

if TYPE_CHECKING:
    from readiness_operator.model.rules import NetworkPolicyRule

__all__ = ["policy_types"]


def policy_types(netpol: Mapping[str, Any]) -> set[str]:
    """The directions a NetworkPolicy isolates; unset ``policyTypes`` means Ingress, plus Egress when
    it has egress rules (networking.k8s.io/v1 defaulting)."""
    spec = netpol.get("spec") or {}
    types = spec.get("policyTypes")
    if isinstance(types, list) and types:
        return {str(t) for t in types}
    return {"Ingress", "Egress"} if spec.get("egress") else {"Ingress"}


def _selects(netpol: Mapping[str, Any], namespace: str, pod_labels: Mapping[str, str]) -> bool:
    if not isinstance(netpol, Mapping) or namespace_of(netpol) != namespace:
        return False
    selector = (netpol.get("spec") or {}).get("podSelector")
    if not isinstance(selector, Mapping):  # a required field; an empty one ({}) selects every pod
        return False
    try:
        return label_selector_matches(selector, pod_labels)
    except (TypeError, ValueError, AttributeError, KeyError):  # an odd selector selects nothing
        return False


@register(
    "network-policy",
    category="security",
    severity=Severity.WARNING,
    title="NetworkPolicy isolates the pods",
    why="Pods no NetworkPolicy selects accept traffic from every pod in the cluster and may call anything: "
    "one compromised workload reaches all the others.",
    remediation="Create a NetworkPolicy in the namespace whose `podSelector` matches the pod template labels "
    "and whose `policyTypes` include Ingress and Egress (a default-deny `podSelector: {}` policy counts).",
    group="network_policy",
    enabled=lambda rule: rule.ingress or rule.egress,
    reads={"NetworkPolicy": (
        "metadata.name",
        "metadata.namespace",
        "spec.podSelector",
        "spec.policyTypes",
        "spec.egress",
    )},
    cel_unavailable="live: reads the namespace's NetworkPolicies (a VAP sees only the Deployment)",
)
def network_policy(ctx: Context, rule: NetworkPolicyRule) -> Outcome:
    """A NetworkPolicy selecting the pods isolates ingress (and egress), as the rule asks."""
    t = ctx.target
    covering = [n for n in ctx.world.network_policies if _selects(n, t.namespace, t.pod_labels)]
    covered = set().union(*(policy_types(n) for n in covering)) if covering else set()
    wanted = [d for d, on in (("Ingress", rule.ingress), ("Egress", rule.egress)) if on]
    missing = [d for d in wanted if d not in covered]
    if not missing:
        names = ", ".join(sorted(str((n.get("metadata") or {}).get("name")) for n in covering))
        return passed(f"NetworkPolicy {names} isolates {' and '.join(wanted).lower()}")
    labels = ", ".join(f"{k}={v}" for k, v in sorted(t.pod_labels.items())) or "(no labels)"
    return failed([
        f"no NetworkPolicy in namespace {t.namespace} selects the pods ({labels}) for "
        f"{' or '.join(missing).lower()}; create one whose podSelector matches them with policyTypes "
        f"[{', '.join(missing)}]"
    ])
