"""What the engine may look up besides the Deployment itself, passed in explicitly.

At run time the operator fills this from kopf indexes and the SLO cache; in tests and the CLI it
comes from files. Keeping it a plain value object is what keeps the engine pure and fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from readiness_operator.slo.burn import BudgetState

__all__ = [
    "ClusterView",
    "InMemoryView",
    "Related",
    "RelatedIndex",
    "SloLookup",
    "SloMeasurement",
    "World",
    "Worlds",
    "deployment_of_pod",
    "namespace_of",
]


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
    budget: BudgetState | None = None  # objective SLOs: budget remaining, burn rates, what fired


def deployment_of_pod(pod: Mapping[str, Any]) -> str | None:
    """The Deployment a pod belongs to, from its ReplicaSet owner and ``pod-template-hash`` label.

    The Deployment controller names a ReplicaSet ``<deployment>-<pod-template-hash>``, so no
    ReplicaSet lookup is needed. None for pods of other controllers (or odd shapes).
    """
    meta = pod.get("metadata") if isinstance(pod, Mapping) else None
    if not isinstance(meta, Mapping):
        return None
    labels = meta.get("labels")
    hash_ = labels.get("pod-template-hash") if isinstance(labels, Mapping) else None
    if not isinstance(hash_, str) or not hash_:
        return None
    for owner in meta.get("ownerReferences") or ():
        if not isinstance(owner, Mapping) or owner.get("kind") != "ReplicaSet":
            continue
        name = owner.get("name")
        if isinstance(name, str) and name.endswith("-" + hash_) and len(name) > len(hash_) + 1:
            return name[: -len(hash_) - 1]
    return None


def hpa_target(hpa: Any) -> str | None:
    """The name an HPA's scaleTargetRef gives (None: no usable name, so any Deployment may be its target)."""
    spec = hpa.get("spec") if isinstance(hpa, Mapping) else None
    ref = spec.get("scaleTargetRef") if isinstance(spec, Mapping) else None
    name = ref.get("name") if isinstance(ref, Mapping) else None
    return name if isinstance(name, str) else None


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class World:
    """Related objects and measurements for one Deployment.

    ``pdbs`` and ``hpas`` are plain Kubernetes dicts; checks still filter them by namespace, so
    passing a cluster-wide list is correct, only slower. ``live`` is True only where the objects
    are the living cluster's (the operator's passes): live checks (status, pods) are Unknown
    otherwise, in the CLI and at admission. ``pods`` are the Deployment's own pods.
    """

    pdbs: Sequence[Mapping[str, Any]] = ()
    hpas: Sequence[Mapping[str, Any]] = ()
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    slo_measurements: Mapping[str, SloMeasurement] = field(default_factory=dict)
    now: datetime = field(default_factory=_now)
    live: bool = False
    pods: Sequence[Mapping[str, Any]] = ()
    #: The namespace's NetworkPolicies (the ``network-policy`` check matches their podSelectors).
    network_policies: Sequence[Mapping[str, Any]] = ()


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
            name = hpa_target(hpa)
            if name is not None:
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


class Related(Protocol):
    """What a namespace's related objects offer a Deployment: its candidate PDBs and HPAs (a
    `RelatedIndex`, or the operator's view keeping one across passes, `kube/view.py`)."""

    def for_deployment(
        self, deployment: Mapping[str, Any]
    ) -> tuple[Sequence[Mapping[str, Any]], Sequence[Mapping[str, Any]]]: ...


class ClusterView(Protocol):
    """What a World is built from: the watched objects by namespace (kopf indexes at run time,
    files in the CLI, dicts in tests)."""

    def namespaces(self) -> Iterable[str]: ...
    def deployments(self, namespace: str) -> Iterable[Mapping[str, Any]]: ...
    def pdbs(self, namespace: str) -> Iterable[Mapping[str, Any]]: ...
    def hpas(self, namespace: str) -> Iterable[Mapping[str, Any]]: ...
    def namespace_labels(self, namespace: str) -> Mapping[str, str]: ...
    def network_policies(self, namespace: str) -> Iterable[Mapping[str, Any]]: ...


class InMemoryView:
    """A ClusterView over plain lists (the CLI's files, tests): objects are grouped by namespace."""

    def __init__(
        self,
        deployments: Iterable[Mapping[str, Any]] = (),
        pdbs: Iterable[Mapping[str, Any]] = (),
        hpas: Iterable[Mapping[str, Any]] = (),
        namespace_labels: Mapping[str, Mapping[str, str]] | None = None,
        network_policies: Iterable[Mapping[str, Any]] = (),
    ) -> None:
        self._by_kind: dict[str, dict[str, list[Mapping[str, Any]]]] = {
            "deployments": {}, "pdbs": {}, "hpas": {}, "network_policies": {}
        }
        for kind, items in (
            ("deployments", deployments), ("pdbs", pdbs), ("hpas", hpas), ("network_policies", network_policies)
        ):
            for obj in items:
                self._by_kind[kind].setdefault(namespace_of(obj), []).append(obj)
        self._labels = {ns: dict(labels) for ns, labels in (namespace_labels or {}).items()}

    def namespaces(self) -> Iterable[str]:
        return list(self._by_kind["deployments"])

    def deployments(self, namespace: str) -> Iterable[Mapping[str, Any]]:
        return self._by_kind["deployments"].get(namespace, ())

    def pdbs(self, namespace: str) -> Iterable[Mapping[str, Any]]:
        return self._by_kind["pdbs"].get(namespace, ())

    def hpas(self, namespace: str) -> Iterable[Mapping[str, Any]]:
        return self._by_kind["hpas"].get(namespace, ())

    def namespace_labels(self, namespace: str) -> Mapping[str, str]:
        return self._labels.get(namespace, {})

    def network_policies(self, namespace: str) -> Iterable[Mapping[str, Any]]:
        return self._by_kind["network_policies"].get(namespace, ())


