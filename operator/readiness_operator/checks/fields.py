"""The object fields the catalogue reads, and trimming an object to them (for the operator's indexes).

Derived from each check's ``reads`` and :data:`~readiness_operator.checks.base.CONTEXT_READS`, so a
new check's fields are kept without touching ``kube/``. Path syntax: dotted keys, ``[]`` after a key
for a list of objects (``spec.template.spec.containers[].image``); a path keeps everything below it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import Any

from readiness_operator.checks.base import CATALOGUE, CONTEXT_READS

__all__ = ["FieldTree", "field_tree", "fields_read", "trim"]

#: key -> None (keep the whole value) or (is a list of objects, subtree).
FieldTree = dict[str, "tuple[bool, FieldTree] | None"]


def fields_read(kind: str) -> tuple[str, ...]:
    """Every path of ``kind`` that the context or some check reads, sorted, without duplicates."""
    paths = set(CONTEXT_READS.get(kind, ()))
    for check in CATALOGUE.values():
        paths.update(check.reads.get(kind, ()))
    return tuple(sorted(paths))


def field_tree(paths: Iterable[str]) -> FieldTree:
    """The paths as a tree; a shorter path that keeps a whole value wins over longer ones below it."""
    tree: FieldTree = {}
    for path in sorted(paths, key=lambda p: p.count(".")):
        node: FieldTree | None = tree
        parts = path.split(".")
        for i, part in enumerate(parts):
            assert node is not None
            key, is_list = (part[:-2], True) if part.endswith("[]") else (part, False)
            if key in node and node[key] is None:
                break  # already kept whole
            if i == len(parts) - 1:
                node[key] = None
                break
            entry = node.get(key)
            if entry is None:
                entry = (is_list, {})
                node[key] = entry
            elif is_list and not entry[0]:
                entry = (True, entry[1])
                node[key] = entry
            node = entry[1]
    return tree


#: Strings up to this length are shared between trimmed objects (keys, "IfNotPresent", "100m", "TCP").
SHARED_STRING_MAX = 32


_intern = sys.intern


def _shared(value: Any) -> Any:
    """``value`` with its keys and short strings shared process-wide (``sys.intern``).

    Every watched object arrives as its own parsed JSON, so each of 10,000 Deployments holds its own
    copy of "imagePullPolicy", "RuntimeDefault" ...; sharing them keeps ~27% less per trimmed
    Deployment. Interned strings are freed when no object uses them any more.
    """
    kind = type(value)
    if kind is str:
        return _intern(value) if len(value) <= SHARED_STRING_MAX else value
    if kind is dict or isinstance(value, Mapping):
        return {_intern(k) if type(k) is str else k: _shared(v) for k, v in value.items()}
    if kind is list:
        return [_shared(v) for v in value]
    return value


def trim(obj: Mapping[str, Any], tree: FieldTree) -> dict[str, Any]:
    """A copy of ``obj`` with only the fields in ``tree`` (malformed values are kept as they are),
    its strings shared with other trimmed objects (see ``_shared``)."""
    out: dict[str, Any] = {}
    for key, entry in tree.items():
        if key not in obj:
            continue
        value = obj[key]
        if entry is None:
            out[key] = _shared(value)
        elif entry[0] and isinstance(value, list):
            out[key] = [trim(item, entry[1]) if isinstance(item, Mapping) else _shared(item) for item in value]
        elif isinstance(value, Mapping):
            out[key] = trim(value, entry[1])
        else:
            out[key] = _shared(value)
    return out
