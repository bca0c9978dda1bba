"""`readiness-operator run`: configure kopf and start the operator."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
from typing import Any

import kopf

from readiness_operator import settings as operator_settings

from . import httpd, kopf_scale
from .leadership import LEADERSHIP

PRIORITY = random.randint(1, 2**31 - 1)
METRICS_PORT: int | None = None
_BACKGROUND: set[asyncio.Task[object]] = set()
LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
LOG_FORMATS = {"plain": kopf.LogFormat.PLAIN, "full": kopf.LogFormat.FULL, "json": kopf.LogFormat.JSON}


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
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
    settings.peering.priority = PRIORITY
    settings.peering.lifetime = 30
    LEADERSHIP.priority = PRIORITY
    if LEADERSHIP.peering is not None:
        _BACKGROUND.add(asyncio.create_task(LEADERSHIP.watch()))
    if METRICS_PORT:
        _BACKGROUND.add(asyncio.create_task(httpd.serve(METRICS_PORT)))
    current = operator_settings.CURRENT
    if current.webhook_port:
        from readiness_operator.admission.apply import apply_webhook_configuration
        from readiness_operator.admission.serving import serving_files
        from readiness_operator.admission.webhook_config import webhook_configuration

        files = await asyncio.to_thread(serving_files, current)
        settings.admission.server = kopf.WebhookServer(
            addr=current.webhook_addr, port=current.webhook_port,
            certfile=str(files.certfile), pkeyfile=str(files.keyfile),
        )
        settings.admission.managed = None  # we write the configuration: exclusions, timeout, failurePolicy
        await apply_webhook_configuration(webhook_configuration(current, files.ca_pem))


def run(args: argparse.Namespace) -> int:
    operator_settings.CURRENT = operator_settings.Settings.from_env(webhook_port=args.webhook_port)
    from . import handlers  # noqa: F401 - registers the handlers

    kopf_scale.apply()  # kopf's index-readiness wait is O(N^2) in watched objects otherwise

    if operator_settings.CURRENT.webhook_port:
        from readiness_operator.admission import handlers as admission_handlers  # noqa: F401

    kopf.configure(verbose=args.verbose, log_format=LOG_FORMATS[args.log_format])
    level = os.environ.get("READINESS_LOG_LEVEL", "").lower()
    if level in LOG_LEVELS and not args.verbose:
        logging.getLogger().setLevel(LOG_LEVELS[level])
    global METRICS_PORT
    METRICS_PORT = args.metrics_port
    namespaces = list(args.namespaces or [])
    if not args.standalone:
        LEADERSHIP.peering = args.peering or "default"
        LEADERSHIP.namespace = namespaces[0] if namespaces else None
        LEADERSHIP.active = False
    kopf.run(
        clusterwide=not namespaces,
        namespaces=namespaces,
        standalone=args.standalone,
        peering_name=args.peering,
        liveness_endpoint=args.liveness or None,
    )
    return 0
