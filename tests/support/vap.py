"""The operator's merged ValidatingAdmissionPolicy + binding as tests look for them."""

from __future__ import annotations

import json

from .cluster import Cluster

#: The operator's name for them when READINESS_VAP_NAME is unset (Settings.vap_name).
DEFAULT_NAME = "readiness-operator"


def held_policies(cluster: Cluster, name: str = DEFAULT_NAME) -> list[str]:
    """The policies the merged VAP holds, [] unless both it and its binding exist."""
    result = cluster.kubectl("get", "validatingadmissionpolicy,validatingadmissionpolicybinding", name,
                             "-o", "json", "--ignore-not-found", check=False)
    items = json.loads(result.stdout or '{"items": []}').get("items", []) if result.returncode == 0 else []
    kinds = {i["kind"]: i for i in items}
    if set(kinds) != {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}:
        return []
    held = (kinds["ValidatingAdmissionPolicy"]["metadata"].get("annotations") or {}).get("readiness.dev/policies", "")
    return [p for p in held.split(",") if p]


def holds(cluster: Cluster, policy: str, name: str = DEFAULT_NAME) -> bool:
    return policy in held_policies(cluster, name)

