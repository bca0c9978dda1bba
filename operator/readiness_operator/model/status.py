"""``ReadinessPolicy.status``: small by construction (counts + at most 10 worst offenders)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from readiness_operator.model.common import KubeModel

__all__ = ["MAX_WORST_OFFENDERS", "Condition", "Offender", "ReadinessPolicyStatus"]

MAX_WORST_OFFENDERS = 10
Level = Literal["ready", "nearly-ready", "not-ready", "not-production-ready"]


class Condition(KubeModel):
    """A standard Kubernetes condition (types: Ready, Compliant, PrometheusReachable)."""

    type: str = Field(max_length=316, description="Condition type, e.g. Ready.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(default="", max_length=1024, description="CamelCase reason.")
    message: str = Field(default="", max_length=32768, description="Human readable details.")
    last_transition_time: str | None = Field(
        default=None,
        description="When the status last changed (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="Generation the condition describes."
    )


class Offender(KubeModel):
    """One of the lowest-scoring Deployments."""

    namespace: str = Field(description="Namespace of the Deployment.")
    name: str = Field(description="Name of the Deployment.")
    score: int = Field(ge=0, le=100, description="Readiness score 0-100.")
    level: Level = Field(description="Readiness level.")
    failed_checks: list[str] = Field(default_factory=list, max_length=64, description="Ids of failed checks.")


class ReadinessPolicyStatus(KubeModel):
    """Observed state of the policy across the Deployments it selects."""

    observed_generation: int | None = Field(default=None, ge=0, description="Last generation evaluated.")
    targets: int = Field(default=0, ge=0, description="Deployments selected by the policy.")
    compliant: int = Field(
        default=0, ge=0, description="Selected Deployments without critical/warning failures."
    )
    noncompliant: int = Field(
        default=0, ge=0, description="Selected Deployments with critical/warning failures."
    )
    exempt: int = Field(
        default=0, ge=0, description="Selected Deployments with at least one exempted check."
    )
    report_errors: int = Field(
        default=0, ge=0, description="PolicyReports the API server refused (see the ReportsWritten condition).",
    )
    score: int = Field(default=100, ge=0, le=100, description="Mean readiness score of the targets.")
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=16,
        description="Ready, Compliant, PrometheusReachable and ReportsWritten.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    worst_offenders: list[Offender] = Field(
        default_factory=list,
        max_length=MAX_WORST_OFFENDERS,
        description="The lowest-scoring noncompliant Deployments (at most 10).",
    )
    slos: list[dict[str, Any]] = Field(
        default_factory=list,
        max_length=64,
        description="Per-SLO measurement summaries.",
        json_schema_extra={"items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
    )
    last_evaluated: str | None = Field(
        default=None,
        description="When the policy was last evaluated (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )

    model_config = ConfigDict(frozen=False)
