"""Trim watched objects to what the engine reads, so 10,000 indexed Deployments stay small.

Dropping managedFields, status, env, volumes and the like keeps an indexed Deployment at a few
hundred bytes; the engine never reads those fields (see checks/).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from readiness_operator.names import ANNOTATION_PREFIX

_CONTAINER_KEYS = (
    "name", "image", "resources", "livenessProbe", "readinessProbe", "startupProbe",
    "securityContext", "lifecycle", "restartPolicy",
)
_POD_KEYS = ("securityContext", "affinity", "topologySpreadConstraints", "terminationGracePeriodSeconds")


def _pick(source: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: source[k] for k in keys if k in source}


def _containers(items: Any) -> list[dict[str, Any]]:
    return [_pick(c, _CONTAINER_KEYS) for c in items or () if isinstance(c, Mapping)]


def trim_deployment(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    template = spec.get("template") or {}
    pod = template.get("spec") or {}
    trimmed_pod = _pick(pod, _POD_KEYS)
    trimmed_pod["containers"] = _containers(pod.get("containers"))
    if pod.get("initContainers"):
        trimmed_pod["initContainers"] = _containers(pod.get("initContainers"))
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k.startswith(ANNOTATION_PREFIX)}
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
        },
        "spec": {
            **_pick(spec, ("replicas", "strategy", "selector")),
            "template": {
                "metadata": {"labels": dict((template.get("metadata") or {}).get("labels") or {})},
                "spec": trimmed_pod,
            },
        },
    }


def trim_pdb(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    return {
        "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace")},
        "spec": _pick(body.get("spec") or {}, ("selector", "minAvailable", "maxUnavailable")),
    }


def trim_hpa(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    return {
        "apiVersion": body.get("apiVersion"),
        "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace")},
        "spec": _pick(
            body.get("spec") or {},
            ("scaleTargetRef", "minReplicas", "maxReplicas", "metrics", "targetCPUUtilizationPercentage"),
        ),
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
