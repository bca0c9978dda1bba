"""A `ClusterView` over kopf indexes (namespace -> Store of trimmed objects)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from readiness_operator.world import Related, RelatedIndex


def revisions_key(namespace: str, deployment: str) -> tuple[str, str, str]:
    """The ReplicaSet index's key for a Deployment's revisions (pod-template digests)."""
    return ("revisions", namespace, deployment)


def pods_key(namespace: str, deployment: str) -> tuple[str, str, str]:
    """The pod index's key for a Deployment's pods (the reader keeps no other pods)."""
    return ("pods", namespace, deployment)


def hpa_key(namespace: str, target: str) -> tuple[str, str, str]:
    """The HPA index's key for the HPAs whose scaleTargetRef names `target` (besides its namespace key)."""
    return ("hpas", namespace, target)


def owner_key(namespace: str, replicaset: str) -> tuple[str, str, str]:
    """The ReplicaSet index's key for a ReplicaSet's owning Deployment."""
    return ("owner", namespace, replicaset)


class RelatedCache:
    """Each namespace's PDB `RelatedIndex`, kept until that namespace's PDBs change (the PDB index's
    revision of the namespace moves). Shared by every policy loop and the webhook (the operator
    context holds one): rebuilding it per namespace per pass was a fifth of an idle leader's CPU
    in a living cluster (issue 16), where HPA statuses move every few seconds but PDBs rarely do."""

    __slots__ = ("_by_ns",)

    def __init__(self) -> None:
        self._by_ns: dict[str, tuple[int, RelatedIndex]] = {}

    def pdbs(self, index: Any, namespace: str) -> RelatedIndex:
        revision = index.revision(namespace) if hasattr(index, "revision") else None
        if revision is None:  # an index without revisions (tests): built afresh
            return RelatedIndex(IndexView._in(index, namespace), ())
        kept = self._by_ns.get(namespace)
        if kept is None or kept[0] != revision:
            kept = self._by_ns[namespace] = (revision, RelatedIndex(IndexView._in(index, namespace), ()))
        return kept[1]


class _Related:
    """A Deployment's candidates in one namespace: PDBs from the kept `RelatedIndex`, HPAs looked up
    by the name their scaleTargetRef gives (an HPA without a name can target no Deployment)."""

    __slots__ = ("_hpas", "_namespace", "_pdbs")

    def __init__(self, pdbs: RelatedIndex, hpas: Any, namespace: str) -> None:
        self._pdbs, self._hpas, self._namespace = pdbs, hpas, namespace

    def for_deployment(
        self, deployment: Mapping[str, Any]
    ) -> tuple[Sequence[Mapping[str, Any]], Sequence[Mapping[str, Any]]]:
        pdbs, _ = self._pdbs.for_deployment(deployment)
        name = str((deployment.get("metadata") or {}).get("name", ""))  # as checks.Target reads it
        return pdbs, tuple(IndexView._in(self._hpas, hpa_key(self._namespace, name)))


class IndexView:
    """Reads kopf indexes keyed by namespace; the stores are live, so a view never goes stale."""

    def __init__(
        self, deployments: Any, pdbs: Any, hpas: Any, namespaces: Any, pods: Any = None, network_policies: Any = None,
        replicaset_owners: Any = None, related: RelatedCache | None = None,
    ) -> None:
        self._deployments, self._pdbs, self._hpas, self._namespaces = deployments, pdbs, hpas, namespaces
        self._pods = pods
        self._network_policies = network_policies if network_policies is not None else {}
        self._replicaset_owners = replicaset_owners
        self._related = related

    def related(self, namespace: str) -> Related:
        """A namespace's candidate PDBs and HPAs for each Deployment. With a `RelatedCache` (the
        reader's indexes, which keep each HPA under its target's `hpa_key` too) the PDBs are indexed
        once per change and the HPAs looked up directly; otherwise both are indexed afresh."""
        if self._related is None:
            return RelatedIndex(self.pdbs(namespace), self.hpas(namespace))
        return _Related(self._related.pdbs(self._pdbs, namespace), self._hpas, namespace)

    def owner_of_pod(self, namespace: str, pod: str) -> str | None:
        """The Deployment owning a pod, from its name: a Deployment's pods are named
        `<ReplicaSet>-<5 characters>` and the ReplicaSet index knows each ReplicaSet's Deployment.
        (Pod names cut at 63 characters, from ReplicaSet names over 57, are not resolved.)"""
        if self._replicaset_owners is None or "-" not in pod:
            return None
        key = owner_key(namespace, pod.rsplit("-", 1)[0])
        for owner in self._in(self._replicaset_owners, key):
            return str(owner)
        return None

    @staticmethod
    def _in(index: Any, key: Any) -> Iterable[Any]:
        return index[key] if key in index else ()  # noqa: SIM401 - kopf Index has no .get()

    def namespaces(self) -> Iterable[str]:
        return list(self._deployments)

    def deployments(self, namespace: str) -> Iterable[Mapping[str, Any]]:
        return self._in(self._deployments, namespace)

    def deployment(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        """One Deployment by name (None: not kept), in O(1) where the index can look one up."""
        value = getattr(self._deployments, "value", None)
        if value is not None:
            found: Mapping[str, Any] | None = value(namespace, (namespace, name))
            return found
        return next((d for d in self.deployments(namespace) if (d.get("metadata") or {}).get("name") == name), None)

    def pdbs(self, namespace: str) -> Iterable[Mapping[str, Any]]:
        return self._in(self._pdbs, namespace)

    def hpas(self, namespace: str) -> Iterable[Mapping[str, Any]]:
        return self._in(self._hpas, namespace)

    def pods_of(self, namespace: str, deployment: str) -> Iterable[Mapping[str, Any]]:
        """A Deployment's trimmed pods (live checks), looked up directly: grouping a namespace's pods
        by Deployment in every pass cost the leader of a living cluster most of its idle CPU (issue 16).
        None when the view was built without the pod index."""
        return self._in(self._pods, pods_key(namespace, deployment)) if self._pods is not None else ()

    def network_policies(self, namespace: str) -> Iterable[Mapping[str, Any]]:
        return self._in(self._network_policies, namespace)

    def namespace_labels(self, namespace: str) -> Mapping[str, str]:
        for labels in self._in(self._namespaces, namespace):
            return labels  # type: ignore[no-any-return]
        return {}
