"""One reconcile pass of one policy: re-judge what is dirty, then write only what changed.

Separated from kopf (handlers.py) the way controller-runtime separates Reconcile from I/O: the
cluster is read through a `ClusterView` and written through a `Writer`, both replaceable in tests,
and a pass returns when it wants to run again (`PassResult.requeue_after`).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pydantic import ValidationError

from readiness_operator.engine import DeploymentVerdict, Finding, evaluate, matches, remeasure
from readiness_operator.model import PrometheusConfig, ReadinessPolicySpec, ReadinessPolicyStatus
from readiness_operator.model.slo import PLACEHOLDER, duration_seconds
from readiness_operator.model.status import Condition
from readiness_operator.names import MANAGED_BY_LABELS, OVERRIDE_ANNOTATION, OVERRIDE_EVENT_LABEL, POLICY_LABEL, is_blank
from readiness_operator.report.overview import policy_overview
from readiness_operator.slo.budget import SloBudget
from readiness_operator.slo.sli import OwnerOf
from readiness_operator.slo.store import EVERYTHING, QueryFn, SloStore
from readiness_operator.summary import fold_verdicts, summarize
from readiness_operator.world import ClusterView, SloMeasurement, Worlds

from .metrics import OperatorMetrics
from .objects import deployment_ref
from .reports import (
    REPORT_WRITERS,
    EncodedReport,
    ReportRejected,
    approval_applies,
    as_written,
    bucket_count,
    bucket_of,
    digest,
    encode_reports,
    prior_approvals,
    prior_verdicts,
    report_bucket,
    stable_digest,
)
from .state import DEFAULT_RESYNC_SECONDS, Dirty, Judged, Key, OverrideApproval, PolicyRuntime, ReportFailure

log = logging.getLogger(__name__)
BATCH = 250  # Deployments judged between two yields to the event loop (watches, webhook)


class Writer(Protocol):
    async def patch_policy_status(self, name: str, status: Mapping[str, Any]) -> None: ...
    async def policy_reports_available(self) -> bool: ...
    async def list_policy_reports(self, policy: str) -> list[dict[str, Any]]: ...
    async def put_policy_report(self, report: Mapping[str, Any]) -> None: ...
    async def delete_policy_report(self, namespace: str, name: str) -> None: ...
    async def post_event(
        self, involved: Mapping[str, Any], *, reason: str, message: str, warning: bool = False,
        labels: Mapping[str, str] | None = None,
    ) -> None: ...


class ApprovalReader(Protocol):
    async def list_override_approvals(self) -> dict[Key, OverrideApproval]: ...


class VerdictEventReader(Protocol):
    async def last_verdict_events(self, policy: str) -> dict[tuple[str, str, str], str]: ...


SloLookup = Callable[[str, Key], Mapping[str, SloMeasurement]]
#: How long a noncompliant Deployment carrying an override reason but no recorded approval is looked
#: up again (the replica that admitted it posts its Event just after answering), and how often.
APPROVAL_WAIT_SECONDS, APPROVAL_POLL_SECONDS = 60.0, 3.0
RESYNC_SECONDS = DEFAULT_RESYNC_SECONDS  # per runtime: settings.resync_seconds


@dataclass(frozen=True)
class PassInput:
    name: str
    uid: str
    generation: int | None
    spec: Mapping[str, Any]
    status: Mapping[str, Any]


@dataclass(frozen=True)
class PassResult:
    patched: bool  # the status was written
    requeue_after: float  # seconds until the next pass is due even if nothing is marked dirty


def _no_slos(policy: str, key: Key) -> Mapping[str, SloMeasurement]:
    return {}


def _status_dict(status: ReadinessPolicyStatus) -> dict[str, Any]:
    return status.model_dump(by_alias=True, exclude_none=True, mode="json")


def _comparable(status: Mapping[str, Any] | None) -> dict[str, Any]:
    """Status without the fields that change on every pass, to decide whether to patch."""
    return {k: v for k, v in (status or {}).items() if k != "lastEvaluated"}


def _previous(status: Mapping[str, Any]) -> ReadinessPolicyStatus | None:
    try:
        return ReadinessPolicyStatus.model_validate(dict(status)) if status else None
    except ValidationError:
        return None


def _compile(runtime: PolicyRuntime, item: PassInput) -> None:
    """Take this generation's plan from the cache; a new one re-judges everything. An invalid spec
    is reported in status, never raised."""
    entry = runtime.policies.get(item.name, item.generation, item.spec)
    if entry is not runtime.entry:
        runtime.entry = entry
        runtime.dirty.everything = True


def _candidates(runtime: PolicyRuntime, dirty: Dirty, view: ClusterView) -> set[Key]:
    if dirty.everything:
        keys = {(ns, str(d["metadata"]["name"])) for ns in view.namespaces() for d in view.deployments(ns)}
        return keys | set(runtime.judged)
    keys = set(dirty.keys)
    for ns in dirty.namespaces:
        keys.update((ns, str(d["metadata"]["name"])) for d in view.deployments(ns))
        keys.update(k for k in runtime.judged if k[0] == ns)
    return keys


def _outcome(finding: Finding) -> Finding:
    """A finding without its measurement (value, when, and the message quoting the value)."""
    if finding.measured_at is None and finding.value is None:
        return finding
    return replace(finding, value=None, measured_at=None, message="")


def only_measurement_moved(old: DeploymentVerdict, new: DeploymentVerdict) -> bool:
    """Same verdict, score and finding outcomes; only SLO measurements (value, time) differ.

    Such a re-judgement keeps the recorded verdict: rewriting a namespace's PolicyReports because a
    value moved in its last digits, or an Unknown was re-confirmed at a later time, made every SLO tick
    and every resync rewrite hundreds of reports on an idle cluster (issue 16). The report keeps the
    value with the time it was measured; status.slos and the metrics carry the latest measurement.
    """
    if (old.compliant, old.score, old.level, len(old.findings)) != (new.compliant, new.score, new.level, len(new.findings)):
        return False
    return all(a == b or _outcome(a) == _outcome(b) for a, b in zip(old.findings, new.findings, strict=True))


@dataclass
class _Transition:
    judged: Judged
    was_compliant: bool | None
    freeze: Finding | None = None  # an objective SLO entering (frozen) or leaving its freeze
    frozen: bool = False


def _freezing(findings: Iterable[Finding]) -> dict[str, Finding]:
    """The objective SLOs at page level (their finding says what fired): a Block gate's freeze."""
    return {f.check: f for f in findings if f.state == "critical" and any(k == "firing" for k, _ in f.detail)}


