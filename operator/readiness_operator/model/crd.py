"""The ReadinessPolicy CustomResourceDefinition, generated from the pydantic model."""

from __future__ import annotations

from typing import Any

from readiness_operator.model.openapi import structural_schema
from readiness_operator.model.spec import GROUP, KIND, VERSION, ReadinessPolicySpec
from readiness_operator.model.status import ReadinessPolicyStatus

__all__ = [
    "CRD_FILENAME",
    "PLURAL",
    "PRINTER_COLUMNS",
    "readiness_policy_crd",
    "spec_schema",
    "status_schema",
]

PLURAL = "readinesspolicies"
CRD_FILENAME = f"{GROUP}_{PLURAL}.yaml"

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "MODE", "type": "string", "jsonPath": ".spec.mode"},
    {"name": "TARGETS", "type": "integer", "jsonPath": ".status.targets"},
    {"name": "COMPLIANT", "type": "integer", "jsonPath": ".status.compliant"},
    {"name": "NONCOMPLIANT", "type": "integer", "jsonPath": ".status.noncompliant"},
    {"name": "EXEMPT", "type": "integer", "jsonPath": ".status.exempt"},
    {"name": "SCORE", "type": "integer", "jsonPath": ".status.score"},
    {"name": "READY", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
    {"name": "AGE", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def spec_schema() -> dict[str, Any]:
    """OpenAPI schema of ``spec``."""
    schema = structural_schema(ReadinessPolicySpec.model_json_schema(by_alias=True, mode="validation"))
    schema["description"] = "ReadinessPolicySpec: the desired readiness of the selected Deployments."
    return schema


def status_schema() -> dict[str, Any]:
    """OpenAPI schema of ``status``."""
    return structural_schema(ReadinessPolicyStatus.model_json_schema(by_alias=True, mode="validation"))


def readiness_policy_crd() -> dict[str, Any]:
    """The full ``apiextensions.k8s.io/v1`` CRD object."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": KIND.lower(),
                "shortNames": ["rp"],
                "categories": ["readiness"],
            },
            "scope": "Cluster",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {
                        "openAPIV3Schema": {
                            "description": "ReadinessPolicy turns a production-readiness checklist into "
                            "checks evaluated continuously against the Deployments it selects.",
                            "type": "object",
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(),
                                "status": status_schema(),
                            },
                        }
                    },
                }
            ],
        },
    }
