"""kopf's webhook server with a request size limit fit for the API server, and every error counted.

kopf builds its aiohttp ``Application`` with aiohttp's default ``client_max_size`` of 1 MiB, so a
Deployment whose AdmissionReview is larger (the API server accepts 3 MiB requests; an UPDATE review
carries the object twice) was answered 413, the API server failed open, and nothing was counted.
This server is kopf's request handling with a limit above anything the API server can send, and a
middleware that counts every non-2xx answer as ``readiness_admission_requests_total{result="error"}``
(what ``ReadinessWebhookErrors`` alerts on). Its TLS context comes from `tls.ServingCertificates`,
which switches certificates in place: kopf's own server stopped listening and started again when
its files changed, so requests arriving in between failed.

The Deployment webhook, the one on every Deployment write, is answered directly (``direct``): the
review is parsed once and handed with kopf's indexes to our handler, without kopf's per-request
machinery (cause and diff objects, handler execution, a log line per request) or aiohttp's access
log line, which cost more CPU than the decision itself (docs/benchmarks.md, "Admission through the
API server"). The other webhooks still go through kopf.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
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
#: Answers a parsed AdmissionReview with the AdmissionReview response, given kopf's indexes (by
#: index name) and the operator's memo: what kopf hands its handlers, without the rest.
DirectReview = Callable[[Mapping[str, Any], Mapping[str, Any], Any], Awaitable[Mapping[str, Any]]]


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


RetiredCheck = Callable[[Any], bool]


def retire_old_connections(retired: RetiredCheck) -> Middleware:
    """Answer ``Connection: close`` on a connection made with a replaced certificate: the client's
    next request opens a new connection with the new one. (Closing idle connections instead would
    race a client writing its next POST, which it may not retry.)"""

    @web.middleware
    async def close_if_retired(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        transport = request.transport
        if transport is not None and retired(transport.get_extra_info("ssl_object")):
            response.force_close()
        return response

    return close_if_retired


def _count(metrics: OperatorMetrics, request: web.Request, status: int) -> None:
    log.warning("admission request %s answered HTTP %d (content length %s)", request.path, status,
                request.content_length)
    metrics.admission_requests.labels(kind=kind_of(request.path), result="error").inc()


def direct_handler(review: DirectReview, indices: Mapping[str, Any], memo: Any) -> Handler:
    """An aiohttp handler parsing the body once and answering with ``review`` (400 for what is not
    an AdmissionReview, as kopf answers; 413 above the size limit, from aiohttp)."""

    async def answer(request: web.Request) -> web.StreamResponse:
        try:
            data = json.loads(await request.read())
        except ValueError as exc:
            raise web.HTTPBadRequest(reason=f"not JSON: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("request"), dict):
            raise web.HTTPBadRequest(reason="not an AdmissionReview: no request")
        response = await review(data, indices, memo)
        return web.Response(body=json.dumps(response, separators=(",", ":")).encode(), content_type="application/json")

    return answer


def kopf_state(fn: Any) -> tuple[Mapping[str, Any], Any] | None:
    """kopf's indexes and memo, bound into the ``WebhookFn`` it gives the server (a
    ``functools.partial`` of ``serve_admission_request`` in kopf 1.45); None if kopf changed that."""
    keywords = getattr(fn, "keywords", None) or {}
    indices, memo = keywords.get("indices"), keywords.get("memobase")
    if not isinstance(indices, Mapping) or memo is None:
        return None
    return indices, memo


class AdmissionServer(kopf.WebhookServer):
    """``kopf.WebhookServer`` with ``client_max_size`` raised, the error-counting middleware,
    connections made with a replaced certificate closed after their next answer, and the webhooks
    in ``direct`` (webhook id -> handler) answered without kopf's per-request machinery."""

    def __init__(self, *, metrics: OperatorMetrics, ssl_context: ssl.SSLContext | None = None,
                 retired: RetiredCheck | None = None, max_size: int = MAX_REVIEW_BYTES,
                 direct: Mapping[str, DirectReview] | None = None, **kwargs: Any) -> None:
        super().__init__(context=ssl_context, **kwargs)
        self.metrics, self.max_size, self.retired = metrics, max_size, retired
        self.direct = dict(direct or {})

    def application(self, serve: Handler, direct: Mapping[str, Handler] | None = None) -> web.Application:
        """The aiohttp app answering ``POST <path>/<id>`` with ``direct[id]``, any other id with kopf's ``serve``."""
        middlewares = [error_counter(self.metrics)]
        if self.retired is not None:
            middlewares.append(retire_old_connections(self.retired))
        app = web.Application(client_max_size=self.max_size, middlewares=middlewares)
        prefix = (self.path or "").rstrip("/")
        app.add_routes([web.post(f"{prefix}/{webhook_id}", handler) for webhook_id, handler in (direct or {}).items()])
        app.add_routes([web.post(f"{prefix}/{{id:.*}}", serve)])
        return app

    async def __call__(self, fn: kopf.WebhookFn) -> AsyncIterator[kopf.WebhookClientConfig]:
        async def serve(request: web.Request) -> web.StreamResponse:
            return await self._serve(fn, request)

        direct: dict[str, Handler] = {}
        state = kopf_state(fn) if self.direct else None
        if state is not None:
            direct = {webhook_id: direct_handler(review, *state) for webhook_id, review in self.direct.items()}
        elif self.direct:
            log.warning("kopf's webhook function carries no indexes: every webhook goes through kopf")
        # No access log: a line per admission request; errors are logged and counted by the middleware.
        runner = web.AppRunner(self.application(serve, direct), handle_signals=False, access_log=None)
        await runner.setup()
        try:
            port = self.port or self._allocate_free_port()
            site = web.TCPSite(runner, self.addr or None, port, ssl_context=self.context,
                               reuse_port=True, reuse_address=True)
            await site.start()
            host = self.host or self.DEFAULT_HOST or self._get_accessible_addr(self.addr)
            scheme = "http" if self.context is None else "https"
            yield kopf.WebhookClientConfig(url=self._build_url(scheme, host, port, self.path or ""))
            await asyncio.Event().wait()  # serve until cancelled; certificates change in the context
        finally:
            await runner.cleanup()
