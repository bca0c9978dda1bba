"""The stable check vocabulary (ids and categories) shared by the model and the catalogue.

Users reference these ids in ``exemptions`` and ``weights``; the model validates against this
list without importing the check implementations (which import the model).
"""

from __future__ import annotations

__all__ = ["CATEGORIES", "CATEGORY_OF", "CHECK_IDS", "SLO_CATEGORY", "SLO_PREFIX"]

SLO_PREFIX = "slo:"
SLO_CATEGORY = "slo"

#: check id -> category, in catalogue order.
CATEGORY_OF: dict[str, str] = {
    "probe-liveness": "probes",
    "probe-readiness": "probes",
    "probe-startup": "probes",
    "requests-cpu": "resources",
    "requests-memory": "resources",
    "limits-cpu": "resources",
    "limits-memory": "resources",
    "replicas-min": "replicas",
    "pdb-present": "disruption",
    "pdb-min-available": "disruption",
    "hpa-present": "autoscaling",
    "hpa-min-replicas": "autoscaling",
    "hpa-max-replicas": "autoscaling",
    "hpa-metrics": "autoscaling",
    "run-as-non-root": "security",
    "run-as-user-min": "security",
    "read-only-root-fs": "security",
    "drop-all-capabilities": "security",
    "seccomp-runtime-default": "security",
    "no-privilege-escalation": "security",
    "no-privileged": "security",
    "anti-affinity": "scheduling",
    "image-tag-pinned": "images",
    "rolling-update": "rollout",
    "termination-grace-period": "rollout",
    "pre-stop-hook": "rollout",
}
CHECK_IDS: tuple[str, ...] = tuple(CATEGORY_OF)
CATEGORIES: tuple[str, ...] = (*dict.fromkeys(CATEGORY_OF.values()), SLO_CATEGORY)
