"""Resource requests and limits, on containers, init containers and sidecars.

Every container must set what is required: an unbounded init container can be OOM-killed or starve
its node just like an app container. A container that sets only a limit gets its request defaulted
to the limit by the API server, so it passes the request check. Bounds on *requests* apply to the
pod's effective request, what the scheduler reserves (KEP-753): the larger of the sum of app and
sidecar (restartable init) containers and, for each regular init container, its request plus the
sidecars started before it. So a small migration init container never fails a minimum. Bounds on
*limits* apply to each container. Ephemeral containers cannot be in a pod template (the API server
forbids them), so they are never judged here.

The VAP computes the effective request with CEL's ``quantity(...).asApproximateFloat()`` sums (CEL has
no fold over quantities) and a relative slack of 1e-12 for the doubles' rounding: it agrees with the
exact arithmetic here except for a sum within one part in 10^12 of a bound (1 byte in a terabyte).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from readiness_operator.checks.base import Cel, CelBuilder, Container, Context, Outcome, failed, passed, register
from readiness_operator.checks.cel import ALL_CONTAINERS, SIDECARS, lit, per_container
from readiness_operator.quantity import parse_quantity
from readiness_operator.severity import Severity

if TYPE_CHECKING:
    from readiness_operator.model.rules import ResourceBounds, ResourcesRule

_EXAMPLE = {"cpu": "250m", "memory": "512Mi", "ephemeral-storage": "1Gi"}
_ATTR = {"cpu": "cpu", "memory": "memory", "ephemeral-storage": "ephemeral_storage"}


def _bounds_of(rule: ResourcesRule, kind: str, resource: str) -> ResourceBounds | None:
    bounds: ResourceBounds | None = getattr(getattr(rule, kind), _ATTR[resource])
    return bounds


def _shown(value: Decimal, resource: str) -> str:
    """A quantity for messages: millicores for cpu, Mi (or bytes) otherwise."""
    if resource == "cpu":
        return f"{value * 1000:f}".rstrip("0").rstrip(".") + "m"
    mebi = value / (1 << 20)
    return (f"{mebi:f}".rstrip("0").rstrip(".") + "Mi") if mebi == mebi.to_integral_value() else f"{value:f}"


def effective_request(ctx: Context, resource: str) -> Decimal:
    """What the scheduler reserves for the pod (KEP-753): max(sum(app) + sum(sidecars), for each regular
    init container its request + the sidecars before it). Unset or invalid requests count as 0."""

    def request(c: Container) -> Decimal:
        raw = _value(c, "requests", resource)
        try:
            return parse_quantity(raw) if raw is not None else Decimal(0)
        except ValueError:
            return Decimal(0)

    sidecars = Decimal(0)
    init_peak = Decimal(0)
    for c in ctx.target.init_containers:
        if c.sidecar:
            sidecars += request(c)
        else:
            init_peak = max(init_peak, request(c) + sidecars)
    app = sum((request(c) for c in ctx.target.containers), Decimal(0))
    return max(app + sidecars, init_peak)


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
        if kind == "requests":
            continue  # bounds on requests: the pod's effective request, below
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
    if kind == "requests" and not problems and (bounds.min is not None or bounds.max is not None):
        total = effective_request(ctx, resource)
        shown = _shown(total, resource)
        what = f"the pod's effective {resource} request (app and sidecar containers, or the largest init container)"
        if bounds.min is not None and total < parse_quantity(bounds.min):
            problems.append(
                f"{what} is {shown}, below the minimum {bounds.min}; raise the app containers' "
                f"resources.requests.{resource} to at least {bounds.min} in total"
            )
        if bounds.max is not None and total > parse_quantity(bounds.max):
            problems.append(
                f"{what} is {shown}, above the maximum {bounds.max}; lower the containers' "
                f"resources.requests.{resource} to at most {bounds.max} in total"
            )
    if problems:
        return failed(problems)
    return passed(f"every container sets an acceptable {resource} {kind[:-1]}")


def _enabled(kind: str, resource: str) -> Any:
    def enabled(rule: ResourcesRule) -> bool:
        bounds = _bounds_of(rule, kind, resource)
        return bounds is not None and bounds.active

    return enabled


#: A decimal exponent beyond +-100 (the API server stores 1e400 as "10e399"): parse_quantity calls it
#: invalid, so the CEL does too (CEL's quantity() would accept it).
_EXPONENT_OUT_OF_RANGE = "[eE][+-]?0*([1-9][0-9]{3,}|[2-9][0-9]{2}|1[1-9][0-9]|10[1-9])$"


def _request_float(var: str, resource: str) -> str:
    """CEL: container ``var``'s request (else limit) as a double, 0.0 when unset."""
    value = f"{var}.?resources.?requests[?{lit(resource)}].or({var}.?resources.?limits[?{lit(resource)}])"
    return f"({value}.hasValue() ? quantity(string({value}.value())).asApproximateFloat() : 0.0)"