#: The SLO measurements one policy holds for one Deployment: (policy, (namespace, name)) -> by SLO name.
SloLookup = Callable[[str, tuple[str, str]], Mapping[str, SloMeasurement]]


def _no_slos(_policy: str, _key: tuple[str, str]) -> Mapping[str, SloMeasurement]:
    return {}


class Worlds:
    """The one place a World is built, for the operator's passes, the webhook and the CLI alike.

    Reads the view once per namespace (a `RelatedIndex` and the namespace labels are kept for the
    life of this object: one pass, one admission request, one CLI run), so each Deployment is
    matched only against the PDBs and HPAs that can select it. A view with a ``related(namespace)``
    method (the operator's) hands out its own candidates instead, kept across passes. ``live=True`` (the operator's
    passes) marks the Worlds as the living cluster's and hands each its pods, when the view has a
    ``pods(namespace)`` method.
    """

    __slots__ = ("_by_ns", "_network_policies", "_pods", "_slos", "live", "now", "view")

    def __init__(
        self, view: ClusterView, now: datetime | None = None, slos: SloLookup = _no_slos, *, live: bool = False
    ) -> None:
        self.view, self.now, self._slos, self.live = view, now or _now(), slos, live
        self._by_ns: dict[str, tuple[Related, Mapping[str, str]]] = {}
        self._network_policies: dict[str, tuple[Mapping[str, Any], ...]] = {}
        self._pods: dict[str, dict[str, list[Mapping[str, Any]]]] = {}

    def _pods_of(self, namespace: str, deployment: str) -> Sequence[Mapping[str, Any]]:
        pods_of = getattr(self.view, "pods_of", None)
        if pods_of is not None:  # the operator's view keeps pods by Deployment
            return tuple(pods_of(namespace, deployment))
        by_deployment = self._pods.get(namespace)
        if by_deployment is None:
            by_deployment = self._pods[namespace] = {}
            pods = getattr(self.view, "pods", None)
            for pod in pods(namespace) if pods is not None else ():
                owner = deployment_of_pod(pod)
                if owner is not None:
                    by_deployment.setdefault(owner, []).append(pod)
        return by_deployment.get(deployment, ())

    def _namespace(self, namespace: str) -> tuple[Related, Mapping[str, str]]:
        cached = self._by_ns.get(namespace)
        if cached is None:
            kept: Callable[[str], Related] | None = getattr(self.view, "related", None)
            related = kept(namespace) if kept is not None else RelatedIndex(self.view.pdbs(namespace),
                                                                             self.view.hpas(namespace))
            cached = self._by_ns[namespace] = (related, dict(self.view.namespace_labels(namespace)))
        return cached

    def namespace_labels(self, namespace: str) -> Mapping[str, str]:
        return self._namespace(namespace)[1]

    def measurements_of(self, deployment: Mapping[str, Any], policy: str) -> World:
        """A World with only the policy's SLO measurements of the Deployment (what `remeasure` reads),
        without indexing its namespace's PDBs, HPAs and pods."""
        ns = namespace_of(deployment)
        name = str((deployment.get("metadata") or {}).get("name", ""))
        return World(slo_measurements=self._slos(policy, (ns, name)), now=self.now, live=self.live)

    def of(self, deployment: Mapping[str, Any], policy: str | None = None) -> World:
        """The World of one Deployment (same-namespace candidates only), with the SLO measurements
        of `policy` (none without one: SLOs are per policy, two policies may name an SLO alike)."""
        ns = namespace_of(deployment)
        related, labels = self._namespace(ns)
        pdbs, hpas = related.for_deployment(deployment)
        slos: Mapping[str, SloMeasurement] = {}
        name = str((deployment.get("metadata") or {}).get("name", ""))
        if policy is not None:
            slos = self._slos(policy, (ns, name))
        pods = self._pods_of(ns, name) if self.live else ()
        netpols = self._network_policies.get(ns)
        if netpols is None:
            netpols = self._network_policies[ns] = tuple(self.view.network_policies(ns))
        return World(pdbs=pdbs, hpas=hpas, namespace_labels=labels, slo_measurements=slos, now=self.now,
                     live=self.live, pods=pods, network_policies=netpols)
