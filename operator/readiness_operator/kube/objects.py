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
    return {
        "apiVersion": body.get("apiVersion"),
        "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace")},
        "spec": trim(body.get("spec") or {}, _HPA_SPEC),
        **_status(body, _HPA_STATUS),
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
