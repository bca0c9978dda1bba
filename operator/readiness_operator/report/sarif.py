"""``-o sarif``: a SARIF 2.1.0 log for code scanning (e.g. GitHub's upload-sarif action).

One rule per check of the catalogue (plus one per SLO of the policy) carrying its title, why it
matters, how to fix it, its category and a default level from its severity; one result per failed
check per Deployment, located at the Deployment's document (or the container a message names) by a
path relative to the working directory, which is the repository root in a CI job.
"""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePath
from typing import Any
from urllib.parse import quote

from readiness_operator.checks import CATALOGUE, SLO_CHECK_ID
from readiness_operator.engine import Finding
from readiness_operator.model.check_ids import SLO_CATEGORY, SLO_PREFIX
from readiness_operator.model.common import Severity
from readiness_operator.report import INFORMATION_URI, TOOL_NAME, Audit, Audited

__all__ = ["SCHEMA_URI", "artifact_uri", "level", "sarif"]

SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
_LEVEL = {Severity.CRITICAL: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
_SECURITY_SEVERITY = {Severity.CRITICAL: "8.0", Severity.WARNING: "5.0", Severity.INFO: "2.0"}


def level(severity: Severity) -> str:
    """SARIF level of a severity: critical -> error, warning -> warning, info -> note."""
    return _LEVEL[severity]


def artifact_uri(file: str, base: Path | None = None) -> str | None:
    """The file as a URI reference relative to ``base`` (default: the working directory).

    None for stdin (no artifact to point at); a ``file://`` URI for files outside ``base``.
    """
    if file in ("-", "<stdin>"):
        return None
    base = (base or Path.cwd()).resolve()
    path = Path(file)
    absolute = path if path.is_absolute() else (Path.cwd() / path)
    try:
        relative = PurePath(absolute.resolve().relative_to(base))
    except ValueError:
        return absolute.resolve().as_uri()
    return quote(relative.as_posix(), safe="/")


def _text(text: str) -> dict[str, str]:
    return {"text": text}


def _rules(audit: Audit) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for check in CATALOGUE.values():
        if check.id == SLO_CHECK_ID:
            continue
        rules.append(_rule(check.id, check.title, check.why, check.remediation, check.category, check.default_severity))
    slo = CATALOGUE[SLO_CHECK_ID]
    for objective in audit.policy.spec.slos:
        rules.append(
            _rule(
                SLO_PREFIX + objective.name,
                f"Service level objective '{objective.name}'",
                slo.why,
                slo.remediation,
                SLO_CATEGORY,
                objective.severity,
            )
        )
    return rules


def _rule(rule_id: str, title: str, why: str, fix: str, category: str, severity: Severity) -> dict[str, Any]:
    properties: dict[str, Any] = {"category": category, "tags": ["readiness", category]}
    if category == "security":
        # GitHub code scanning ranks security alerts (critical/high/medium/low) by this score.
        properties["security-severity"] = _SECURITY_SEVERITY[severity]
    return {
        "id": rule_id,
        "name": rule_id,
        "shortDescription": _text(title.replace("`", "")),
        "fullDescription": _text(why),
        "help": {"text": fix, "markdown": f"**Why:** {why}\n\n**Fix:** {fix}"},
        "defaultConfiguration": {"level": level(severity)},
        "properties": properties,
    }


def _fingerprint(a: Audited, f: Finding) -> str:
    # Stable across line moves, so code scanning keeps one alert per Deployment and check.
    key = f"{a.file}\0{a.verdict.namespace}/{a.verdict.name}\0{f.check}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _result(a: Audited, f: Finding, index: int, base: Path | None) -> dict[str, Any]:
    target = f"{a.verdict.namespace}/{a.verdict.name}"
    location: dict[str, Any] = {
        "logicalLocations": [{"name": a.verdict.name, "fullyQualifiedName": target, "kind": "object"}]
    }
    uri = artifact_uri(a.file, base)
    if uri is not None:
        location["physicalLocation"] = {
            "artifactLocation": {"uri": uri},
            "region": {"startLine": a.line_of(f)},
        }
    return {
        "ruleId": f.check,
        "ruleIndex": index,
        "level": level(f.severity),
        "message": _text(f"Deployment {target}: {f.message}"),
        "locations": [location],
        "partialFingerprints": {"readinessFinding/v1": _fingerprint(a, f)},
        "properties": {
            "namespace": a.verdict.namespace,
            "deployment": a.verdict.name,
            "severity": str(f.severity),
            "category": f.category,
            "score": a.verdict.score,
        },
    }


def sarif(audit: Audit, *, exit_code: int = 0, base: Path | None = None) -> dict[str, Any]:
    """The SARIF log as plain data (dump it as JSON)."""
    rules = _rules(audit)
    index = {r["id"]: i for i, r in enumerate(rules)}
    results = [_result(a, f, index[f.check], base) for a in audit.results for f in a.verdict.failures]
    notes = []
    for sk in audit.skipped:
        note: dict[str, Any] = {"level": "note", "message": _text(f"skipped {sk.file}: {sk.reason}")}
        uri = artifact_uri(sk.file, base)
        if uri is not None:
            note["locations"] = [{"physicalLocation": {"artifactLocation": {"uri": uri}}}]
        notes.append(note)
    s = audit.summary()
    return {
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": TOOL_NAME,
                        "version": audit.version,
                        "semanticVersion": audit.version,
                        "informationUri": INFORMATION_URI,
                        "rules": rules,
                    }
                },
                "invocations": [
                    {"executionSuccessful": True, "exitCode": exit_code, "toolExecutionNotifications": notes}
                ],
                "results": results,
                "properties": {
                    "policy": audit.policy.name,
                    "policySource": audit.policy_source,
                    "deployments": s.deployments,
                    "compliant": s.compliant,
                    "noncompliant": s.noncompliant,
                },
            }
        ],
    }
