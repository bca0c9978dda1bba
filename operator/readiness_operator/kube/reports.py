"""PolicyReport bodies (wgpolicyk8s.io/v1alpha2) from verdicts: pure, so they are easy to test.

Each policy's results in a namespace (one per Deployment x check) are spread over a few small
reports, each holding the Deployments of one *bucket*: a Deployment's bucket comes from a hash of its
name, and a namespace has a power of two of them, about `DEPLOYMENTS_PER_REPORT` Deployments each.
A changed Deployment then rewrites one small report, not its namespace's: the API server's cost of a
write grows with the object (decoding, validating and storing ~1 MB took it about a second), so 100
changed Deployments cost 100 small writes instead of every namespace's reports again (issue 16).
A bucket is still split by *encoded size* (and result count), so no object nears etcd's 1.5 MiB
request limit: long names and many containers make results of very different sizes, and a count
alone let a 60-Deployment namespace produce a 1.8 MB report etcd refused.

Each report is encoded once (`EncodedReport`): the same JSON bytes give the sizes that split it, its
digest and the body sent to the API server (issue 16: serialising a ~1 MB report 3-4 times per write,
and the client walking it again, was most of the operator's CPU while reports were written).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Iterator, Mapping
from functools import cached_property
from types import MappingProxyType
from typing import Any, Final

from readiness_operator.engine import Finding
from readiness_operator.model import API_VERSION, KIND
from readiness_operator.model.common import Severity
from readiness_operator.names import MANAGED_BY, MANAGED_BY_LABELS, OVERRIDE_ANNOTATION, POLICY_LABEL, is_blank

from .objects import deployment_ref
from .state import Judged, Key, OverrideApproval

REPORT_GROUP = "wgpolicyk8s.io"
REPORT_VERSION = "v1alpha2"
REPORT_PLURAL = "policyreports"
MAX_RESULTS_PER_REPORT = 1000
#: About how many Deployments one report holds (at most this many on average per bucket): small enough
#: that a changed Deployment's rewrite is a few tens of KB, large enough that 10,000 Deployments make
#: ~2,000 reports a policy rather than 10,000.
DEPLOYMENTS_PER_REPORT = 8
#: etcd refuses requests over 1.5 MiB (its default --max-request-bytes). A report's JSON stays under
#: 1 MiB, leaving a third for metadata, managedFields (server-side bookkeeping) and etcd's envelope.
MAX_REPORT_BYTES = 1024 * 1024
#: Room kept in each report for everything but its results (metadata, scope, summary).
_ENVELOPE_BYTES = 4096
SOURCE = MANAGED_BY

_SEVERITY: Final[Mapping[Severity, str]] = MappingProxyType(
    {Severity.CRITICAL: "critical", Severity.WARNING: "medium", Severity.INFO: "info"})


class ReportRejected(RuntimeError):
    """The API server refused a report for its size or content (413, 422, etcd "too large"): resending
    the same body cannot succeed, so the caller backs off instead of failing the whole pass."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


#: The one encoding of reports: sorted keys (canonical, so a report read back from the API server, whose
#: keys Go sorts, encodes to the same bytes), ASCII only (a character is a byte: lengths are sizes).
_ENCODER: Final = json.JSONEncoder(sort_keys=True, default=str)
_encode = _ENCODER.encode


#: Namespaces whose reports are built and written at once, over every policy (memory, API load): the
#: reconcile's report slots and the API client's report threads.
REPORT_WRITERS = 4


def encoded_size(obj: Mapping[str, Any]) -> int:
    """Bytes of the JSON sent (what etcd's limit applies to, before its own envelope)."""
    return len(_encode(obj))


