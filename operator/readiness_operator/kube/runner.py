"""`readiness-operator run`: build the operator context, configure kopf and start it."""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib
import logging
import sys
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

import kopf
from pydantic import ValidationError

from readiness_operator.admission.webhook_config import webhook_configuration
from readiness_operator.settings import Settings

from . import handlers  # noqa: F401 - importing registers the handlers
from .admission_server import AdmissionServer
from .api import AdmissionObjectMissing
from .context import OperatorContext, context_of
from .httpd import serve
from .leadership import DEFAULT_LEASE, Leadership, LeaderTerm, LeaderWriter, Never, NotLeading, identity
from .page_server import serve_page
from .reader import Connection
from .tls import ServingCertificates, source_for
from .vap_sync import run_admission_policy_writer

log = logging.getLogger(__name__)
LOG_LEVELS: Final[Mapping[str, int]] = MappingProxyType(
    {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR})
LOG_FORMATS: Final[Mapping[str, kopf.LogFormat]] = MappingProxyType(
    {"plain": kopf.LogFormat.PLAIN, "full": kopf.LogFormat.FULL, "json": kopf.LogFormat.JSON})


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    ctx = context_of(memo)
    # Keep kopf's own bookkeeping out of the user-facing status (a strict schema would reject it).
    settings.persistence.finalizer = "readiness.dev/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="readiness.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="readiness.dev", key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60
    # A deleted policy's daemon exits once its clean-up (VAP, reports) is done, well within a second.
    # Without this kopf gives it ten zero-time loop cycles only, then re-checks after the daemon's
    # cancellation backoff (5 s): every `kubectl delete rp` would wait those 5 s for the finalizer.
    settings.background.instant_exit_timeout = 1.0
    ctx.leadership.listen(lambda leading: ctx.metrics.leader.set(1 if leading else 0))
    ctx.spawn(ctx.reader.run(Connection.from_client(ctx.api.client)))
    if ctx.metrics_port:
        ctx.spawn(serve(ctx, ctx.metrics_port))
    if ctx.settings.page_port:
        ctx.spawn(serve_page(ctx, ctx.settings.page_port, ctx.settings.page_addr))
    if ctx.settings.webhook_port:
        certificates = ServingCertificates(source_for(ctx.settings, ctx.api.client), ctx.settings, ctx.metrics)
        context = await asyncio.to_thread(certificates.start)
        from .webhook import DIRECT_REVIEWS  # imported with the webhook handlers (see run())

        settings.admission.server = AdmissionServer(
            metrics=ctx.metrics, addr=ctx.settings.webhook_addr, port=ctx.settings.webhook_port, ssl_context=context,
            retired=certificates.retired, direct=DIRECT_REVIEWS,
        )
        settings.admission.managed = None  # we write the configuration: exclusions, timeout, failurePolicy
        ctx.webhook_ca = certificates.bundle(b"")

        async def publish(bundle: bytes) -> None:
            ctx.webhook_ca = bundle
            await write_webhook_configuration(ctx)

        async def take_over() -> None:
            try:
                ctx.webhook_ca = certificates.bundle(await published_bundle(ctx))
            except Exception as exc:  # keep what other replicas may serve when we can; else our own
                log.warning("could not read the published caBundle: %s", exc)
            await write_webhook_configuration(ctx)

        # Every replica serves admission; the leader (re)writes the configuration when it takes over.
        def on_leadership(leading: bool) -> None:
            if leading:
                ctx.spawn(take_over())

        ctx.leadership.listen(on_leadership)
        ctx.spawn(certificates.run(lambda: ctx.leadership.leading, lambda: published_bundle(ctx), publish))
    if ctx.settings.vap:
        ctx.spawn(run_admission_policy_writer(ctx))
    if not ctx.leadership.standalone:
        ctx.spawn(ctx.leadership.run_in_thread(ctx.api))


async def published_bundle(ctx: OperatorContext) -> bytes:
    """The caBundle the API server uses for our webhooks now (empty before the first write)."""
    current = await ctx.api.get_admission_object("ValidatingWebhookConfiguration", ctx.settings.webhook_configuration)
    for webhook in (current or {}).get("webhooks") or ():
        bundle = (webhook.get("clientConfig") or {}).get("caBundle")
        if bundle:
            return base64.b64decode(bundle)
    return b""


async def write_webhook_configuration(ctx: OperatorContext, retry: float = 5.0, retry_missing: float = 30.0) -> None:
    """Replace the ValidatingWebhookConfiguration while this replica leads, retrying until it is written.

    The chart creates it with no webhooks (installing never blocks a Deployment before the operator
    has a CA and serves); the operator only gets and updates it. Gone (deleted by someone) and not
    creatable with these credentials: one error, then a quiet retry every `retry_missing` seconds.
    """
    assert ctx.webhook_ca is not None
    term = LeaderTerm(ctx.leadership, Never())
    writer = LeaderWriter(ctx.api, term)
    missing = False
    while term.current:
        try:
            await writer.put_admission_object(webhook_configuration(ctx.settings, ctx.webhook_ca))
            log.info("wrote ValidatingWebhookConfiguration %s", ctx.settings.webhook_configuration)
            return
        except NotLeading:
            return
        except AdmissionObjectMissing as exc:
            if not missing:
                log.error("no admission webhook: %s (the chart creates it, value webhook.configurationName; "
                          "`helm upgrade` the release to restore it); retrying every %.0fs", exc, retry_missing)
            missing = True
            await term.wait(retry_missing)
        except Exception as exc:
            log.warning("could not write the webhook configuration (retrying in %.0fs): %s", retry, exc)
            await term.wait(retry)


@kopf.on.cleanup()
async def release_lease(memo: kopf.Memo, **_: Any) -> None:
    """On graceful shutdown (after kopf stopped the policy loops) hand the Lease to a standby at once."""
    ctx = context_of(memo)
    await ctx.leadership.release(ctx.api)


def build_context(args: argparse.Namespace) -> OperatorContext:
    """The operator context from the environment and the command line."""
    operator_settings = Settings.from_env(webhook_port=args.webhook_port)
    leadership = Leadership()
    if not args.standalone:
        if args.peering:
            log.warning("--peering is deprecated (kopf peering is gone): it names the leader-election Lease now")
        lease = args.lease or args.peering or DEFAULT_LEASE
        leadership = Leadership(lease, operator_settings.namespace, identity(operator_settings.pod_name))
    return OperatorContext(settings=operator_settings, leadership=leadership, metrics_port=args.metrics_port,
                           namespaces=tuple(args.namespaces or ()))


def run(args: argparse.Namespace) -> int:
    try:
        ctx = build_context(args)
    except ValidationError as exc:
        print(f"error: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    if ctx.settings.webhook_port:
        # Registered only with a server to serve them: kopf refuses admission handlers without one
        # (and their indexes, ReplicaSets among them, would be watched for nothing).
        importlib.import_module("readiness_operator.kube.webhook")
    kopf.configure(verbose=args.verbose, log_format=LOG_FORMATS[args.log_format])
    if ctx.settings.log_level and not args.verbose:
        logging.getLogger().setLevel(LOG_LEVELS[ctx.settings.log_level])
    namespaces = list(args.namespaces or [])
    kopf.run(
        clusterwide=not namespaces,
        namespaces=namespaces,
        standalone=True,  # no kopf peering: it would pause standbys; leadership.py elects instead
        liveness_endpoint=args.liveness or None,
        memo=kopf.Memo(operator=ctx),
    )
    return 0
