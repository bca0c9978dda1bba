"""The check catalogue: one module per topic, each registering pure check functions.

Importing this package registers every check in :data:`CATALOGUE` (id -> :class:`Check`).
"""

from readiness_operator.checks import (  # noqa: F401  (imported for their registrations)
    autoscaling,
    disruption,
    images,
    probes,
    replicas,
    resources,
    rollout,
    scheduling,
    security,
    slo,
)
from readiness_operator.checks.base import CATALOGUE, Check, Container, Context, Outcome, Target
from readiness_operator.checks.slo import SLO_CHECK_ID, slo_state
from readiness_operator.model.check_ids import CHECK_IDS

__all__ = ["CATALOGUE", "SLO_CHECK_ID", "Check", "Container", "Context", "Outcome", "Target", "slo_state"]

# Catalogue order follows the design table (and docs/checks.md), not module import order.
_ORDER = {cid: i for i, cid in enumerate((*CHECK_IDS, SLO_CHECK_ID))}
_SORTED = sorted(CATALOGUE.items(), key=lambda kv: _ORDER.get(kv[0], len(_ORDER)))
CATALOGUE.clear()
CATALOGUE.update(_SORTED)
