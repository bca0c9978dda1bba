"""Turn a per-Deployment SLO query into one query for all Deployments (pure string work).

Users write the query for one Deployment, e.g.
    sum(rate(http_requests_total{namespace="{{namespace}}", deployment="{{name}}", code!~"5.."}[5m]))
    / sum(rate(http_requests_total{namespace="{{namespace}}", deployment="{{name}}"}[5m]))
We run it once per interval for every Deployment instead: placeholder matchers become regex
matchers, and every aggregation keeps the namespace and Deployment labels (`sum(...)` becomes
`sum by (namespace, deployment) (...)`, `sum by (le) (...)` becomes `sum by (le, namespace,
deployment) (...)`), so the answer is one series per Deployment.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

_AGGREGATIONS = ("sum", "avg", "min", "max", "count", "group", "stddev", "stdvar")
_MATCHER = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=|!=|=~|!~)\s*"\{\{\s*([^{}]*?)\s*\}\}"')
_AGG_HEAD = re.compile(r"\b(" + "|".join(_AGGREGATIONS) + r")\s*(?:(by|without)\s*\(([^()]*)\)\s*)?\(")
_TRAILING = re.compile(r"\s*(by|without)\s*\(([^()]*)\)")


class QueryError(ValueError):
    """The query cannot be batched; the message says what to change."""


@dataclass(frozen=True)
class BatchQuery:
    promql: str
    namespace_label: str
    name_label: str


def _regex_union(values: Iterable[str]) -> str:
    # re.escape for RE2, then doubled backslashes: the regex sits in a PromQL string literal.
    items = sorted({re.escape(v).replace("\\", "\\\\") for v in values if v})
    return "|".join(items) if items else ".+"


def _closing(text: str, open_index: int) -> int:
    depth = 0
    quote = ""
    for i in range(open_index, len(text)):
        ch = text[i]
        if quote:
            if ch == "\\":
                continue
            if ch == quote:
                quote = ""
            continue
        if ch in "\"'`":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i
    raise QueryError("unbalanced parentheses")


def _group_by(text: str, keep: tuple[str, str]) -> str:
    """Add the keep labels to every aggregation's `by` clause (prefix or trailing form)."""
    out: list[str] = []
    pos = 0
    while True:
        m = _AGG_HEAD.search(text, pos)
        if m is None:
            out.append(text[pos:])
            return "".join(out)
        op, mode, labels = m.group(1), m.group(2), m.group(3)
        open_index = m.end() - 1
        close = _closing(text, open_index)
        inner = _group_by(text[open_index + 1 : close], keep)
        after = close + 1
        trailing = _TRAILING.match(text, after)
        if mode is None and trailing is not None:
            mode, labels, after = trailing.group(1), trailing.group(2), trailing.end()
        if mode == "without":
            dropped = [x.strip() for x in (labels or "").split(",") if x.strip() and x.strip() not in keep]
            head = f"{op} without ({', '.join(dropped)}) ("
        else:
            existing = [x.strip() for x in (labels or "").split(",") if x.strip()]
            head = f"{op} by ({', '.join(existing + [k for k in keep if k not in existing])}) ("
        out.append(text[pos : m.start()] + head + inner + ")")
        pos = after


def _substitute(
    template: str, namespaces: Iterable[str], label_values: Mapping[str, Iterable[str]] | None
) -> tuple[str, dict[str, str]]:
    """Placeholder matchers as regex matchers for every Deployment; (query, placeholder -> label)."""
    found: dict[str, str] = {}

    def replace(m: re.Match[str]) -> str:
        label, op, placeholder = m.group(1), m.group(2), m.group(3)
        if op != "=":
            raise QueryError(f'use {label}="{{{{{placeholder}}}}}" (an equality matcher) for placeholders')
        if placeholder == "namespace":
            found["namespace"] = label
            return f'{label}=~"{_regex_union(namespaces)}"'
        if placeholder == "name":
            found["name"] = label
            return f'{label}=~".+"'
        if placeholder.startswith("labels."):
            values = (label_values or {}).get(placeholder[len("labels."):], ())
            return f'{label}=~"{_regex_union(values)}"'
        raise QueryError(f"unknown placeholder {{{{{placeholder}}}}}")

    promql = _MATCHER.sub(replace, template)
    if "{{" in promql:
        raise QueryError("placeholders are only allowed as label matcher values, e.g. deployment=\"{{name}}\"")
    return promql, found


def placeholder_problem(template: str) -> str | None:
    """Why a placeholder of the query cannot be batched (a metric name, a range, a regex matcher), or None."""
    try:
        _substitute(template, (), None)
    except QueryError as exc:
        return str(exc)
    return None


def batch_query(
    template: str, *, namespaces: Iterable[str] = (), label_values: Mapping[str, Iterable[str]] | None = None
) -> BatchQuery:
    """The one query for all Deployments. `namespaces` narrows `{{namespace}}` (empty: any)."""
    promql, found = _substitute(template, namespaces, label_values)
    if "namespace" not in found or "name" not in found:
        raise QueryError('the query must select by namespace and Deployment, e.g. '
                         'namespace="{{namespace}}", deployment="{{name}}"')
    keep = (found["namespace"], found["name"])
    return BatchQuery(_group_by(promql, keep), found["namespace"], found["name"])
