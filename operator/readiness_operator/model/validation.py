"""Every problem of a ReadinessPolicy object, for the validating webhook on ReadinessPolicies.

The CRD schema (and its CEL rules) catch most mistakes at apply time; the model catches the rest
(unknown check ids with a "did you mean", ``slo:<name>`` references, SLO placeholders and PromQL
brackets, label selector syntax, namespace names) in one :meth:`ReadinessPolicy.model_validate`.
This module only runs it and lists its errors, one line per problem, each starting with the
field's YAML path, in the order the fields appear in the submitted object.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from readiness_operator.model.errors import format_error, is_internal_loc
from readiness_operator.model.spec import ReadinessPolicy

__all__ = ["validate_policy_object"]


def _position(doc: Any, loc: Sequence[int | str]) -> tuple[int, ...]:
    """Where ``loc`` sits in ``doc`` (indexes of keys and items); a missing field sorts last."""
    out: list[int] = []
    node = doc
    for part in loc:
        if is_internal_loc(part):
            continue
        if isinstance(node, Mapping) and part in node:
            out.append(list(node).index(part))
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            out.append(part)
            node = node[part]
        else:
            out.append(sys.maxsize)
            break
    return tuple(out)


def validate_policy_object(obj: Mapping[str, Any]) -> list[str]:
    """Every problem of a ReadinessPolicy object, one message per problem; empty when it is valid."""
    if not isinstance(obj, Mapping):
        return ["<root>: a ReadinessPolicy must be an object"]
    # Ignore status: the operator writes it, and the webhook sees it on status-less UPDATEs.
    body = {k: v for k, v in obj.items() if k != "status"}
    try:
        ReadinessPolicy.model_validate(body)
    except ValidationError as err:
        return [format_error(item) for item in sorted(err.errors(), key=lambda item: _position(body, item["loc"]))]
    return []
