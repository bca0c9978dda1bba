"""Full validation of a ReadinessPolicy object, for the validating webhook on ReadinessPolicies.

The CRD schema (and its CEL rules) catch most mistakes at apply time; this catches the rest and
explains all of them, each message naming the field by its YAML path:

* every pydantic model error (types, unknown fields, ranges) via ``format_validation_error``;
* unknown check ids in ``exemptions[].checks`` and ``weights`` keys (with a "did you mean");
* ``slo:<name>`` references to SLOs the policy does not define;
* SLO query placeholders other than ``{{namespace}}``, ``{{name}}``, ``{{labels.<key>}}`` (and label keys
  that are not valid Kubernetes label keys);
* PromQL that is obviously broken after placeholder substitution: unbalanced ``()[]{}``, unterminated
  strings, an empty query;
* label selectors that are invalid (unknown operator, values given for Exists/DoesNotExist or missing
  for In/NotIn, label keys/values that break Kubernetes syntax) and namespace names that are not
  DNS-1123 labels.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from readiness_operator.model.check_ids import CATEGORIES, CHECK_IDS, SLO_PREFIX
from readiness_operator.model.errors import format_validation_error
from readiness_operator.model.slo import PLACEHOLDER
from readiness_operator.model.spec import ReadinessPolicy

__all__ = ["check_promql_balance", "label_key_problem", "label_value_problem", "validate_policy_object"]

_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
_KNOWN_CHECKS = ", ".join(CHECK_IDS)
_CLOSE = {"(": ")", "[": "]", "{": "}"}
_OPEN = {v: k for k, v in _CLOSE.items()}


def label_key_problem(key: object) -> str | None:
    """Why ``key`` is not a valid Kubernetes label key (``[prefix/]name``), or None."""
    if not isinstance(key, str) or not key:
        return "a label key must be a non-empty string"
    prefix, slash, name = key.rpartition("/")
    if slash:
        if not prefix:
            return "the prefix before '/' must not be empty"
        if len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix):
            return f"prefix {prefix!r} must be a DNS subdomain (lowercase alphanumerics, '-', '.'; at most 253)"
    if len(name) > 63 or not _NAME.match(name):
        return (
            f"name {name!r} must be at most 63 characters, start and end with an alphanumeric and contain "
            "only alphanumerics, '-', '_' and '.'"
        )
    return None


def label_value_problem(value: object) -> str | None:
    """Why ``value`` is not a valid Kubernetes label value, or None (empty is valid)."""
    if not isinstance(value, str):
        return "a label value must be a string"
    if value and (len(value) > 63 or not _NAME.match(value)):
        return (
            f"value {value!r} must be empty or at most 63 characters, start and end with an alphanumeric and "
            "contain only alphanumerics, '-', '_' and '.'"
        )
    return None


def check_promql_balance(query: str) -> str | None:
    """The first obvious syntax problem of a PromQL expression (brackets, quotes), or None."""
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


def _suggest(value: str, options: list[str]) -> str:
    close = difflib.get_close_matches(value, options, n=1, cutoff=0.6)
    return f'did you mean "{close[0]}"? ' if close else ""


def _selector(sel: Any, path: str, out: list[str]) -> None:
    if sel is None:
        return
    if not isinstance(sel, Mapping):
        out.append(f"{path}: must be a label selector object")
        return
    labels = sel.get("matchLabels") or {}
    if isinstance(labels, Mapping):
        for key, value in labels.items():
            if (p := label_key_problem(key)) is not None:
                out.append(f"{path}.matchLabels[{key!r}]: invalid label key: {p}")
            if (p := label_value_problem(value)) is not None:
                out.append(f"{path}.matchLabels[{key!r}]: invalid label value: {p}")
    exprs = sel.get("matchExpressions") or []
    if not isinstance(exprs, list):
        return
    for i, expr in enumerate(exprs):
        at = f"{path}.matchExpressions[{i}]"
        if not isinstance(expr, Mapping):
            out.append(f"{at}: must be an object with key, operator and values")
            continue
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if (p := label_key_problem(key)) is not None:
            out.append(f"{at}.key: invalid label key: {p}")
        if op not in _OPERATORS:
            out.append(f"{at}.operator: unknown operator {op!r}; use one of {', '.join(_OPERATORS)}")
            continue
        if not isinstance(values, list):
            out.append(f"{at}.values: must be a list")
            continue
        if op in ("In", "NotIn") and not values:
            out.append(f"{at}.values: must not be empty when operator is {op}")
        if op in ("Exists", "DoesNotExist") and values:
            out.append(f"{at}.values: must be empty when operator is {op}")
        for j, value in enumerate(values):
            if (p := label_value_problem(value)) is not None:
                out.append(f"{at}.values[{j}]: invalid label value: {p}")


def _namespaces(values: Any, path: str, out: list[str]) -> None:
    if not isinstance(values, list):
        return
    for i, ns in enumerate(values):
        if not isinstance(ns, str) or len(ns) > 63 or not _DNS_LABEL.match(ns):
            out.append(f"{path}[{i}]: {ns!r} is not a valid namespace name (DNS-1123 label)")


def _spec_problems(spec: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    raw_slos = spec.get("slos")
    slos: list[Any] = raw_slos if isinstance(raw_slos, list) else []
    slo_names: list[str] = [s["name"] for s in slos if isinstance(s, Mapping) and isinstance(s.get("name"), str)]
    slo_refs = [SLO_PREFIX + n for n in slo_names]
    known_refs = [*CHECK_IDS, *slo_refs, "*"]
    known_text = _KNOWN_CHECKS + (", " + ", ".join(slo_refs) if slo_refs else "") + ", slo:<name>, *"

    match = spec.get("match")
    if isinstance(match, Mapping):
        _namespaces(match.get("namespaces"), "spec.match.namespaces", out)
        _namespaces(match.get("excludeNamespaces"), "spec.match.excludeNamespaces", out)
        _selector(match.get("namespaceSelector"), "spec.match.namespaceSelector", out)
        _selector(match.get("selector"), "spec.match.selector", out)

    exemptions = spec.get("exemptions")
    for i, ex in enumerate(exemptions if isinstance(exemptions, list) else []):
        if not isinstance(ex, Mapping):
            continue
        checks = ex.get("checks")
        for j, ref in enumerate(checks if isinstance(checks, list) else []):
            at = f"spec.exemptions[{i}].checks[{j}]"
            if not isinstance(ref, str):
                out.append(f"{at}: must be a string")
            elif ref.startswith(SLO_PREFIX):
                if ref not in slo_refs:
                    have = ", ".join(slo_refs) or "none"
                    out.append(f'{at}: "{ref}" names no SLO in spec.slos (defined: {have})')
            elif ref != "*" and ref not in CHECK_IDS:
                out.append(f'{at}: unknown check id "{ref}"; {_suggest(ref, known_refs)}known: {known_text}')
        _namespaces(ex.get("namespaces"), f"spec.exemptions[{i}].namespaces", out)
        _selector(ex.get("selector"), f"spec.exemptions[{i}].selector", out)

    weights = spec.get("weights")
    if isinstance(weights, Mapping):
        keys = [*CHECK_IDS, *CATEGORIES, *slo_refs]
        for key in weights:
            at = f"spec.weights[{key!r}]"
            if not isinstance(key, str):
                out.append(f"{at}: keys must be strings")
            elif key.startswith(SLO_PREFIX):
                if key not in slo_refs:
                    out.append(f'{at}: "{key}" names no SLO in spec.slos')
            elif key not in CHECK_IDS and key not in CATEGORIES:
                out.append(
                    f'{at}: unknown check id or category "{key}"; {_suggest(key, keys)}known: {_KNOWN_CHECKS}; '
                    f"categories: {', '.join(CATEGORIES)}; or slo:<name>"
                )

    for i, slo in enumerate(slos):
        if not isinstance(slo, Mapping) or not isinstance(slo.get("query"), str):
            continue
        at = f"spec.slos[{i}].query"
        query: str = slo["query"]
        bad = False
        for found in PLACEHOLDER.findall(query):
            if found in ("namespace", "name"):
                continue
            if found.startswith("labels."):
                key = found.removeprefix("labels.")
                if (p := label_key_problem(key)) is not None:
                    out.append(f"{at}: placeholder {{{{{found}}}}} names an invalid label key: {p}")
                    bad = True
                continue
            out.append(
                f"{at}: unknown placeholder {{{{{found}}}}}; allowed: {{{{namespace}}}}, {{{{name}}}}, {{{{labels.<key>}}}}"
            )
            bad = True
        if not bad:
            rendered = PLACEHOLDER.sub("x", query)
            if (p := check_promql_balance(rendered)) is not None:
                out.append(f"{at}: broken PromQL after substituting placeholders: {p}")
    return out


def _path_of(line: str) -> str:
    return line.split(": ", 1)[0]


def validate_policy_object(obj: Mapping[str, Any]) -> list[str]:
    """Every problem of a ReadinessPolicy object, one message per problem; empty when it is valid."""
    if not isinstance(obj, Mapping):
        return ["<root>: a ReadinessPolicy must be an object"]
    spec = obj.get("spec")
    own = _spec_problems(spec) if isinstance(spec, Mapping) else []
    # Ignore status (the operator writes it; the webhook may see it on status-less UPDATEs) and
    # server-populated metadata, which the model does not restrict.
    body = {k: v for k, v in obj.items() if k != "status"}
    try:
        ReadinessPolicy.model_validate(body)
    except ValidationError as err:
        own_paths = [_path_of(line) for line in own]
        for line in format_validation_error(err).splitlines():
            path = _path_of(line)
            if path in ("spec", "<root>"):
                if "names no SLO" in line and any("names no SLO" in o for o in own):
                    continue
            elif any(p.startswith(path) or path.startswith(p) for p in own_paths):
                continue
            own.append(line)
    return own
