"""kopf admission handlers: Deployments are judged by the same engine, from indexes only.

No API call happens on the request path: policies and namespace labels come from kopf indexes,
Deployments, PDBs, HPAs, NetworkPolicies and ReplicaSets from our reader (reader.py), SLO values
from the store the policy loops fill, compiled policies from the shared cache.
The decision itself is pure (`admission.decide`); this module only translates kopf's arguments.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import kopf
from aiohttp import web

from readiness_operator.admission.decide import (
    AdmissionDecision,
    pod_template_digest,
    review_deployment,
    scale_as_deployment_update,
)
from readiness_operator.engine import CompiledPolicy
from readiness_operator.model import GROUP, VERSION
from readiness_operator.model.crd import PLURAL
from readiness_operator.model.validation import validate_policy_object
from readiness_operator.names import MANAGED_BY_LABELS, OVERRIDE_EVENT_ANNOTATIONS, OVERRIDE_EVENT_LABEL
from readiness_operator.world import Worlds

from .context import OperatorContext, context_of
from .objects import deployment_ref
from .view import IndexView, revisions_key
from .watched import DEPLOYMENTS, HPAS, NETWORK_POLICIES, PDBS, REPLICASETS

log = logging.getLogger(__name__)

@kopf.index(GROUP, VERSION, PLURAL)
async def policy_index(name: str, meta: kopf.Meta, spec: kopf.Spec, **_: Any) -> dict[str, Any]:
    return {name: (meta.get("generation"), dict(spec))}


def _policies(ctx: OperatorContext, index: Any) -> list[tuple[str, CompiledPolicy]]:
    """The valid policies' plans (an invalid one is skipped, not fatal); deleted ones are evicted."""
    names = list(index)
    out = []
    for name in names:
        for generation, spec in index[name]:
            entry = ctx.policies.get(name, generation, spec)
            if entry.plan is not None:
                out.append((name, entry.plan))
    if len(ctx.policies) > len(names):
        ctx.policies.retain(names)
    return out


def _is_rollback(replicaset_index: Any, new: Mapping[str, Any]) -> bool:
    """The new pod template is one of the Deployment's earlier revisions (`kubectl rollout undo`)."""
    meta = new.get("metadata") or {}
    key = revisions_key(str(meta.get("namespace") or ""), str(meta.get("name")))
    if key not in replicaset_index:
        return False
    return pod_template_digest((new.get("spec") or {}).get("template")) in set(replicaset_index[key])


@kopf.on.validate("apps", "v1", "deployments", id="validate-deployment", operations=["CREATE", "UPDATE"])  # type: ignore[arg-type]
async def validate_deployment(
    body: kopf.Body, old: kopf.Body | None, operation: str, subresource: str | None, userinfo: Mapping[str, Any],
    dryrun: bool, warnings: list[str], memo: kopf.Memo, policy_index: Any, namespace_index: Any, **_: Any,
) -> None:
    meta = body.get("metadata") or {}
    request = {
        "operation": operation, "subResource": subresource, "namespace": meta.get("namespace"),
        "name": meta.get("name"), "object": dict(body), "oldObject": dict(old) if old is not None else None,
        "userInfo": dict(userinfo), "dryRun": dryrun,
        "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
    }
    await _review(context_of(memo), request, warnings, policy_index, namespace_index)


async def answer_deployment_review(review: Mapping[str, Any], indices: Mapping[str, Any], memo: Any) -> dict[str, Any]:
    """The ``validate-deployment`` webhook answered without kopf's per-request machinery (see
    admission_server.py): the same request to `_review` as `validate_deployment` builds, and the
    response kopf would build (allowed or the AdmissionError's message and code; any other error
    denies with 500, as kopf's permanent-error mode does)."""
    request: Mapping[str, Any] = review["request"]
    new, old = request.get("object"), request.get("oldObject")
    body = new if new is not None else old
    operation, subresource = request.get("operation"), request.get("subResource")
    if request.get("userInfo") is None or not isinstance(body, Mapping):
        raise web.HTTPBadRequest(reason="the admission request has no userInfo or no object")
    response: dict[str, Any] = {"uid": request.get("uid", ""), "allowed": True}
    warnings: list[str] = []
    if operation in ("CREATE", "UPDATE") and subresource is None:  # kopf's filter for validate_deployment
        meta = body.get("metadata") or {}
        judged = {
            "operation": operation, "subResource": subresource, "namespace": meta.get("namespace"),
            "name": meta.get("name"), "object": dict(body), "oldObject": dict(old) if old is not None else None,
            "userInfo": dict(request["userInfo"]), "dryRun": bool(request.get("dryRun")),
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
        }
        try:
            await _review(context_of(memo), judged, warnings, indices["policy_index"], indices["namespace_index"])
        except kopf.AdmissionError as exc:
            response.update(allowed=False, status={"message": str(exc) or repr(exc), "code": exc.code or 500})
        except Exception as exc:
            log.exception("admission review of Deployment %s/%s failed", meta.get("namespace"), meta.get("name"))
            response.update(allowed=False, status={"message": str(exc) or repr(exc), "code": 500})
    if warnings:
        response["warnings"] = [str(w) for w in warnings]
    return {"apiVersion": review.get("apiVersion", "admission.k8s.io/v1"), "kind": review.get("kind", "AdmissionReview"),
            "response": response}


#: The webhooks answered directly (webhook id -> handler), see admission_server.AdmissionServer.
DIRECT_REVIEWS = {"validate-deployment": answer_deployment_review}


