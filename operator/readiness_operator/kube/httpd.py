"""The operator's own HTTP endpoints on --metrics-port: `/metrics` and `/readyz`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from .context import OperatorContext


def _readyz(ctx: OperatorContext) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def readyz(_: web.Request) -> web.Response:
        if ctx.leadership.active:
            return web.Response(text="ok\n")
        return web.Response(status=503, text="standby: another replica is active\n")

    return readyz


async def serve(ctx: OperatorContext, port: int, addr: str = "0.0.0.0") -> web.AppRunner:
    app = web.Application()
    app.add_routes([web.get("/metrics", make_aiohttp_handler(ctx.metrics.registry)), web.get("/readyz", _readyz(ctx))])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, addr, port).start()
    return runner
