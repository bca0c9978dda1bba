"""Structural checks of the objects the engine reads, so malformed input gets a clear error.

The API server guarantees these shapes for live objects; files read by the CLI do not. The checks
cover exactly the paths the checks read, and name the first offending path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class MalformedObject(ValueError):
    """An object is not shaped like its kind (e.g. `containers: nginx`); the message names the path."""


def _kind(value: Any) -> str:
    return type(value).__name__


def _mapping(obj: Any, path: str) -> str | None:
    if obj is not None and not isinstance(obj, Mapping):
        return f"{path}: expected an object, got {_kind(obj)}"
    return None


def _list_of_mappings(obj: Any, path: str) -> str | None:
    if obj is None:
        return None
    if not isinstance(obj, Sequence) or isinstance(obj, str | bytes):
        return f"{path}: expected a list of objects, got {_kind(obj)}"
    for i, item in enumerate(obj):
        if not isinstance(item, Mapping):
            return f"{path}[{i}]: expected an object, got {_kind(item)}"
    return None


def _labels(obj: Any, path: str) -> str | None:
    if obj is None:
        return None
    if not isinstance(obj, Mapping):
        return f"{path}: expected a map of strings, got {_kind(obj)}"
    return None


def _selector(obj: Any, path: str) -> str | None:
    return (_mapping(obj, path)
            or (isinstance(obj, Mapping) and (_labels(obj.get("matchLabels"), f"{path}.matchLabels")
                                              or _list_of_mappings(obj.get("matchExpressions"), f"{path}.matchExpressions")))
            or None)


def deployment_problem(obj: Any) -> str | None:
    """The first structural problem of a Deployment-shaped dict, or None."""
    if not isinstance(obj, Mapping):
        return f"expected an object, got {_kind(obj)}"
    meta, spec = obj.get("metadata"), obj.get("spec")
    problem = _mapping(meta, "metadata") or _mapping(spec, "spec")
    if problem:
        return problem
    if isinstance(meta, Mapping):
        problem = _labels(meta.get("labels"), "metadata.labels") or _labels(meta.get("annotations"), "metadata.annotations")
        if problem:
            return problem
    if not isinstance(spec, Mapping):
        return None
    replicas = spec.get("replicas")
    if replicas is not None and (isinstance(replicas, bool) or not isinstance(replicas, int)):
        return f"spec.replicas: expected an integer, got {_kind(replicas)}"
    template = spec.get("template")
    problem = _mapping(spec.get("strategy"), "spec.strategy") or _mapping(template, "spec.template")
    if problem or not isinstance(template, Mapping):
        return problem
    tmeta, pod = template.get("metadata"), template.get("spec")
    problem = _mapping(tmeta, "spec.template.metadata") or _mapping(pod, "spec.template.spec")
    if problem:
        return problem
    if isinstance(tmeta, Mapping) and (problem := _labels(tmeta.get("labels"), "spec.template.metadata.labels")):
        return problem
    if not isinstance(pod, Mapping):
        return None
    for key in ("containers", "initContainers"):
        if problem := _list_of_mappings(pod.get(key), f"spec.template.spec.{key}"):
            return problem
    for key in ("securityContext", "affinity"):
        if problem := _mapping(pod.get(key), f"spec.template.spec.{key}"):
            return problem
    return _list_of_mappings(pod.get("topologySpreadConstraints"), "spec.template.spec.topologySpreadConstraints")


def related_problem(obj: Any) -> str | None:
    """The first structural problem of a PodDisruptionBudget or HorizontalPodAutoscaler, or None."""
    if not isinstance(obj, Mapping):
        return f"expected an object, got {_kind(obj)}"
    problem = _mapping(obj.get("metadata"), "metadata") or _mapping(obj.get("spec"), "spec")
    if problem or not isinstance(obj.get("spec"), Mapping):
        return problem
    spec = obj["spec"]
    return (_selector(spec.get("selector"), "spec.selector")
            or _mapping(spec.get("scaleTargetRef"), "spec.scaleTargetRef")
            or _list_of_mappings(spec.get("metrics"), "spec.metrics"))