async def judge(
    runtime: PolicyRuntime, view: ClusterView, now: datetime, slos: SloLookup = _no_slos,
    metrics: OperatorMetrics | None = None,
) -> tuple[set[Key], list[_Transition]]:
    """Re-evaluate dirty Deployments; returns namespaces whose results changed and verdict flips."""
    assert runtime.compiled is not None
    plan = runtime.compiled
    dirty = runtime.take_dirty()
    if dirty.everything:
        runtime.full_pass_at = now
    keys = _candidates(runtime, dirty, view)
    remeasured = dirty.measured - keys  # only their SLO findings are judged again
    keys |= dirty.measured
    by_ns: dict[str, dict[str, Mapping[str, Any]]] = {}

    one: Callable[[str, str], Mapping[str, Any] | None] | None = getattr(view, "deployment", None)

    def lookup(key: Key) -> Mapping[str, Any] | None:
        if one is not None:  # the reader's view looks one up directly
            return one(*key)
        if key[0] not in by_ns:  # else index each namespace once per pass
            by_ns[key[0]] = {str(d["metadata"]["name"]): d for d in view.deployments(key[0])}
        return by_ns[key[0]].get(key[1])

    worlds = Worlds(view, now, slos, live=True)  # the living cluster: live checks are judged
    changed: set[Key] = set()
    transitions: list[_Transition] = []
    for i, key in enumerate(sorted(keys)):
        if i and i % BATCH == 0:
            await asyncio.sleep(0)
        ns = key[0]
        deployment = lookup(key)
        old = runtime.judged.get(key)
        verdict = None
        if key in remeasured and old is not None and deployment is not None and old.deployment is deployment:
            # Unchanged object (the reader replaces one on change) and nothing related marked: still
            # matched, and only the SLO findings can differ.
            verdict = remeasure(plan, old.verdict, deployment, worlds.measurements_of(deployment, runtime.name))
        if verdict is None:
            if deployment is None or not matches(plan, deployment, worlds.namespace_labels(ns)):
                if old is not None:
                    del runtime.judged[key]
                    runtime.judged_changes += 1
                    changed.add(key)
                runtime.prior.pop(key, None)
                continue
            verdict = evaluate(plan, deployment, worlds.of(deployment, runtime.name))
        assert deployment is not None  # remeasured: the kept object itself
        if metrics is not None:
            metrics.evaluations.inc()
        if old is not None and old.deployment == deployment and (
                old.verdict == verdict or only_measurement_moved(old.verdict, verdict)):
            continue
        prior = runtime.prior.pop(key, None)
        if old is not None:
            was: bool | None = old.verdict.compliant
            since = old.since if old.verdict == verdict else now
        else:
            was = prior[0] if prior is not None else None
            since = datetime.fromtimestamp(prior[1], UTC) if prior is not None and prior[0] == verdict.compliant else now
        judged = runtime.judged[key] = Judged(verdict, deployment, since)
        runtime.judged_changes += 1
        changed.add(key)
        if was != verdict.compliant:
            transitions.append(_Transition(judged, was))
        if old is not None:  # the freeze starting or lifting is news even when compliance does not flip
            before, after = _freezing(old.verdict.findings), _freezing(verdict.findings)
            transitions += [_Transition(judged, was, after[c], True) for c in sorted(after.keys() - before.keys())]
            transitions += [_Transition(judged, was, before[c], False) for c in sorted(before.keys() - after.keys())]
    return changed, transitions


