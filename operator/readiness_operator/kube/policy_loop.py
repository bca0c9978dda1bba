"""One policy's loop on one replica: stand by, reconcile while leading, start afresh each term.

Every replica runs a kopf daemon per policy (they all watch), but only the leader reconciles: a
standby's loop waits for leadership and writes nothing. It does keep the policy's SLO measurements
fresh (reads, not writes): the webhook Service sends admission requests to every Ready replica, and
an error-budget freeze must hold whichever replica answers. Each leadership
term gets a fresh `PolicyRuntime`, exactly as after a restart: the first pass seeds itself from
the policy's PolicyReports, so no Event is repeated and unchanged objects are not rewritten. When
the term ends the loop stops at once (every write checks the term, see `LeaderWriter`) and drops
what it knew it had written, and its verdict metrics.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from readiness_operator.world import ClusterView

from .context import OperatorContext
from .leadership import LeaderTerm, LeaderWriter, NotLeading, Stopped
from .loop import run_until_stopped
from .reconcile import PassInput, Writer, label_values, pod_owner, run_pass

log = logging.getLogger(__name__)


async def run_policy(
    ctx: OperatorContext, name: str, uid: str, read: Callable[[], PassInput], view: ClusterView,
    stopped: Stopped, deleted: Callable[[], bool],
) -> None:
    """Until kopf stops the daemon: wait to lead, then reconcile for as long as the term lasts."""
    while not stopped:
        await _stand_by(ctx, name, read, view, stopped)
        if stopped:
            break
        await _lead(ctx, name, uid, read, view, stopped, deleted)


async def _stand_by(
    ctx: OperatorContext, name: str, read: Callable[[], PassInput], view: ClusterView, stopped: Stopped
) -> None:
    """Until this replica may write: measure the policy's SLOs each interval, for the webhook."""
    while not ctx.leadership.writable and not stopped:
        item = read()
        plan = ctx.policies.get(name, item.generation, item.spec).plan
        horizon = ctx.settings.resync_seconds
        if plan is not None and plan.spec.slos:
            spec = plan.spec
            every = (d for ns in view.namespaces() for d in view.deployments(ns))
            try:
                await ctx.slos.refresh(name, spec.slos, ctx.prometheus.query_fn(spec.prometheus), datetime.now(UTC),
                                       namespaces=spec.match.namespaces, label_values=label_values(spec, every),
                                       owner_of=pod_owner(view))
            except Exception:  # measuring is best effort on a standby; the leader reports failures
                log.exception("policy %s: SLO refresh on standby failed", name)
            horizon = max(0.1, min(ctx.slos.seconds_until_due(name, s, datetime.now(UTC)) for s in spec.slos))
        waiters = {asyncio.ensure_future(ctx.leadership.wait_leading(stopped)), asyncio.ensure_future(stopped.wait(horizon))}
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
    ctx.slos.forget(name)  # the leader's runtime measures from here on


async def _lead(
    ctx: OperatorContext, name: str, uid: str, read: Callable[[], PassInput], view: ClusterView,
    stopped: Stopped, deleted: Callable[[], bool],
) -> None:
    term = LeaderTerm(ctx.leadership, stopped)
    writer = LeaderWriter(ctx.api, term)
    runtime = ctx.registry.ensure(name, uid)  # new: its first pass runs at once and seeds from the reports
    runtime.resync_seconds = ctx.settings.resync_seconds

    async def reconcile() -> float:
        result = await run_pass(runtime, read(), view, writer, slo_store=ctx.slos, slo_query=ctx.prometheus.query_fn,
                                metrics=ctx.metrics, report_slots=ctx.report_slots)
        return result.requeue_after

    def failed(exc: Exception, retry_in: float) -> None:
        if isinstance(exc, NotLeading):  # the term ended during the pass: the loop ends now
            return
        ctx.metrics.reconcile_errors.labels(policy=name).inc()
        log.error("policy %s: pass failed; retrying in %.0fs", name, retry_in, exc_info=exc)
        runtime.mark(everything=True)

    try:
        await run_until_stopped(reconcile, wake=runtime.wake, stopped=term, on_error=failed)
    finally:
        slo_names = tuple(s.name for s in runtime.compiled.spec.slos) if runtime.compiled is not None else ()
        ctx.registry.remove(name, uid)
        ctx.slos.forget(name)
        if deleted() or not term.current:
            ctx.metrics.forget_policy(name, slo_names)
        if deleted() and term.current:
            # Shielded: kopf escalating to a cancellation must not stop it half-way.
            await asyncio.shield(ctx.spawn(_cleanup(writer, dict(runtime.written_reports))))
        elif not term.current:
            log.info("policy %s: no longer the leader; stopped writing", name)


async def _cleanup(writer: Writer, reports: dict[tuple[str, str], str]) -> None:
    """Delete what a deleted policy wrote (owner references let the GC do it too, later).

    Its rules leave the merged ValidatingAdmissionPolicy through that object's own writer
    (kube/vap_sync.py), which the policy's deletion event wakes.
    """
    for namespace, report in list(reports):
        try:
            await writer.delete_policy_report(namespace, report)
        except Exception:  # GC will remove it through the owner reference
            log.warning("could not delete PolicyReport %s/%s", namespace, report)
