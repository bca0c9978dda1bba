"""Turn pydantic errors into one line per problem, naming the field by its YAML path.

Also the two helpers the validators need to report more than one problem, or a problem next to
the field errors pydantic already found: a validator raising a ``ValidationError`` has its errors
re-rooted at the field being validated by pydantic-core, like errors of a nested model.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails, InitErrorDetails

__all__ = [
    "MAP_FIELDS",
    "format_error",
    "format_validation_error",
    "is_internal_loc",
    "raise_problems",
    "with_problems",
]

#: Fields (by alias and by name) whose children are map keys: ``spec.weights['probe-liveness']``,
#: ``matchLabels['app.kubernetes.io/name']`` (a key may contain dots, so ``.key`` would be ambiguous).
MAP_FIELDS = frozenset({"weights", "matchLabels", "match_labels"})
_INTERNAL = ("function-after[", "function-before[", "function-wrap[", "union[")
_KEY = "[key]"  # pydantic's marker after a dict key whose own validation failed


def is_internal_loc(part: int | str) -> bool:
    """True for the parts of an error location that name pydantic's validators, not a field."""
    return isinstance(part, str) and (part == _KEY or part.startswith(_INTERNAL))


def _path(loc: Sequence[int | str]) -> str:
    parts: list[str] = []
    in_map = False
    for part in loc:
        if is_internal_loc(part):
            continue
        if in_map or isinstance(part, int):
            parts.append(f"[{part!r}]" if in_map else f"[{part}]")
            in_map = False
            continue
        parts.append(("." if parts else "") + part)
        in_map = part in MAP_FIELDS
    return "".join(parts)


def format_error(item: ErrorDetails, prefix: str = "") -> str:
    """One ``path: message`` line for one pydantic error."""
    path = _path(item["loc"])
    path = prefix + path if path else prefix.rstrip(".")
    msg = item["msg"].removeprefix("Value error, ")
    if item["type"] == "extra_forbidden":
        msg = "unknown field (not part of the ReadinessPolicy schema)"
    return f"{path or '<root>'}: {msg}"


def format_validation_error(err: ValidationError, prefix: str = "") -> str:
    """``spec.rules.probes.foo: unknown field`` lines, ready for a CLI message or an admission denial."""
    return "\n".join(format_error(item, prefix) for item in err.errors())


def _problem(message: str, value: Any, loc: tuple[int | str, ...] = ()) -> InitErrorDetails:
    return InitErrorDetails(type="value_error", loc=loc, input=value, ctx={"error": ValueError(message)})


def raise_problems(problems: Sequence[str], value: Any) -> None:
    """Raise every problem of one field at once (a ValueError can carry only one); nothing if empty."""
    if len(problems) == 1:
        raise ValueError(problems[0])
    if problems:
        raise ValidationError.from_exception_data("problems", [_problem(p, value) for p in problems])


def with_problems(err: ValidationError, problems: Iterable[str], value: Any) -> ValidationError:
    """``err`` plus ``problems`` about the validated object as a whole, as one ValidationError.

    For model-level rules that must be reported even when fields have errors (pydantic does not run
    ``mode="after"`` validators then). The field errors keep their type, location and context.
    """
    kept = [
        InitErrorDetails(type=item["type"], loc=item["loc"], input=item["input"], ctx=item.get("ctx", {}))
        for item in err.errors()
    ]
    return ValidationError.from_exception_data(err.title, [*kept, *(_problem(p, value) for p in problems)])
