"""The readiness page on its own port (READINESS_PAGE_PORT; off by default): read-only HTML.

Served from what the leader's reconcile passes already hold (each policy runtime's overview and SLO
budget history): a view makes no API call and no Prometheus query, so reloading it in a loop costs
the cluster nothing. A standby judges nothing; it says so and names the leader. Only GET (and
HEAD) is routed: there is nothing to change through it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiohttp import web

from readiness_operator.report.overview import cluster_overview
from readiness_operator.report.page import CONTENT_SECURITY_POLICY, render_page, render_standby

from .context import OperatorContext

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def page_html(ctx: OperatorContext, now: datetime | None = None) -> str:
    """The page as this replica can show it now."""
    now = now or datetime.now(UTC)
    if not ctx.leadership.leading:
        return render_standby(ctx.leadership.holder, now=now)
    runtimes = [r for r in list(ctx.registry.policies.values()) if r.overview is not None]
    history = {(r.name, b.slo): r.budget_history.of(b.slo) for r in runtimes if r.overview for b in r.overview.slos}
    overviews = [r.overview for r in runtimes if r.overview is not None]
    return render_page(cluster_overview(overviews, history), now=now,
                       role="standalone" if ctx.leadership.standalone else "leader")


def _page(ctx: OperatorContext) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def page(_: web.Request) -> web.Response:
        return web.Response(text=page_html(ctx), content_type="text/html", charset="utf-8", headers=HEADERS)

    return page


async def serve_page(ctx: OperatorContext, port: int, addr: str = "0.0.0.0") -> web.AppRunner:
    app = web.Application()
    app.add_routes([web.get("/", _page(ctx))])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, addr, port).start()
    return runner
