"""Building blocks for the checks' CEL (the fail-safe ValidatingAdmissionPolicy), next to the checks.

The VAP generator (:mod:`readiness_operator.admission.vap`) defines the variables used here:
``variables.pod`` (the pod template spec), ``variables.containers`` (app containers),
``variables.allContainers`` (init containers, then app containers), ``variables.podLabels``,
``variables.labels`` and ``variables.replicas`` (``spec.replicas``, default 1).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from readiness_operator.checks.base import Cel, CelBuilder

__all__ = [
    "ALL_CONTAINERS",
    "APP_CONTAINERS",
    "dyn_selector",
    "each_container",
    "effective_security",
    "lit",
    "per_container",
]

APP_CONTAINERS = "variables.containers"
ALL_CONTAINERS = "variables.allContainers"


def lit(value: object) -> str:
    """A CEL literal (JSON string/number/list syntax is valid CEL for these)."""
    return json.dumps(value)


def per_container(check_id: str, items: str, cond: str, what: str) -> Cel:
    """``items.all(c, cond)`` with a message naming the containers that fail ``cond``."""
    return Cel(
        expression=f"{items}.all(c, {cond})",
        message=f"{check_id}: every container must {what}",
        message_expression=(
            f"{lit(check_id + ': container(s) ')} + {items}.filter(c, !({cond})).map(c, c.name).join(', ') + "
            f"{lit(' must ' + what)}"
        ),
    )


def each_container(items: str, cond: str | Callable[[Any], str], what: str | Callable[[Any], str]) -> CelBuilder:
    """A :data:`CelBuilder` for a per-container check; ``cond``/``what`` may depend on the rule."""

    def build(check_id: str, rule: Any) -> Cel:
        c = cond(rule) if callable(cond) else cond
        w = what(rule) if callable(what) else what
        return per_container(check_id, items, c, w)

    return build


def effective_security(field: str) -> str:
    """The effective (container, else pod) securityContext field of container ``c`` as an optional."""
    return f"c.?securityContext.?{field}.or(variables.pod.?securityContext.?{field})"


def dyn_selector(sel: str, labels: str) -> str:
    """CEL evaluating a LabelSelector found *in the object* (``sel``) against ``labels``."""
    ml = f"{sel}.?matchLabels.orValue({{}}).all(k, k in {labels} && {labels}[k] == {sel}.matchLabels[k])"
    me = (
        f"{sel}.?matchExpressions.orValue([]).all(e, "
        f"e.operator == 'In' ? (e.key in {labels} && {labels}[e.key] in e.?values.orValue([])) : "
        f"e.operator == 'NotIn' ? !(e.key in {labels} && {labels}[e.key] in e.?values.orValue([])) : "
        f"e.operator == 'Exists' ? e.key in {labels} : "
        f"e.operator == 'DoesNotExist' ? !(e.key in {labels}) : false)"
    )
    return f"({ml} && {me})"