def _invalid_status(runtime: PolicyRuntime, now: datetime, previous: ReadinessPolicyStatus | None) -> dict[str, Any]:
    since = now.isoformat().replace("+00:00", "Z")
    for old in previous.conditions if previous else ():
        if old.type == "Ready" and old.status == "False" and old.reason == "InvalidPolicy" and old.last_transition_time:
            since = old.last_transition_time
    condition = Condition.model_validate({
        "type": "Ready", "status": "False", "reason": "InvalidPolicy", "message": runtime.invalid or "",
        "lastTransitionTime": since, "observedGeneration": runtime.generation,
    })
    status = _status_dict(ReadinessPolicyStatus(observed_generation=runtime.generation, conditions=[condition]))
    del status["score"]  # an invalid policy has no score (not a perfect one)
    return status


def _describe_failure(finding: Finding) -> str:
    """A check id, plus the measurement for SLOs: value, objective and when it was measured."""
    detail = dict(finding.detail)
    if "firing" in detail:  # an objective: what fired, the budget left and the burn rates
        return (f"{finding.check} (objective {detail['objective']}% over {detail['period']}, budget remaining "
                f"{float(detail['budgetRemaining']):.1%}, firing: {detail['firing']}, burn rates {detail['burnRates']})")
    if finding.value is None or finding.threshold is None:
        return finding.check
    when = f" at {finding.measured_at.isoformat()}" if finding.measured_at is not None else ""
    return f"{finding.check} (measured {finding.value:g}, objective {finding.threshold:g}{when})"


def verdict_event_labels(policy: str) -> dict[str, str]:
    """The labels of a ReadinessCompliant/ReadinessNoncompliant Event, to find a policy's Events by."""
    return {**MANAGED_BY_LABELS, OVERRIDE_EVENT_LABEL: "verdict", POLICY_LABEL: policy}


_REASONS = {True: "ReadinessCompliant", False: "ReadinessNoncompliant"}


