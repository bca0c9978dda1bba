"""`readiness-operator run`: build the operator context, configure kopf and start it."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import random
import sys
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

import kopf
from pydantic import ValidationError

from readiness_operator.admission.webhook_config import webhook_configuration
from readiness_operator.settings import Settings

from . import handlers, kopf_scale  # noqa: F401 - importing registers the handlers
from .admission_server import AdmissionServer
from .context import OperatorContext, context_of
from .httpd import serve
from .leadership import Leadership
from .tls import serving_files

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
    # Peers of equal priority all pause (kopf), so each replica gets its own: the highest acts and
    # the others wait, taking over when its peering record expires.
    settings.peering.priority = ctx.leadership.priority
    settings.peering.lifetime = 30
    if ctx.leadership.peering is not None:
        ctx.spawn(ctx.leadership.watch(ctx.api.peering_status))
    if ctx.metrics_port:
        ctx.spawn(serve(ctx, ctx.metrics_port))
    if ctx.settings.webhook_port:
        files = await asyncio.to_thread(serving_files, ctx.settings, ctx.api.client)
        settings.admission.server = AdmissionServer(
            metrics=ctx.metrics, addr=ctx.settings.webhook_addr, port=ctx.settings.webhook_port,
            certfile=str(files.certfile), pkeyfile=str(files.keyfile),
        )
        settings.admission.managed = None  # we write the configuration: exclusions, timeout, failurePolicy
        await ctx.api.put_admission_object(webhook_configuration(ctx.settings, files.ca_pem))


def build_context(args: argparse.Namespace) -> OperatorContext:
    """The operator context from the environment and the command line."""
    operator_settings = Settings.from_env(webhook_port=args.webhook_port)
    namespaces = list(args.namespaces or [])
    leadership = Leadership()
    if not args.standalone:
        leadership = Leadership(args.peering or "default", random.randint(1, 2**31 - 1),
                                namespaces[0] if namespaces else None)
        leadership.active = False
    return OperatorContext(settings=operator_settings, leadership=leadership, metrics_port=args.metrics_port)


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
    kopf_scale.apply()  # kopf's index-readiness wait is O(N^2) in watched objects otherwise
    kopf.configure(verbose=args.verbose, log_format=LOG_FORMATS[args.log_format])
    if ctx.settings.log_level and not args.verbose:
        logging.getLogger().setLevel(LOG_LEVELS[ctx.settings.log_level])
    namespaces = list(args.namespaces or [])
    kopf.run(
        clusterwide=not namespaces,
        namespaces=namespaces,
        standalone=args.standalone,
        peering_name=args.peering,
        liveness_endpoint=args.liveness or None,
        memo=kopf.Memo(operator=ctx),
    )
    return 0
