"""The ReadinessPolicy model (pydantic v2); the CRD and the policy reference are generated from it."""

from readiness_operator.model.admission import AdmissionSettings
from readiness_operator.model.check_ids import CATEGORIES, CATEGORY_OF, CHECK_IDS, SLO_PREFIX
from readiness_operator.model.common import LabelSelector, LabelSelectorRequirement, Quantity, Severity
from readiness_operator.model.errors import format_validation_error
from readiness_operator.model.rules import (
    AntiAffinityRule,
    GracefulShutdownRule,
    HorizontalPodAutoscalerRule,
    ImagesRule,
    PodDisruptionBudgetRule,
    ProbesRule,
    ReplicasRule,
    ResourceBounds,
    ResourcePair,
    ResourcesRule,
    RollingUpdateRule,
    Rules,
    SecurityContextRule,
    TargetUtilization,
)
from readiness_operator.model.slo import OnBreach, PrometheusConfig, SecretKeyRef, Slo
from readiness_operator.model.spec import (
    API_VERSION,
    GROUP,
    KIND,
    VERSION,
    Exemption,
    Match,
    Mode,
    ReadinessPolicy,
    ReadinessPolicySpec,
)
from readiness_operator.model.status import Condition, Offender, ReadinessPolicyStatus

__all__ = [
    "API_VERSION",
    "CATEGORIES",
    "CATEGORY_OF",
    "CHECK_IDS",
    "GROUP",
    "KIND",
    "SLO_PREFIX",
    "VERSION",
    "AdmissionSettings",
    "AntiAffinityRule",
    "Condition",
    "Exemption",
    "GracefulShutdownRule",
    "HorizontalPodAutoscalerRule",
    "ImagesRule",
    "LabelSelector",
    "LabelSelectorRequirement",
    "Match",
    "Mode",
    "Offender",
    "OnBreach",
    "PodDisruptionBudgetRule",
    "ProbesRule",
    "PrometheusConfig",
    "Quantity",
    "ReadinessPolicy",
    "ReadinessPolicySpec",
    "ReadinessPolicyStatus",
    "ReplicasRule",
    "ResourceBounds",
    "ResourcePair",
    "ResourcesRule",
    "RollingUpdateRule",
    "Rules",
    "SecretKeyRef",
    "SecurityContextRule",
    "Severity",
    "Slo",
    "TargetUtilization",
    "format_validation_error",
]
