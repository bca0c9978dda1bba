"""``ReadinessPolicy`` and its spec: what to select, which rules apply, SLOs and exemptions."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.config import JsonDict

from readiness_operator.model.admission import AdmissionSettings
from readiness_operator.model.check_ids import CATEGORIES, CHECK_IDS, SLO_PREFIX
from readiness_operator.model.common import KubeModel, LabelSelector, NamespaceName
from readiness_operator.model.errors import with_problems
from readiness_operator.model.rules import Rules
from readiness_operator.model.slo import PrometheusConfig, Slo
from readiness_operator.model.status import ReadinessPolicyStatus

__all__ = [
    "API_VERSION",
    "GROUP",
    "KIND",
    "VERSION",
    "Exemption",
    "Match",
    "Mode",
    "ReadinessPolicy",
    "ReadinessPolicySpec",
]

GROUP = "readiness.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ReadinessPolicy"

_ID_LIST = ", ".join(f"'{c}'" for c in CHECK_IDS)
_CATEGORY_LIST = ", ".join(f"'{c}'" for c in CATEGORIES)
_KNOWN_CHECKS = ", ".join(CHECK_IDS)

#: The SLO names of the spec being validated (as written, even if an SLO has other errors), so
#: ``slo:<name>`` references are checked where they are written and reported with the other field
#: errors. None outside a spec (an Exemption validated on its own checks only the reference's shape).
_DEFINED_SLOS: ContextVar[tuple[str, ...] | None] = ContextVar("defined_slos", default=None)


def _did_you_mean(value: str, options: list[str]) -> str:
    close = difflib.get_close_matches(value, options, n=1, cutoff=0.6)
    return f'did you mean "{close[0]}"? ' if close else ""


def _slo_reference_problem(ref: str, defined: tuple[str, ...] | None) -> str | None:
    """Why ``slo:<name>`` is no valid reference (None when the defined SLOs are not known here)."""
    name = ref.removeprefix(SLO_PREFIX)
    if defined is None:
        return None if name else "an SLO reference needs a name: slo:<name>"
    if name in defined:
        return None
    have = ", ".join(SLO_PREFIX + n for n in defined) or "none"
    return f'"{ref}" names no SLO in spec.slos (defined: {have})'


def _check_ref(value: str) -> str:
    if value == "*" or value in CHECK_IDS:
        return value
    defined = _DEFINED_SLOS.get()
    if value.startswith(SLO_PREFIX):
        if (problem := _slo_reference_problem(value, defined)) is not None:
            raise ValueError(problem)
        return value
    refs = [SLO_PREFIX + n for n in defined or ()]
    known = ", ".join([*CHECK_IDS, *refs, "slo:<name>", "*"])
    raise ValueError(f'unknown check id "{value}"; {_did_you_mean(value, [*CHECK_IDS, *refs, "*"])}known: {known}')


def _weight_key(key: str) -> str:
    if key in CHECK_IDS or key in CATEGORIES:
        return key
    defined = _DEFINED_SLOS.get()
    if key.startswith(SLO_PREFIX):
        if (problem := _slo_reference_problem(key, defined)) is not None:
            raise ValueError(problem)
        return key
    options = [*CHECK_IDS, *CATEGORIES, *(SLO_PREFIX + n for n in defined or ())]
    raise ValueError(
        f'unknown check id or category "{key}"; {_did_you_mean(key, options)}known: {_KNOWN_CHECKS}; '
        f"categories: {', '.join(CATEGORIES)}; or slo:<name>"
    )


def _slo_names(data: Any) -> list[str]:
    """The names in a raw spec's ``slos``, skipping entries too broken to have one."""
    slos = data.get("slos") if isinstance(data, Mapping) else None
    if not isinstance(slos, list):
        return []
    return [s["name"] for s in slos if isinstance(s, Mapping) and isinstance(s.get("name"), str)]


#: A Deployment-name glob both the engine (fnmatch) and the fail-safe CEL (RE2) read the same way:
#: DNS characters, ``*``, ``?`` and ``[...]``/``[!...]`` classes of DNS characters with ascending ranges.
_NAME_GLOB = re.compile(r"(?:[a-z0-9.*?-]|\[!?[a-z0-9.-]+\])+")
_CLASS = re.compile(r"\[!?([^\]]+)\]")


def _name_glob(value: str) -> str:
    problem = None
    if not _NAME_GLOB.fullmatch(value):
        problem = "use lowercase DNS characters, *, ? and [...] classes (e.g. legacy-[ab]*)"
    else:
        for body in _CLASS.findall(value):
            if any(a > b for a, b in re.findall(r"(.)-(.)", body.lstrip("!"))):
                problem = "a [...] range must ascend (e.g. [a-c], not [c-a])"
    if problem is not None:
        raise ValueError(f'"{value}" is not a Deployment name glob: {problem}')
    return value


CheckRef = Annotated[str, Field(max_length=80), AfterValidator(_check_ref)]
WeightKey = Annotated[str, AfterValidator(_weight_key)]
Name = Annotated[str, Field(max_length=253), AfterValidator(_name_glob)]


class Mode(StrEnum):
    """What the policy does at admission: deny (Enforce), warn (Warn) or nothing (Audit)."""

    ENFORCE = "Enforce"
    WARN = "Warn"
    AUDIT = "Audit"


class Match(KubeModel):
    """Which Deployments the policy selects. All given criteria must hold; an empty match selects all."""

    namespaces: list[NamespaceName] = Field(
        default_factory=list, max_length=256, description="Only these namespaces (empty: all)."
    )
    exclude_namespaces: list[NamespaceName] = Field(
        default_factory=list, max_length=256, description="Never these namespaces."
    )
    namespace_selector: LabelSelector | None = Field(default=None, description="Namespace labels must match.")
    selector: LabelSelector | None = Field(default=None, description="Deployment labels must match.")


