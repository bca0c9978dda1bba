"""The ValidatingWebhookConfiguration the operator manages (pure: settings in, object out)."""

from __future__ import annotations

import base64
from typing import Any

from readiness_operator.names import IGNORE_LABEL, MANAGED_BY_LABELS
from readiness_operator.settings import Settings

DEPLOYMENT_PATH = "/validate-deployment"
SCALE_PATH = "/validate-deployment-scale"
POLICY_PATH = "/validate-policy"


def _client_config(settings: Settings, path: str, ca_pem: bytes) -> dict[str, Any]:
    bundle = base64.b64encode(ca_pem).decode()
    if settings.webhook_url:
        return {"url": settings.webhook_url.rstrip("/") + path, "caBundle": bundle}
    return {
        "service": {"namespace": settings.namespace, "name": settings.webhook_service, "port": 443, "path": path},
        "caBundle": bundle,
    }


def webhook_configuration(settings: Settings, ca_pem: bytes) -> dict[str, Any]:
    """Deployments (CREATE/UPDATE), their scale subresource (UPDATE) and ReadinessPolicies.

    The status subresource is never sent. `kubectl scale` and HPAs change replicas through
    ``deployments/scale``; without that rule a scale-down below the minimum bypassed the webhook.

    `sideEffects: NoneOnDryRun`: the only side effect is the Event recording a break-glass override,
    and it is skipped for dry-run requests.
    """
    common = {
        "admissionReviewVersions": ["v1"],
        "sideEffects": "NoneOnDryRun",
        "failurePolicy": settings.failure_policy,
        "timeoutSeconds": settings.timeout_seconds,
        "matchPolicy": "Equivalent",
    }
    namespaces = {"matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": list(settings.excluded_namespaces)},
        {"key": IGNORE_LABEL, "operator": "NotIn", "values": ["true"]},
    ]}
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": settings.webhook_configuration, "labels": dict(MANAGED_BY_LABELS)},
        "webhooks": [
            {
                **common,
                "name": "deployments.readiness.dev",
                "clientConfig": _client_config(settings, DEPLOYMENT_PATH, ca_pem),
                "rules": [{"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                           "resources": ["deployments"], "scope": "Namespaced"}],
                "namespaceSelector": namespaces,
            },
            {
                **common,
                "name": "scale.deployments.readiness.dev",
                "clientConfig": _client_config(settings, SCALE_PATH, ca_pem),
                "rules": [{"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["UPDATE"],
                           "resources": ["deployments/scale"], "scope": "Namespaced"}],
                "namespaceSelector": namespaces,
            },
            {
                **common,
                "name": "readinesspolicies.readiness.dev",
                "clientConfig": _client_config(settings, POLICY_PATH, ca_pem),
                "rules": [{"apiGroups": ["readiness.dev"], "apiVersions": ["v1alpha1"], "operations": ["CREATE", "UPDATE"],
                           "resources": ["readinesspolicies"], "scope": "Cluster"}],
            },
        ],
    }
