"""Resource requests and limits, on containers and init containers.

Init containers count because the scheduler reserves max(init, sum(app)) and an unbounded init
container can be OOM-killed or starve its node just like an app container. A container that sets only
a limit gets its request defaulted to the limit by the API server, so it passes the request check.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from readiness_operator.checks.base import Cel, CelBuilder, Container, Context, Outcome, failed, passed, register
from readiness_operator.checks.cel import ALL_CONTAINERS, lit, per_container
from readiness_operator.quantity import parse_quantity
from readiness_operator.severity import Severity

if TYPE_CHECKING:
    from readiness_operator.model.rules import ResourceBounds, ResourcesRule

_EXAMPLE = {"cpu": "250m", "memory": "512Mi"}


def _value(c: Container, kind: str, resource: str) -> Any:
    res: Mapping[str, Any] = c.get("resources") or {}
    value = (res.get(kind) or {}).get(resource)
    if value is None and kind == "requests":
        value = (res.get("limits") or {}).get(resource)
    return value


def _evaluate(ctx: Context, bounds: ResourceBounds, kind: str, resource: str) -> Outcome:
    problems: list[str] = []
    where = f"resources.{kind}.{resource}"
    for c in ctx.target.all_containers():
        raw = _value(c, kind, resource)
        if raw is None:
            if bounds.required:
                suggestion = bounds.min or bounds.max or _EXAMPLE[resource]
                problems.append(
                    f"{c.label} sets no {resource} {kind[:-1]}; set {c.path}.{where} (e.g. {suggestion})"
                )
            continue
        try:
            value = parse_quantity(raw)
        except ValueError:
            problems.append(
                f"{c.label} has an invalid {where} {raw!r}; use a quantity like {_EXAMPLE[resource]}"
            )
            continue
        if bounds.min is not None and value < parse_quantity(bounds.min):
            problems.append(
                f"{c.label} {where} is {raw}, below the minimum {bounds.min}; raise it to at least "
                f"{bounds.min}"
            )
        if bounds.max is not None and value > parse_quantity(bounds.max):
            problems.append(
                f"{c.label} {where} is {raw}, above the maximum {bounds.max}; lower it to at most "
                f"{bounds.max}"
            )
    if problems:
        return failed(problems)
    return passed(f"every container sets an acceptable {resource} {kind[:-1]}")


def _enabled(kind: str, resource: str) -> Any:
    def enabled(rule: ResourcesRule) -> bool:
        bounds: ResourceBounds | None = getattr(getattr(rule, kind), resource)
        return bounds is not None and bounds.active

    return enabled


#: A decimal exponent beyond +-100 (the API server stores 1e400 as "10e399"): parse_quantity calls it
#: invalid, so the CEL does too (CEL's quantity() would accept it).
_EXPONENT_OUT_OF_RANGE = "[eE][+-]?0*([1-9][0-9]{3,}|[2-9][0-9]{2}|1[1-9][0-9]|10[1-9])$"


def _cel(kind: str, resource: str) -> CelBuilder:
    def build(check_id: str, rule: ResourcesRule) -> Cel:
        bounds: ResourceBounds = getattr(getattr(rule, kind), resource)
        value = f"c.?resources.?{kind}[?{lit(resource)}]"
        if kind == "requests":  # the API server defaults a missing request to the limit
            value = f"{value}.or(c.?resources.?limits[?{lit(resource)}])"
        conds = [f"(!{value}.hasValue() || !string({value}.value()).matches({lit(_EXPONENT_OUT_OF_RANGE)}))"]
        words: list[str] = []
        if bounds.required:
            conds.append(f"{value}.hasValue()")
            words.append(f"set resources.{kind}.{resource}")
        for bound, op, word in ((bounds.min, ">=", "at least"), (bounds.max, "<=", "at most")):
            if bound is not None:
                conds.append(
                    f"(!{value}.hasValue() || quantity(string({value}.value())).compareTo(quantity({lit(bound)})) {op} 0)"
                )
                words.append(f"keep resources.{kind}.{resource} {word} {bound}")
        return per_container(check_id, ALL_CONTAINERS, " && ".join(conds), " and ".join(words))

    return build


def _make(kind: str, resource: str, severity: Severity, why: str) -> None:
    @register(
        f"{kind}-{resource}",
        category="resources",
        severity=severity,
        title=f"{resource.upper() if resource == 'cpu' else resource.capitalize()} {kind[:-1]}",
        why=why,
        remediation=f"Set `resources.{kind}.{resource}` on every container and init container, within the "
        "policy's min/max if it sets them.",
        group="resources",
        enabled=_enabled(kind, resource),
        reads={
            "Deployment": (
                "spec.template.spec.containers[].resources",
                "spec.template.spec.initContainers[].resources",
            )
        },
        cel=_cel(kind, resource),
    )
    def check(ctx: Context, rule: ResourcesRule) -> Outcome:
        bounds: ResourceBounds = getattr(getattr(rule, kind), resource)
        return _evaluate(ctx, bounds, kind, resource)

    check.__doc__ = (
        f"Every container and init container sets resources.{kind}.{resource} "
        "(within the policy's min/max when set)."
    )


_make(
    "requests",
    "cpu",
    Severity.WARNING,
    "Without a CPU request the scheduler packs pods onto busy nodes and the pod gets the lowest CPU share "
    "under contention.",
)
_make(
    "requests",
    "memory",
    Severity.CRITICAL,
    "Without a memory request the scheduler can overcommit a node and the pod is the first to be evicted "
    "under memory pressure (BestEffort QoS).",
)
_make(
    "limits",
    "cpu",
    Severity.INFO,
    "A CPU limit caps a runaway container, at the price of throttling; some teams require it for noisy "
    "neighbours.",
)
_make(
    "limits",
    "memory",
    Severity.WARNING,
    "Without a memory limit a leaking container grows until the node runs out of memory and the kernel "
    "kills something else.",
)
