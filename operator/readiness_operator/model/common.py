"""Shared building blocks of the policy model: base config, enums, LabelSelector, quantities."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from readiness_operator.quantity import QUANTITY_PATTERN, parse_quantity

__all__ = [
    "BLOCKING",
    "KubeModel",
    "LabelSelector",
    "LabelSelectorRequirement",
    "Quantity",
    "Severity",
]


class KubeModel(BaseModel):
    """Base for every CRD object: camelCase on the wire, snake_case in Python, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=False,
    )


class Severity(StrEnum):
    """How much a failed check matters: critical and warning failures make a Deployment noncompliant."""

    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


#: Severities whose failure makes a Deployment noncompliant (and denies under Enforce).
BLOCKING: frozenset[Severity] = frozenset({Severity.CRITICAL, Severity.WARNING})


def _quantity_text(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _check_quantity(value: str) -> str:
    parse_quantity(value)
    return value


#: A Kubernetes quantity string such as ``500m`` or ``1Gi`` (ints are accepted and turned into text).
Quantity = Annotated[
    str,
    BeforeValidator(_quantity_text),
    AfterValidator(_check_quantity),
    Field(max_length=64, json_schema_extra={"pattern": QUANTITY_PATTERN}),
]


class LabelSelectorRequirement(KubeModel):
    """A label selector requirement: a key, an operator and (for In/NotIn) values."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0)"
                    " : (!has(self.values) || size(self.values) == 0)",
                    "message": "values must be non-empty for In and NotIn, "
                    "and empty for Exists and DoesNotExist",
                }
            ]
        }
    )

    key: str = Field(max_length=317, description="The label key the requirement applies to.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        description="How the key relates to the values."
    )
    values: list[Annotated[str, Field(max_length=63)]] = Field(
        default_factory=list,
        max_length=64,
        description="Values for In and NotIn; must be empty for Exists and DoesNotExist.",
    )

    @model_validator(mode="after")
    def _values_fit_operator(self) -> LabelSelectorRequirement:
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"values must be non-empty when operator is {self.operator}")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"values must be empty when operator is {self.operator}")
        return self


class LabelSelector(KubeModel):
    """A standard Kubernetes label selector; all requirements are ANDed, an empty selector matches all."""

    match_labels: dict[str, str] = Field(
        default_factory=dict, description="Labels that must all be present with exactly these values."
    )
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list, max_length=32, description="Set-based requirements, ANDed."
    )

    def as_dict(self) -> dict[str, Any]:
        """The Kubernetes JSON shape, for :func:`readiness_operator.selectors.label_selector_matches`."""
        return self.model_dump(by_alias=True, mode="json")
