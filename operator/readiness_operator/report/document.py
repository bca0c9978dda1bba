"""The ``-o json`` / ``-o yaml`` document: design.md's result shape plus where and why.

The contract's keys stay as they were (``results[].{namespace,name,compliant,score,level,findings}``,
``findings[].{check,severity,message}``); everything else is added next to them, so consumers of
the old shape keep working.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any, TextIO

from readiness_operator.engine import Finding
from readiness_operator.report import TOOL_NAME, Audit, Audited, container_named

__all__ = ["document", "write_json"]


def _result(a: Audited) -> dict[str, Any]:
    v = a.verdict
    return {
        "namespace": v.namespace,
        "name": v.name,
        "compliant": v.compliant,
        "score": v.score,
        "level": v.level,
        "file": a.file,
        "line": a.line,
        "findings": [
            {
                "check": f.check,
                "severity": str(f.severity),
                "message": f.message,
                "category": f.category,
                "remediation": f.remediation,
                "file": a.file,
                "line": a.line_of(f),
            }
            for f in v.failures
        ],
    }


def document(audit: Audit) -> dict[str, Any]:
    """The whole report as plain data (dump it as JSON or YAML)."""
    return {"results": [_result(a) for a in audit.results], **_trailer(audit)}


def _trailer(audit: Audit) -> dict[str, Any]:
    s = audit.summary()
    return {
        "summary": {
            "deployments": s.deployments,
            "compliant": s.compliant,
            "noncompliant": s.noncompliant,
            "meanScore": None if s.mean_score is None else round(s.mean_score, 1),
        },
        "policy": {"name": audit.policy.name, "source": audit.policy_source},
        "tool": {"name": TOOL_NAME, "version": audit.version},
        "skipped": [{"file": sk.file, "reason": sk.reason} for sk in audit.skipped],
    }


# ``-o json``: the text ``json.dumps(document(audit), indent=2)`` gives, byte for byte
# (tests/unit/test_report_json.py), written without building the document. Findings are shared
# between Deployments (engine._static_finding), so each one's JSON is encoded once: at 10,000
# Deployments with the full catalogue, building the document and the standard library's indenting
# encoder took 3.3 of the audit's 10.7 s CPU (issue 16, the engine target).

_encode_str = json.encoder.encode_basestring_ascii  # what json.dumps uses (ensure_ascii)


def _float(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)


def _key(key: Any) -> str:
    if isinstance(key, str):
        return _encode_str(key)
    if key is True or key is False or key is None:
        return _encode_str(json.dumps(key))
    if isinstance(key, int):
        return _encode_str(int.__repr__(key))
    if isinstance(key, float):
        return _encode_str(_float(key))
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def _value(value: Any, indent: int, out: list[str]) -> None:
    """`value` as json.dumps(indent=2) writes it at this depth."""
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_encode_str(value))
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        out.append(_float(value))
    elif isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        inner = "\n" + " " * (indent + 2)
        sep = "{" + inner
        for k, v in value.items():
            out.append(sep + _key(k) + ": ")
            _value(v, indent + 2, out)
            sep = "," + inner
        out.append("\n" + " " * indent + "}")
    elif isinstance(value, (list, tuple)):
        if not value:
            out.append("[]")
            return
        inner = "\n" + " " * (indent + 2)
        sep = "[" + inner
        for v in value:
            out.append(sep)
            _value(v, indent + 2, out)
            sep = "," + inner
        out.append("\n" + " " * indent + "]")
    else:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_FINDING = "\n" + " " * 10  # a finding's keys: results[] > findings[] > {}


def _finding_head(f: Finding) -> str:
    return ("{" + _FINDING + '"check": ' + _encode_str(f.check) + "," + _FINDING + '"severity": '
            + _encode_str(str(f.severity)) + "," + _FINDING + '"message": ' + _encode_str(f.message) + ","
            + _FINDING + '"category": ' + _encode_str(f.category) + "," + _FINDING + '"remediation": '
            + _encode_str(f.remediation) + "," + _FINDING + '"file": ')


def _results(audit: Audit) -> Iterator[str]:
    heads: dict[int, tuple[str, tuple[bool, str] | None]] = {}  # id(finding): the audit keeps each alive
    for i, a in enumerate(audit.results):
        v = a.verdict
        out = [",\n    {" if i else "\n    {"]
        for key, value in (("namespace", v.namespace), ("name", v.name), ("compliant", v.compliant),
                           ("score", v.score), ("level", v.level), ("file", a.file), ("line", a.line)):
            out.append(f'\n      "{key}": ')
            _value(value, 6, out)
            out.append(",")
        failures = v.failures
        if not failures:
            out.append('\n      "findings": []\n    }')
            yield "".join(out)
            continue
        out.append('\n      "findings": [')
        file_text: list[str] = []
        _value(a.file, 10, file_text)
        file_json = "".join(file_text)
        for j, f in enumerate(failures):
            cached = heads.get(id(f))
            if cached is None:
                cached = heads[id(f)] = (_finding_head(f), container_named(f.message))
            head, container = cached
            line = a.line_of_container(container)  # Audited.line_of without its search per finding
            out.append(("," if j else "") + "\n        " + head + file_json + "," + _FINDING + '"line": ')
            _value(line, 10, out)
            out.append("\n        }")
        out.append("\n      ]\n    }")
        yield "".join(out)


def write_json(audit: Audit, out: TextIO) -> None:
    """Write ``json.dumps(document(audit), indent=2)`` and a newline, in chunks of ~1,000 results."""
    pending = ['{\n  "results": [']
    any_result = False
    for text in _results(audit):
        any_result = True
        pending.append(text)
        if len(pending) >= 1000:
            out.write("".join(pending))
            pending.clear()
    pending.append("\n  ]" if any_result else "]")
    for key, value in _trailer(audit).items():
        pending.append(",\n  " + _key(key) + ": ")
        _value(value, 2, pending)
    pending.append("\n}\n")
    out.write("".join(pending))
