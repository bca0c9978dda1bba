"""What the engine may look up besides the Deployment itself, passed in explicitly.

At run time the operator fills this from kopf indexes and the SLO cache; in tests and the CLI it
comes from files. Keeping it a plain value object is what keeps the engine pure and fast.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["RelatedIndex", "SloMeasurement", "World", "namespace_of", "related_by_namespace", "world_for"]


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


class RelatedIndex:
    """One namespace's PDBs and HPAs, indexed so each Deployment gets only the candidates that can
    relate to it (the checks still match them exactly): without this every Deployment is matched
    against every PDB and HPA of its namespace, O(n^2) per namespace.

    A PDB whose selector has `matchLabels` can only select pods carrying its first pair, so it is
    filed under that pair; the others (expressions only, empty, missing, odd shapes) go to every
    Deployment. An HPA is filed under its scaleTargetRef name. Candidates keep the watch order.
    """

    __slots__ = ("_hpa_any", "_hpa_by_name", "_pdb_any", "_pdb_by_label", "hpas", "pdbs")

    def __init__(self, pdbs: Iterable[Mapping[str, Any]], hpas: Iterable[Mapping[str, Any]]) -> None:
        self.pdbs, self.hpas = tuple(pdbs), tuple(hpas)
        self._pdb_any: list[int] = []
        self._pdb_by_label: dict[tuple[Any, Any], list[int]] = {}
        for i, pdb in enumerate(self.pdbs):
            selector = (pdb.get("spec") or {}).get("selector") if isinstance(pdb, Mapping) else None
            match = selector.get("matchLabels") if isinstance(selector, Mapping) else None
            pair = next(iter(match.items()), None) if isinstance(match, Mapping) else None
            try:
                if pair is not None:
                    self._pdb_by_label.setdefault(pair, []).append(i)
                    continue
            except TypeError:  # an unhashable value: not indexed
                pass
            self._pdb_any.append(i)
        self._hpa_any: list[int] = []
        self._hpa_by_name: dict[str, list[int]] = {}
        for i, hpa in enumerate(self.hpas):
            spec = hpa.get("spec") if isinstance(hpa, Mapping) else None
            ref = spec.get("scaleTargetRef") if isinstance(spec, Mapping) else None
            name = ref.get("name") if isinstance(ref, Mapping) else None
            if isinstance(name, str):
                self._hpa_by_name.setdefault(name, []).append(i)
            else:
                self._hpa_any.append(i)

    def for_deployment(
        self, deployment: Mapping[str, Any]
    ) -> tuple[Sequence[Mapping[str, Any]], Sequence[Mapping[str, Any]]]:
        """(candidate PDBs, candidate HPAs) for one Deployment."""
        try:
            template = (deployment.get("spec") or {}).get("template") or {}
            pod_labels = (template.get("metadata") or {}).get("labels") or {}
        except AttributeError:  # an odd shape: every object is a candidate
            return self.pdbs, self.hpas
        if not isinstance(pod_labels, Mapping):
            return self.pdbs, self.hpas
        pdb_idx = list(self._pdb_any)
        if self._pdb_by_label:
            for pair in pod_labels.items():
                try:
                    pdb_idx.extend(self._pdb_by_label.get(pair, ()))
                except TypeError:
                    return self.pdbs, self.hpas
        name = str((deployment.get("metadata") or {}).get("name", ""))  # as checks.Target reads it
        hpa_idx = self._hpa_any + self._hpa_by_name.get(name, [])
        return (tuple(self.pdbs[i] for i in sorted(pdb_idx)), tuple(self.hpas[i] for i in sorted(hpa_idx)))


def related_by_namespace(
    pdbs: Iterable[Mapping[str, Any]], hpas: Iterable[Mapping[str, Any]]
) -> dict[str, RelatedIndex]:
    """One `RelatedIndex` per namespace, for callers holding cluster-wide lists (the CLI)."""
    by_ns: dict[str, tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]] = {}
    for pdb in pdbs:
        by_ns.setdefault(namespace_of(pdb), ([], []))[0].append(pdb)
    for hpa in hpas:
        by_ns.setdefault(namespace_of(hpa), ([], []))[1].append(hpa)
    return {ns: RelatedIndex(p, h) for ns, (p, h) in by_ns.items()}