class EncodedReport(Mapping[str, Any]):
    """A PolicyReport (read as a mapping) with its JSON body, encoded once: that body is what is sent
    and what `digest` hashes, so nothing serialises the report again to write or compare it."""

    def __init__(self, report: dict[str, Any], body: bytes) -> None:
        self._report = report
        self.body = body

    @classmethod
    def of(cls, report: Mapping[str, Any]) -> EncodedReport:
        """Any report body (e.g. one not built here), encoded."""
        return report if isinstance(report, EncodedReport) else cls(dict(report), _encode(report).encode())

    def __getitem__(self, key: str) -> Any:
        return self._report[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._report)

    def __len__(self) -> int:
        return len(self._report)

    @property
    def key(self) -> tuple[str, str]:
        meta = self._report["metadata"]
        return str(meta["namespace"]), str(meta["name"])

    @cached_property
    def digest(self) -> str:
        """`digest` of the report: the SHA-256 of the body."""
        return hashlib.sha256(self.body).hexdigest()

    @cached_property
    def stable_digest(self) -> str:
        return stable_digest(self._report)


def _result(finding: Finding) -> str:
    if finding.status == "pass":
        return "pass"
    if finding.status == "exempt":
        return "skip"
    if finding.status == "unknown":
        return "error"
    return "warn" if finding.severity == Severity.INFO else "fail"


def report_name(policy: str, bucket: int = 0, part: int = 0) -> str:
    """``readiness-<policy>`` for a namespace's first bucket, ``-<bucket>`` for the others, and
    ``-<bucket>-<part>`` for the rare further parts of a bucket larger than one report."""
    base = f"readiness-{policy}"[:236]
    if part:
        return f"{base}-{bucket}-{part}"
    return base if bucket == 0 else f"{base}-{bucket}"


def bucket_count(deployments: int, per_report: int = DEPLOYMENTS_PER_REPORT) -> int:
    """How many buckets (reports, but for oversized ones) a namespace of this many Deployments has: the
    least power of two giving at most `DEPLOYMENTS_PER_REPORT` each on average. A power of two, so a
    namespace moves to a new count only when it doubles or halves."""
    count = 1
    while count * per_report < deployments:
        count *= 2
    return count


def report_bucket(policy: str, name: str) -> int | None:
    """The bucket a report of ours holds, from its name (`report_name`); None for any other name."""
    base = report_name(policy)
    if name == base:
        return 0
    if not name.startswith(base + "-"):
        return None
    bucket = name[len(base) + 1:].split("-", 1)[0]
    return int(bucket) if bucket.isdigit() else None


def bucket_of(name: str, buckets: int) -> int:
    """The bucket of a Deployment: a hash of its name that every process and restart agrees on."""
    if buckets == 1:
        return 0
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big") % buckets


def approval_applies(judged: Judged, approval: OverrideApproval | None) -> bool:
    """Whether the report records an override for this Deployment: the webhook admitted its current
    generation through one (``approval``), it is still annotated with a reason, and it is noncompliant
    (the override bypasses something). An annotation alone records nothing: a metadata-only edit is
    never judged, so adding one there overrode nothing, whoever added it."""
    if approval is None or judged.verdict.compliant:
        return False
    meta = judged.deployment.get("metadata") or {}
    if is_blank(str((meta.get("annotations") or {}).get(OVERRIDE_ANNOTATION) or "")):
        return False
    return meta.get("generation") == approval.generation


def results_for(policy: str, judged: Judged, approval: OverrideApproval | None = None) -> list[dict[str, Any]]:
    verdict = judged.verdict
    seconds = int(judged.since.timestamp())
    common_props: dict[str, str] = {
        "score": str(verdict.score),
        "level": verdict.level,
        "compliant": "true" if verdict.compliant else "false",
    }
    if approval is not None and approval_applies(judged, approval):
        common_props["override"] = approval.reason.strip()[:256]
        common_props["overrideBy"] = approval.user[:256]
        common_props["overrideGeneration"] = str(approval.generation)
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
        if f.state is not None and f.category == "slo":
            props["state"] = f.state
        props.update(f.detail)
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


