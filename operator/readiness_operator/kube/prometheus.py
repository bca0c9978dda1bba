"""Prometheus access for SLO queries (prometheus-api-client), one connection per configuration.

Queries are POSTed (a batched query can be long) from a worker thread. A policy's connection (HTTP
session, CA file) is built once and reused until its settings change. A bearer token or CA comes only
from a Secret the chart allowed (`prometheus.secrets`: READINESS_PROMETHEUS_SECRETS), never from the
webhook's own TLS Secret; it is cached briefly and never logged. Failures become `QueryFailed` with a
status code or a short reason: a response body, header or token never reaches status, Events or logs.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from readiness_operator.model import PrometheusConfig
from readiness_operator.model.slo import SecretKeyRef
from readiness_operator.slo.store import QueryFailed, QueryFn

SECRET_TTL = 300.0
_HTTP_STATUS = re.compile(r"HTTP Status Code (\d{3})")


class PrometheusNotConfigured(QueryFailed):
    pass


def safe_reason(exc: BaseException, timeout: float) -> QueryFailed:
    """What may be shown of a failed query: the HTTP status or the kind of failure, nothing it carried."""
    if isinstance(exc, QueryFailed):
        return exc
    if isinstance(exc, PrometheusApiClientException):
        status = _HTTP_STATUS.search(str(exc))
        return QueryFailed(f"Prometheus answered HTTP {status.group(1) if status else 'error'}")
    if isinstance(exc, requests.exceptions.InvalidHeader):
        return QueryFailed("the bearer token is not a valid HTTP header value (check the Secret's key)")
    if isinstance(exc, requests.exceptions.SSLError):
        return QueryFailed("TLS with Prometheus failed (check caSecretRef or the URL)")
    if isinstance(exc, requests.exceptions.Timeout):
        return QueryFailed(f"Prometheus did not answer within {timeout:g}s")
    if isinstance(exc, requests.exceptions.ConnectionError):
        return QueryFailed("cannot connect to Prometheus")
    if isinstance(exc, ValueError | KeyError | TypeError):
        return QueryFailed("Prometheus's answer could not be read")
    return QueryFailed(f"the query failed ({type(exc).__name__})")


SecretReader = Callable[[str, str, str], bytes | None]  # (namespace, name, key) -> value


class PrometheusClients:
    """Query functions per policy configuration (or the operator-wide URL when a policy has none)."""

    def __init__(
        self, default_url: str | None, read_secret: SecretReader, allowed_secrets: Collection[tuple[str, str]] = ()
    ) -> None:
        self.default_url, self._read_secret = default_url, read_secret
        self._allowed = frozenset(allowed_secrets)
        self._secrets: dict[tuple[str, str, str], tuple[float, str]] = {}
        self._connections: dict[str, tuple[PrometheusConnect, str | None]] = {}  # config json -> (conn, token)
        self._ca_dir = Path(tempfile.mkdtemp(prefix="readiness-prometheus-ca-"))

    def _secret(self, ref: SecretKeyRef) -> str:
        if (ref.namespace, ref.name) not in self._allowed:
            raise PrometheusNotConfigured(
                f"Secret {ref.namespace}/{ref.name} is not one the operator may read for Prometheus credentials "
                "(list it in the chart's prometheus.secrets)")
        key = (ref.namespace, ref.name, ref.key)
        cached = self._secrets.get(key)
        if cached and time.monotonic() - cached[0] < SECRET_TTL:
            return cached[1]
        try:
            data = self._read_secret(ref.namespace, ref.name, ref.key)
        except Exception as exc:  # e.g. 403/404 from the API server; its body is not shown
            status = getattr(exc, "status", None)
            raise PrometheusNotConfigured(
                f"cannot read Secret {ref.namespace}/{ref.name} (HTTP {status or 'error'})") from None
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
        timeout = config.timeout_seconds if config is not None else 10

        def run(promql: str) -> list[dict[str, Any]]:
            try:
                return list(self._connect(config).custom_query(promql) or [])
            except Exception as exc:
                raise safe_reason(exc, timeout) from None

        async def query(promql: str) -> list[dict[str, Any]]:
            return await asyncio.to_thread(run, promql)

        return query
