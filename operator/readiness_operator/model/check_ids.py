"""The check vocabulary the model validates ``exemptions`` and ``weights`` against, from the catalogue.

Ids and categories come from the check definitions (:mod:`readiness_operator.checks`), which never
import the model at import time, so importing them here closes no cycle.
"""

from __future__ import annotations

from readiness_operator.checks import CATALOGUE

__all__ = ["CATEGORIES", "CHECK_IDS", "SLO_CATEGORY", "SLO_PREFIX"]

SLO_PREFIX = "slo:"
SLO_CATEGORY = "slo"

#: Every check id users can name, in catalogue order (the SLO template is named as ``slo:<name>``).
CHECK_IDS: tuple[str, ...] = tuple(cid for cid, c in CATALOGUE.items() if c.category != SLO_CATEGORY)
#: Every category, in catalogue order, SLO last.
CATEGORIES: tuple[str, ...] = (
    *dict.fromkeys(c.category for c in CATALOGUE.values() if c.category != SLO_CATEGORY),
    SLO_CATEGORY,
)
