"""The operator's own Prometheus metrics (served on --metrics-port), held by one object.

One registry per operator context instead of prometheus_client's process-global one: nothing is
registered at import time, so tests and a restarted runner never collide, and a deleted policy's
series are removed (`forget_policy`) instead of lingering at their last value.
"""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from readiness_operator import __version__

VERDICTS = ("compliant", "noncompliant")


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
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

    def set_targets(self, policy: str, compliant: int, noncompliant: int) -> None:
        self.policy_targets.labels(policy=policy, verdict="compliant").set(compliant)
        self.policy_targets.labels(policy=policy, verdict="noncompliant").set(noncompliant)

    def forget_policy(self, policy: str, slos: tuple[str, ...] = ()) -> None:
        """Remove a deleted policy's series (a gauge would otherwise report it forever)."""
        for verdict in VERDICTS:
            _remove(self.policy_targets, policy, verdict)
        _remove(self.reconcile_errors, policy)
        _remove(self.report_write_errors, policy)
        for slo in slos:
            _remove(self.prometheus_queries, policy, slo)
            _remove(self.prometheus_query_errors, policy, slo)


def _remove(metric: Counter | Gauge, *labels: str) -> None:
    with contextlib.suppress(KeyError):  # never exported for this policy
        metric.remove(*labels)
