"""``spec.slos`` and ``spec.prometheus``: objectives measured by Prometheus, judged by the engine."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator
from pydantic.config import JsonDict

from readiness_operator.model.common import KubeModel, Severity, label_key_problem
from readiness_operator.model.errors import raise_problems
from readiness_operator.slo.promql import placeholder_problem

__all__ = [
    "DURATION_PATTERN",
    "PLACEHOLDER",
    "Comparison",
    "OnBreach",
    "PrometheusConfig",
    "SecretKeyRef",
    "Slo",
    "check_promql_balance",
    "duration_seconds",
    "holds",
]

#: Prometheus duration syntax (``5m``, ``1h30m``, ``30d``).
DURATION_PATTERN = r"^([0-9]+(ms|s|m|h|d|w|y))+$"
_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
#: ``{{namespace}}``, ``{{name}}`` or ``{{labels.<key>}}`` in a query (spaces inside braces allowed).
PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
#: The shortest SLO query interval accepted (0s would query Prometheus in a tight loop).
MIN_INTERVAL_SECONDS = 1
_ALLOWED = "{{namespace}}, {{name}}, {{labels.<key>}}"
_CLOSE = {"(": ")", "[": "]", "{": "}"}
_OPEN = {v: k for k, v in _CLOSE.items()}

Duration = Annotated[str, Field(pattern=DURATION_PATTERN, max_length=32)]
Comparison = Literal["<", "<=", ">", ">="]


def duration_seconds(text: str) -> float:
    """Seconds in a Prometheus duration, for schedulers that need a number."""
    return sum(int(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))


def check_promql_balance(query: str) -> str | None:
    """The first obvious syntax problem of a PromQL expression (brackets, quotes), or None.

    Not a parser: it catches the typos that would otherwise surface only as a Prometheus error at
    the first evaluation, long after the policy was accepted.
    """
    if not query.strip():
        return "the query is empty"
    stack: list[tuple[str, int]] = []
    i, n = 0, len(query)
    while i < n:
        ch = query[i]
        if ch in "\"'`":
            j = i + 1
            while j < n and query[j] != ch:
                j += 2 if ch != "`" and query[j] == "\\" else 1
            if j >= n:
                return f"string starting with {ch} at offset {i} is never closed"
            i = j + 1
            continue
        if ch == "#":  # comment to the end of the line
            end = query.find("\n", i)
            i = n if end < 0 else end
            continue
        if ch in _CLOSE:
            stack.append((ch, i))
        elif ch in _OPEN:
            if not stack:
                return f"{ch!r} at offset {i} closes nothing"
            opened, at = stack.pop()
            if opened != _OPEN[ch]:
                return f"{ch!r} at offset {i} does not match {opened!r} at offset {at}"
        i += 1
    if stack:
        opened, at = stack[-1]
        return f"{opened!r} at offset {at} is never closed"
    return None


def _placeholder_problem(found: str) -> str | None:
    if found in ("namespace", "name"):
        return None
    if found.startswith("labels."):
        if (problem := label_key_problem(found.removeprefix("labels."))) is not None:
            return f"placeholder {{{{{found}}}}} names an invalid label key: {problem}"
        return None
    return f"unknown placeholder {{{{{found}}}}}; allowed: {_ALLOWED}"


def holds(value: float, comparison: str, threshold: float) -> bool:
    """True when ``value <comparison> threshold``: the objective (or a level) is met."""
    if comparison == "<":
        return value < threshold
    if comparison == "<=":
        return value <= threshold
    if comparison == ">":
        return value > threshold
    return value >= threshold


class OnBreach(StrEnum):
    """What a breached SLO does at admission: report, warn, or deny new rollouts (error-budget freeze)."""

    REPORT = "Report"
    WARN = "Warn"
    BLOCK = "Block"


def _order_rule(level: str, than: str) -> JsonDict:
    return {
        "rule": f"!has(self.{level}) || !has(self.{than}) || ((self.comparison == '<' || "
        f"self.comparison == '<=') ? self.{level} >= self.{than} : self.{level} <= self.{than})",
        "message": f"{level} must be at least as lenient as {than}: >= it for '<'/'<=', <= it for '>'/'>='",
        "fieldPath": f".{level}",
    }


class Slo(KubeModel):
    """A named objective: ``query <comparison> threshold`` must hold for the Deployment.

    The query is run once per interval for all Deployments (aggregated by namespace and deployment);
    ``{{namespace}}``, ``{{name}}`` and ``{{labels.<key>}}`` are replaced per Deployment. Optional
    ``warning``/``critical`` thresholds grade a breach; they must be at least as lenient as
    ``threshold`` (for ``<``: threshold <= warning <= critical).
    """

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _order_rule("warning", "threshold"),
                _order_rule("critical", "threshold"),
                _order_rule("critical", "warning"),
            ]
        }
    )

    name: str = Field(
        min_length=1,
        max_length=63,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="Unique name; the check id is `slo:<name>`.",
    )
    query: str = Field(
        min_length=1,
        max_length=4096,
        description="PromQL returning one value per Deployment; placeholders `{{namespace}}`, `{{name}}`, "
        "`{{labels.<key>}}`.",
    )
    comparison: Comparison = Field(
        description="How the value must relate to the threshold for the objective to hold."
    )
    threshold: float = Field(description="The objective, e.g. 0.9995 with `>=` for availability.")
    warning: float | None = Field(default=None, description="Breaching this is a warning-level breach.")
    critical: float | None = Field(default=None, description="Breaching this is a critical-level breach.")
    window: Duration = Field(
        default="5m", description="Evaluation window, available to the query as context."
    )
    interval: Duration = Field(default="60s", description="How often the query runs (at least 1s).")
    on_breach: OnBreach = Field(default=OnBreach.REPORT, description="What a breach does at admission.")
    block_on_unknown: bool = Field(
        default=False, description="With onBreach Block, also deny rollouts while the SLO is Unknown."
    )
    severity: Severity = Field(
        default=Severity.CRITICAL, description="Severity of a breach without graded levels."
    )

    @field_validator("query")
    @classmethod
    def _query_problems(cls, query: str) -> str:
        # Every bad placeholder, else the first bracket/quote problem of the query as it will run.
        problems = [p for found in PLACEHOLDER.findall(query) if (p := _placeholder_problem(found)) is not None]
        if not problems and (p := check_promql_balance(PLACEHOLDER.sub("x", query))) is not None:
            problems.append(f"broken PromQL after substituting placeholders: {p}")
        if not problems and (p := placeholder_problem(query)) is not None:  # one query runs for all Deployments
            problems.append(f"cannot be run for all Deployments at once: {p}")
        raise_problems(problems, query)
        return query

    @field_validator("interval")
    @classmethod
    def _interval_at_least_a_second(cls, interval: str) -> str:
        if duration_seconds(interval) < MIN_INTERVAL_SECONDS:
            raise ValueError(f"interval {interval!r} is shorter than {MIN_INTERVAL_SECONDS}s: every interval "
                             "sends one query per SLO to Prometheus")
        return interval

    @field_validator("warning", "critical")
    @classmethod
    def _levels_ordered(cls, value: float | None, info: ValidationInfo) -> float | None:
        # Per field (comparison, threshold and warning are validated before), so an order problem is
        # reported with the field's path and alongside any other problem of the SLO.
        comparison = info.data.get("comparison")
        if value is None or comparison is None:
            return value
        lower_is_better = comparison in ("<", "<=")
        level = info.field_name
        for than in ("threshold",) if level == "warning" else ("threshold", "warning"):
            other = info.data.get(than)
            if other is not None and ((lower_is_better and value < other) or (not lower_is_better and value > other)):
                rel = ">=" if lower_is_better else "<="
                raise ValueError(f"{level} ({value}) must be {rel} {than} ({other}) when comparison is '{comparison}'")
        return value

    def render_query(self, namespace: str, name: str, labels: dict[str, str]) -> str:
        """The query for one Deployment (the SLO module may instead aggregate; this is for tests/CLI)."""

        def sub(match: re.Match[str]) -> str:
            key = match.group(1)
            if key == "namespace":
                return namespace
            if key == "name":
                return name
            return labels.get(key.removeprefix("labels."), "")

        return PLACEHOLDER.sub(sub, self.query)


class SecretKeyRef(KubeModel):
    """A key in a Secret."""

    namespace: str = Field(max_length=63, description="Namespace of the Secret.")
    name: str = Field(max_length=253, description="Name of the Secret.")
    key: str = Field(max_length=253, description="Key in the Secret's data.")


class PrometheusConfig(KubeModel):
    """How to reach Prometheus for this policy's SLOs (overrides the operator-wide settings)."""

    url: str = Field(
        pattern=r"^https?://", max_length=2048, description="Base URL, e.g. http://prometheus:9090."
    )
    timeout_seconds: int = Field(default=10, ge=1, le=300, description="Per-query timeout.")
    bearer_token_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Bearer token from a Secret."
    )
    insecure_skip_verify: bool = Field(default=False, description="Skip TLS verification (testing only).")
    ca_secret_ref: SecretKeyRef | None = Field(default=None, description="CA bundle (PEM) from a Secret.")
