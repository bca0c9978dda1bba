"""readiness-operator: production-readiness policy for Kubernetes Deployments."""

__version__ = "0.1.0"
