"""Turn pydantic errors into one line per problem, naming the field by its YAML path."""

from __future__ import annotations

from pydantic import ValidationError

__all__ = ["format_validation_error"]


def format_validation_error(err: ValidationError, prefix: str = "") -> str:
    """``spec.rules.probes.foo: unknown field`` lines, ready for a CLI message or an admission denial."""
    lines = []
    for item in err.errors():
        parts: list[str] = []
        for loc in item["loc"]:
            if isinstance(loc, int):
                parts.append(f"[{loc}]")
            elif loc.startswith(("function-after[", "function-before[", "union[")):  # pydantic internals
                continue
            else:
                parts.append(("." if parts else "") + loc)
        path = prefix + "".join(parts) if parts else prefix.rstrip(".")
        msg = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            msg = "unknown field (not part of the ReadinessPolicy schema)"
        lines.append(f"{path or '<root>'}: {msg}")
    return "\n".join(lines)