@kopf.on.validate("apps", "v1", "deployments", id="validate-deployment-scale", operations=["UPDATE"],  # type: ignore[arg-type]
                  subresource="scale")
async def validate_deployment_scale(
    body: kopf.Body, old: kopf.Body | None, userinfo: Mapping[str, Any], dryrun: bool, warnings: list[str],
    memo: kopf.Memo, policy_index: Any, namespace_index: Any, **_: Any,
) -> None:
    """``kubectl scale`` (the scale subresource): judged as the replicas-only UPDATE it is, on the
    indexed Deployment (the Scale object carries only ``spec.replicas``)."""
    meta = body.get("metadata") or {}
    ns, name = meta.get("namespace"), meta.get("name")
    ctx = context_of(memo)
    _require_read(ctx)
    current = next((d for d in (ctx.reader.index(DEPLOYMENTS).get(ns) or ())
                    if (d.get("metadata") or {}).get("name") == name), None)
    if current is None:  # not indexed yet (just created): nothing to judge against; fail open, say so
        warnings.append(f"readiness: Deployment {ns}/{name} is not indexed yet; this scale was not judged")
        return
    request = scale_as_deployment_update({
        "operation": "UPDATE", "subResource": "scale", "namespace": ns, "name": name, "object": dict(body),
        "oldObject": dict(old) if old is not None else None, "userInfo": dict(userinfo), "dryRun": dryrun,
        "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
    }, current)
    await _review(ctx, request, warnings, policy_index, namespace_index)


def _require_read(ctx: OperatorContext) -> None:
    """Before the reader's first full listing a PDB or an HPA may be missing: judging then could
    deny for a reason that is not true. Refuse instead (/readyz keeps the Service away meanwhile)."""
    if not ctx.reader.synced.is_set():
        raise kopf.AdmissionError("readiness-operator is still reading the cluster; try again shortly", code=503)


async def _review(
    ctx: OperatorContext, request: Mapping[str, Any], warnings: list[str], policy_index: Any, namespace_index: Any,
) -> None:
    """Judge a Deployment request, count it, record an override; raise to deny."""
    started = time.perf_counter()
    _require_read(ctx)
    reader = ctx.reader
    replicaset_index = reader.index(REPLICASETS)
    view = IndexView(reader.index(DEPLOYMENTS), reader.index(PDBS), reader.index(HPAS), namespace_index,
                     network_policies=reader.index(NETWORK_POLICIES), related=ctx.related)  # no pods: judges the spec
    worlds = Worlds(view, slos=ctx.slos.measurements)
    decision = review_deployment(
        request, _policies(ctx, policy_index), worlds.of, policy_world=worlds.of,
        excluded_namespaces=ctx.settings.excluded_namespaces,
        is_rollback=lambda new, _old: _is_rollback(replicaset_index, new),
    )
    warnings.extend(decision.warnings)
    result = "allowed" if decision.allowed else "denied"
    if decision.override_reason is not None:
        result = "overridden"
        if not decision.dry_run:
            ctx.spawn(_record_override(ctx, dict(request["object"]), decision))
    ctx.metrics.admission_requests.labels(kind="Deployment", result=result).inc()
    ctx.metrics.admission_duration.observe(time.perf_counter() - started)
    if not decision.allowed:
        raise kopf.AdmissionError(decision.message, code=403)


def override_event_annotations(body: Mapping[str, Any], decision: AdmissionDecision) -> dict[str, str]:
    """What the leader needs to record the override in the PolicyReport: the user the API server
    authenticated, the reason and the generation admitted (the API server sets it before validating
    admission, so a later spec change is a new generation the override did not cover)."""
    generation = (body.get("metadata") or {}).get("generation")
    return {
        OVERRIDE_EVENT_ANNOTATIONS["user"]: decision.user[:256],
        OVERRIDE_EVENT_ANNOTATIONS["reason"]: (decision.override_reason or "")[:256],
        OVERRIDE_EVENT_ANNOTATIONS["generation"]: str(generation if isinstance(generation, int) else ""),
    }


async def _record_override(ctx: OperatorContext, body: dict[str, Any], decision: AdmissionDecision) -> None:
    """The ReadinessOverride Event, labelled so the leader (maybe another replica) finds it; this
    replica's runtimes are woken to record it at once."""
    ref = deployment_ref(body)
    if not ref.get("namespace"):
        return
    bypassed = "; ".join(f"{policy}: {', '.join(ids)}" for policy, ids in decision.overridden.items())
    await ctx.api.post_event(ref, reason="ReadinessOverride", warning=True,
                             message=f"{decision.user or 'someone'} overrode readiness enforcement ({bypassed}): "
                                     f"{decision.override_reason}",
                             labels={**MANAGED_BY_LABELS, OVERRIDE_EVENT_LABEL: "override"},
                             annotations=override_event_annotations(body, decision))
    ctx.registry.mark_deployment(str(ref["namespace"]), str(ref["name"]))


@kopf.on.validate(GROUP, VERSION, PLURAL, id="validate-policy", operations=["CREATE", "UPDATE"])
async def validate_policy(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    started = time.perf_counter()
    ctx = context_of(memo)
    problems = validate_policy_object(dict(body))
    ctx.metrics.admission_requests.labels(kind="ReadinessPolicy", result="denied" if problems else "allowed").inc()
    ctx.metrics.admission_duration.observe(time.perf_counter() - started)
    if problems:
        raise kopf.AdmissionError("invalid ReadinessPolicy:\n" + "\n".join(problems), code=422)
