"""Matching a Deployment to its related objects: one helper per relation, shared by every check."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from readiness_operator.selectors import label_selector_matches
from readiness_operator.world import namespace_of

__all__ = ["hpa_targets", "pdb_selects", "scaled_value"]


def pdb_selects(pdb: Mapping[str, Any], namespace: str, pod_labels: Mapping[str, str]) -> bool:
    """True when the PDB is in ``namespace`` and its selector selects the pod template labels.

    policy/v1 semantics: an empty selector (``{}``) selects every pod in the namespace, a missing
    (null) selector selects none.
    """
    if namespace_of(pdb) != namespace:
        return False
    selector = (pdb.get("spec") or {}).get("selector")
    if selector is None:
        return False
    return label_selector_matches(selector, pod_labels)


def hpa_targets(hpa: Mapping[str, Any], namespace: str, name: str) -> bool:
    """True when the HPA's scaleTargetRef points at Deployment ``namespace/name`` (group apps)."""
    if namespace_of(hpa) != namespace:
        return False
    ref = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
    if ref.get("kind") != "Deployment" or ref.get("name") != name:
        return False
    api_version = str(ref.get("apiVersion") or "apps/v1")
    return api_version.split("/", 1)[0] == "apps"


def scaled_value(value: int | str | None, total: int, *, round_up: bool) -> int | None:
    """Resolve an IntOrString (``2`` or ``"50%"``) against ``total`` like apimachinery's
    GetScaledValueFromIntOrPercent. Returns None for junk so callers can report it."""
    if value is None:
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.endswith("%"):
        try:
            percent = int(text[:-1])
        except ValueError:
            return None
        scaled = percent * total
        return -(-scaled // 100) if round_up else scaled // 100
    try:
        return int(text)
    except ValueError:
        return None
