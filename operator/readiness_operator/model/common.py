"""Shared building blocks of the policy model: base config, enums, LabelSelector, names, quantities."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator
from pydantic.alias_generators import to_camel

from readiness_operator.quantity import QUANTITY_PATTERN, parse_quantity
from readiness_operator.severity import Severity

__all__ = [
    "BLOCKING",
    "OPERATORS",
    "KubeModel",
    "LabelKey",
    "LabelSelector",
    "LabelSelectorRequirement",
    "LabelValue",
    "NamespaceName",
    "Quantity",
    "Severity",
    "label_key_problem",
    "label_value_problem",
]

#: The label selector operators Kubernetes knows.
OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class KubeModel(BaseModel):
    """Base for every CRD object: camelCase on the wire, snake_case in Python, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=False,
    )


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


def label_key_problem(key: object) -> str | None:
    """Why ``key`` is not a valid Kubernetes label key (``[prefix/]name``), or None.

    The API server would reject such a selector (or never match it), so the policy is refused early.
    """
    if not isinstance(key, str) or not key:
        return "a label key must be a non-empty string"
    prefix, slash, name = key.rpartition("/")
    if slash:
        if not prefix:
            return "the prefix before '/' must not be empty"
        if len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix):
            return f"prefix {prefix!r} must be a DNS subdomain (lowercase alphanumerics, '-', '.'; at most 253)"
    if len(name) > 63 or not _LABEL_NAME.match(name):
        return (
            f"name {name!r} must be at most 63 characters, start and end with an alphanumeric and contain "
            "only alphanumerics, '-', '_' and '.'"
        )
    return None


def label_value_problem(value: object) -> str | None:
    """Why ``value`` is not a valid Kubernetes label value, or None (empty is valid)."""
    if not isinstance(value, str):
        return "a label value must be a string"
    if value and (len(value) > 63 or not _LABEL_NAME.match(value)):
        return (
            f"value {value!r} must be empty or at most 63 characters, start and end with an alphanumeric and "
            "contain only alphanumerics, '-', '_' and '.'"
        )
    return None


def _rejecting(problem_of: Callable[[object], str | None], what: str) -> Callable[[str], str]:
    """A pydantic after-validator raising ``invalid <what>: <problem>`` for the values ``problem_of`` rejects."""

    def check(value: str) -> str:
        if (problem := problem_of(value)) is not None:
            raise ValueError(f"invalid {what}: {problem}")
        return value

    return check


def _namespace_name(value: str) -> str:
    if len(value) > 63 or not _DNS_LABEL.match(value):
        raise ValueError(f"{value!r} is not a valid namespace name (DNS-1123 label)")
    return value


#: A label key; the schema only bounds its length, the validator names what is wrong with it.
LabelKey = Annotated[str, AfterValidator(_rejecting(label_key_problem, "label key"))]
#: A label value (may be empty).
LabelValue = Annotated[str, AfterValidator(_rejecting(label_value_problem, "label value"))]
#: A namespace name (DNS-1123 label). The schema keeps the looser 253 bound it always had.
NamespaceName = Annotated[str, Field(max_length=253), AfterValidator(_namespace_name)]


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

    key: LabelKey = Field(max_length=317, description="The label key the requirement applies to.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        description="How the key relates to the values."
    )
    values: list[Annotated[LabelValue, Field(max_length=63)]] = Field(
        default_factory=list,
        max_length=64,
        # Validated even when omitted: In/NotIn without values is the commonest selector mistake.
        validate_default=True,
        description="Values for In and NotIn; must be empty for Exists and DoesNotExist.",
    )

    @field_validator("operator", mode="before")
    @classmethod
    def _known_operator(cls, value: Any) -> Any:
        # Before the Literal check, so the message lists the operators in words a user searches for.
        if value not in OPERATORS:
            raise ValueError(f"unknown operator {value!r}; use one of {', '.join(OPERATORS)}")
        return value

    @field_validator("values")
    @classmethod
    def _values_fit_operator(cls, values: list[str], info: ValidationInfo) -> list[str]:
        # A field validator (not a model validator), so it runs even when the key is wrong as well.
        operator = info.data.get("operator")
        if operator in ("In", "NotIn") and not values:
            raise ValueError(f"must not be empty when operator is {operator}")
        if operator in ("Exists", "DoesNotExist") and values:
            raise ValueError(f"must be empty when operator is {operator}")
        return values


class LabelSelector(KubeModel):
    """A standard Kubernetes label selector; all requirements are ANDed, an empty selector matches all."""

    match_labels: dict[LabelKey, LabelValue] = Field(
        default_factory=dict, description="Labels that must all be present with exactly these values."
    )
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list, max_length=32, description="Set-based requirements, ANDed."
    )

    def as_dict(self) -> dict[str, Any]:
        """The Kubernetes JSON shape, for :func:`readiness_operator.selectors.label_selector_matches`."""
        return self.model_dump(by_alias=True, mode="json")
