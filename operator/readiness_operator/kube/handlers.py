"""kopf handlers: thin translations from watch events to dirty marks, and one daemon per policy.

One LIST+WATCH per kind feeds the indexes (kopf fills them before any handler runs, so the first
pass sees the whole cluster). Every replica runs them all; only the leader's policy loops write
(policy_loop.py). Handlers are async so 10,000 events never touch a thread pool. All
shared state is the operator context in `memo` (see context.py).
"""

from __future__ import annotations

from typing import Any

import kopf

from readiness_operator.admission.decide import pod_template_digest
from readiness_operator.model import GROUP, VERSION
from readiness_operator.model.crd import PLURAL
from readiness_operator.world import deployment_of_pod

from .context import context_of
from .objects import trim_deployment, trim_hpa, trim_network_policy, trim_pdb, trim_pod
from .policy_loop import run_policy
from .reconcile import PassInput
from .vap_sync import index_entry
from .view import IndexView, owner_key, revisions_key


@kopf.index("apps", "v1", "deployments")
async def deployment_index(namespace: str | None, body: kopf.Body, **_: Any) -> dict[str | None, Any]:
    return {namespace: trim_deployment(body)}


@kopf.index("policy", "v1", "poddisruptionbudgets")
async def pdb_index(namespace: str | None, body: kopf.Body, **_: Any) -> dict[str | None, Any]:
    return {namespace: trim_pdb(body)}


@kopf.index("autoscaling", "v2", "horizontalpodautoscalers")
async def hpa_index(namespace: str | None, body: kopf.Body, **_: Any) -> dict[str | None, Any]:
    return {namespace: trim_hpa(body)}


@kopf.index("", "v1", "pods")
async def pod_index(namespace: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> dict[str | None, Any]:
    """Pods trimmed to what live checks read (`pods-stable`) and their ReplicaSet owner.

    Also marks the owning Deployment for a new pass: pods change often (restarts, readiness), and one
    handler per event instead of an index plus an on.event handler keeps the event loop (which
    serves admission too) free."""
    owner = deployment_of_pod(body)
    if owner is not None:
        context_of(memo).registry.mark_pods_changed(namespace or "", owner)
    return {namespace: trim_pod(body)}


@kopf.index("networking.k8s.io", "v1", "networkpolicies")
async def network_policy_index(namespace: str | None, body: kopf.Body, **_: Any) -> dict[str | None, Any]:
    return {namespace: trim_network_policy(body)}


@kopf.index("apps", "v1", "replicasets")
async def replicaset_index(
    namespace: str | None, name: str, meta: kopf.Meta, spec: kopf.Spec, **_: Any
) -> dict[Any, Any]:
    """Both ReplicaSet lookups from one index (registered always: the policy daemons map SLI pods with it;
    the webhook, when served, recognises rollbacks with it): a Deployment's revisions (its ReplicaSets' pod-template
    digests, to recognise `kubectl rollout undo`) and each ReplicaSet's Deployment (to map the pods in
    SLI series to their Deployments)."""
    owner = next((o.get("name") for o in meta.get("ownerReferences") or () if o.get("kind") == "Deployment"), None)
    if owner is None:
        return {}
    return {
        revisions_key(namespace or "", owner): pod_template_digest(spec.get("template")),
        owner_key(namespace or "", name): owner,
    }


@kopf.index("", "v1", "namespaces")
async def namespace_index(name: str, labels: kopf.Labels, **_: Any) -> dict[str, Any]:
    return {name: dict(labels)}


@kopf.index(GROUP, VERSION, PLURAL)
async def readiness_policy_index(name: str, uid: str, meta: kopf.Meta, spec: kopf.Spec, **_: Any) -> dict[str, Any]:
    """Every policy, for the one writer of the merged ValidatingAdmissionPolicy (kube/vap_sync.py)."""
    return {name: index_entry(uid, meta.get("generation"), spec, meta.get("deletionTimestamp") is not None)}


@kopf.on.event("apps", "v1", "deployments")
async def deployment_event(namespace: str | None, name: str, memo: kopf.Memo, **_: Any) -> None:
    context_of(memo).registry.mark_deployment(namespace or "", name)


@kopf.on.event("policy", "v1", "poddisruptionbudgets")
async def pdb_event(namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    context_of(memo).registry.mark_namespace(namespace or "")


@kopf.on.event("autoscaling", "v2", "horizontalpodautoscalers")
async def hpa_event(namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    context_of(memo).registry.mark_namespace(namespace or "")


@kopf.on.event("networking.k8s.io", "v1", "networkpolicies")
async def network_policy_event(namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    context_of(memo).registry.mark_namespace(namespace or "")


@kopf.on.event("", "v1", "namespaces")
async def namespace_event(name: str, memo: kopf.Memo, **kwargs: Any) -> None:
    ctx = context_of(memo)
    ctx.policy_index = kwargs["readiness_policy_index"]  # kopf's live index; complete now, see below
    # kopf holds every non-index handler back until all indexes are filled (processing.py waits on
    # `operator_indexed` after indexing each object), and a cluster always has namespaces (watched
    # cluster-wide even in namespaced mode): the first of these events means this replica's
    # indexes are complete, which is what /readyz reports.
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
    memo: kopf.Memo, deployment_index: kopf.Index[str, Any], pdb_index: kopf.Index[str, Any],
    hpa_index: kopf.Index[str, Any], namespace_index: kopf.Index[str, Any], pod_index: kopf.Index[str, Any],
    network_policy_index: kopf.Index[str, Any], replicaset_index: kopf.Index[Any, Any], **_: Any,
) -> None:
    """Keep one policy's status, reports, Events and fail-safe VAP current while this replica leads."""

    def read() -> PassInput:  # kopf keeps a daemon's meta/spec/status live
        return PassInput(name, uid, meta.get("generation"), dict(spec), dict(status))

    def deleted() -> bool:
        return stopped.reason is not None and bool(stopped.reason & kopf.DaemonStoppingReason.RESOURCE_DELETED)

    view = IndexView(deployment_index, pdb_index, hpa_index, namespace_index, pods=pod_index,
                     network_policies=network_policy_index, replicaset_owners=replicaset_index)
    await run_policy(context_of(memo), name, uid, read, view, stopped, deleted)


@kopf.on.probe(id="policies")
async def policies_probe(memo: kopf.Memo, **_: Any) -> int:
    return len(context_of(memo).registry.policies)
