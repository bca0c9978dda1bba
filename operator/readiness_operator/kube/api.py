"""The few API writes the operator makes, through the official client (run in worker threads).

Reads come from kopf's watches; only these writes (and the start-up listing of our own
PolicyReports) go to the API server, and callers make them only when something changed.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from readiness_operator.model import GROUP, VERSION
from readiness_operator.model.crd import PLURAL

from .reports import POLICY_LABEL, REPORT_GROUP, REPORT_PLURAL, REPORT_VERSION

log = logging.getLogger(__name__)
COMPONENT = "readiness-operator"
_client: kubernetes.client.ApiClient | None = None


def client() -> kubernetes.client.ApiClient:
    """One shared client: in-cluster credentials when in a pod, else KUBECONFIG."""
    global _client
    if _client is None:
        try:
            kubernetes.config.load_incluster_config()
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config()
        configuration = kubernetes.client.Configuration.get_default_copy()
        configuration.connection_pool_maxsize = 16
        _client = kubernetes.client.ApiClient(configuration)
    return _client


def _custom() -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(client())


async def patch_policy_status(name: str, status: Mapping[str, Any]) -> None:
    """Replace the whole status (a JSON patch `add` replaces or creates it, dropping stale keys)."""
    body = [{"op": "add", "path": "/status", "value": dict(status)}]
    await asyncio.to_thread(
        lambda: _custom().patch_cluster_custom_object_status(
            GROUP, VERSION, PLURAL, name, body, _content_type="application/json-patch+json"
        )
    )


_report_api_checked_at = 0.0
_report_api_present = False


async def policy_reports_available(max_age: float = 60.0) -> bool:
    """Whether the PolicyReport CRD is served (re-checked at most every `max_age` seconds)."""
    global _report_api_checked_at, _report_api_present
    if time.monotonic() - _report_api_checked_at < max_age:
        return _report_api_present

    def probe() -> bool:
        try:
            kubernetes.client.CustomObjectsApi(client()).list_cluster_custom_object(
                REPORT_GROUP, REPORT_VERSION, REPORT_PLURAL, limit=1
            )
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise

    _report_api_present = await asyncio.to_thread(probe)
    _report_api_checked_at = time.monotonic()
    return _report_api_present


# PolicyReports known to exist (listed at start, created or patched since): those are patched, the
# others created, so the first pass on a fresh cluster sends each report once, not twice.
_known_reports: set[tuple[str, str]] = set()


async def list_policy_reports(policy: str) -> list[dict[str, Any]]:
    result = await asyncio.to_thread(
        _custom().list_cluster_custom_object,
        REPORT_GROUP, REPORT_VERSION, REPORT_PLURAL, label_selector=f"{POLICY_LABEL}={policy}",
    )
    items = list(result.get("items") or [])  # type: ignore[attr-defined]
    for item in items:
        meta = item.get("metadata") or {}
        _known_reports.add((str(meta.get("namespace")), str(meta.get("name"))))
    return items


async def put_policy_report(report: Mapping[str, Any]) -> None:
    """Create the report, or overwrite it when it exists (merge patch replaces its lists)."""
    meta = report["metadata"]
    key = (str(meta["namespace"]), str(meta["name"]))

    def patch(api: kubernetes.client.CustomObjectsApi) -> None:
        api.patch_namespaced_custom_object(
            REPORT_GROUP, REPORT_VERSION, meta["namespace"], REPORT_PLURAL, meta["name"], dict(report),
            _content_type="application/merge-patch+json",
        )

    def create(api: kubernetes.client.CustomObjectsApi) -> None:
        api.create_namespaced_custom_object(REPORT_GROUP, REPORT_VERSION, meta["namespace"], REPORT_PLURAL, dict(report))

    def write() -> None:
        api = _custom()
        first, fallback, missing = (patch, create, 404) if key in _known_reports else (create, patch, 409)
        try:
            first(api)
        except ApiException as exc:
            if exc.status != missing:  # 404: gone after all; 409: exists after all (another writer, a restart)
                raise
            fallback(api)
        _known_reports.add(key)

    await asyncio.to_thread(write)


async def delete_policy_report(namespace: str, name: str) -> None:
    def delete() -> None:
        try:
            _custom().delete_namespaced_custom_object(REPORT_GROUP, REPORT_VERSION, namespace, REPORT_PLURAL, name)
        except ApiException as exc:
            if exc.status != 404:
                raise
        _known_reports.discard((namespace, name))

    await asyncio.to_thread(delete)


async def post_event(
    involved: Mapping[str, Any], *, reason: str, message: str, warning: bool = False
) -> None:
    """A core/v1 Event on the object (what `kubectl describe` and `kubectl events` show)."""
    now = datetime.now(UTC)
    body = kubernetes.client.CoreV1Event(
        metadata=kubernetes.client.V1ObjectMeta(
            name=f"{involved['name']}.{uuid.uuid4().hex[:16]}", namespace=involved["namespace"]
        ),
        involved_object=kubernetes.client.V1ObjectReference(
            api_version=involved.get("apiVersion"), kind=involved.get("kind"), name=involved["name"],
            namespace=involved["namespace"], uid=involved.get("uid"),
        ),
        reason=reason,
        message=message[:1024],
        type="Warning" if warning else "Normal",
        source=kubernetes.client.V1EventSource(component=COMPONENT),
        reporting_component=COMPONENT,
        reporting_instance=COMPONENT,
        first_timestamp=now,
        last_timestamp=now,
        event_time=None,
        count=1,
    )
    try:
        await asyncio.to_thread(
            kubernetes.client.CoreV1Api(client()).create_namespaced_event, involved["namespace"], body
        )
    except ApiException as exc:  # an Event is best-effort: never fail a pass for it
        log.warning("could not post Event %s on %s/%s: %s", reason, involved["namespace"], involved["name"], exc.reason)
