"""kopf admission handlers: Deployments are judged by the same engine, from indexes only.

No API call happens on the request path: policies, PDBs, HPAs and namespace labels come from kopf
indexes, SLO values from the cache the policy loops fill. The ValidatingWebhookConfiguration and
the fail-safe ValidatingAdmissionPolicies are written by the operator itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from readiness_operator import settings as operator_settings
from readiness_operator.kube import metrics
from readiness_operator.kube.handlers import SLOS
from readiness_operator.kube.objects import deployment_ref
from readiness_operator.kube.view import IndexView
from readiness_operator.model import GROUP, VERSION, ReadinessPolicySpec
from readiness_operator.model.crd import PLURAL
from readiness_operator.model.validation import validate_policy_object
from readiness_operator.world import World

from .decide import pod_template_digest, review_deployment

log = logging.getLogger(__name__)
_BACKGROUND: set[asyncio.Task[None]] = set()  # override Events in flight (kept referenced)
_compiled: dict[tuple[str, int | None], ReadinessPolicySpec | None] = {}


@kopf.index(GROUP, VERSION, PLURAL)
async def policy_index(name: str, meta: kopf.Meta, spec: kopf.Spec, **_: Any) -> dict[str, Any]:
    return {name: (meta.get("generation"), dict(spec))}


def _policies(index: Any) -> list[tuple[str, ReadinessPolicySpec]]:
    """Compiled policies, parsed once per generation (an invalid one is skipped, not fatal)."""
    out = []
    for name in list(index):
        for generation, spec in index[name]:
            key = (name, generation)
            if key not in _compiled:
                try:
                    _compiled[key] = ReadinessPolicySpec.model_validate(spec)
                except ValidationError:
                    _compiled[key] = None
            parsed = _compiled[key]
            if parsed is not None:
                out.append((name, parsed))
    return out


def _world_of(view: IndexView) -> Any:
    """The World of a Deployment under review: indexes and the SLO cache only, no API call."""

    def world_of(obj: Mapping[str, Any]) -> World:
        meta = obj.get("metadata") or {}
        ns = str(meta.get("namespace") or "default")
        measurements: dict[str, Any] = {}
        for name in list(SLOS.policies):
            measurements.update(SLOS.measurements(name, (ns, str(meta.get("name", "")))))
        return World(
            pdbs=tuple(view.pdbs(ns)),
            hpas=tuple(view.hpas(ns)),
            namespace_labels=view.namespace_labels(ns),
            slo_measurements=measurements,
            now=datetime.now(UTC),
        )

    return world_of


@kopf.index("apps", "v1", "replicasets")
async def replicaset_index(namespace: str | None, meta: kopf.Meta, spec: kopf.Spec, **_: Any) -> dict[Any, Any]:
    """(namespace, owning Deployment) -> digests of its ReplicaSets' pod templates (its revisions)."""
    owners = [o.get("name") for o in meta.get("ownerReferences") or () if o.get("kind") == "Deployment"]
    return {(namespace, owner): pod_template_digest(spec.get("template")) for owner in owners}


def _is_rollback(replicaset_index: Any, new: Mapping[str, Any]) -> bool:
    """The new pod template is one of the Deployment's earlier revisions (`kubectl rollout undo`)."""
    meta = new.get("metadata") or {}
    key = (meta.get("namespace"), meta.get("name"))
    if key not in replicaset_index:
        return False
    return pod_template_digest((new.get("spec") or {}).get("template")) in set(replicaset_index[key])


@kopf.on.validate("apps", "v1", "deployments", id="validate-deployment", operations=["CREATE", "UPDATE"])  # type: ignore[arg-type]
async def validate_deployment(
    body: kopf.Body, old: kopf.Body | None, operation: str, subresource: str | None, userinfo: Mapping[str, Any],
    dryrun: bool, warnings: list[str], policy_index: Any, deployment_index: Any, pdb_index: Any,
    hpa_index: Any, namespace_index: Any, replicaset_index: Any, **_: Any,
) -> None:
    started = time.perf_counter()
    meta = body.get("metadata") or {}
    request = {
        "operation": operation, "subResource": subresource, "namespace": meta.get("namespace"),
        "name": meta.get("name"), "object": dict(body), "oldObject": dict(old) if old is not None else None,
        "userInfo": dict(userinfo), "dryRun": dryrun,
        "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
    }
    decision = review_deployment(
        request, _policies(policy_index), _world_of(IndexView(deployment_index, pdb_index, hpa_index, namespace_index)),
        excluded_namespaces=operator_settings.CURRENT.excluded_namespaces,
        is_rollback=lambda new, _old: _is_rollback(replicaset_index, new),
    )
    warnings.extend(decision.warnings)
    result = "allowed" if decision.allowed else "denied"
    if decision.override_reason is not None:
        result = "overridden"
        if not dryrun:
            task = asyncio.create_task(
                _record_override(dict(body), decision.override_reason, decision.user, decision.overridden))
            _BACKGROUND.add(task)
            task.add_done_callback(_BACKGROUND.discard)
    metrics.ADMISSION_REQUESTS.labels(kind="Deployment", result=result).inc()
    metrics.ADMISSION_DURATION.observe(time.perf_counter() - started)
    if not decision.allowed:
        raise kopf.AdmissionError(decision.message, code=403)


async def _record_override(body: dict[str, Any], reason: str, user: str, checks: Mapping[str, list[str]]) -> None:
    from readiness_operator.kube import api

    ref = deployment_ref(body)
    if not ref.get("namespace"):
        return
    bypassed = "; ".join(f"{policy}: {', '.join(ids)}" for policy, ids in checks.items())
    await api.post_event(ref, reason="ReadinessOverride", warning=True,
                         message=f"{user or 'someone'} overrode readiness enforcement ({bypassed}): {reason}")


@kopf.on.validate(GROUP, VERSION, PLURAL, id="validate-policy", operations=["CREATE", "UPDATE"])
async def validate_policy(body: kopf.Body, **_: Any) -> None:
    started = time.perf_counter()
    problems = validate_policy_object(dict(body))
    metrics.ADMISSION_REQUESTS.labels(kind="ReadinessPolicy", result="denied" if problems else "allowed").inc()
    metrics.ADMISSION_DURATION.observe(time.perf_counter() - started)
    if problems:
        raise kopf.AdmissionError("invalid ReadinessPolicy:\n" + "\n".join(problems), code=422)
