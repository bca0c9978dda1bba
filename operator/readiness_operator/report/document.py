"""The ``-o json`` / ``-o yaml`` document: design.md's result shape plus where and why.

The contract's keys stay as they were (``results[].{namespace,name,compliant,score,level,findings}``,
``findings[].{check,severity,message}``); everything else is added next to them, so consumers of
the old shape keep working.
"""

from __future__ import annotations

from typing import Any

from readiness_operator.report import TOOL_NAME, Audit, Audited

__all__ = ["document"]


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
    s = audit.summary()
    return {
        "results": [_result(a) for a in audit.results],
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