async def _not_posted_yet(writer: Writer, policy: str, transitions: list[_Transition]) -> list[_Transition]:
    """The flips of a new leader's first pass that no earlier leader already posted.

    A leader posts a flip's Event before its PolicyReport records the new verdict; killed in between,
    it leaves a report the next leader reads as the old verdict, and the flip would be posted twice.
    The last verdict Event of each Deployment (one list by label) says what was already told.
    """
    reader = getattr(writer, "last_verdict_events", None)
    if reader is None or not transitions:
        return transitions
    try:
        told: dict[tuple[str, str, str], str] = await reader(policy)
    except Exception as exc:  # cannot tell: post (a duplicate beats a lost flip)
        log.warning("policy %s: could not list verdict Events: %s", policy, exc)
        return transitions
    out = []
    for t in transitions:
        ref = deployment_ref(t.judged.deployment)
        key = (str(ref.get("namespace")), str(ref.get("name")), str(ref.get("uid") or ""))
        if told.get(key) != _REASONS[t.judged.verdict.compliant]:
            out.append(t)
    return out


async def _write_events(writer: Writer, policy: str, transitions: list[_Transition]) -> None:
    semaphore = asyncio.Semaphore(8)

    async def one(t: _Transition) -> None:
        v = t.judged.verdict
        if t.freeze is not None:
            reason = "ErrorBudgetFreeze" if t.frozen else "ErrorBudgetFreezeLifted"
            text = (f"is frozen by ReadinessPolicy {policy!r}: {_describe_failure(t.freeze)}" if t.frozen else
                    f"is no longer frozen by ReadinessPolicy {policy!r}: {t.freeze.check} is below page level")
        elif v.compliant:
            reason, text = "ReadinessCompliant", f"now complies with ReadinessPolicy {policy!r} (score {v.score}, {v.level})"
        else:
            reason = "ReadinessNoncompliant"
            text = (f"does not comply with ReadinessPolicy {policy!r} (score {v.score}, {v.level}); failed: "
                    + ", ".join(_describe_failure(f) for f in v.failures))
        async with semaphore:
            await writer.post_event(deployment_ref(t.judged.deployment), reason=reason, message=f"Deployment {text}",
                                    warning=t.frozen or (t.freeze is None and not v.compliant),
                                    labels=verdict_event_labels(policy))

    await asyncio.gather(*(one(t) for t in transitions))


#: How long a pass keeps writing reports after new work arrived (or an SLO query fell due) before it
#: leaves the rest to the next pass. Yielding after a single report starved them: 2,000 Deployments'
#: status updates from the controller-manager (20 a second) woke a pass every ~0.25 s, and the
#: namespace's 256 reports took over a minute at one per pass (CI, stop 24).
REPORT_SLICE_SECONDS = 0.5
#: Backoff of a refused report: 10s, 20s, 40s... at most 15 minutes (its content may change meanwhile).
REPORT_RETRY_FIRST, REPORT_RETRY_MAX = 10.0, 900.0


def _report_backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(REPORT_RETRY_MAX, REPORT_RETRY_FIRST * 2 ** max(0, attempts - 1)))


async def _put_report(
    writer: Writer, runtime: PolicyRuntime, report: EncodedReport, now: datetime, metrics: OperatorMetrics | None
) -> bool:
    """Write one report unless it was refused and its backoff has not passed; False when not written."""
    key = report.key
    d = report.stable_digest
    failure = runtime.report_failures.get(key)
    if failure is not None and now < failure.retry_at:
        return False
    try:
        await writer.put_policy_report(report)
    except ReportRejected as exc:
        attempts = failure.attempts + 1 if failure is not None else 1
        runtime.report_failures[key] = ReportFailure(d, attempts, str(exc), now + _report_backoff(attempts))
        if metrics is not None:
            metrics.report_write_errors.labels(policy=runtime.name).inc()
        log.error("policy %s: PolicyReport %s/%s refused (attempt %d, next in %s): %s", runtime.name, *key, attempts,
                  _report_backoff(attempts), exc)
        return False
    runtime.report_failures.pop(key, None)
    runtime.written_reports[key] = d
    runtime.written_live[key] = report.digest
    return True


