"""`readiness-operator run`: configure kopf and start the operator."""

from __future__ import annotations

import argparse
import logging
import random
from typing import Any

import kopf

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
    settings.peering.priority = random.randint(1, 2**31 - 1)
    settings.peering.lifetime = 30


def run(args: argparse.Namespace) -> int:
    from . import handlers  # noqa: F401 - registers the handlers

    kopf.configure(verbose=args.verbose, log_format=LOG_FORMATS[args.log_format])
    if args.metrics_port:
        import prometheus_client

        prometheus_client.start_http_server(args.metrics_port)
    namespaces = list(args.namespaces or [])
    kopf.run(
        clusterwide=not namespaces,
        namespaces=namespaces,
        standalone=args.standalone,
        peering_name=args.peering,
        liveness_endpoint=args.liveness or None,
    )
    return 0
