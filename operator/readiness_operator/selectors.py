"""Kubernetes LabelSelector semantics on plain dicts.

One helper for every relation (policy match, exemptions, PDB -> pod template, anti-affinity), so the
subtle cases (empty selector matches everything, missing key vs NotIn) are decided in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["label_selector_matches"]


def label_selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str] | None) -> bool:
    """Evaluate a LabelSelector (``matchLabels`` + ``matchExpressions``) against labels.

    ``None`` and ``{}`` both match everything here; callers for which a *missing* selector means
    "nothing" (a policy/v1 PodDisruptionBudget) must check for ``None`` themselves. Unknown operators
    never match, which is the safe answer for objects read from the cluster.
    """
    if not selector:
        return True
    labels = labels or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or ():
        key = expr.get("key")
        op = expr.get("operator")
        values = expr.get("values") or ()
        present = key in labels
        if op == "In":
            if not present or labels[key] not in values:
                return False
        elif op == "NotIn":
            if present and labels[key] in values:
                return False
        elif op == "Exists":
            if not present:
                return False
        elif op == "DoesNotExist":
            if present:
                return False
        else:
            return False
    return True
