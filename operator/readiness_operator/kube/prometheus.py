"""Prometheus access for SLO queries (prometheus-api-client), one connection per configuration.

Queries are POSTed (a batched query can be long) from a worker thread. A policy's connection (HTTP
session, CA file) is built once and reused until its settings change; a bearer token comes from a
Secret named by the policy, is cached briefly and never logged.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from urllib3.util.retry import Retry

from readiness_operator.model import PrometheusConfig
from readiness_operator.model.slo import SecretKeyRef
from readiness_operator.slo.store import QueryFn

SECRET_TTL = 300.0


class PrometheusNotConfigured(RuntimeError):
    pass


SecretReader = Callable[[str, str, str], bytes | None]  # (namespace, name, key) -> value


class PrometheusClients:
    """Query functions per policy configuration (or the operator-wide URL when a policy has none)."""

    def __init__(self, default_url: str | None, read_secret: SecretReader) -> None:
        self.default_url, self._read_secret = default_url, read_secret
        self._secrets: dict[tuple[str, str, str], tuple[float, str]] = {}
        self._connections: dict[str, tuple[PrometheusConnect, str | None]] = {}  # config json -> (conn, token)
        self._ca_dir = Path(tempfile.mkdtemp(prefix="readiness-prometheus-ca-"))

    def _secret(self, ref: SecretKeyRef) -> str:
        key = (ref.namespace, ref.name, ref.key)
        cached = self._secrets.get(key)
        if cached and time.monotonic() - cached[0] < SECRET_TTL:
            return cached[1]
        data = self._read_secret(ref.namespace, ref.name, ref.key)
        if data is None:
            raise PrometheusNotConfigured(f"Secret {ref.namespace}/{ref.name} has no key {ref.key!r}")
        value = data.decode().strip()
        self._secrets[key] = (time.monotonic(), value)
        return value

    def _connect(self, config: PrometheusConfig | None) -> PrometheusConnect:
        url = config.url if config is not None else (self.default_url or "")
        if not url:
            raise PrometheusNotConfigured("no Prometheus URL: set spec.prometheus.url or $READINESS_PROMETHEUS_URL")
        key = config.model_dump_json() if config is not None else f"default:{url}"
        token = None
        if config is not None and config.bearer_token_secret_ref is not None:
            token = self._secret(config.bearer_token_secret_ref)
        cached = self._connections.get(key)
        if cached is not None and cached[1] == token:
            return cached[0]
        session = requests.Session()
        session.verify = not (config is not None and config.insecure_skip_verify)
        if config is not None and config.ca_secret_ref is not None:
            ca = self._ca_dir / f"{abs(hash(key))}.pem"
            ca.write_text(self._secret(config.ca_secret_ref))
            session.verify = str(ca)
        timeout = config.timeout_seconds if config is not None else 10
        # One quick retry: an outage must turn into Unknown fast, not after long back-offs.
        connection = PrometheusConnect(
            url=url, headers={"Authorization": f"Bearer {token}"} if token else None, session=session,
            timeout=timeout, method="POST",
            retry=Retry(total=1, backoff_factor=0.2, status_forcelist=[502, 503, 504], allowed_methods=None),
        )
        self._connections[key] = (connection, token)
        return connection

    def query_fn(self, config: PrometheusConfig | None) -> QueryFn:
        def run(promql: str) -> list[dict[str, Any]]:
            return list(self._connect(config).custom_query(promql) or [])

        async def query(promql: str) -> list[dict[str, Any]]:
            return await asyncio.to_thread(run, promql)

        return query
