"""In-memory state of each policy: its latest verdicts and what changed since the last pass.

Watch events only mark keys dirty; the policy's reconcile loop then re-evaluates just those
Deployments (or a namespace, when a PDB/HPA/namespace changed), never the whole cluster.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from readiness_operator.engine import CompiledPolicy, DeploymentVerdict
from readiness_operator.policies import CompiledEntry, PolicyCache
from readiness_operator.report.overview import PolicyOverview
from readiness_operator.slo.budget import BudgetHistory
from readiness_operator.summary import VerdictFold

Key = tuple[str, str]  # (namespace, name)
DEFAULT_RESYNC_SECONDS = 3600.0  # a full re-judgement without a watch event asking for one: a safety net


@dataclass(slots=True)
class Judged:
    """A Deployment's verdict and when it last changed (the PolicyReport timestamp). One per
    Deployment and policy (40,000 at 10,000 x 4 policies): slots, no __dict__ each."""

    verdict: DeploymentVerdict
    # The trimmed Deployment as the reader keeps it, not a copy: the reader replaces an object on
    # change and never edits one in place (a copy per policy held 12 MB at 10,000 x 4 policies).
    deployment: Mapping[str, Any]
    since: datetime


@dataclass(frozen=True)
class OverrideApproval:
    """A break-glass override a webhook replica admitted: who sent the request, their reason, and the
    Deployment generation it let in (a later spec change is not covered by it)."""

    user: str
    reason: str
    generation: int


@dataclass
class ReportFailure:
    """A PolicyReport the API server refused: not resent (same content) before ``retry_at``."""

    digest: str
    attempts: int
    message: str
    retry_at: datetime


@dataclass
class Dirty:
    keys: set[Key] = field(default_factory=set)
    namespaces: set[str] = field(default_factory=set)
    everything: bool = True  # a new runtime evaluates all
    # Deployments whose SLO measurement changed: only their SLO findings are judged again, unless
    # they are also dirty for another reason (then the whole catalogue runs).
    measured: set[Key] = field(default_factory=set)

    def __bool__(self) -> bool:
        return self.everything or bool(self.keys) or bool(self.namespaces) or bool(self.measured)


@dataclass
class PolicyRuntime:
    name: str
    uid: str
    policies: PolicyCache = field(default_factory=PolicyCache)  # shared with the webhook at run time
    entry: CompiledEntry | None = None  # the generation this runtime judges with
    judged: dict[Key, Judged] = field(default_factory=dict)
    dirty: Dirty = field(default_factory=Dirty)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    # What this runtime knows is in the cluster, to write only differences.
    written_status: dict[str, Any] | None = None
    written_reports: dict[tuple[str, str], str] = field(default_factory=dict)  # (ns, name) -> stable digest
    written_live: dict[tuple[str, str], str] = field(default_factory=dict)  # (ns, name) -> full digest
    # (compliant, since epoch seconds) per Deployment, seeded from our PolicyReports at start
    prior: dict[Key, tuple[bool, int]] = field(default_factory=dict)
    # Namespaces whose PolicyReports still have to be (re)written: a pass writes them after the
    # status and leaves the rest for the next pass when new work arrives meanwhile.
    reports_pending: set[str] = field(default_factory=set)
    # Of those, the namespaces where only some Deployments' results changed (their names), so only
    # their reports are built again; a pending namespace missing here is built whole. `report_buckets`
    # is each namespace's bucket count at its last complete write (a new count rebuilds it whole).
    reports_dirty: dict[str, set[str]] = field(default_factory=dict)
    report_buckets: dict[str, int] = field(default_factory=dict)
    # Reports the API server refused (size, content), retried with backoff and shown in status.
    report_failures: dict[tuple[str, str], ReportFailure] = field(default_factory=dict)
    resync_seconds: float = DEFAULT_RESYNC_SECONDS  # the operator sets settings.resync_seconds
    # Overrides the webhook admitted (from its ReadinessOverride Events, or read back from our reports),
    # and until when a noncompliant, override-annotated Deployment without one is looked up again.
    approvals: dict[Key, OverrideApproval] = field(default_factory=dict)
    approval_wait: dict[Key, tuple[Any, datetime]] = field(default_factory=dict)  # generation, until
    # When the last pass that re-judged everything ran (wall clock), for `needs_full_pass`.
    full_pass_at: datetime | None = None
    # The last pass's verdicts folded by namespace, check and SLO: the metrics and the readiness
    # page read it (a page view costs no API call), and the SLO budgets' history for its burn chart.
    overview: PolicyOverview | None = None
    budget_history: BudgetHistory = field(default_factory=BudgetHistory)
    # Counts the changes to `judged`; the verdicts' fold (status counts, the overview without SLOs) and
    # the override-approval scan are redone only when it moved (a pass that only refreshed SLO values
    # walked 10,000 verdicts three times: ~0.27 s CPU per policy per tick, the idle leader's largest cost).
    judged_changes: int = 0
    folded: tuple[int, VerdictFold, PolicyOverview] | None = None
    approvals_scanned: int | None = None
    # status.slos and the SLO budgets, redone only when the verdicts or the measurements moved: each
    # walks every target per SLO, and an HPA's status moving wakes a pass every few seconds (issue 16).
    slo_summaries: tuple[Any, list[dict[str, Any]], list[Any]] | None = None

    @property
    def generation(self) -> int | None:
        return self.entry.generation if self.entry is not None else None

    @property
    def compiled(self) -> CompiledPolicy | None:
        return self.entry.plan if self.entry is not None else None

    @property
    def invalid(self) -> str | None:
        return self.entry.invalid if self.entry is not None else None

    def take_dirty(self) -> Dirty:
        taken, self.dirty = self.dirty, Dirty(everything=False)
        self.wake.clear()
        return taken

    def needs_full_pass(self, resync_seconds: float, now: datetime | None = None) -> bool:
        """Whether a timer wake-up should re-judge everything: the resync period has passed, or an
        exemption expired since the last full pass. (A wake-up for the SLO interval alone does not:
        the SLO refresh marks the Deployments whose measurement changed.)"""
        if self.full_pass_at is None:
            return True
        now = now or datetime.now(self.full_pass_at.tzinfo)
        if (now - self.full_pass_at).total_seconds() >= resync_seconds:
            return True
        exemptions = self.compiled.exemptions if self.compiled is not None else ()
        return any(e.expires is not None and self.full_pass_at < e.expires <= now for e in exemptions)

    def reports_changed(self, changed: Iterable[Key], everything: Iterable[str] = ()) -> None:
        """Make the reports of these Deployments pending, and of these namespaces whole."""
        for ns in everything:
            self.reports_pending.add(ns)
            self.reports_dirty.pop(ns, None)
        for ns, name in changed:
            if ns not in self.reports_pending:
                self.reports_pending.add(ns)
                self.reports_dirty[ns] = {name}
            elif ns in self.reports_dirty:
                self.reports_dirty[ns].add(name)

    def report_written(self, namespace: str, buckets: int) -> None:
        """Every report of the namespace is written, with this many buckets."""
        self.reports_pending.discard(namespace)
        self.reports_dirty.pop(namespace, None)
        self.report_buckets[namespace] = buckets

    def mark(
        self, key: Key | None = None, namespace: str | None = None, everything: bool = False,
        measured: Key | None = None,
    ) -> None:
        if everything:
            self.dirty.everything = True
        if key is not None:
            self.dirty.keys.add(key)
        if measured is not None:
            self.dirty.measured.add(measured)
        if namespace is not None:
            self.dirty.namespaces.add(namespace)
        self.wake.set()


class Registry:
    """Every running policy's runtime, for watch handlers to mark dirty."""

    def __init__(self, compiled: PolicyCache | None = None) -> None:
        self.policies: dict[str, PolicyRuntime] = {}
        self.compiled = compiled if compiled is not None else PolicyCache()

    def ensure(self, name: str, uid: str) -> PolicyRuntime:
        runtime = self.policies.get(name)
        if runtime is None or runtime.uid != uid:
            runtime = self.policies[name] = PolicyRuntime(name=name, uid=uid, policies=self.compiled)
        return runtime

    def remove(self, name: str, uid: str) -> None:
        runtime = self.policies.get(name)
        if runtime is not None and runtime.uid == uid:
            del self.policies[name]
            self.compiled.forget(name)

    def mark_deployment(self, namespace: str, name: str) -> None:
        for runtime in self.policies.values():
            runtime.mark(key=(namespace, name))

    def mark_pods_changed(self, namespace: str, deployment: str) -> None:
        """A pod of the Deployment changed: only policies with a check reading pods judge it again."""
        for runtime in self.policies.values():
            plan = runtime.compiled
            if plan is None or any("Pod" in p.check.reads for p in plan.checks):
                runtime.mark(key=(namespace, deployment))

    def mark_namespace(self, namespace: str) -> None:
        for runtime in self.policies.values():
            runtime.mark(namespace=namespace)

    def wake(self, name: str, everything: bool = False) -> None:
        runtime = self.policies.get(name)
        if runtime is not None:
            runtime.mark(everything=everything)

