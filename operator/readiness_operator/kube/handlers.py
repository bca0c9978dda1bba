"""kopf handlers: thin translations from watch events to dirty marks, and one daemon per policy.

One LIST+WATCH per kind feeds the indexes (kopf fills them before any handler runs, so the first
pass sees the whole cluster). Handlers are async so 10,000 events never touch a thread pool.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import kopf

from readiness_operator import settings as operator_settings
from readiness_operator.admission.apply import VapSync
from readiness_operator.model import GROUP, VERSION
from readiness_operator.model.crd import PLURAL
from readiness_operator.model.slo import duration_seconds
from readiness_operator.slo.client import query_fn
from readiness_operator.slo.store import SloStore

from . import metrics
from .objects import trim_deployment, trim_hpa, trim_pdb
from .reconcile import PassInput, run_pass
from .state import REGISTRY
from .view import IndexView
from .writer import ApiWriter

log = logging.getLogger(__name__)
RESYNC_SECONDS = 300.0  # full re-evaluation: exemption expiry, anything a watch could have missed
DEBOUNCE_SECONDS = 0.2  # coalesce bursts of events into one pass
WRITER = ApiWriter()
SLOS = SloStore()  # measurements shared by policy passes and the admission webhook


@kopf.index("apps", "v1", "deployments")
async def deployment_index(namespace: str | None, body: kopf.Body, **_: Any) -> dict[str | None, Any]:
    return {namespace: trim_deployment(body)}


@kopf.index("policy", "v1", "poddisruptionbudgets")
async def pdb_index(namespace: str | None, body: kopf.Body, **_: Any) -> dict[str | None, Any]:
    return {namespace: trim_pdb(body)}


@kopf.index("autoscaling", "v2", "horizontalpodautoscalers")
async def hpa_index(namespace: str | None, body: kopf.Body, **_: Any) -> dict[str | None, Any]:
    return {namespace: trim_hpa(body)}


@kopf.index("", "v1", "namespaces")
async def namespace_index(name: str, labels: kopf.Labels, **_: Any) -> dict[str, Any]:
    return {name: dict(labels)}


@kopf.on.event("apps", "v1", "deployments")
async def deployment_event(namespace: str | None, name: str, **_: Any) -> None:
    REGISTRY.mark_deployment(namespace or "", name)


@kopf.on.event("policy", "v1", "poddisruptionbudgets")
async def pdb_event(namespace: str | None, **_: Any) -> None:
    REGISTRY.mark_namespace(namespace or "")


@kopf.on.event("autoscaling", "v2", "horizontalpodautoscalers")
async def hpa_event(namespace: str | None, **_: Any) -> None:
    REGISTRY.mark_namespace(namespace or "")


@kopf.on.event("", "v1", "namespaces")
async def namespace_event(name: str, **_: Any) -> None:
    REGISTRY.mark_namespace(name)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def policy_event(name: str, **_: Any) -> None:
    REGISTRY.wake(name)


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=10.0)  # type: ignore[arg-type]  # index kwargs
async def policy_daemon(
    name: str, uid: str, meta: kopf.Meta, spec: kopf.Spec, status: kopf.Status, stopped: kopf.DaemonStopped,
    deployment_index: kopf.Index[str, Any], pdb_index: kopf.Index[str, Any],
    hpa_index: kopf.Index[str, Any], namespace_index: kopf.Index[str, Any], **_: Any,
) -> None:
    """Keep one policy's status, reports and Events current until it is deleted or we stop."""
    runtime = REGISTRY.ensure(name, uid)
    view = IndexView(deployment_index, pdb_index, hpa_index, namespace_index)
    vap = VapSync(name, operator_settings.CURRENT) if operator_settings.CURRENT.vap else None
    backoff = 1.0
    try:
        while not stopped:
            try:
                item = PassInput(name, uid, meta.get("generation"), dict(spec), dict(status))
                await run_pass(runtime, item, view, WRITER, slo_store=SLOS, slo_query=query_fn)
                if vap is not None:
                    await vap.sync(runtime.compiled.spec if runtime.compiled is not None else None)
                backoff = 1.0
            except asyncio.CancelledError:
                raise
            except Exception:
                metrics.RECONCILE_ERRORS.labels(policy=name).inc()
                log.exception("policy %s: pass failed; retrying in %.0fs", name, backoff)
                runtime.mark(everything=True)
                await stopped.wait(backoff)
                backoff = min(backoff * 2, 60.0)
                continue
            horizon = RESYNC_SECONDS
            if runtime.compiled is not None and runtime.compiled.spec.slos:
                horizon = min(horizon, min(duration_seconds(s.interval) for s in runtime.compiled.spec.slos))
            if vap is not None and vap.next_expiry is not None:  # an exemption ends: regenerate the VAP
                horizon = min(horizon, max(1.0, (vap.next_expiry - datetime.now(UTC)).total_seconds()))
            # Sleep until a watch event marks something dirty, the policy is deleted (exit at once, so
            # kopf removes the finalizer without cancelling us), or the resync/SLO horizon passes.
            waiters = {asyncio.ensure_future(runtime.wake.wait()), asyncio.ensure_future(stopped.wait())}
            await asyncio.wait(waiters, timeout=horizon, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
            if stopped:
                break
            if not runtime.wake.is_set() and runtime.needs_full_pass(RESYNC_SECONDS):  # not for an SLO tick alone
                runtime.mark(everything=True)
            await asyncio.sleep(DEBOUNCE_SECONDS)
    finally:
        REGISTRY.remove(name, uid)
        SLOS.forget(name)
        if stopped.reason is not None and stopped.reason & kopf.DaemonStoppingReason.RESOURCE_DELETED:
            await _cleanup(runtime.written_reports)
            if vap is not None:
                await vap.delete()


async def _cleanup(reports: dict[tuple[str, str], str]) -> None:
    """Delete what a deleted policy wrote (owner references let the GC do it too, later)."""
    for namespace, report in list(reports):
        try:
            await WRITER.delete_policy_report(namespace, report)
        except Exception:  # GC will remove it through the owner reference
            log.warning("could not delete PolicyReport %s/%s", namespace, report)


@kopf.on.probe(id="policies")
async def policies_probe(**_: Any) -> int:
    return len(REGISTRY.policies)
