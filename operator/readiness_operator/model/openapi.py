"""Turn pydantic's JSON Schema into a Kubernetes *structural* OpenAPI v3 schema.

Structural schemas forbid ``$ref``, most ``anyOf`` and ``additionalProperties: false`` next to
``properties``; this module inlines and rewrites so the CRD is generated from the model and cannot
drift from it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["structural_schema"]

_DROP = {"title", "$defs"}


def structural_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Return the structural form of a pydantic ``model_json_schema()`` result."""
    defs: dict[str, Any] = schema.get("$defs", {})
    return _convert(schema, defs)


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _convert(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    node = _resolve(node, defs)
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b.get("type") != "null"]
        outer = {k: v for k, v in node.items() if k != "anyOf"}
        if outer.get("x-kubernetes-int-or-string"):
            branches = []
        if len(branches) == 1:
            inner = _resolve(branches[0], defs)
            # The outer node's description/default win over the referenced type's.
            node = {**inner, **outer}
            return _convert(node, defs)
        if branches:
            raise ValueError(f"cannot express anyOf {node['anyOf']} in a structural schema")
        node = outer
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "default" and value is None:
            continue
        if key == "additionalProperties":
            if value is False:
                continue
            out[key] = _convert(value, defs) if isinstance(value, dict) else value
        elif key == "properties":
            out[key] = {name: _convert(sub, defs) for name, sub in value.items()}
        elif key == "items":
            out[key] = _convert(value, defs)
        elif key == "description":
            out[key] = _clean(value)
        elif key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            # JSON Schema's `exclusiveMinimum: 0` (pydantic's gt=0) is OpenAPI v3.0's minimum + flag.
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        else:
            out[key] = value
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
    elif "type" not in out and "enum" in out:
        out["type"] = "string"
    if "required" in out and "properties" in out:
        out["required"] = [r for r in out["required"] if r in out["properties"]]
    return _ordered(out)


def _clean(text: str) -> str:
    """Docstrings become one-line descriptions (kubectl explain wraps them itself)."""
    return " ".join(text.replace("``", "`").split())


_ORDER = ["description", "type", "format", "enum", "default", "required", "properties"]


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    """Stable, readable key order in the generated YAML."""
    head = {k: node[k] for k in _ORDER if k in node}
    tail = {k: node[k] for k in sorted(node) if k not in head}
    return {**head, **tail}
