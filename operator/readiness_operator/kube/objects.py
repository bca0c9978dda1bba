"""Trim watched objects to what the engine reads, so 10,000 indexed Deployments stay small.

Dropping managedFields, status, env, volumes and the like keeps an indexed Deployment at a few
hundred bytes. The kept fields are derived from the checks' declared ``reads``
(:func:`readiness_operator.checks.fields.fields_read`) plus what this runtime layer itself needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from readiness_operator.checks.fields import field_tree, fields_read, trim
from readiness_operator.names import ANNOTATION_PREFIX

#: Fields the runtime reads beyond the checks (Deployment identity for reports and Events, the pod
#: selector for SLO queries and relations); metadata is rebuilt below and not trimmed by path.
_RUNTIME_READS: Mapping[str, tuple[str, ...]] = {
    "Deployment": ("spec.selector",),
    "PodDisruptionBudget": (),
    "HorizontalPodAutoscaler": (),
}


def _spec_tree(kind: str) -> Any:
    paths = [*fields_read(kind), *_RUNTIME_READS[kind]]
    tree = field_tree(p.removeprefix("spec.") for p in paths if p.startswith("spec."))
    return tree


_DEPLOYMENT_SPEC = _spec_tree("Deployment")
_PDB_SPEC = _spec_tree("PodDisruptionBudget")
_HPA_SPEC = _spec_tree("HorizontalPodAutoscaler")


def trim_deployment(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k.startswith(ANNOTATION_PREFIX)}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "labels": dict(meta.get("labels") or {}),
            **({"annotations": annotations} if annotations else {}),
        },
        "spec": trim(body.get("spec") or {}, _DEPLOYMENT_SPEC),
    }


def trim_pdb(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    return {
        "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace")},
        "spec": trim(body.get("spec") or {}, _PDB_SPEC),
    }


def trim_hpa(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    return {
        "apiVersion": body.get("apiVersion"),
        "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace")},
        "spec": trim(body.get("spec") or {}, _HPA_SPEC),
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
