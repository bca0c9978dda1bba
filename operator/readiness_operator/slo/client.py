"""Prometheus access for SLO queries (prometheus-api-client), configured per policy or globally.

Queries are POSTed (a batched query can be long) from a worker thread. A bearer token comes from a
Secret named by the policy; it is cached briefly and never logged.
"""

from __future__ import annotations

import asyncio
import base64
import os
import tempfile
import time
from typing import Any

import requests
from urllib3.util.retry import Retry

from readiness_operator.model import PrometheusConfig
from readiness_operator.model.slo import SecretKeyRef

from .store import QueryFn

ENV_URL = "READINESS_PROMETHEUS_URL"
_SECRET_TTL = 300.0
_secrets: dict[tuple[str, str, str], tuple[float, str]] = {}


class PrometheusNotConfigured(RuntimeError):
    pass


def _read_secret(ref: SecretKeyRef) -> str:
    key = (ref.namespace, ref.name, ref.key)
    cached = _secrets.get(key)
    if cached and time.monotonic() - cached[0] < _SECRET_TTL:
        return cached[1]
    import kubernetes

    from readiness_operator.kube.api import client

    secret = kubernetes.client.CoreV1Api(client()).read_namespaced_secret(ref.name, ref.namespace)
    data = (secret.data or {}).get(ref.key)
    if data is None:
        raise PrometheusNotConfigured(f"Secret {ref.namespace}/{ref.name} has no key {ref.key!r}")
    value = base64.b64decode(data).decode().strip()
    _secrets[key] = (time.monotonic(), value)
    return value


def query_fn(config: PrometheusConfig | None) -> QueryFn:
    """A query function for a policy's settings, or the operator-wide URL ($READINESS_PROMETHEUS_URL)."""

    def run(promql: str) -> list[dict[str, Any]]:
        from prometheus_api_client import PrometheusConnect

        url = config.url if config is not None else os.environ.get(ENV_URL, "")
        if not url:
            raise PrometheusNotConfigured(f"no Prometheus URL: set spec.prometheus.url or ${ENV_URL}")
        headers = {}
        if config is not None and config.bearer_token_secret_ref is not None:
            headers["Authorization"] = f"Bearer {_read_secret(config.bearer_token_secret_ref)}"
        timeout = config.timeout_seconds if config is not None else 10
        session = requests.Session()
        session.verify = not (config is not None and config.insecure_skip_verify)
        if config is not None and config.ca_secret_ref is not None:
            with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as ca:
                ca.write(_read_secret(config.ca_secret_ref))
            session.verify = ca.name
        # One quick retry: an outage must turn into Unknown fast, not after long back-offs.
        connection = PrometheusConnect(
            url=url, headers=headers or None, session=session, timeout=timeout, method="POST",
            retry=Retry(total=1, backoff_factor=0.2, status_forcelist=[502, 503, 504], allowed_methods=None),
        )
        result = connection.custom_query(promql)
        return list(result or [])

    async def query(promql: str) -> list[dict[str, Any]]:
        return await asyncio.to_thread(run, promql)

    return query