def _chunks(
    results_by_deployment: Iterable[list[dict[str, Any]]], max_bytes: int,
) -> list[tuple[list[dict[str, Any]], list[str]]]:
    """Results in order, cut so each chunk's encoded results fit ``max_bytes`` (and the count limit),
    with their encoding: one piece per Deployment, ``", "``-joined as the report's list holds them.

    A Deployment's results stay together when they fit in one report; only a Deployment larger than a
    whole report is cut between its results. Names stay stable: chunk i is always report i.
    """
    budget = max(1, max_bytes - _ENVELOPE_BYTES)
    chunks: list[tuple[list[dict[str, Any]], list[str]]] = [([], [])]
    used = 0

    def fits(size: int, count: int) -> bool:
        results = chunks[-1][0]
        return not results or (used + size <= budget and len(results) + count <= MAX_RESULTS_PER_REPORT)

    for results in results_by_deployment:
        if not results:
            continue
        piece = _encode(results)[1:-1]  # the Deployment's results as they appear inside the report's list
        size = len(piece) + 2  # ", " between list items
        if not fits(size, len(results)):
            chunks.append(([], []))
            used = 0
        if size <= budget and len(results) <= MAX_RESULTS_PER_REPORT:
            chunks[-1][0].extend(results)
            chunks[-1][1].append(piece)
            used += size
            continue
        for result in results:  # larger than a whole report: cut between its results
            piece = _encode(result)
            size = len(piece) + 2
            if not fits(size, 1):
                chunks.append(([], []))
                used = 0
            chunks[-1][0].append(result)
            chunks[-1][1].append(piece)
            used += size
    return chunks


def build_reports(
    policy: str, policy_uid: str, namespace: str, judged: Iterable[Judged], *, max_bytes: int = MAX_REPORT_BYTES,
    approvals: Mapping[Key, OverrideApproval] | None = None,
) -> list[dict[str, Any]]:
    """The reports for one namespace, Deployments sorted by name, each under ``max_bytes`` of JSON."""
    return [dict(r) for r in encode_reports(policy, policy_uid, namespace, judged, max_bytes=max_bytes,
                                            approvals=approvals)]


def encode_reports(
    policy: str, policy_uid: str, namespace: str, judged: Iterable[Judged], *, max_bytes: int = MAX_REPORT_BYTES,
    approvals: Mapping[Key, OverrideApproval] | None = None, only: Collection[int] | None = None,
    per_report: int = DEPLOYMENTS_PER_REPORT,
) -> list[EncodedReport]:
    """`build_reports`, each report with its body: the results' encoding that sized them, in an envelope
    encoded apart, is the whole body (byte for byte the sorted-key JSON of the report). Reports come
    bucket by bucket; within a report, Deployments are sorted by name. ``judged`` is the whole
    namespace (it sets the bucket count); ``only`` keeps just those buckets' reports."""
    items = list(judged)
    buckets = bucket_count(len(items), per_report)
    by_bucket: dict[int, list[Judged]] = {}
    for item in items:
        bucket = bucket_of(item.verdict.name, buckets)
        if only is None or bucket in only:
            by_bucket.setdefault(bucket, []).append(item)
    approvals = approvals or {}
    labels: dict[str, str] = {**MANAGED_BY_LABELS, POLICY_LABEL: policy}
    reports: list[EncodedReport] = []
    for bucket in sorted(by_bucket):
        ordered = sorted(by_bucket[bucket], key=lambda j: j.verdict.name)
        chunks = _chunks((results_for(policy, item, approvals.get((namespace, item.verdict.name)))
                          for item in ordered), max_bytes)
        for part, (results, pieces) in enumerate(chunks):
            if results:
                reports.append(_encoded(policy, policy_uid, namespace, report_name(policy, bucket, part), labels,
                                        results, pieces))
    if not reports and only is None:  # Deployments without a single finding: one empty report says they were judged
        reports.append(_encoded(policy, policy_uid, namespace, report_name(policy), labels, [], []))
    return reports


