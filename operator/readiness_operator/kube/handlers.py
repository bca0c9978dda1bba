"""kopf handlers: thin translations from watch events to dirty marks, and one daemon per policy.

One LIST+WATCH per kind feeds the indexes (kopf fills them before any handler runs, so the first
pass sees the whole cluster). Handlers are async so 10,000 events never touch a thread pool. All
shared state is the operator context in `memo` (see context.py).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from readiness_operator.model import GROUP, VERSION
from readiness_operator.model.crd import PLURAL

from .api import KubeApi
from .context import context_of
from .loop import run_until_stopped
from .objects import trim_deployment, trim_hpa, trim_pdb
from .reconcile import PassInput, run_pass
from .vap_sync import VapSync
from .view import IndexView

log = logging.getLogger(__name__)


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
async def deployment_event(namespace: str | None, name: str, memo: kopf.Memo, **_: Any) -> None:
    context_of(memo).registry.mark_deployment(namespace or "", name)


@kopf.on.event("policy", "v1", "poddisruptionbudgets")
async def pdb_event(namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    context_of(memo).registry.mark_namespace(namespace or "")


@kopf.on.event("autoscaling", "v2", "horizontalpodautoscalers")
async def hpa_event(namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    context_of(memo).registry.mark_namespace(namespace or "")


@kopf.on.event("", "v1", "namespaces")
async def namespace_event(name: str, memo: kopf.Memo, **_: Any) -> None:
    context_of(memo).registry.mark_namespace(name)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def policy_event(name: str, memo: kopf.Memo, **_: Any) -> None:
    context_of(memo).registry.wake(name)


# cancellation_backoff: kopf signals first and cancels only after it, so the cleanup below is not
# cut short between deleting the binding and the VAP.
@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_backoff=0.5, cancellation_timeout=10.0)  # type: ignore[arg-type]  # index kwargs
async def policy_daemon(
    name: str, uid: str, meta: kopf.Meta, spec: kopf.Spec, status: kopf.Status, stopped: kopf.DaemonStopped,
    memo: kopf.Memo, deployment_index: kopf.Index[str, Any], pdb_index: kopf.Index[str, Any],
    hpa_index: kopf.Index[str, Any], namespace_index: kopf.Index[str, Any], **_: Any,
) -> None:
    """Keep one policy's status, reports, Events and fail-safe VAP current until it is deleted or we stop."""
    ctx = context_of(memo)
    runtime = ctx.registry.ensure(name, uid)
    view = IndexView(deployment_index, pdb_index, hpa_index, namespace_index)
    vap = VapSync(name, ctx.api, ctx.settings.excluded_namespaces, uid) if ctx.settings.vap else None

    async def reconcile() -> float:
        item = PassInput(name, uid, meta.get("generation"), dict(spec), dict(status))
        result = await run_pass(runtime, item, view, ctx.api, slo_store=ctx.slos, slo_query=ctx.prometheus.query_fn,
                                metrics=ctx.metrics, vap=vap)
        return result.requeue_after

    def failed(exc: Exception, retry_in: float) -> None:
        ctx.metrics.reconcile_errors.labels(policy=name).inc()
        log.error("policy %s: pass failed; retrying in %.0fs", name, retry_in, exc_info=exc)
        runtime.mark(everything=True)

    try:
        await run_until_stopped(reconcile, wake=runtime.wake, stopped=stopped, on_error=failed)
    finally:
        slo_names = tuple(s.name for s in runtime.compiled.spec.slos) if runtime.compiled is not None else ()
        ctx.registry.remove(name, uid)
        ctx.slos.forget(name)
        if stopped.reason is not None and stopped.reason & kopf.DaemonStoppingReason.RESOURCE_DELETED:
            ctx.metrics.forget_policy(name, slo_names)
            # Shielded: a cancellation (kopf escalating) must not stop it halfway.
            await asyncio.shield(ctx.spawn(_cleanup(ctx.api, dict(runtime.written_reports), vap)))


async def _cleanup(api: KubeApi, reports: dict[tuple[str, str], str], vap: VapSync | None) -> None:
    """Delete what a deleted policy wrote (owner references let the GC do it too, later)."""
    if vap is not None:  # first: it is what still enforces
        try:
            await vap.delete()
        except Exception:
            log.warning("could not delete the fail-safe ValidatingAdmissionPolicy of a deleted policy", exc_info=True)
    for namespace, report in list(reports):
        try:
            await api.delete_policy_report(namespace, report)
        except Exception:  # GC will remove it through the owner reference
            log.warning("could not delete PolicyReport %s/%s", namespace, report)


@kopf.on.probe(id="policies")
async def policies_probe(memo: kopf.Memo, **_: Any) -> int:
    return len(context_of(memo).registry.policies)
