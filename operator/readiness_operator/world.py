"""What the engine may look up besides the Deployment itself, passed in explicitly.

At run time the operator fills this from kopf indexes and the SLO cache; in tests and the CLI it
comes from files. Keeping it a plain value object is what keeps the engine pure and fast.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["SloMeasurement", "World", "namespace_of", "world_for"]


def namespace_of(obj: Mapping[str, Any]) -> str:
    """An object's namespace; objects read from files without one count as ``default``."""
    return str((obj.get("metadata") or {}).get("namespace") or "default")


@dataclass(frozen=True, slots=True)
class SloMeasurement:
    """The latest value of one SLO query for one Deployment.

    ``value`` is None when Prometheus could not answer (unreachable, query error, no series); the
    engine then reports the SLO as unknown. ``measured_at`` is when the value was taken, kept across
    outages so status can show how old it is.
    """

    value: float | None
    measured_at: datetime | None = None
    error: str | None = None


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class World:
    """Related objects and measurements for one Deployment.

    ``pdbs`` and ``hpas`` are plain Kubernetes dicts; checks still filter them by namespace, so
    passing a cluster-wide list is correct, only slower.
    """

    pdbs: Sequence[Mapping[str, Any]] = ()
    hpas: Sequence[Mapping[str, Any]] = ()
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    slo_measurements: Mapping[str, SloMeasurement] = field(default_factory=dict)
    now: datetime = field(default_factory=_now)


def world_for(
    deployment: Mapping[str, Any],
    *,
    pdbs: Iterable[Mapping[str, Any]] = (),
    hpas: Iterable[Mapping[str, Any]] = (),
    namespace_labels: Mapping[str, Mapping[str, str]] | None = None,
    slo_measurements: Mapping[str, SloMeasurement] | None = None,
    now: datetime | None = None,
) -> World:
    """Build the World of one Deployment from cluster-wide collections (same-namespace objects only)."""
    ns = namespace_of(deployment)
    return World(
        pdbs=tuple(p for p in pdbs if namespace_of(p) == ns),
        hpas=tuple(h for h in hpas if namespace_of(h) == ns),
        namespace_labels=dict((namespace_labels or {}).get(ns, {})),
        slo_measurements=dict(slo_measurements or {}),
        now=now or _now(),
    )