class Exemption(KubeModel):
    """Skip checks for some Deployments, with a reason and an optional expiry.

    All given criteria must hold (an omitted criterion matches everything). ``names`` are globs:
    ``*``, ``?`` and ``[...]`` classes. Once ``expires`` has passed the exemption is ignored and findings say so.
    """

    checks: list[CheckRef] = Field(
        min_length=1,
        max_length=64,
        description="Check ids to exempt, `slo:<name>` for an SLO, or `*` for every check.",
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": f"self.all(c, c == '*' || c.startsWith('{SLO_PREFIX}') || c in [{_ID_LIST}])",
                    "message": "unknown check id; use a catalogue id (see docs/checks.md), "
                    "'slo:<name>' or '*'",
                }
            ]
        },
    )
    namespaces: list[NamespaceName] = Field(
        default_factory=list, max_length=256, description="Namespaces (empty: any)."
    )
    names: list[Name] = Field(
        default_factory=list, max_length=256, description="Deployment names or globs: `*`, `?`, `[ab]`, `[!0-9]` (empty: any)."
    )
    selector: LabelSelector | None = Field(default=None, description="Deployment labels must match.")
    reason: str = Field(min_length=1, max_length=1024, description="Why the exemption exists (required).")
    expires: datetime | None = Field(
        default=None, description="RFC 3339 time after which the exemption is ignored."
    )

    @field_validator("expires")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


_WEIGHT_KEY_RULE: JsonDict = {
    "rule": f"self.all(k, k.startsWith('{SLO_PREFIX}') || k in [{_ID_LIST}] || k in [{_CATEGORY_LIST}])",
    "message": "weights keys must be check ids, categories or 'slo:<name>'",
}


class ReadinessPolicySpec(KubeModel):
    """The desired readiness of the selected Deployments."""

    # (No CRD rule for the wildcard-expiry check: over 128 exemptions x 64 checks it exceeds the
    # API server's CEL cost budget; the policy webhook enforces it with the model's message.)

    mode: Mode = Field(default=Mode.AUDIT, description="Enforce denies, Warn warns, Audit only reports.")
    match: Match = Field(default_factory=Match, description="Which Deployments the policy selects.")
    rules: Rules = Field(default_factory=Rules, description="Rule groups; an absent group is not evaluated.")
    weights: dict[WeightKey, Annotated[int, Field(ge=0, le=1000)]] = Field(
        default_factory=dict,
        description="Score weight per check id, category or `slo:<name>` (default: critical 3, warning 2, "
        "info 1). A check id beats its category.",
        json_schema_extra={"maxProperties": 64, "x-kubernetes-validations": [_WEIGHT_KEY_RULE]},
    )
    slos: list[Slo] = Field(
        default_factory=list,
        max_length=32,
        description="Service level objectives measured by Prometheus.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    prometheus: PrometheusConfig | None = Field(
        default=None, description="Prometheus connection for the SLOs."
    )
    exemptions: list[Exemption] = Field(default_factory=list, max_length=128, description="Exemptions.")
    admission: AdmissionSettings = Field(
        default_factory=AdmissionSettings,
        description="Admission behaviour: unchanged updates, who may override, fail-safe CEL policy.",
    )
    allow_permanent_wildcard_exemptions: bool = Field(
        default=False,
        description="Allow exemptions of every check (`checks: ['*']`) without `expires`. Off: such an "
        "exemption silently makes every Deployment it selects compliant, so it must end or be meant.",
    )

    @model_validator(mode="after")
    def _wildcards_expire(self) -> ReadinessPolicySpec:
        """A ``*`` exemption without ``expires`` needs ``allowPermanentWildcardExemptions: true``."""
        if self.allow_permanent_wildcard_exemptions:
            return self
        for i, e in enumerate(self.exemptions):
            if "*" in e.checks and e.expires is None:
                raise ValueError(
                    f"exemptions[{i}].expires: an exemption of every check ('*') needs an expiry; set "
                    "expires, name the checks, or set spec.allowPermanentWildcardExemptions: true"
                )
        return self


    @model_validator(mode="wrap")
    @classmethod
    def _cross_checked(cls, data: Any, handler: ModelWrapValidatorHandler[ReadinessPolicySpec]) -> ReadinessPolicySpec:
        """Validate with the spec's SLO names in view, and report duplicate names with any other error."""
        names = _slo_names(data)
        dupes = sorted({n for n in names if names.count(n) > 1})
        problems = [f"slos: duplicate name(s) {', '.join(dupes)}"] if dupes else []
        token = _DEFINED_SLOS.set(tuple(dict.fromkeys(names)))
        try:
            spec = handler(data)
        except ValidationError as err:
            if not problems:
                raise
            raise with_problems(err, problems, data) from None
        finally:
            _DEFINED_SLOS.reset(token)
        if problems:
            raise ValueError(problems[0])
        return spec


class ReadinessPolicy(KubeModel):
    """A ReadinessPolicy object as stored in the cluster (or read from a file by the CLI)."""

    model_config = ConfigDict(extra="forbid")

    api_version: Literal["readiness.dev/v1alpha1"] = Field(
        default="readiness.dev/v1alpha1", alias="apiVersion"
    )
    kind: Literal["ReadinessPolicy"] = "ReadinessPolicy"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: ReadinessPolicySpec = Field(default_factory=ReadinessPolicySpec)
    status: ReadinessPolicyStatus | None = None

    @property
    def name(self) -> str:
        """metadata.name, or empty for an unnamed policy read from a file."""
        return str(self.metadata.get("name", ""))
