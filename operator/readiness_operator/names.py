"""Names the operator shares with the cluster: labels, annotations and the marks on what it writes.

Defined once: the engine, the webhook, the fail-safe CEL policy, the reports and the chart's docs all
speak of the same keys, and a key spelled twice drifts.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

__all__ = [
    "ANNOTATION_PREFIX",
    "BLANK_RE2",
    "IGNORE_LABEL",
    "MANAGED_BY",
    "MANAGED_BY_LABEL",
    "MANAGED_BY_LABELS",
    "OVERRIDE_ANNOTATION",
    "OVERRIDE_EVENT_ANNOTATIONS",
    "OVERRIDE_EVENT_LABEL",
    "POLICY_LABEL",
    "is_blank",
]

#: Our own annotations and labels live under this prefix (the trimmed Deployment keeps only these).
ANNOTATION_PREFIX: Final = "readiness.dev/"
#: Break-glass annotation on a Deployment; its value is the (required) reason.
OVERRIDE_ANNOTATION: Final = "readiness.dev/override"
#: An override reason made only of separators (Unicode Z*), control (Cc: \t, \x1f...) and format
#: (Cf: \u200b, \ufeff...) characters is blank, i.e. no reason. The same definition in RE2, for
#: the fail-safe CEL (``value.matches(BLANK_RE2)``).
BLANK_RE2: Final = r"^[\p{Z}\p{Cc}\p{Cf}]*$"
#: The label on the ``ReadinessOverride`` Event a replica posts when its webhook admitted a request
#: through the override: the leader lists these (by label) to record who approved it in the report.
OVERRIDE_EVENT_LABEL: Final = "readiness.dev/event"
#: The Event's annotations: the requesting user, the reason and the Deployment generation admitted.
OVERRIDE_EVENT_ANNOTATIONS: Final = MappingProxyType({
    "user": "readiness.dev/override-user", "reason": "readiness.dev/override-reason",
    "generation": "readiness.dev/override-generation"})


def is_blank(value: str) -> bool:
    """No visible character: what the webhook and the fail-safe CEL both call a blank reason."""
    return all(unicodedata.category(ch)[0] == "Z" or unicodedata.category(ch) in ("Cc", "Cf") for ch in value)


#: A namespace labelled ``readiness.dev/ignore: "true"`` is never judged at admission.
IGNORE_LABEL: Final = "readiness.dev/ignore"
#: The policy an object we wrote belongs to (PolicyReports, ValidatingAdmissionPolicies).
POLICY_LABEL: Final = "readiness.dev/policy"
#: Every object the operator creates carries this label; it changes or deletes only those.
MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
MANAGED_BY: Final = "readiness-operator"


#: The label set that marks our objects (read-only; copy it with ``dict(...)``).
MANAGED_BY_LABELS: Final[Mapping[str, str]] = MappingProxyType({MANAGED_BY_LABEL: MANAGED_BY})
