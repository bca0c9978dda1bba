"""kopf's webhook server with a request size limit fit for the API server, and every error counted.

kopf builds its aiohttp ``Application`` with aiohttp's default ``client_max_size`` of 1 MiB, so a
Deployment whose AdmissionReview is larger (the API server accepts 3 MiB requests; an UPDATE review
carries the object twice) was answered 413, the API server failed open, and nothing was counted.
This server is kopf's (same TLS files, same reload on certificate change, same request handling)
with a limit above anything the API server can send, and a middleware that counts every non-2xx
answer as ``readiness_admission_requests_total{result="error"}`` (what ``ReadinessWebhookErrors``
alerts on).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

import kopf
from aiohttp import web
from aiohttp.typedefs import Middleware

from readiness_operator.admission.webhook_config import DEPLOYMENT_PATH, POLICY_PATH

from .metrics import OperatorMetrics

log = logging.getLogger(__name__)

#: The API server's own request limit is 3 MiB; an UPDATE review holds object and oldObject (plus
#: JSON escaping), so 16 MiB leaves room for anything it can send.
MAX_REVIEW_BYTES: Final = 16 * 1024 * 1024
KINDS: Final = ((DEPLOYMENT_PATH, "Deployment"), (POLICY_PATH, "ReadinessPolicy"))

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def kind_of(path: str) -> str:
    """The admission metric's ``kind`` label for a webhook path."""
    return next((kind for prefix, kind in KINDS if path.startswith(prefix)), "unknown")


def error_counter(metrics: OperatorMetrics) -> Middleware:
    """An aiohttp middleware counting every non-2xx answer (413, 400, 500...) as an admission error."""

    @web.middleware
    async def count_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status >= 300:
                _count(metrics, request, exc.status)
            raise
        except Exception:
            _count(metrics, request, 500)
            raise
        if response.status >= 300:
            _count(metrics, request, response.status)
        return response

    return count_errors


def _count(metrics: OperatorMetrics, request: web.Request, status: int) -> None:
    log.warning("admission request %s answered HTTP %d (content length %s)", request.path, status,
                request.content_length)
    metrics.admission_requests.labels(kind=kind_of(request.path), result="error").inc()


class AdmissionServer(kopf.WebhookServer):
    """``kopf.WebhookServer`` with ``client_max_size`` raised and the error-counting middleware."""

    def __init__(self, *, metrics: OperatorMetrics, max_size: int = MAX_REVIEW_BYTES, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metrics, self.max_size = metrics, max_size

    def application(self, serve: Handler) -> web.Application:
        """The aiohttp app answering every ``POST <path>/<id>`` with kopf's ``serve``."""
        app = web.Application(client_max_size=self.max_size, middlewares=[error_counter(self.metrics)])
        app.add_routes([web.post(f"{(self.path or '').rstrip('/')}/{{id:.*}}", serve)])
        return app

    async def __call__(self, fn: kopf.WebhookFn) -> AsyncIterator[kopf.WebhookClientConfig]:
        async def serve(request: web.Request) -> web.StreamResponse:
            return await self._serve(fn, request)

        while True:  # restarted when the certificate files change, like kopf's own server
            cadata, context = self._build_ssl()
            runner = web.AppRunner(self.application(serve), handle_signals=False)
            await runner.setup()
            try:
                port = self.port or self._allocate_free_port()
                site = web.TCPSite(runner, self.addr or None, port, ssl_context=context,
                                   reuse_port=True, reuse_address=True)
                await site.start()
                host = self.host or self.DEFAULT_HOST or self._get_accessible_addr(self.addr)
                url = self._build_url("http" if context is None else "https", host, port, self.path or "")
                config = kopf.WebhookClientConfig(url=url)
                if cadata is not None:
                    config["caBundle"] = base64.b64encode(cadata).decode("ascii")
                yield config
                await self._WebhookServer__sleep_forever_or_until_ssl_files_change()  # type: ignore[attr-defined]
            finally:
                await runner.cleanup()
