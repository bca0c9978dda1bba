"""The operator's own Prometheus metrics (served on --metrics-port), held by one object.

One registry per operator context instead of prometheus_client's process-global one: nothing is
registered at import time, so tests and a restarted runner never collide, and a deleted policy's
series are removed (`forget_policy`) instead of lingering at their last value.

Verdict series (per policy and namespace, per check, per SLO) are exported by the leader alone,
from the overview each reconcile pass computes (`export_overview`): a replica that loses the Lease
forgets them, so a sum over replicas never counts a Deployment twice. Each pass removes the label
sets the previous one exported and this one did not (a namespace without targets any more, a check
nobody fails), so the series count stays bounded by what exists (docs/operations.md, "Metrics").
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from readiness_operator import __version__
from readiness_operator.report.overview import PolicyOverview

if TYPE_CHECKING:
    from .reader import KindCounts

VERDICTS = ("compliant", "noncompliant")


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None, *, deployment_slo_budgets: bool = False) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.deployment_slo_budgets = deployment_slo_budgets  # one series per Deployment and SLO: opt-in
        r = self.registry
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=r)
        self.build_info = Gauge("readiness_build_info", "The running operator's version (always 1)", ["version"], registry=r)
        self.build_info.labels(version=__version__).set(1)
        self.leader = Gauge("readiness_leader", "1 on the replica holding the leader Lease (it writes), else 0",
                            registry=r)
        self.webhook_certificate_expiry = Gauge(
            "readiness_webhook_certificate_expiry_timestamp_seconds",
            "When the webhook certificate this replica serves expires (Unix time)", registry=r)
        self.webhook_certificate_rotations = Counter(
            "readiness_webhook_certificate_rotations", "Switches to a renewed webhook certificate", registry=r)
        self.evaluations = Counter("readiness_evaluations", "Deployment evaluations by the rule engine", registry=r)
        self.reconcile_errors = Counter("readiness_reconcile_errors", "Reconcile passes that failed", ["policy"], registry=r)
        self.policy_targets = Gauge(
            "readiness_policy_targets", "Deployments selected by a policy, by verdict", ["policy", "verdict"], registry=r)
        self.admission_requests = Counter(
            "readiness_admission_requests", "Admission reviews answered", ["kind", "result"], registry=r)
        self.admission_duration = Histogram(
            "readiness_admission_duration_seconds", "Time to answer an admission review",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0), registry=r,
        )
        self.report_write_errors = Counter(
            "readiness_policy_report_write_errors", "PolicyReport writes the API server refused (size, content)",
            ["policy"], registry=r)
        self.prometheus_queries = Counter(
            "readiness_prometheus_queries", "SLO queries sent to Prometheus", ["policy", "slo"], registry=r)
        self.prometheus_query_errors = Counter(
            "readiness_prometheus_query_errors", "SLO queries that failed", ["policy", "slo"], registry=r)
        # Verdict series: the leader's only (see the module docstring).
        self.policy_score = Gauge("readiness_policy_score", "Mean readiness score (0-100) of a policy's Deployments",
                                  ["policy"], registry=r)
        self.namespace_targets = Gauge(
            "readiness_namespace_targets", "Deployments a policy selects in a namespace", ["policy", "namespace"], registry=r)
        self.namespace_compliant = Gauge(
            "readiness_namespace_compliant", "Compliant Deployments of a policy in a namespace", ["policy", "namespace"],
            registry=r)
        self.namespace_score = Gauge(
            "readiness_namespace_score", "Mean readiness score (0-100) of a policy's Deployments in a namespace",
            ["policy", "namespace"], registry=r)
        self.check_failing = Gauge(
            "readiness_check_failing_deployments", "Deployments failing a check of a policy (checks failed by any)",
            ["policy", "check"], registry=r)
        self.slo_budget = Gauge(
            "readiness_slo_budget_remaining", "Lowest share of an SLO's error budget left over a policy's Deployments "
            "(1: perfect, 0: at the objective, below 0: breached)", ["policy", "slo"], registry=r)
        self.slo_breaching = Gauge(
            "readiness_slo_breaching_deployments", "Deployments of a policy breaking an SLO's objective",
            ["policy", "slo"], registry=r)
        self.deployment_slo_budget = Gauge(
            "readiness_deployment_slo_budget_remaining", "Share of an SLO's error budget left for one Deployment "
            "(only with READINESS_METRICS_DEPLOYMENT_SLO_BUDGETS)", ["policy", "slo", "namespace", "deployment"],
            registry=r)
        self._exported: dict[str, dict[Gauge, set[tuple[str, ...]]]] = {}  # policy -> gauge -> label values

    def set_targets(self, policy: str, compliant: int, noncompliant: int) -> None:
        self.policy_targets.labels(policy=policy, verdict="compliant").set(compliant)
        self.policy_targets.labels(policy=policy, verdict="noncompliant").set(noncompliant)

    def export_overview(self, overview: PolicyOverview) -> None:
        """Set a policy's verdict series from this pass's overview; remove the ones it no longer has."""
        policy = overview.policy
        values: dict[Gauge, dict[tuple[str, ...], float]] = {
            self.policy_score: {(policy,): overview.score},
            self.namespace_targets: {(policy, n.namespace): n.targets for n in overview.namespaces},
            self.namespace_compliant: {(policy, n.namespace): n.compliant for n in overview.namespaces},
            self.namespace_score: {(policy, n.namespace): n.score for n in overview.namespaces},
            self.check_failing: {(policy, check): count for check, count in overview.failing_checks.items()},
            self.slo_budget: {(policy, b.slo): b.remaining for b in overview.slos if b.remaining is not None},
            self.slo_breaching: {(policy, b.slo): b.breaching for b in overview.slos if b.error is None},
            self.deployment_slo_budget: {
                (policy, b.slo, ns, name): remaining for b in overview.slos for (ns, name), remaining in b.per_deployment.items()
            } if self.deployment_slo_budgets else {},
        }
        exported = self._exported.setdefault(policy, {})
        for gauge, series in values.items():
            for labels, value in series.items():
                gauge.labels(*labels).set(value)
            for stale in exported.get(gauge, set()) - set(series):
                _remove(gauge, *stale)
            exported[gauge] = set(series)

    def forget_verdicts(self, policy: str) -> None:
        """Remove a policy's verdict series: it was deleted, or this replica no longer leads."""
        for gauge, labels in self._exported.pop(policy, {}).items():
            for stale in labels:
                _remove(gauge, *stale)
        for verdict in VERDICTS:
            _remove(self.policy_targets, policy, verdict)

    def forget_policy(self, policy: str, slos: tuple[str, ...] = ()) -> None:
        """Remove a deleted policy's series (a gauge would otherwise report it forever)."""
        self.forget_verdicts(policy)
        for verdict in VERDICTS:
            _remove(self.policy_targets, policy, verdict)
        _remove(self.reconcile_errors, policy)
        _remove(self.report_write_errors, policy)
        for slo in slos:
            _remove(self.prometheus_queries, policy, slo)
            _remove(self.prometheus_query_errors, policy, slo)


class WatchedObjects:
    """The reader's counts per kind, read at scrape time (they change with every watch event)."""

    def __init__(self, counts: Callable[[], Mapping[str, KindCounts]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        objects = GaugeMetricFamily("readiness_watched_objects", "Objects the operator keeps (trimmed), by kind",
                                    labels=["kind"])
        relists = CounterMetricFamily("readiness_watch_relists", "Fresh LISTs after a watch expired (410), by kind",
                                      labels=["kind"])
        events = CounterMetricFamily("readiness_watch_events", "Watch events applied, by kind and whether they "
                                     "changed what is kept", labels=["kind", "changed"])
        for kind, counts in sorted(self._counts().items()):
            objects.add_metric([kind], counts.kept)
            relists.add_metric([kind], counts.relists)
            events.add_metric([kind, "true"], counts.changes)
            events.add_metric([kind, "false"], counts.events - counts.changes)
        yield objects
        yield relists
        yield events


def _remove(metric: Counter | Gauge, *labels: str) -> None:
    with contextlib.suppress(KeyError):  # never exported for this policy
        metric.remove(*labels)
