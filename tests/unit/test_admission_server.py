"""The webhook server (issue #13 item 1): reviews far above aiohttp's 1 MiB default are served, and
every non-2xx answer is counted as an admission error (what ReadinessWebhookErrors alerts on); the
Deployment webhook is answered without kopf's per-request machinery (issue #16)."""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
from typing import Any

import kopf
import kopf._core.reactor.running
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from readiness_operator.kube.admission_server import MAX_REVIEW_BYTES, AdmissionServer, direct_handler, kopf_state
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


async def _post_direct(path: str, body: bytes, metrics: OperatorMetrics) -> tuple[int, Any, list[Any]]:
    seen: list[Any] = []

    async def review(data: Any, indices: Any, memo: Any) -> Any:
        seen.append((data, indices, memo))
        return {"response": {"uid": data["request"]["uid"], "allowed": False}}

    async def kopf_serve(request: Any) -> Any:
        return web.json_response({"response": {"via": "kopf"}})

    server = AdmissionServer(metrics=metrics, insecure=True)
    app = server.application(kopf_serve, {"validate-deployment": direct_handler(review, {"deployment_index": 1}, "memo")})
    async with TestClient(TestServer(app)) as client:
        response = await client.post(path, data=body, headers={"Content-Type": "application/json"})
        return response.status, (await response.json() if response.status == 200 else None), seen


def test_the_deployment_webhook_is_answered_directly_and_the_others_by_kopf() -> None:
    metrics = OperatorMetrics()
    review = json.dumps({"request": {"uid": "u-1"}}).encode()
    status, answer, seen = asyncio.run(_post_direct("/validate-deployment?timeout=10s", review, metrics))
    assert status == 200 and answer == {"response": {"uid": "u-1", "allowed": False}}
    assert seen == [({"request": {"uid": "u-1"}}, {"deployment_index": 1}, "memo")]
    status, answer, seen = asyncio.run(_post_direct("/validate-policy", review, metrics))
    assert status == 200 and answer == {"response": {"via": "kopf"}} and seen == []
    # Not an AdmissionReview: 400, as kopf answers, and counted.
    assert asyncio.run(_post_direct("/validate-deployment", b"{not json", metrics))[0] == 400
    assert asyncio.run(_post_direct("/validate-deployment", b'{"request": 3}', metrics))[0] == 400
    assert errors(metrics, "Deployment") == 2


def test_kopfs_indexes_and_memo_are_found_in_its_webhook_function() -> None:
    fn = functools.partial(lambda **_: None, indices={"policy_index": 1}, memobase="memo", settings=None)
    assert kopf_state(fn) == ({"policy_index": 1}, "memo")
    assert kopf_state(lambda: None) is None
    # The kopf version we run binds them so (if this breaks, every webhook falls back to kopf).
    source = inspect.getsource(kopf._core.reactor.running)
    assert "functools.partial(admission.serve_admission_request" in source
    assert "memobase=memo" in source and "indices=indexers.indices" in source