def _encoded(policy: str, policy_uid: str, namespace: str, name: str, labels: Mapping[str, str],
             results: list[dict[str, Any]], pieces: list[str]) -> EncodedReport:
    summary = {"pass": 0, "fail": 0, "warn": 0, "error": 0, "skip": 0}
    for r in results:
        summary[r["result"]] += 1
    envelope: dict[str, Any] = {
        "apiVersion": f"{REPORT_GROUP}/{REPORT_VERSION}",
        "kind": "PolicyReport",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(labels),
            "ownerReferences": [{
                "apiVersion": API_VERSION, "kind": KIND, "name": policy, "uid": policy_uid,
                "blockOwnerDeletion": False, "controller": True,
            }],
        },
    }
    # Sorted keys: apiVersion, kind, metadata, results, summary.
    body = "".join((_encode(envelope)[:-1], ', "results": [', ", ".join(pieces), '], "summary": ',
                    _encode(summary), "}"))
    return EncodedReport({**envelope, "summary": summary, "results": results}, body.encode())


#: Result properties that move with every measurement. A report whose results differ only in these
#: (and in SLO messages, which quote them, and timestamps) is not rewritten until the next resync:
#: a live value moving a little must not cost one write per namespace per SLO interval.
LIVE_PROPERTIES = frozenset({"value", "measuredAt", "budgetRemaining", "burnRates"})


def digest(report: Mapping[str, Any]) -> str:
    """The digest of everything a report says (of its body as `EncodedReport` sends it)."""
    if isinstance(report, EncodedReport):
        return report.digest
    return hashlib.sha256(_encode(report).encode()).hexdigest()


def stable_digest(report: Mapping[str, Any]) -> str:
    """The digest of what a report decides: verdicts, levels, states, what fired; not live values.

    Only ever compared in memory (a restarted operator digests the reports it reads back), so it hashes
    whatever is cheapest to encode: each result's fields that decide, as a row (a row without keys
    encodes in about half the time of the result). A field outside these rows changes the full
    `digest`, which the resync compares.
    """
    rows = []
    for r in report.get("results") or ():
        props = r.get("properties") or {}
        if not LIVE_PROPERTIES.isdisjoint(props):
            props = {k: v for k, v in props.items() if k not in LIVE_PROPERTIES}
        rows.append((r.get("policy"), r.get("rule"), r.get("category"), r.get("severity"), r.get("result"),
                     r.get("scored"), r.get("source"), None if r.get("category") == "slo" else r.get("message"),
                     r.get("resources"), props))
    envelope = {k: v for k, v in report.items() if k != "results"}
    return hashlib.sha256(_encode([envelope, rows]).encode()).hexdigest()


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


def prior_approvals(report: Mapping[str, Any]) -> dict[Key, OverrideApproval]:
    """The overrides a report recorded (``override``, ``overrideBy``, ``overrideGeneration``), so they
    outlive the Events they came from (Events expire after an hour)."""
    seen: dict[Key, OverrideApproval] = {}
    for r in report.get("results") or ():
        props = r.get("properties") or {}
        generation = str(props.get("overrideGeneration") or "")
        if "override" not in props or not generation.isdigit():
            continue
        for res in r.get("resources") or ():
            key = (str(res.get("namespace")), str(res.get("name")))
            seen[key] = OverrideApproval(str(props.get("overrideBy") or ""), str(props["override"]), int(generation))
    return seen


def as_written(report: Mapping[str, Any]) -> dict[str, Any]:
    """A report read back from the API server, reduced to the fields `build_reports` sets."""
    meta = report.get("metadata") or {}
    return {
        "apiVersion": report.get("apiVersion"),
        "kind": report.get("kind"),
        "metadata": {k: meta[k] for k in ("name", "namespace", "labels", "ownerReferences") if k in meta},
        "summary": report.get("summary"),
        "results": report.get("results"),
        # No `scope`: a report holds many Deployments, each result names its own (a report written by an
        # older version with a Namespace scope differs, so it is rewritten once without it).
        **({"scope": report["scope"]} if "scope" in report else {}),
    }