async def _write_reports(
    writer: Writer, runtime: PolicyRuntime, now: datetime | None = None, metrics: OperatorMetrics | None = None,
    more_urgent: Callable[[], bool] = lambda: False, slots: asyncio.Semaphore | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Write the pending namespaces' reports whose content changed, delete the ones no longer wanted.

    Namespace by namespace (a few at once): a policy over 10,000 Deployments has ~150,000 results,
    so building every report before writing any would hold them all in memory at once. When new
    work arrives meanwhile (the runtime is woken), the namespaces not started yet stay pending for
    the next pass, so a status update never waits behind minutes of report writes: only the reports
    already being sent are finished, and reports are sent for at least `REPORT_SLICE_SECONDS` a pass
    (and at least one), so they keep pace under a steady stream of changes. A report the API
    server refuses is not resent until its backoff passes; its namespace stays pending until then.
    ``more_urgent`` (an SLO query falling due) stops it the same way: minutes of first report writes
    must not hold the SLO ticks back (issue 16 saw no Prometheus query for a whole idle minute).
    ``slots`` is shared by every policy's passes (the operator context's `report_slots`): four policies'
    first passes then hold four namespaces' reports in memory at once, not sixteen (issue 16, ~50 MB at
    10,000 Deployments); the API server stores them no faster sixteen at a time.
    """
    if not runtime.reports_pending:
        return  # most passes of an idle cluster: nothing to group the verdicts for
    now = now or datetime.now(UTC)
    namespaces = sorted(runtime.reports_pending)
    resync = runtime.full_pass_at == now  # a full pass also brings the live values up to date
    by_ns: dict[str, list[Judged]] = {}
    for (ns, _), judged in runtime.judged.items():
        if ns in runtime.reports_pending:
            by_ns.setdefault(ns, []).append(judged)
    written_by_ns: dict[str, list[tuple[str, str]]] = {}
    for key in runtime.written_reports:
        if key[0] in runtime.reports_pending:
            written_by_ns.setdefault(key[0], []).append(key)
    semaphore = slots if slots is not None else asyncio.Semaphore(REPORT_WRITERS)
    started = 0
    sent = 0
    began = clock()

    def interrupted() -> bool:
        # New work came in (or an SLO query is due) and this pass has had its slice of report
        # writing: what is not sent yet waits for the next pass, whose status goes first.
        return (runtime.wake.is_set() or more_urgent()) and clock() - began >= REPORT_SLICE_SECONDS

    def yield_now() -> bool:
        return sent > 0 and interrupted()  # one report a pass is always sent

    async def one(ns: str) -> None:
        nonlocal started, sent
        async with semaphore:
            if started and interrupted():
                return  # the next pass continues with this namespace
            started += 1
            wanted: set[tuple[str, str]] = set()
            complete = True
            items = by_ns.get(ns) or []
            buckets = bucket_count(len(items))
            dirty = runtime.reports_dirty.get(ns)
            only: set[int] | None = None  # None: every report of the namespace is built
            if dirty is not None and not resync and runtime.report_buckets.get(ns) == buckets:
                only = {bucket_of(name, buckets) for name in dirty}
            if items:
                for report in encode_reports(runtime.name, runtime.uid, ns, items, approvals=runtime.approvals,
                                             only=only):
                    key = report.key
                    wanted.add(key)
                    if runtime.written_reports.get(key) != report.stable_digest or (
                            resync and runtime.written_live.get(key) != report.digest):
                        if yield_now():
                            return  # partly written: stays pending, the next pass skips what is written
                        sent += 1
                        complete = await _put_report(writer, runtime, report, now, metrics) and complete

            def unwanted(key: tuple[str, str]) -> bool:  # of a bucket built here, and not built again
                return key not in wanted and (only is None or report_bucket(runtime.name, key[1]) in only)

            for key in written_by_ns.get(ns, ()):
                if unwanted(key):
                    await writer.delete_policy_report(*key)
                    runtime.written_reports.pop(key, None)
                    runtime.written_live.pop(key, None)
            for key in [k for k in runtime.report_failures if k[0] == ns and unwanted(k)]:
                del runtime.report_failures[key]  # no longer wanted: nothing left to retry
            if complete:
                runtime.report_written(ns, buckets)

    await asyncio.gather(*(one(ns) for ns in namespaces))


def label_values(spec: ReadinessPolicySpec, deployments: Iterable[Mapping[str, Any]]) -> dict[str, set[str]]:
    """The values of each `{{labels.<key>}}` the SLO queries use, over the given Deployments, so the
    batched query selects them all."""
    keys = {p.split(".", 1)[1] for s in spec.slos for p in PLACEHOLDER.findall(s.query or "") if p.startswith("labels.")}
    if not keys:
        return {}
    labels = [(d.get("metadata") or {}).get("labels") or {} for d in deployments]
    return {k: {str(item.get(k, "")) for item in labels} for k in keys}


def _with_report_errors(
    status: dict[str, Any], runtime: PolicyRuntime, now: datetime, previous: ReadinessPolicyStatus | None
) -> dict[str, Any]:
    """Status with ``reportErrors`` and a ``ReportsWritten`` condition when any report was refused."""
    out = {**status, "conditions": [c for c in status.get("conditions") or () if c.get("type") != "ReportsWritten"]}
    failures = runtime.report_failures
    out["reportErrors"] = len(failures)  # always set: the CRD schema defaults it to 0 on read anyway
    if not failures:
        return out
    since = now.isoformat().replace("+00:00", "Z")
    for old in previous.conditions if previous else ():
        if old.type == "ReportsWritten" and old.status == "False" and old.last_transition_time:
            since = old.last_transition_time
    (ns, name), first = sorted(failures.items())[0]
    out["conditions"].append(Condition.model_validate({
        "type": "ReportsWritten", "status": "False", "reason": "ReportRejected",
        "message": f"{len(failures)} PolicyReport(s) refused by the API server, retried with backoff; "
                   f"{ns}/{name} (attempt {first.attempts}): {first.message}"[:2048],
        "lastTransitionTime": since, "observedGeneration": runtime.generation,
    }).model_dump(by_alias=True, exclude_none=True, mode="json"))
    return out


def _claims_override(judged: Judged) -> bool:
    annotations = (judged.deployment.get("metadata") or {}).get("annotations") or {}
    return not judged.verdict.compliant and not is_blank(str(annotations.get(OVERRIDE_ANNOTATION) or ""))


async def _sync_approvals(runtime: PolicyRuntime, writer: Writer, now: datetime) -> set[Key]:
    """Look up who approved the overrides of noncompliant, override-annotated Deployments that have no
    recorded approval for their generation (one list of our labelled Events, only when some lack one);
    returns the Deployments whose results change. A Deployment still without one is looked up again for
    a minute (the Event may come from another replica), then it simply records no override."""
    reader = getattr(writer, "list_override_approvals", None)
    if runtime.approvals_scanned == runtime.judged_changes and not any(
            now <= until for _, until in runtime.approval_wait.values()):
        return set()  # no verdict changed and no wait runs: the last scan still holds
    runtime.approvals_scanned = runtime.judged_changes
    lacking = [k for k, j in runtime.judged.items()
               if _claims_override(j) and not approval_applies(j, runtime.approvals.get(k))]
    for records in (runtime.approval_wait, runtime.approvals):  # gone or no longer selected
        for key in [k for k in records if k not in runtime.judged]:
            del records[key]
    if not lacking or reader is None:
        return set()
    for key in lacking:  # a new generation (a new admission) starts a new wait
        generation = (runtime.judged[key].deployment.get("metadata") or {}).get("generation")
        if key not in runtime.approval_wait or runtime.approval_wait[key][0] != generation:
            runtime.approval_wait[key] = (generation, now + timedelta(seconds=APPROVAL_WAIT_SECONDS))
    if not any(now <= runtime.approval_wait[k][1] for k in lacking):
        return set()
    try:
        found = await reader()
    except Exception as exc:  # Events are a record, never a reason to fail the pass
        log.warning("policy %s: could not list override Events: %s", runtime.name, exc)
        return set()
    changed: set[Key] = set()
    for key in lacking:
        approval = found.get(key)
        if approval is not None and approval_applies(runtime.judged[key], approval):
            runtime.approvals[key] = approval
            runtime.approval_wait.pop(key, None)
            changed.add(key)
    return changed


def pod_owner(view: ClusterView) -> OwnerOf | None:
    """How the view maps a pod to its Deployment (IndexView: through the ReplicaSet index)."""
    owner_of: OwnerOf | None = getattr(view, "owner_of_pod", None)
    return owner_of


async def _refresh_slos(
    runtime: PolicyRuntime, store: SloStore, query: QueryFn, now: datetime, metrics: OperatorMetrics | None,
    view: ClusterView | None = None,
) -> None:
    """Query the due SLOs (one query each, for all Deployments) and mark what changed dirty."""
    assert runtime.compiled is not None
    spec = runtime.compiled.spec
    if not store.refresh_due(runtime.name, spec.slos, now):
        return  # most passes (woken by watch events): not even the label values are gathered
    deployments = [j.deployment for j in runtime.judged.values()]
    done = await store.refresh(runtime.name, spec.slos, query, now, namespaces=spec.match.namespaces,
                               label_values=label_values(spec, deployments),
                               owner_of=pod_owner(view) if view is not None else None)
    if metrics is not None:
        for slo in done.queried:
            metrics.prometheus_queries.labels(policy=runtime.name, slo=slo).inc()
        for slo in done.failed:
            metrics.prometheus_query_errors.labels(policy=runtime.name, slo=slo).inc()
    changed = done.changed
    if EVERYTHING in changed:
        runtime.mark(everything=True)
    for key in changed - {EVERYTHING}:
        runtime.mark(measured=key)


def _slo_due(runtime: PolicyRuntime, slo_store: SloStore | None) -> bool:
    """An SLO query of this policy is due now (the clock, not the pass's start time)."""
    if slo_store is None or runtime.compiled is None:
        return False
    now = datetime.now(UTC)
    return any(slo_store.seconds_until_due(runtime.name, s, now) <= 0 for s in runtime.compiled.spec.slos)


def _requeue_after(runtime: PolicyRuntime, now: datetime, slo_store: SloStore | None = None) -> float:
    """When the next pass is due without any watch event: the resync, the next SLO query that falls
    due, a report retry or an override approval poll. SLO queries are due by
    when they last ran, not by when this pass ran: a pass woken early by a watch event must not push
    the next query back by a whole interval."""
    horizon = runtime.resync_seconds
    if runtime.compiled is not None and runtime.compiled.spec.slos:
        horizon = min(horizon, *(max(0.1, slo_store.seconds_until_due(runtime.name, s, now)) if slo_store is not None
                                 else duration_seconds(s.interval) for s in runtime.compiled.spec.slos))
    for failure in runtime.report_failures.values():
        horizon = min(horizon, max(1.0, (failure.retry_at - now).total_seconds()))
    if any(now < until for _, until in runtime.approval_wait.values()):
        horizon = min(horizon, APPROVAL_POLL_SECONDS)
    return horizon


async def _judge_pass(
    runtime: PolicyRuntime, item: PassInput, view: ClusterView, writer: Writer, first: bool,
    previous: ReadinessPolicyStatus | None, now: datetime, *, slo_store: SloStore | None,
    slo_query: Callable[[PrometheusConfig | None], QueryFn] | None, metrics: OperatorMetrics | None,
) -> tuple[dict[str, Any], bool, set[Key]]:
    """Judge what is dirty and post the verdict flips; returns (status, reports on, changed Deployments)."""
    assert runtime.compiled is not None
    spec = runtime.compiled.spec
    slos: SloLookup = _no_slos
    extra: list[Condition] = []
    if slo_store is not None and spec.slos:
        if slo_query is not None:
            await _refresh_slos(runtime, slo_store, slo_query(spec.prometheus), now, metrics, view)
        slos = slo_store.measurements
        condition = slo_store.condition(runtime.name, spec.slos)
        extra = [condition] if condition is not None else []
    reports_on = await writer.policy_reports_available()
    if first and reports_on:
        for report in await writer.list_policy_reports(runtime.name):
            meta = report["metadata"]
            written = as_written(report)
            runtime.written_reports[(meta["namespace"], meta["name"])] = stable_digest(written)
            runtime.written_live[(meta["namespace"], meta["name"])] = digest(written)
            runtime.prior.update(prior_verdicts(report))
            runtime.approvals.update(prior_approvals(report))
    changed, transitions = await judge(runtime, view, now, slos, metrics)
    changed |= await _sync_approvals(runtime, writer, now)
    # After a restart, only flips against the recorded verdicts count, and only those not told yet.
    flips = [t for t in transitions if not first or t.was_compliant is not None]
    if first:
        flips = await _not_posted_yet(writer, runtime.name, flips)
    await _write_events(writer, runtime.name, flips)
    if runtime.folded is None or runtime.folded[0] != runtime.judged_changes:
        verdicts = [j.verdict for j in runtime.judged.values()]
        runtime.folded = (runtime.judged_changes, fold_verdicts(verdicts), policy_overview(runtime.name, verdicts))
    _, verdict_fold, bare_overview = runtime.folded
    summary = summarize(verdict_fold, now=now, observed_generation=item.generation, previous=previous,
                        extra_conditions=extra)
    status = _status_dict(summary)
    budgets: list[SloBudget] = []
    if slo_store is not None and spec.slos:
        stamp = (runtime.judged_changes, slo_store.version(runtime.name), tuple(spec.slos))
        if runtime.slo_summaries is None or runtime.slo_summaries[0] != stamp:
            runtime.slo_summaries = (stamp, slo_store.status(runtime.name, spec.slos, runtime.judged),
                                     slo_store.budgets(runtime.name, spec.slos, runtime.judged))
        status["slos"], budgets = copy.deepcopy(runtime.slo_summaries[1]), runtime.slo_summaries[2]
    runtime.budget_history.record(budgets)
    runtime.budget_history.keep(s.name for s in spec.slos)
    runtime.overview = replace(bare_overview, slos=tuple(budgets), generated_at=now)
    if metrics is not None:
        metrics.set_targets(runtime.name, summary.compliant, summary.noncompliant)
        metrics.export_overview(runtime.overview)
    return status, reports_on, changed


async def run_pass(
    runtime: PolicyRuntime, item: PassInput, view: ClusterView, writer: Writer,
    *, slo_store: SloStore | None = None, slo_query: Callable[[PrometheusConfig | None], QueryFn] | None = None,
    metrics: OperatorMetrics | None = None, now: datetime | None = None, report_slots: asyncio.Semaphore | None = None,
) -> PassResult:
    """One pass: judge what is dirty, then write status, reports and Events where they changed."""
    now = now or datetime.now(UTC)
    first = runtime.written_status is None
    if first:
        runtime.written_status = dict(item.status or {})
    previous = _previous(item.status) if first else _previous(runtime.written_status or {})
    _compile(runtime, item)
    if runtime.needs_full_pass(runtime.resync_seconds, now):
        runtime.mark(everything=True)
    reports_on, changed = False, set[Key]()
    if runtime.invalid is not None:
        runtime.take_dirty()
        status = _invalid_status(runtime, now, previous)
        runtime.overview = None  # no verdicts to show or export
        if metrics is not None:
            metrics.forget_verdicts(runtime.name)
    else:
        status, reports_on, changed = await _judge_pass(
            runtime, item, view, writer, first, previous, now, slo_store=slo_store, slo_query=slo_query, metrics=metrics)
    patched = False
    status = _with_report_errors(status, runtime, now, previous)
    if _comparable(status) != _comparable(runtime.written_status):
        # Status first: it is what `kubectl get rp` and the webhook's users read, and it is one
        # small write; the PolicyReports (one result per Deployment x check) follow.
        await writer.patch_policy_status(runtime.name, status)
        runtime.written_status = status
        log.info("policy %s: %s", runtime.name,
                 {k: status.get(k) for k in ("targets", "compliant", "noncompliant", "score")})
        patched = True
    if reports_on:
        runtime.reports_changed(changed, everything={k[0] for k in runtime.written_reports} if first else ())
        await _write_reports(writer, runtime, now, metrics, more_urgent=lambda: _slo_due(runtime, slo_store),
                             slots=report_slots)
        after = _with_report_errors(status, runtime, now, previous)
        if after != status:  # a report was refused (or finally written): say so now, not next pass
            await writer.patch_policy_status(runtime.name, after)
            runtime.written_status = after
            patched = True
    return PassResult(patched, _requeue_after(runtime, now, slo_store))
