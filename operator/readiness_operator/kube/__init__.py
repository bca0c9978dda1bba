"""Kubernetes glue: kopf handlers and indexes, the reconcile loop, and the writers (status,
PolicyReports, Events). Business logic lives in the engine; this package only moves data."""