def _effective_bound_cel(resource: str, bound: str, op: str) -> str:
    """CEL: the pod's effective request (see :func:`effective_request`) compared with ``bound``."""
    # Doubles: 100m + 200m is 0.30000000000000004, so compare with a relative slack of 1e-12 (far below
    # one milli-unit of any real bound, far above the rounding of a sum of a few hundred terms).
    slack = "(1.0 - 1e-12)" if op == ">=" else "(1.0 + 1e-12)"
    limit = f"(quantity({lit(bound)}).asApproximateFloat() * {slack})"
    inits = "variables.pod.?initContainers.orValue([])"
    names = f"{inits}.map(x, x.name)"
    app = f"([0.0] + (variables.containers + {SIDECARS}).map(c, {_request_float('c', resource)})).sum()"
    before = (
        f"([0.0] + {inits}.filter(s, s.?restartPolicy.orValue('') == 'Always' && "
        f"{names}.indexOf(s.name) < {names}.indexOf(i.name)).map(s, {_request_float('s', resource)})).sum()"
    )
    init_i = f"{_request_float('i', resource)} + {before}"
    regular = "i.?restartPolicy.orValue('') != 'Always'"
    if op == ">=":
        return f"({app} >= {limit} || {inits}.exists(i, {regular} && {init_i} >= {limit}))"
    return f"({app} <= {limit} && {inits}.all(i, !({regular}) || {init_i} <= {limit}))"


def _cel(kind: str, resource: str) -> CelBuilder:
    def build(check_id: str, rule: ResourcesRule) -> Cel:
        bounds = _bounds_of(rule, kind, resource)
        assert bounds is not None
        value = f"c.?resources.?{kind}[?{lit(resource)}]"
        if kind == "requests":  # the API server defaults a missing request to the limit
            value = f"{value}.or(c.?resources.?limits[?{lit(resource)}])"
        conds = [f"(!{value}.hasValue() || !string({value}.value()).matches({lit(_EXPONENT_OUT_OF_RANGE)}))"]
        words: list[str] = []
        if bounds.required:
            conds.append(f"{value}.hasValue()")
            words.append(f"set resources.{kind}.{resource}")
        pod_bounds: list[str] = []
        pod_words: list[str] = []
        for bound, op, word in ((bounds.min, ">=", "at least"), (bounds.max, "<=", "at most")):
            if bound is None:
                continue
            if kind == "requests":
                pod_bounds.append(_effective_bound_cel(resource, bound, op))
                pod_words.append(f"{word} {bound}")
                continue
            conds.append(
                f"(!{value}.hasValue() || quantity(string({value}.value())).compareTo(quantity({lit(bound)})) {op} 0)"
            )
            words.append(f"keep resources.{kind}.{resource} {word} {bound}")
        each = per_container(check_id, ALL_CONTAINERS, " && ".join(conds), " and ".join(words) or "have a valid quantity")
        if not pod_bounds:
            return each
        pod_msg = f"{check_id}: the pod's effective {resource} request must be {' and '.join(pod_words)}"
        return Cel(
            f"{each.expression} && {' && '.join(pod_bounds)}",
            f"{each.message}; {pod_msg}",
            f"{lit(check_id + ': ')} + (({each.expression}) ? {lit(pod_msg.removeprefix(check_id + ': '))} : "
            f"{lit('container(s) ')}{(each.message_expression or '').removeprefix(lit(check_id + ': container(s) '))})",
        )

    return build


def _make(kind: str, resource: str, severity: Severity, why: str) -> None:
    where = (
        "the pod's effective request (app and sidecar containers summed, or the largest init container) within "
        if kind == "requests"
        else "each within "
    )
    @register(
        f"{kind}-{resource}",
        category="resources",
        severity=severity,
        title=f"{resource.upper() if resource == 'cpu' else resource.capitalize()} {kind[:-1]}",
        why=why,
        remediation=f"Set `resources.{kind}.{resource}` on every container, init container and sidecar, "
        f"{where}the policy's min/max if it sets them.",
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
        bounds = _bounds_of(rule, kind, resource)
        assert bounds is not None
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
_make(
    "requests",
    "ephemeral-storage",
    Severity.WARNING,
    "Without an ephemeral-storage request the scheduler ignores the pod's scratch space and logs, and a "
    "node under disk pressure evicts it first.",
)
_make(
    "limits",
    "ephemeral-storage",
    Severity.WARNING,
    "Without an ephemeral-storage limit one pod writing logs or temp files can fill the node's disk and get "
    "every pod on it evicted.",
)
