"""Prometheus credentials (issue 14, 7c/7f): only Secrets the chart allowed, never the webhook's own TLS
Secret, and nothing a failure carried (body, header, token) in what is shown."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import requests
from prometheus_api_client.exceptions import PrometheusApiClientException

from readiness_operator.kube.prometheus import PrometheusClients, safe_reason
from readiness_operator.model import PrometheusConfig
from readiness_operator.settings import Settings
from readiness_operator.slo.store import QueryFailed, SloStore, _describe

TOKEN = "s3cr3t-token-value"


def config(namespace: str, name: str) -> PrometheusConfig:
    return PrometheusConfig.model_validate({"url": "http://127.0.0.1:1", "bearerTokenSecretRef":
                                            {"namespace": namespace, "name": name, "key": "token"}})


def test_only_allowed_secrets_are_read() -> None:
    reads: list[tuple[str, str, str]] = []

    def read(namespace: str, name: str, key: str) -> bytes:
        reads.append((namespace, name, key))
        return TOKEN.encode()

    clients = PrometheusClients(None, read, {("monitoring", "prom-token")})
    with pytest.raises(QueryFailed, match="not one the operator may read"):
        asyncio.run(clients.query_fn(config("readiness-system", "readiness-operator-webhook-cert"))("up"))
    assert reads == []  # refused before any API call
    with pytest.raises(QueryFailed, match="cannot connect to Prometheus"):  # read, then port 1 refuses
        asyncio.run(clients.query_fn(config("monitoring", "prom-token"))("up"))
    assert reads == [("monitoring", "prom-token", "token")]


def test_the_webhook_tls_secret_is_never_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("READINESS_WEBHOOK_CERT_SECRET", "webhook-cert")
    monkeypatch.setenv("READINESS_PROMETHEUS_SECRETS", "readiness-system/webhook-cert, monitoring/prom-token")
    assert Settings.from_env().allowed_prometheus_secrets == {("monitoring", "prom-token")}
    monkeypatch.setenv("READINESS_PROMETHEUS_SECRETS", "no-slash")
    with pytest.raises(ValueError, match="namespace/name"):
        Settings.from_env()


@pytest.mark.parametrize(("exc", "shown"), [
    (PrometheusApiClientException(f"HTTP Status Code 400 (b'bad query near {TOKEN}')"), "HTTP 400"),
    (requests.exceptions.InvalidHeader(f"Invalid return character or leading space in header: Authorization: Bearer {TOKEN}\n"),
     "not a valid HTTP header value"),
    (requests.exceptions.ConnectionError(f"http://user:{TOKEN}@prom:9090"), "cannot connect"),
    (requests.exceptions.ReadTimeout(TOKEN), "did not answer within 10s"),
    (RuntimeError(f"anything {TOKEN}"), "RuntimeError"),
])
def test_failures_show_a_reason_never_what_they_carried(exc: BaseException, shown: str) -> None:
    text = _describe(safe_reason(exc, 10))
    assert shown in text and TOKEN not in text and "\n" not in text


def test_store_never_shows_the_text_of_an_unknown_exception() -> None:
    async def query(_: str) -> list[dict[str, Any]]:
        raise ValueError(f"token {TOKEN}")

    store = SloStore()
    from readiness_operator.model import Slo
    slo = Slo.model_validate({"name": "s", "comparison": "<", "threshold": 1,
                              "query": 'x{namespace="{{namespace}}", deployment="{{name}}"}'})
    from datetime import UTC, datetime
    asyncio.run(store.refresh("p", [slo], query, datetime.now(UTC)))
    condition = store.condition("p", [slo])
    assert condition is not None and TOKEN not in condition.message and "ValueError" in condition.message
