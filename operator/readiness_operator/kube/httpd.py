"""The operator's own HTTP endpoints on --metrics-port: `/metrics` and `/readyz`."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from .leadership import LEADERSHIP


async def _metrics(_: web.Request) -> web.Response:
    return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _readyz(_: web.Request) -> web.Response:
    if LEADERSHIP.active:
        return web.Response(text="ok\n")
    return web.Response(status=503, text="standby: another replica is active\n")


async def serve(port: int, addr: str = "0.0.0.0") -> web.AppRunner:
    app = web.Application()
    app.add_routes([web.get("/metrics", _metrics), web.get("/readyz", _readyz)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, addr, port).start()
    return runner
