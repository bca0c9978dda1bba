"""PolicyReport bodies (wgpolicyk8s.io/v1alpha2) from verdicts: pure, so they are easy to test.

One report per policy and namespace holds one result per Deployment x check. Large namespaces
are split into numbered reports so no object nears etcd's 1.5 MiB limit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, Final

from readiness_operator.engine import Finding
from readiness_operator.model import API_VERSION, KIND
from readiness_operator.model.common import Severity
from readiness_operator.names import MANAGED_BY, MANAGED_BY_LABELS, OVERRIDE_ANNOTATION, POLICY_LABEL

from .objects import deployment_ref
from .state import Judged

REPORT_GROUP = "wgpolicyk8s.io"
REPORT_VERSION = "v1alpha2"
REPORT_PLURAL = "policyreports"
MAX_RESULTS_PER_REPORT = 1000
SOURCE = MANAGED_BY

_SEVERITY: Final[Mapping[Severity, str]] = MappingProxyType(
    {Severity.CRITICAL: "critical", Severity.WARNING: "medium", Severity.INFO: "info"})


def _result(finding: Finding) -> str:
    if finding.status == "pass":
        return "pass"
    if finding.status == "exempt":
        return "skip"
    if finding.status == "unknown":
        return "error"
    return "warn" if finding.severity == Severity.INFO else "fail"


def report_name(policy: str, index: int) -> str:
    base = f"readiness-{policy}"[:240]
    return base if index == 0 else f"{base}-{index}"


def results_for(policy: str, judged: Judged) -> list[dict[str, Any]]:
    verdict = judged.verdict
    seconds = int(judged.since.timestamp())
    common_props: dict[str, str] = {
        "score": str(verdict.score),
        "level": verdict.level,
        "compliant": "true" if verdict.compliant else "false",
    }
    override = ((judged.deployment.get("metadata") or {}).get("annotations") or {}).get(OVERRIDE_ANNOTATION)
    if override:  # admitted through break-glass: the report says so next to each result
        common_props["override"] = str(override)[:256]
    # One reference and timestamp per Deployment, shared by its results (they are only serialised).
    resources = [deployment_ref(judged.deployment)]
    timestamp = {"seconds": seconds, "nanos": 0}
    out = []
    for f in verdict.findings:
        props: dict[str, str] = dict(common_props)
        if f.value is not None:
            props["value"] = repr(f.value)
        if f.threshold is not None:
            props["threshold"] = repr(f.threshold)
        if f.measured_at is not None:
            props["measuredAt"] = f.measured_at.isoformat()
        out.append({
            "policy": policy,
            "rule": f.check,
            "category": f.category,
            "severity": _SEVERITY.get(Severity(f.severity), "info"),
            "result": _result(f),
            "scored": True,
            "source": SOURCE,
            "message": f.message[:1024],
            "timestamp": timestamp,
            "resources": resources,
            "properties": props,
        })
    return out


def build_reports(
    policy: str, policy_uid: str, namespace: str, judged: Iterable[Judged]
) -> list[dict[str, Any]]:
    """The reports for one namespace, Deployments sorted by name, split into bounded chunks."""
    chunks: list[list[dict[str, Any]]] = [[]]
    for item in sorted(judged, key=lambda j: j.verdict.name):
        results = results_for(policy, item)
        if chunks[-1] and len(chunks[-1]) + len(results) > MAX_RESULTS_PER_REPORT:
            chunks.append([])
        chunks[-1].extend(results)
    reports: list[dict[str, Any]] = []
    labels: dict[str, str] = {**MANAGED_BY_LABELS, POLICY_LABEL: policy}
    for index, results in enumerate(chunks):
        summary = {"pass": 0, "fail": 0, "warn": 0, "error": 0, "skip": 0}
        for r in results:
            summary[r["result"]] += 1
        reports.append({
            "apiVersion": f"{REPORT_GROUP}/{REPORT_VERSION}",
            "kind": "PolicyReport",
            "metadata": {
                "name": report_name(policy, index),
                "namespace": namespace,
                "labels": dict(labels),
                "ownerReferences": [{
                    "apiVersion": API_VERSION, "kind": KIND, "name": policy, "uid": policy_uid,
                    "blockOwnerDeletion": False, "controller": True,
                }],
            },
            "scope": {"apiVersion": "v1", "kind": "Namespace", "name": namespace},
            "summary": summary,
            "results": results,
        })
    return reports


def digest(report: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(report, sort_keys=True, default=str).encode()).hexdigest()


def prior_verdicts(report: Mapping[str, Any]) -> dict[tuple[str, str], tuple[bool, int]]:
    """Per-Deployment (compliant, since) recorded in a report, so a restarted operator repeats no
    Event and rewrites no unchanged report."""
    seen: dict[tuple[str, str], tuple[bool, int]] = {}
    for r in report.get("results") or ():
        props = r.get("properties") or {}
        seconds = int((r.get("timestamp") or {}).get("seconds") or 0)
        for res in r.get("resources") or ():
            key = (str(res.get("namespace")), str(res.get("name")))
            if "compliant" in props:
                seen[key] = (props["compliant"] == "true", seconds)
    return seen


def as_written(report: Mapping[str, Any]) -> dict[str, Any]:
    """A report read back from the API server, reduced to the fields `build_reports` sets."""
    meta = report.get("metadata") or {}
    return {
        "apiVersion": report.get("apiVersion"),
        "kind": report.get("kind"),
        "metadata": {k: meta[k] for k in ("name", "namespace", "labels", "ownerReferences") if k in meta},
        "scope": report.get("scope"),
        "summary": report.get("summary"),
        "results": report.get("results"),
    }
