"""The operator's own HTTP endpoints on --metrics-port: `/metrics` and `/readyz`.

Ready means "this replica can answer admission correctly": its indexes are filled and (with a
webhook port) its admission server accepts connections. Leader and standby alike: every replica
watches and serves the webhook; leadership only decides who writes (see leadership.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Final

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from .context import OperatorContext

LOCAL: Final[Mapping[str, str]] = MappingProxyType({"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"})


async def webhook_serving(ctx: OperatorContext, timeout: float = 1.0) -> bool:
    """Whether the admission server accepts TCP connections (remembered once it did)."""
    if ctx.webhook_serving or not ctx.settings.webhook_port:
        return True
    host = LOCAL.get(ctx.settings.webhook_addr, ctx.settings.webhook_addr)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, ctx.settings.webhook_port), timeout)
    except (OSError, TimeoutError):
        return False
    writer.close()
    ctx.webhook_serving = True
    return True


def _readyz(ctx: OperatorContext) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def readyz(_: web.Request) -> web.Response:
        if not ctx.indexed:
            return web.Response(status=503, text="indexes not filled yet\n")
        if not ctx.reader.synced.is_set():
            return web.Response(status=503, text="still listing the cluster\n")
        if not await webhook_serving(ctx):
            return web.Response(status=503, text="admission server not serving yet\n")
        role = "leader" if ctx.leadership.leading else f"standby; leader: {ctx.leadership.holder or 'none yet'}"
        return web.Response(text=f"ok ({role})\n")

    return readyz


async def serve(ctx: OperatorContext, port: int, addr: str = "0.0.0.0") -> web.AppRunner:
    app = web.Application()
    app.add_routes([web.get("/metrics", make_aiohttp_handler(ctx.metrics.registry)), web.get("/readyz", _readyz(ctx))])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, addr, port).start()
    return runner
