"""Trim watched objects to what the engine reads, so 10,000 indexed Deployments stay small.

Dropping managedFields, status, env, volumes and the like keeps an indexed Deployment at a few
hundred bytes. The kept fields are derived from the checks' declared ``reads``
(:func:`readiness_operator.checks.fields.fields_read`) plus what this runtime layer itself needs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from readiness_operator.checks.autoscaling import LAST_APPLIED
from readiness_operator.checks.fields import field_tree, fields_read, trim
from readiness_operator.checks.live import hpa_conditions_read
from readiness_operator.names import ANNOTATION_PREFIX

#: Fields the runtime reads beyond the checks (Deployment identity for reports and Events, the pod
#: selector for SLO queries and relations); metadata is rebuilt below and not trimmed by path.
_RUNTIME_READS: Mapping[str, tuple[str, ...]] = {
    "Deployment": ("spec.selector",),
    "PodDisruptionBudget": (),
    "HorizontalPodAutoscaler": (),
    "Pod": ("metadata.labels", "metadata.ownerReferences"),  # world.deployment_of_pod
    "NetworkPolicy": (),
}


def _spec_tree(kind: str) -> Any:
    paths = [*fields_read(kind), *_RUNTIME_READS[kind]]
    tree = field_tree(p.removeprefix("spec.") for p in paths if p.startswith("spec."))
    return tree


def _status_tree(kind: str) -> Any:
    return field_tree(p.removeprefix("status.") for p in fields_read(kind) if p.startswith("status."))


_DEPLOYMENT_SPEC = _spec_tree("Deployment")
_PDB_SPEC = _spec_tree("PodDisruptionBudget")
_HPA_SPEC = _spec_tree("HorizontalPodAutoscaler")
_DEPLOYMENT_STATUS = _status_tree("Deployment")
_PDB_STATUS = _status_tree("PodDisruptionBudget")
_HPA_STATUS = _status_tree("HorizontalPodAutoscaler")
_POD = field_tree([*fields_read("Pod"), *_RUNTIME_READS["Pod"]])


def _status(body: Mapping[str, Any], tree: Any) -> dict[str, Any]:
    status = body.get("status")
    return {"status": trim(status, tree)} if isinstance(status, Mapping) and tree else {}


def _replicas_evidence(meta: Mapping[str, Any]) -> dict[str, Any]:
    """What `replicas-unset-with-hpa` reads of metadata (checks.autoscaling.replicas_applied), reduced:
    the last-applied annotation to its spec.replicas, the managedFields to Apply entries owning it."""
    out: dict[str, Any] = {}
    last = (meta.get("annotations") or {}).get(LAST_APPLIED)
    if isinstance(last, str) and last:
        try:
            applied = json.loads(last)
            spec = applied.get("spec") if isinstance(applied, Mapping) else None
            reduced: dict[str, Any] = {}
            if isinstance(spec, Mapping) and "replicas" in spec:
                reduced = {"spec": {"replicas": spec["replicas"]}}
            out["annotations"] = {LAST_APPLIED: json.dumps(reduced)}
        except (ValueError, TypeError):
            out["annotations"] = {LAST_APPLIED: last[:64]}  # still invalid JSON: the check says Unknown
    managed = meta.get("managedFields")
    if managed:
        owners: list[dict[str, Any]] = [
            {"manager": e.get("manager"), "operation": "Apply", "fieldsV1": {"f:spec": {"f:replicas": {}}}}
            for e in managed
            if isinstance(e, Mapping)
            and e.get("operation") == "Apply"
            and "f:replicas" in (((e.get("fieldsV1") or {}).get("f:spec")) or {})
        ]
        if owners:  # without one the uid alone says "a cluster object, not applied with replicas"
            out["managedFields"] = owners
    return out
_NETWORK_POLICY_SPEC = _spec_tree("NetworkPolicy")



def trim_deployment(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k.startswith(ANNOTATION_PREFIX)}
    evidence = _replicas_evidence(meta)
    annotations.update(evidence.pop("annotations", {}))
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            **({"generation": meta["generation"]} if meta.get("generation") is not None else {}),
            "labels": dict(meta.get("labels") or {}),
            **({"annotations": annotations} if annotations else {}),
            **evidence,
        },
        "spec": trim(body.get("spec") or {}, _DEPLOYMENT_SPEC),
        **_status(body, _DEPLOYMENT_STATUS),
    }


def trim_pdb(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    return {
        "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace")},
        "spec": trim(body.get("spec") or {}, _PDB_SPEC),
        **_status(body, _PDB_STATUS),
    }


def trim_hpa(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    status = _status(body, _HPA_STATUS)
    if isinstance(status.get("status"), dict) and "conditions" in status["status"]:
        status["status"]["conditions"] = hpa_conditions_read(status["status"]["conditions"])
    return {
        "apiVersion": body.get("apiVersion"),
        "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace")},
        "spec": trim(body.get("spec") or {}, _HPA_SPEC),
        **status,
    }


def trim_pod(body: Mapping[str, Any]) -> dict[str, Any]:
    """A pod reduced to what live checks read and what maps it to its Deployment (a few hundred bytes)."""
    return trim(body, _POD)


def trim_network_policy(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    return {
        "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace")},
        "spec": trim(body.get("spec") or {}, _NETWORK_POLICY_SPEC),
    }


class SharedTrees:
    """One copy of each equal subtree across the objects the reader keeps (hash-consing).

    10,000 Deployments stamped from a few charts hold the same probe, resources and securityContext
    dicts thousands of times, and the pods of one ReplicaSet the same owner references, labels and
    container statuses: sharing them halves what the kept objects take (126 -> 61 MB for 10,000
    Deployments and 28,848 pods, tracemalloc; issue 16). An object's own root and its metadata dict
    (name, uid) are never shared, so two objects stay two objects and a replaced object is a new one.

    Sound because nothing edits a kept object in place: the reader replaces an object on change, and
    the engine never mutates its inputs (tests/unit/test_engine.py). Equal means equal types too
    (``True`` and ``1`` are not merged). The table of subtrees seen is cleared every ``limit`` entries:
    objects arrive namespace by namespace and a ReplicaSet's pods together, so a small window finds
    most repeats, and memory for subtrees seen once stays bounded.
    """

    __slots__ = ("_seen", "limit")

    def __init__(self, limit: int = 5000) -> None:
        self._seen: dict[tuple[Any, ...], Any] = {}
        self.limit = limit

    @staticmethod
    def _identity(value: Any) -> Any:
        kind = type(value)
        if kind is str:
            return value
        if kind is dict or kind is list:
            return id(value)  # already shared: the same subtree is the same object
        return (kind, value)

    def _subtree(self, value: Any) -> Any:
        """The shared copy of `value`, a fresh trimmed subtree (its children are replaced in place)."""
        kind = type(value)
        if kind is dict:
            for k, v in value.items():
                if type(v) is dict or type(v) is list:
                    value[k] = self._subtree(v)
            key: tuple[Any, ...] = ("d", *((k, self._identity(v)) for k, v in value.items()))
        elif kind is list:
            for i, v in enumerate(value):
                if type(v) is dict or type(v) is list:
                    value[i] = self._subtree(v)
            key = ("l", *(self._identity(v) for v in value))
        else:
            return value
        found = self._seen.get(key)
        if found is not None:
            return found
        if len(self._seen) >= self.limit:
            self._seen.clear()
        self._seen[key] = value
        return value

    def share(self, obj: dict[str, Any]) -> dict[str, Any]:
        """``obj``, a freshly trimmed object (this edits it), made of shared subtrees; its root and
        metadata dict stay its own."""
        for key, value in obj.items():
            if key == "metadata" and type(value) is dict:
                for k, v in value.items():
                    value[k] = self._subtree(v)
            else:
                obj[key] = self._subtree(value)
        return obj


def deployment_ref(deployment: Mapping[str, Any]) -> dict[str, Any]:
    """An object reference for Events and PolicyReport results."""
    meta = deployment.get("metadata") or {}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "uid": meta.get("uid"),
    }
