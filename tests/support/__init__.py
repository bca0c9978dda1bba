"""Helpers shared by the end-to-end tests: the real control plane, Prometheus, kubectl, the operator."""
