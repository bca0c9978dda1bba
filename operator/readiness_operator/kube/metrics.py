"""The operator's own Prometheus metrics (served on --metrics-port)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVALUATIONS = Counter("readiness_evaluations", "Deployment evaluations by the rule engine")
RECONCILE_ERRORS = Counter("readiness_reconcile_errors", "Reconcile passes that failed", ["policy"])
POLICY_TARGETS = Gauge("readiness_policy_targets", "Deployments selected by a policy, by verdict", ["policy", "verdict"])
ADMISSION_REQUESTS = Counter("readiness_admission_requests", "Admission reviews answered", ["kind", "result"])
ADMISSION_DURATION = Histogram(
    "readiness_admission_duration_seconds", "Time to answer an admission review",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
PROMETHEUS_QUERY_ERRORS = Counter("readiness_prometheus_query_errors", "SLO queries that failed", ["policy", "slo"])
PROMETHEUS_QUERIES = Counter("readiness_prometheus_queries", "SLO queries sent to Prometheus", ["policy", "slo"])
