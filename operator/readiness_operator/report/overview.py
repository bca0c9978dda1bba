"""Readiness at a glance: one policy's verdicts folded by namespace and check, worst offenders first.

What both the operator's verdict metrics and its readiness page show, computed once per reconcile
pass from the verdicts the pass already holds (so neither a scrape nor a page view costs an API
call). Pure: verdicts and SLO budgets in, small frozen values out.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from readiness_operator.engine import DeploymentVerdict
from readiness_operator.slo.budget import SloBudget

__all__ = [
    "MAX_OFFENDERS",
    "ClusterOverview",
    "FailedCheck",
    "NamespaceReadiness",
    "Offender",
    "PolicyOverview",
    "cluster_overview",
    "policy_overview",
]

MAX_OFFENDERS = 20  # per policy, lowest score first: what the page lists


@dataclass(frozen=True, slots=True)
class NamespaceReadiness:
    namespace: str
    targets: int
    compliant: int
    score: int  # mean Deployment score, floored (as the policy's status score)
    score_total: int  # sum of the scores, to fold namespaces of several policies exactly


@dataclass(frozen=True, slots=True)
class FailedCheck:
    """One failing check of an offender, with what to do about it."""

    check: str
    severity: str
    message: str
    remediation: str


@dataclass(frozen=True, slots=True)
class Offender:
    namespace: str
    name: str
    score: int
    level: str
    failures: tuple[FailedCheck, ...]


@dataclass(frozen=True, slots=True)
class PolicyOverview:
    policy: str
    targets: int
    compliant: int
    score: int
    namespaces: tuple[NamespaceReadiness, ...]  # sorted by name; only namespaces with targets
    failing_checks: Mapping[str, int]  # check id -> Deployments failing it (only checks failed by some)
    offenders: tuple[Offender, ...]  # noncompliant, lowest score first, at most MAX_OFFENDERS
    slos: tuple[SloBudget, ...] = ()
    generated_at: datetime | None = None


def _mean(scores: Sequence[int]) -> int:
    return sum(scores) // len(scores) if scores else 100


def policy_overview(
    policy: str, verdicts: Iterable[DeploymentVerdict], slos: Iterable[SloBudget] = (),
    now: datetime | None = None, max_offenders: int = MAX_OFFENDERS,
) -> PolicyOverview:
    """Fold one policy's verdicts: counts and mean score per namespace, failures per check, offenders."""
    items = list(verdicts)
    by_ns: dict[str, list[DeploymentVerdict]] = {}
    failing: Counter[str] = Counter()
    for verdict in items:
        by_ns.setdefault(verdict.namespace, []).append(verdict)
        failing.update(set(verdict.failed_checks))
    namespaces = tuple(
        NamespaceReadiness(ns, len(vs), sum(1 for v in vs if v.compliant), _mean([v.score for v in vs]),
                           sum(v.score for v in vs))
        for ns, vs in sorted(by_ns.items())
    )
    worst = heapq.nsmallest(max_offenders, (v for v in items if not v.compliant), key=lambda v: (v.score, v.namespace, v.name))
    offenders = tuple(
        Offender(v.namespace, v.name, v.score, v.level,
                 tuple(FailedCheck(f.check, str(f.severity), f.message, f.remediation) for f in v.failures))
        for v in worst
    )
    return PolicyOverview(
        policy=policy, targets=len(items), compliant=sum(1 for v in items if v.compliant),
        score=_mean([v.score for v in items]), namespaces=namespaces, failing_checks=dict(failing),
        offenders=offenders, slos=tuple(slos), generated_at=now,
    )


@dataclass(frozen=True, slots=True)
class ClusterOverview:
    """Every policy's overview, and their targets folded together (a Deployment selected by two
    policies counts twice: once per judgement, as in the metrics)."""

    policies: tuple[PolicyOverview, ...]
    targets: int
    compliant: int
    score: int  # mean over every (policy, Deployment) score; 100 with no targets
    namespaces: tuple[NamespaceReadiness, ...]
    history: Mapping[tuple[str, str], Sequence[tuple[float, float]]] = field(default_factory=dict)


def cluster_overview(
    policies: Iterable[PolicyOverview], history: Mapping[tuple[str, str], Sequence[tuple[float, float]]] | None = None,
) -> ClusterOverview:
    """The cluster's figures from the policies' overviews (weighted by their targets); ``history`` is
    the SLO budget history per (policy, SLO), for burn charts."""
    items = tuple(sorted(policies, key=lambda p: p.policy))
    targets = sum(p.targets for p in items)
    total = sum(n.score_total for p in items for n in p.namespaces)
    per_ns: dict[str, list[NamespaceReadiness]] = {}
    for p in items:
        for ns in p.namespaces:
            per_ns.setdefault(ns.namespace, []).append(ns)
    namespaces = tuple(
        NamespaceReadiness(name, sum(n.targets for n in rows), sum(n.compliant for n in rows),
                           sum(n.score_total for n in rows) // sum(n.targets for n in rows),
                           sum(n.score_total for n in rows))
        for name, rows in sorted(per_ns.items())
    )
    return ClusterOverview(
        policies=items, targets=targets, compliant=sum(p.compliant for p in items),
        score=total // targets if targets else 100, namespaces=namespaces, history=dict(history or {}),
    )
