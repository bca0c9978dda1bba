"""A `ClusterView` over kopf indexes (namespace -> Store of trimmed objects)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def revisions_key(namespace: str, deployment: str) -> tuple[str, str, str]:
    """The ReplicaSet index's key for a Deployment's revisions (pod-template digests)."""
    return ("revisions", namespace, deployment)


def pods_key(namespace: str, deployment: str) -> tuple[str, str, str]:
    """The pod index's key for a Deployment's pods (the reader keeps no other pods)."""
    return ("pods", namespace, deployment)


def owner_key(namespace: str, replicaset: str) -> tuple[str, str, str]:
    """The ReplicaSet index's key for a ReplicaSet's owning Deployment."""
    return ("owner", namespace, replicaset)


class IndexView:
    """Reads kopf indexes keyed by namespace; the stores are live, so a view never goes stale."""

    def __init__(
        self, deployments: Any, pdbs: Any, hpas: Any, namespaces: Any, pods: Any = None, network_policies: Any = None,
        replicaset_owners: Any = None,
    ) -> None:
        self._deployments, self._pdbs, self._hpas, self._namespaces = deployments, pdbs, hpas, namespaces
        self._pods = pods
        self._network_policies = network_policies if network_policies is not None else {}
        self._replicaset_owners = replicaset_owners

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
