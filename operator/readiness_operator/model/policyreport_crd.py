"""The wgpolicyk8s.io/v1alpha2 PolicyReport and ClusterPolicyReport CRDs (Policy WG prototype API).

Shipped so clusters without Kyverno & co. can store our reports; written to match the upstream
schema field for field (severity also accepts critical/info like later upstream revisions).
"""

from __future__ import annotations

from typing import Any

__all__ = ["policy_report_crd"]

GROUP = "wgpolicyk8s.io"


def _s(description: str, **extra: Any) -> dict[str, Any]:
    return {"description": description, "type": "string", **extra}


_OBJECT_REFERENCE: dict[str, Any] = {
    "description": "ObjectReference to the checked (or scoping) Kubernetes resource.",
    "type": "object",
    "properties": {
        "apiVersion": _s("API version of the referent."),
        "fieldPath": _s("If referring to a piece of an object, a JSON/Go field access statement."),
        "kind": _s("Kind of the referent."),
        "name": _s("Name of the referent."),
        "namespace": _s("Namespace of the referent."),
        "resourceVersion": _s("Specific resourceVersion to which this reference is made."),
        "uid": _s("UID of the referent."),
    },
    "x-kubernetes-map-type": "atomic",
}

_LABEL_SELECTOR: dict[str, Any] = {
    "description": "A label selector.",
    "type": "object",
    "properties": {
        "matchExpressions": {
            "description": "Label selector requirements, ANDed.",
            "type": "array",
            "items": {
                "type": "object",
                "required": ["key", "operator"],
                "properties": {
                    "key": _s("The label key that the selector applies to."),
                    "operator": _s("In, NotIn, Exists or DoesNotExist."),
                    "values": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
        "matchLabels": {
            "description": "Labels that must match exactly.",
            "type": "object",
            "additionalProperties": {"type": "string"},
        },
    },
    "x-kubernetes-map-type": "atomic",
}

_RESULT: dict[str, Any] = {
    "description": "PolicyReportResult provides the result for an individual policy.",
    "type": "object",
    "required": ["policy"],
    "properties": {
        "category": _s("Category indicates policy category."),
        "message": _s("Description is a short user friendly message for the policy rule."),
        "policy": _s("Policy is the name or identifier of the policy."),
        "properties": {
            "description": "Properties provides additional information for the policy rule.",
            "type": "object",
            "additionalProperties": {"type": "string"},
        },
        "resourceSelector": {
            **_LABEL_SELECTOR,
            "description": "Optional selector for the checked resources.",
        },
        "resources": {
            "description": "Subjects is an optional reference to the checked Kubernetes resources.",
            "type": "array",
            "items": _OBJECT_REFERENCE,
        },
        "result": _s(
            "Result indicates the outcome of the policy rule execution.",
            enum=["pass", "fail", "warn", "error", "skip"],
        ),
        "rule": _s("Rule is the name or identifier of the rule within the policy."),
        "scored": {"description": "Scored indicates if this result is scored.", "type": "boolean"},
        "severity": _s(
            "Severity indicates policy check result criticality.",
            enum=["critical", "high", "low", "medium", "info"],
        ),
        "source": _s("Source is an identifier for the policy engine that manages this report."),
        "timestamp": {
            "description": "Timestamp indicates the time the result was found.",
            "type": "object",
            "required": ["nanos", "seconds"],
            "properties": {
                "nanos": {
                    "description": "Non-negative fractions of a second.",
                    "type": "integer",
                    "format": "int32",
                },
                "seconds": {
                    "description": "Seconds since the Unix epoch.",
                    "type": "integer",
                    "format": "int64",
                },
            },
        },
    },
}


def _summary() -> dict[str, Any]:
    def count(description: str) -> dict[str, Any]:
        return {"description": description, "type": "integer"}

    return {
        "description": "PolicyReportSummary provides a summary of results.",
        "type": "object",
        "properties": {
            "error": count("Count of policies that could not be evaluated."),
            "fail": count("Count of policies whose requirements were not met."),
            "pass": count("Count of policies whose requirements were met."),
            "skip": count("Count of policies that were not selected for evaluation."),
            "warn": count("Count of non-scored policies whose requirements were not met."),
        },
    }


def _printer_columns() -> list[dict[str, Any]]:
    cols: list[dict[str, Any]] = [
        {"jsonPath": ".scope.kind", "name": "Kind", "priority": 1, "type": "string"},
        {"jsonPath": ".scope.name", "name": "Name", "priority": 1, "type": "string"},
    ]
    for field in ("pass", "fail", "warn", "error", "skip"):
        cols.append({"jsonPath": f".summary.{field}", "name": field.capitalize(), "type": "integer"})
    cols.append({"jsonPath": ".metadata.creationTimestamp", "name": "Age", "type": "date"})
    return cols


def policy_report_crd(cluster: bool) -> dict[str, Any]:
    """PolicyReport (namespaced) or ClusterPolicyReport (cluster-scoped), version v1alpha2."""
    kind = "ClusterPolicyReport" if cluster else "PolicyReport"
    plural = kind.lower() + "s"
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": ["cpolr"] if cluster else ["polr"],
            },
            "scope": "Cluster" if cluster else "Namespaced",
            "versions": [
                {
                    "name": "v1alpha2",
                    "served": True,
                    "storage": True,
                    "additionalPrinterColumns": _printer_columns(),
                    "schema": {
                        "openAPIV3Schema": {
                            "description": f"{kind} is the Schema for the {plural} API.",
                            "type": "object",
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "results": {
                                    "description": "PolicyReportResult provides result details.",
                                    "type": "array",
                                    "items": _RESULT,
                                },
                                "scope": {
                                    **_OBJECT_REFERENCE,
                                    "description": "Scope is an optional reference "
                                    "to the report scope (e.g. a Deployment, Namespace, or Node).",
                                },
                                "scopeSelector": {
                                    **_LABEL_SELECTOR,
                                    "description": "ScopeSelector is an "
                                    "optional selector for multiple scopes (e.g. Pods).",
                                },
                                "summary": _summary(),
                            },
                        }
                    },
                    "subresources": {},
                }
            ],
        },
    }
