"""``spec.slos`` and ``spec.prometheus``: objectives measured by Prometheus, judged by the engine."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic.config import JsonDict
from pydantic_core import InitErrorDetails

from readiness_operator.model.common import KubeModel, Severity, label_key_problem
from readiness_operator.model.errors import raise_problems
from readiness_operator.slo.promql import placeholder_problem

__all__ = [
    "DEFAULT_BURN_RATES",
    "DURATION_PATTERN",
    "PLACEHOLDER",
    "BurnRate",
    "Comparison",
    "GaugeSli",
    "LatencySli",
    "OnBreach",
    "PrometheusConfig",
    "RatioSli",
    "SecretKeyRef",
    "Sli",
    "Slo",
    "check_promql_balance",
    "duration_seconds",
    "holds",
    "selector_problem",
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
        "rule": f"!has(self.{level}) || !has(self.{than}) || !has(self.comparison) || ((self.comparison == '<' || "
        f"self.comparison == '<=') ? self.{level} >= self.{than} : self.{level} <= self.{than})",
        "message": f"{level} must be at least as lenient as {than}: >= it for '<'/'<=', <= it for '>'/'>='",
        "fieldPath": f".{level}",
    }


#: A PromQL series selector: `metric{label="v", ...}`, `metric` or `{__name__="m", ...}`.
_SELECTOR = re.compile(r"^\s*([A-Za-z_:][A-Za-z0-9_:]*)?\s*(\{.*\})?\s*$", re.DOTALL)
Selector = Annotated[str, Field(min_length=1, max_length=2048)]


def selector_problem(selector: str) -> str | None:
    """Why a string is not a plain series selector (the SLO model adds the functions around it)."""
    m = _SELECTOR.match(selector)
    if m is None or not (m.group(1) or m.group(2)):
        return (f"{selector!r} is not a series selector such as http_requests_total{{code=~\"5..\"}}: give the "
                "series only; the operator adds increase(...[window]) and the aggregation by namespace and pod")
    if "{{" in selector:
        return "placeholders are not needed here: the operator selects every Deployment's pods itself"
    if (p := check_promql_balance(selector)) is not None:
        return f"broken selector: {p}"
    return None


def _check_selector(value: str | None) -> str | None:
    if value is not None and (problem := selector_problem(value)) is not None:
        raise ValueError(problem)
    return value


class RatioSli(KubeModel):
    """Events: `good` (or `bad`) and `total` counters; each selector may match several series per pod."""

    good: Selector | None = Field(default=None, description="Counter of good events, e.g. "
                                  "`http_requests_total{code!~\"5..\"}`. Exactly one of good and bad.")
    bad: Selector | None = Field(default=None, description="Counter of bad events, e.g. "
                                 "`http_requests_total{code=~\"5..\"}`.")
    total: Selector = Field(description="Counter of all events, e.g. `http_requests_total`.")

    _selectors = field_validator("good", "bad", "total")(_check_selector)

    @model_validator(mode="after")
    def _one_numerator(self) -> RatioSli:
        if (self.good is None) == (self.bad is None):
            raise _at("good", "set exactly one of good and bad (the other is total minus it)")
        return self


class LatencySli(KubeModel):
    """A histogram: the share of requests at or under `below` seconds, or the `quantile` in seconds."""

    bucket: Selector = Field(description="The histogram's bucket series, e.g. "
                             "`http_request_duration_seconds_bucket{job=\"api\"}`.")
    below: float | None = Field(default=None, gt=0, description="Share of requests at or under this many seconds "
                                "(must be one of the histogram's bucket bounds).")
    quantile: float | None = Field(default=None, gt=0, lt=1, description="The latency at this quantile "
                                   "(e.g. 0.99), in seconds, computed from the buckets summed over the pods.")

    _selectors = field_validator("bucket")(_check_selector)

    @model_validator(mode="after")
    def _one_form(self) -> LatencySli:
        if (self.below is None) == (self.quantile is None):
            raise _at("below", "set exactly one of below (share of fast requests) and quantile (a latency)")
        return self


class GaugeSli(KubeModel):
    """A gauge per pod (series of one pod are summed, e.g. its containers), aggregated over the pods."""

    selector: Selector = Field(description="e.g. `container_memory_working_set_bytes{container!=\"\"}`.")
    aggregate: Literal["max", "min", "sum", "avg"] = Field(
        default="max", description="Across the Deployment's pods: max is 'per instance'.")

    _selectors = field_validator("selector")(_check_selector)


class Sli(KubeModel):
    """What is measured, on the labels Prometheus has (`namespace`, `pod`): exactly one form."""

    ratio: RatioSli | None = Field(default=None, description="good (or bad) events / total events.")
    latency: LatencySli | None = Field(default=None, description="From a histogram's buckets.")
    gauge: GaugeSli | None = Field(default=None, description="A per-pod gauge (e.g. working-set memory).")

    @model_validator(mode="after")
    def _one_form(self) -> Sli:
        if sum(x is not None for x in (self.ratio, self.latency, self.gauge)) != 1:
            raise _at("ratio", "set exactly one of ratio, latency and gauge")
        return self

    @property
    def counts_events(self) -> bool:
        """The SLI counts good and bad events (so an objective over a period has a budget)."""
        return self.ratio is not None or (self.latency is not None and self.latency.below is not None)


class BurnRate(KubeModel):
    """A multi-window burn-rate alert (Google SRE workbook, "Alerting on SLOs")."""

    severity: Literal["page", "ticket"] = Field(description="page: Block denies rollouts; ticket: Warn warns.")
    long_window: Duration = Field(description="e.g. 1h.")
    short_window: Duration = Field(description="e.g. 5m (a twelfth of the long one, by the workbook).")
    factor: float = Field(gt=0, le=100000, description="Fires above this burn rate over both windows.")

    @model_validator(mode="after")
    def _short_is_shorter(self) -> BurnRate:
        if duration_seconds(self.short_window) >= duration_seconds(self.long_window):
            raise _at("shortWindow", f"shortWindow ({self.short_window}) must be shorter than longWindow "
                      f"({self.long_window})")
        return self


#: The workbook's defaults for a 30-day period: page at 14.4x (2% of the budget in 1h) and 6x (5% in
#: 6h), ticket at 3x (10% in 1d) and 1x (10% in 3d).
DEFAULT_BURN_RATES = (
    ("page", "1h", "5m", 14.4), ("page", "6h", "30m", 6.0), ("ticket", "1d", "2h", 3.0), ("ticket", "3d", "6h", 1.0),
)
MIN_WINDOW_SECONDS = 10  # an increase() needs two scrapes inside the window
_DEFAULT_RULES = tuple(BurnRate.model_validate({"severity": s, "longWindow": lw, "shortWindow": sw, "factor": f})
                       for s, lw, sw, f in DEFAULT_BURN_RATES)


def _at(field_name: str, message: str) -> ValidationError:
    """A ValidationError located at one field of the model raising it (for model-level rules)."""
    return ValidationError.from_exception_data("problems", [InitErrorDetails(
        type="value_error", loc=(field_name,), input=None, ctx={"error": ValueError(message)})])


def _problems_at(problems: list[tuple[tuple[str | int, ...], str]]) -> None:
    if problems:
        raise ValidationError.from_exception_data("problems", [InitErrorDetails(
            type="value_error", loc=loc, input=None, ctx={"error": ValueError(msg)}) for loc, msg in problems])


class Slo(KubeModel):
    """A named objective for every Deployment the policy selects. Two forms:

    * **objective**: `sli` counts events (`ratio`, or `latency.below`); `objective` percent of them
      must be good over `period`. The operator computes the error budget, its burn rate over the
      `burnRates` windows and the budget remaining per Deployment; `onBreach: Block` freezes rollouts
      while the budget is exhausted or a page alert fires, `Warn` warns at ticket level.
    * **threshold**: `sli` (or a per-Deployment PromQL `query`) gives a value over `window` that must
      satisfy `<comparison> threshold`; `warning`/`critical` grade a breach (at least as lenient as
      `threshold`).

    `sli` selectors use the labels Prometheus has (`namespace`, `pod`): the operator maps pods to their
    Deployment through its ReplicaSets. A `query` uses placeholders `{{namespace}}`, `{{name}}`,
    `{{labels.<key>}}` instead (its series must carry the Deployment's name).
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
    sli: Sli | None = Field(default=None, description="What is measured (exactly one of sli and query).")
    query: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description="Threshold form only: PromQL returning one value per Deployment; placeholders "
        "`{{namespace}}`, `{{name}}`, `{{labels.<key>}}`.",
    )
    objective: float | None = Field(default=None, gt=0, lt=100, description="Objective form: percent of "
                                    "good events over the period, e.g. 99.95.")
    period: Duration = Field(default="30d", description="Objective form: the period the budget is for (>= 1m).")
    burn_rates: list[BurnRate] | None = Field(
        default=None, max_length=8, description="Objective form: the burn-rate alerts (default: the SRE "
        "workbook's page 1h/5m 14.4x and 6h/30m 6x, ticket 1d/2h 3x and 3d/6h 1x).")
    comparison: Comparison | None = Field(
        default=None, description="Threshold form: how the value must relate to the threshold."
    )
    threshold: float | None = Field(default=None, description="Threshold form: e.g. 0.001 with `<` for an "
                                    "error ratio, 2 with `<` for a p99 in seconds.")
    warning: float | None = Field(default=None, description="Breaching this is a warning-level breach.")
    critical: float | None = Field(default=None, description="Breaching this is a critical-level breach.")
    window: Duration = Field(
        default="5m", description="Threshold form: the window rates and ratios of `sli` are taken over."
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
    def _query_problems(cls, query: str | None) -> str | None:
        if query is None:
            return None
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

    @field_validator("period")
    @classmethod
    def _period_at_least_a_minute(cls, period: str) -> str:
        if duration_seconds(period) < 60:
            raise ValueError(f"period {period!r} is shorter than 1m")
        return period

    @field_validator("window")
    @classmethod
    def _window_long_enough(cls, window: str) -> str:
        if duration_seconds(window) < MIN_WINDOW_SECONDS:
            raise ValueError(f"window {window!r} is shorter than {MIN_WINDOW_SECONDS}s (a rate needs two scrapes)")
        return window

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

    @model_validator(mode="after")
    def _form(self) -> Slo:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        if (self.sli is None) == (self.query is None):
            problems.append((("sli",), "set exactly one of sli (on the labels Prometheus has) and query"))
        if self.objective is not None:
            if self.sli is not None and not self.sli.counts_events:
                problems.append((("sli",), "an objective needs an SLI that counts events: ratio, or latency "
                                           "with below (a quantile or a gauge has no error budget: use comparison "
                                           "and threshold)"))
            if self.query is not None:
                problems.append((("query",), "an objective needs sli.ratio or sli.latency.below, not a query"))
            for name in ("comparison", "threshold", "warning", "critical"):
                if getattr(self, name) is not None:
                    problems.append(((name,), f"{name} belongs to the threshold form; with an objective the "
                                              "budget and burn rates decide"))
            period = duration_seconds(self.period)
            for i, rate in enumerate(self.burn_rates or ()):
                for attr, alias in (("long_window", "longWindow"), ("short_window", "shortWindow")):
                    w = getattr(rate, attr)
                    if duration_seconds(w) > period:
                        problems.append((("burnRates", i, alias), f"{w} is longer than the period ({self.period})"))
                    elif duration_seconds(w) < MIN_WINDOW_SECONDS:
                        problems.append((("burnRates", i, alias), f"{w} is shorter than {MIN_WINDOW_SECONDS}s"))
            if self.burn_rates is None and period < duration_seconds("3d"):
                problems.append((("burnRates",), f"the default windows (up to 3d) do not fit a period of "
                                                 f"{self.period}: set burnRates"))
        else:
            if self.burn_rates is not None:
                problems.append((("burnRates",), "burnRates need an objective"))
            for name in ("comparison", "threshold"):
                if getattr(self, name) is None:
                    problems.append(((name,), f"{name} is required without an objective (threshold form)"))
        _problems_at(problems)
        return self

    @property
    def has_budget(self) -> bool:
        return self.objective is not None

    def alert_rules(self) -> list[BurnRate]:
        """The burn-rate alerts in force (the workbook defaults unless overridden)."""
        return list(self.burn_rates) if self.burn_rates is not None else list(_DEFAULT_RULES)

    def render_query(self, namespace: str, name: str, labels: dict[str, str]) -> str:
        """The query for one Deployment (the SLO module may instead aggregate; this is for tests/CLI)."""

        def sub(match: re.Match[str]) -> str:
            key = match.group(1)
            if key == "namespace":
                return namespace
            if key == "name":
                return name
            return labels.get(key.removeprefix("labels."), "")

        return PLACEHOLDER.sub(sub, self.query or "")


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
