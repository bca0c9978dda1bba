"""The webhook server (issue #13 item 1): reviews far above aiohttp's 1 MiB default are served, and
every non-2xx answer is counted as an admission error (what ReadinessWebhookErrors alerts on)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from readiness_operator.kube.admission_server import MAX_REVIEW_BYTES, AdmissionServer
from readiness_operator.kube.metrics import OperatorMetrics


def errors(metrics: OperatorMetrics, kind: str) -> float:
    value = metrics.registry.get_sample_value("readiness_admission_requests_total", {"kind": kind, "result": "error"})
    return value or 0.0


async def _post(server: AdmissionServer, path: str, body: bytes) -> tuple[int, Any]:
    async def fn(data: Any, **_: Any) -> Any:
        if data.get("crash"):
            raise RuntimeError("boom")
        return {"response": {"allowed": True, "size": len(json.dumps(data))}}

    async def serve(request: Any) -> Any:
        return await server._serve(fn, request)  # type: ignore[arg-type]  # a stand-in for kopf's fn

    async with TestClient(TestServer(server.application(serve))) as client:
        response = await client.post(path, data=body, headers={"Content-Type": "application/json"})
        return response.status, (await response.json() if response.status == 200 else None)


def test_a_review_over_the_api_servers_request_limit_is_served() -> None:
    metrics = OperatorMetrics()
    server = AdmissionServer(metrics=metrics, insecure=True)
    body = json.dumps({"request": {"env": "x" * (6 * 1024 * 1024)}}).encode()  # an UPDATE of a 3 MiB object
    status, answer = asyncio.run(_post(server, "/validate-deployment", body))
    assert status == 200 and answer["response"]["size"] > 6 * 1024 * 1024
    assert errors(metrics, "Deployment") == 0
    assert MAX_REVIEW_BYTES >= 2 * 3 * 1024 * 1024


def test_every_non_2xx_answer_is_counted_as_an_error() -> None:
    metrics = OperatorMetrics()
    small = AdmissionServer(metrics=metrics, insecure=True, max_size=1024)
    assert asyncio.run(_post(small, "/validate-deployment", b'{"pad": "' + b"x" * 2048 + b'"}'))[0] == 413
    assert asyncio.run(_post(small, "/validate-deployment", b"{not json"))[0] == 400
    assert asyncio.run(_post(small, "/validate-policy", b'{"crash": true}'))[0] == 500
    assert errors(metrics, "Deployment") == 2 and errors(metrics, "ReadinessPolicy") == 1
