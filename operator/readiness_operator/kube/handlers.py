"""kopf handlers: the few kinds kopf watches, and one daemon per policy.

kopf watches Namespaces and ReadinessPolicies (few, and the policies drive the daemons); the
numerous kinds are read by our own LIST+WATCH (reader.py, watched.py), which trims each object as
it arrives and marks the policy loops dirty. A daemon's first pass waits until that reader has
listed everything, so it sees the whole cluster. Every replica runs them all; only the leader's
policy loops write (policy_loop.py). All shared state is the operator context in `memo` (see
context.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

import kopf

from readiness_operator.model import GROUP, VERSION
from readiness_operator.model.crd import PLURAL

from .context import context_of
from .policy_loop import run_policy
from .reconcile import PassInput
from .vap_sync import index_entry
from .watched import reader_view


@kopf.index("", "v1", "namespaces")
async def namespace_index(name: str, labels: kopf.Labels, **_: Any) -> dict[str, Any]:
    return {name: dict(labels)}


@kopf.index(GROUP, VERSION, PLURAL)
async def readiness_policy_index(name: str, uid: str, meta: kopf.Meta, spec: kopf.Spec, **_: Any) -> dict[str, Any]:
    """Every policy, for the one writer of the merged ValidatingAdmissionPolicy (kube/vap_sync.py)."""
    return {name: index_entry(uid, meta.get("generation"), spec, meta.get("deletionTimestamp") is not None)}


@kopf.on.event("", "v1", "namespaces")
async def namespace_event(name: str, memo: kopf.Memo, **kwargs: Any) -> None:
    ctx = context_of(memo)
    ctx.policy_index = kwargs["readiness_policy_index"]  # kopf's live index; complete now, see below
    # kopf holds every non-index handler back until all its indexes are filled (processing.py waits
    # on `operator_indexed` after indexing each object), and a cluster always has namespaces
    # (watched cluster-wide even in namespaced mode): the first of these events means kopf's
    # indexes are complete; /readyz also waits for the reader (ctx.reader.synced).
    ctx.indexed = True
    ctx.registry.mark_namespace(name)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def policy_event(name: str, memo: kopf.Memo, **kwargs: Any) -> None:
    ctx = context_of(memo)
    ctx.policy_index = kwargs["readiness_policy_index"]
    ctx.registry.wake(name)
    ctx.admission_policy_wake.set()  # the index already holds this event's state


# cancellation_backoff: without it kopf cancels a daemon that does not exit within a few loop cycles
# of being stopped, which would cut short the clean-up of a deleted policy (its reports and VAP).
@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_backoff=5.0, cancellation_timeout=10.0)  # type: ignore[arg-type]
async def policy_daemon(
    name: str, uid: str, meta: kopf.Meta, spec: kopf.Spec, status: kopf.Status, stopped: kopf.DaemonStopped,
    memo: kopf.Memo, namespace_index: kopf.Index[str, Any], **_: Any,
) -> None:
    """Keep one policy's status, reports, Events and fail-safe VAP current while this replica leads."""

    def read() -> PassInput:  # kopf keeps a daemon's meta/spec/status live
        return PassInput(name, uid, meta.get("generation"), dict(spec), dict(status))

    def deleted() -> bool:
        return stopped.reason is not None and bool(stopped.reason & kopf.DaemonStoppingReason.RESOURCE_DELETED)

    ctx = context_of(memo)
    if not await _until_read(ctx.reader.synced, stopped):  # the first pass must see the whole cluster
        return
    await run_policy(ctx, name, uid, read, reader_view(ctx.reader, namespace_index, ctx.related), stopped, deleted)


async def _until_read(synced: asyncio.Event, stopped: kopf.DaemonStopped) -> bool:
    """Wait for the reader's first full listing; False when the daemon is stopped before it."""
    while not synced.is_set():
        if stopped:
            return False
        try:
            await asyncio.wait_for(synced.wait(), timeout=1.0)
        except TimeoutError:
            continue
    return True


@kopf.on.probe(id="policies")
async def policies_probe(memo: kopf.Memo, **_: Any) -> int:
    return len(context_of(memo).registry.policies)
