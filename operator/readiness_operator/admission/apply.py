"""Writes of admission objects: the webhook configuration and the fail-safe VAPs (threads)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from readiness_operator.kube.api import client
from readiness_operator.model import ReadinessPolicySpec
from readiness_operator.settings import Settings

from .vap import generate_vap

log = logging.getLogger(__name__)
_ADMISSION = "admissionregistration.k8s.io"
_PLURALS = {"ValidatingAdmissionPolicy": "validatingadmissionpolicies",
            "ValidatingAdmissionPolicyBinding": "validatingadmissionpolicybindings",
            "ValidatingWebhookConfiguration": "validatingwebhookconfigurations"}


def _put(obj: Mapping[str, Any]) -> None:
    """Create, or replace the spec of, a cluster-scoped admissionregistration/v1 object."""
    api = kubernetes.client.CustomObjectsApi(client())
    plural, name = _PLURALS[obj["kind"]], obj["metadata"]["name"]
    try:
        api.patch_cluster_custom_object(_ADMISSION, "v1", plural, name, dict(obj),
                                        _content_type="application/merge-patch+json")
    except ApiException as exc:
        if exc.status != 404:
            raise
        api.create_cluster_custom_object(_ADMISSION, "v1", plural, dict(obj))


def _delete(kind: str, name: str) -> None:
    try:
        kubernetes.client.CustomObjectsApi(client()).delete_cluster_custom_object(_ADMISSION, "v1", _PLURALS[kind], name)
    except ApiException as exc:
        if exc.status != 404:
            raise


async def apply_webhook_configuration(config: Mapping[str, Any]) -> None:
    await asyncio.to_thread(_put, config)


class VapSync:
    """Keeps one policy's generated ValidatingAdmissionPolicy + binding in step with its spec."""

    def __init__(self, policy: str, settings: Settings) -> None:
        self.policy, self.settings = policy, settings
        self.written: list[dict[str, Any]] | None = None
        self.next_expiry: datetime | None = None

    async def sync(self, spec: ReadinessPolicySpec | None) -> None:
        now = datetime.now(UTC)
        if spec is None:
            objects: list[dict[str, Any]] = []
            self.next_expiry = None
        else:
            generated = generate_vap(self.policy, spec, now=now, excluded_namespaces=self.settings.excluded_namespaces)
            objects, self.next_expiry = generated.objects, generated.next_expiry
        if objects == self.written:
            return
        for obj in objects:
            await asyncio.to_thread(_put, obj)
        stale = {(o["kind"], o["metadata"]["name"]) for o in self.written or []} - {
            (o["kind"], o["metadata"]["name"]) for o in objects}
        if self.written is None and not objects:  # first sync: remove leftovers of an earlier Enforce
            from .vap import vap_name
            stale = {("ValidatingAdmissionPolicyBinding", vap_name(self.policy)),
                     ("ValidatingAdmissionPolicy", vap_name(self.policy))}
        for kind, name in sorted(stale, reverse=True):  # bindings before policies
            await asyncio.to_thread(_delete, kind, name)
        self.written = objects

    def due(self) -> bool:
        return self.next_expiry is not None and datetime.now(UTC) >= self.next_expiry

    async def delete(self) -> None:
        from .vap import vap_name
        for kind in ("ValidatingAdmissionPolicyBinding", "ValidatingAdmissionPolicy"):
            await asyncio.to_thread(_delete, kind, vap_name(self.policy))
