"""/readyz: Ready once the indexes are filled, the reader has listed the cluster and the webhook
serves, on the leader and on standbys alike."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from readiness_operator.kube.context import OperatorContext
from readiness_operator.kube.httpd import _readyz, webhook_serving
from readiness_operator.kube.leadership import Leadership
from readiness_operator.settings import Settings
from tests.unit.test_leadership import in_loop


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def probe(ctx: OperatorContext) -> tuple[int, str]:
    response: Any = await _readyz(ctx)(None)  # type: ignore[arg-type]
    return int(response.status), str(response.text)


@in_loop
async def test_a_standby_is_ready_once_its_indexes_are_filled() -> None:
    standby = OperatorContext(settings=Settings(), leadership=Leadership("lease", "ns", "me"))
    assert (await probe(standby))[0] == 503
    standby.indexed = True
    status, text = await probe(standby)
    assert status == 503 and "listing" in text  # kopf's indexes alone are not the whole cluster
    standby.reader.synced.set()
    status, text = await probe(standby)
    assert status == 200 and "standby" in text
    leader = OperatorContext(settings=Settings())
    leader.indexed = True
    leader.reader.synced.set()
    assert await probe(leader) == (200, "ok (leader)\n")


@in_loop
async def test_with_a_webhook_port_ready_waits_for_the_server() -> None:
    port = free_port()
    ctx = OperatorContext(settings=Settings(webhook_port=port, webhook_addr="0.0.0.0"))
    ctx.indexed = True
    ctx.reader.synced.set()
    assert (await probe(ctx))[0] == 503 and not await webhook_serving(ctx, timeout=0.5)
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
    try:
        assert (await probe(ctx))[0] == 200
    finally:
        server.close()
        await server.wait_closed()
    assert ctx.webhook_serving  # remembered: a later hiccup of the server does not flap readiness
