"""Severity, dependency-free, so the check definitions can use it without importing the model package.

The model imports the check catalogue (ids and categories for validating ``exemptions`` and
``weights``), so the catalogue must not import the model at import time.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Severity"]


class Severity(StrEnum):
    """How much a failed check matters: critical and warning failures make a Deployment noncompliant."""

    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"
