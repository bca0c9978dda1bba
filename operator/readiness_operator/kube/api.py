"""Every API call the operator makes, through one official client (run in worker threads).

Reads come from kopf's watches; only these calls go to the API server, and callers make them only
when something changed. `KubeApi` is the reconcile's `Writer`; one instance lives in the operator
context, with the small caches it needs (which PolicyReports exist, whether their CRD is served).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final, TypeVar
from urllib.parse import quote

import kubernetes
from kubernetes.client.exceptions import ApiException

from readiness_operator.model import GROUP, VERSION
from readiness_operator.model.crd import PLURAL
from readiness_operator.names import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    OVERRIDE_EVENT_ANNOTATIONS,
    OVERRIDE_EVENT_LABEL,
    POLICY_LABEL,
)

from .reports import REPORT_GROUP, REPORT_PLURAL, REPORT_VERSION, REPORT_WRITERS, EncodedReport, ReportRejected
from .state import Key, OverrideApproval

log = logging.getLogger(__name__)
T = TypeVar("T")
COMPONENT = MANAGED_BY  # the Event source and reporting component
ADMISSION_GROUP = "admissionregistration.k8s.io"
ADMISSION_PLURALS: Final[Mapping[str, str]] = MappingProxyType({
    "ValidatingAdmissionPolicy": "validatingadmissionpolicies",
    "ValidatingAdmissionPolicyBinding": "validatingadmissionpolicybindings",
    "ValidatingWebhookConfiguration": "validatingwebhookconfigurations",
})
LEASE_GROUP = "coordination.k8s.io"
LEASE_TIMEOUT = 5.0  # seconds per Lease call: a hung renewal must fail well before the renew deadline


_TOO_LARGE = ("too large", "larger than max", "exceeds the maximum")


def rejected_for_size_or_content(exc: ApiException) -> bool:
    """413/422, or etcd's "request is too large" (the API server passes it on as a 500)."""
    body = str(exc.body or "") + str(exc.reason or "")
    return exc.status in (413, 422) or any(text in body for text in _TOO_LARGE)


class ForeignObject(RuntimeError):
    """An object of the name we want exists but was not created by us: we never touch it."""


class AdmissionObjectMissing(RuntimeError):
    """One of our admission objects does not exist and this ServiceAccount may not create it (403):
    the chart creates them, and `helm upgrade` of the release restores a deleted one."""

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"{kind} {name} does not exist and the operator may not create it")
        self.kind, self.name = kind, name


HELM = "Helm"  # Helm labels every object of a release app.kubernetes.io/managed-by=Helm, whatever the chart says
PART_OF_LABEL = "app.kubernetes.io/part-of"
OUR_PREFIX = "readiness.dev/"  # label and annotation keys the operator sets (and so may drop)


def ours(obj: Mapping[str, Any]) -> bool:
    """Labelled as ours: created by the operator, or by our chart (managed by Helm, part of readiness-operator)."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    managed_by = labels.get(MANAGED_BY_LABEL)
    return managed_by == MANAGED_BY or (managed_by == HELM and labels.get(PART_OF_LABEL) == MANAGED_BY)


def replacement(current: Mapping[str, Any], obj: Mapping[str, Any]) -> dict[str, Any]:
    """`obj` as the update of `current`: its resourceVersion, and the labels and annotations others
    set on it (Helm's, an admin's) kept under ours, a release's object still managed by Helm; no
    owner references."""
    meta, new = current.get("metadata") or {}, obj["metadata"]

    def merged(key: str) -> dict[str, str]:
        kept = {k: v for k, v in (meta.get(key) or {}).items() if not k.startswith(OUR_PREFIX)}
        return {**kept, **(new.get(key) or {})}

    labels = merged("labels")
    if (meta.get("labels") or {}).get(MANAGED_BY_LABEL) == HELM:
        labels[MANAGED_BY_LABEL] = HELM
    metadata = {k: v for k, v in new.items() if k not in ("labels", "annotations", "ownerReferences")}
    metadata.update(labels=labels, annotations=merged("annotations"), resourceVersion=meta.get("resourceVersion"))
    return {**obj, "metadata": metadata}


def load_client() -> kubernetes.client.ApiClient:
    """In-cluster credentials when in a pod, else KUBECONFIG."""
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()
    configuration = kubernetes.client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = 16
    return kubernetes.client.ApiClient(configuration)


class KubeApi:
    def __init__(self, client: kubernetes.client.ApiClient | None = None) -> None:
        self._client = client
        # Lease calls get a thread of their own: behind minutes of PolicyReport writes in the default
        # pool (6 threads on 2 cores) a renewal would miss its deadline and the leader step down.
        self._lease_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="readiness-lease")
        # PolicyReport writes get threads of their own too: four namespaces' reports are sent at once
        # (REPORT_WRITERS), and a status PATCH or an Event must not queue behind them in the
        # default pool. More at once was measured slower: the API server stores them no faster, each
        # write took 2.5x longer, and users' own applies waited behind them (docs/benchmarks.md).
        self._report_threads = ThreadPoolExecutor(max_workers=REPORT_WRITERS,
                                                  thread_name_prefix="readiness-reports")
        self._reports_checked_at = -1e9
        self._reports_served = False
        # PolicyReports known to exist (listed at start, created or patched since): those are patched,
        # the others created, so the first pass on a fresh cluster sends each report once, not twice.
        self._known_reports: set[tuple[str, str]] = set()

    @property
    def client(self) -> kubernetes.client.ApiClient:
        if self._client is None:
            self._client = load_client()
        return self._client

    def _custom(self) -> kubernetes.client.CustomObjectsApi:
        return kubernetes.client.CustomObjectsApi(self.client)

    def _core(self) -> kubernetes.client.CoreV1Api:
        return kubernetes.client.CoreV1Api(self.client)

    # ------------------------------------------------------------------ policy status and reports

    async def patch_policy_status(self, name: str, status: Mapping[str, Any]) -> None:
        """Replace the whole status (a JSON patch `add` replaces or creates it, dropping stale keys)."""
        body = [{"op": "add", "path": "/status", "value": dict(status)}]
        await asyncio.to_thread(
            self._custom().patch_cluster_custom_object_status, GROUP, VERSION, PLURAL, name, body,
            _content_type="application/json-patch+json",
        )

    async def policy_reports_available(self, max_age: float = 60.0) -> bool:
        """Whether the PolicyReport CRD is served (re-checked at most every `max_age` seconds)."""
        if time.monotonic() - self._reports_checked_at < max_age:
            return self._reports_served

        def probe() -> bool:
            try:
                self._custom().list_cluster_custom_object(REPORT_GROUP, REPORT_VERSION, REPORT_PLURAL, limit=1)
                return True
            except ApiException as exc:
                if exc.status == 404:
                    return False
                raise

        self._reports_served = await asyncio.to_thread(probe)
        self._reports_checked_at = time.monotonic()
        return self._reports_served

    async def list_policy_reports(self, policy: str) -> list[dict[str, Any]]:
        result = await asyncio.to_thread(
            self._custom().list_cluster_custom_object,
            REPORT_GROUP, REPORT_VERSION, REPORT_PLURAL, label_selector=f"{POLICY_LABEL}={policy}",
        )
        items: list[dict[str, Any]] = list(dict(result).get("items") or [])  # type: ignore[call-overload]
        for item in items:
            meta = item.get("metadata") or {}
            self._known_reports.add((str(meta.get("namespace")), str(meta.get("name"))))
        return items

    def _send_json(self, method: str, path: str, body: bytes, content_type: str) -> None:
        """One request with a body already encoded, through the client's connection pool and credentials;
        the response (the API server echoes the whole object) is drained unread. Raises ApiException on
        an error status, with the API server's message as its body."""
        client = self.client
        method, url, headers, _, _ = client.param_serialize(
            method, path, header_params={"Content-Type": content_type, "Accept": "application/json"},
            auth_settings=["BearerToken"])
        # Not `client.call_api`: its REST layer json.dumps every body of a JSON content type (bytes included).
        response = client.rest_client.pool_manager.request(method, url, body=body, headers=headers,
                                                           preload_content=False)
        try:
            if 200 <= response.status < 300:
                response.drain_conn()
                return
            raise ApiException(status=response.status, reason=response.reason,
                               body=response.read().decode("utf-8", "replace"))
        finally:
            response.release_conn()

    async def put_policy_report(self, report: Mapping[str, Any]) -> None:
        """Create the report, or overwrite it when it exists (merge patch replaces its lists), sending its
        one encoding (`EncodedReport.body`) as it is."""
        encoded = EncodedReport.of(report)
        ns, name = encoded.key
        collection = f"/apis/{REPORT_GROUP}/{REPORT_VERSION}/namespaces/{quote(ns, safe='')}/{REPORT_PLURAL}"

        def patch() -> None:
            self._send_json("PATCH", f"{collection}/{quote(name, safe='')}", encoded.body, "application/merge-patch+json")

        def create() -> None:
            self._send_json("POST", collection, encoded.body, "application/json")

        def write() -> None:
            first, fallback, missing = (patch, create, 404) if (ns, name) in self._known_reports else (create, patch, 409)
            try:
                try:
                    first()
                except ApiException as exc:
                    if exc.status != missing:  # 404: gone after all; 409: exists after all (another writer, a restart)
                        raise
                    fallback()
            except ApiException as exc:
                if rejected_for_size_or_content(exc):
                    raise ReportRejected(exc.status or 0, str(exc.body or exc.reason)[:512]) from exc
                raise
            self._known_reports.add((ns, name))

        await asyncio.get_running_loop().run_in_executor(self._report_threads, write)

    async def delete_policy_report(self, namespace: str, name: str) -> None:
        def delete() -> None:
            try:
                self._custom().delete_namespaced_custom_object(REPORT_GROUP, REPORT_VERSION, namespace, REPORT_PLURAL, name)
            except ApiException as exc:
                if exc.status != 404:
                    raise
            self._known_reports.discard((namespace, name))

        await asyncio.get_running_loop().run_in_executor(self._report_threads, delete)

    # ------------------------------------------------------------------ Events

    async def post_event(
        self, involved: Mapping[str, Any], *, reason: str, message: str, warning: bool = False,
        labels: Mapping[str, str] | None = None, annotations: Mapping[str, str] | None = None,
    ) -> None:
        """A core/v1 Event on the object (what `kubectl describe` and `kubectl events` show); best effort."""
        now = datetime.now(UTC)
        body = kubernetes.client.CoreV1Event(
            metadata=kubernetes.client.V1ObjectMeta(
                name=f"{involved['name']}.{uuid.uuid4().hex[:16]}", namespace=involved["namespace"],
                labels=dict(labels) if labels else None, annotations=dict(annotations) if annotations else None),
            involved_object=kubernetes.client.V1ObjectReference(
                api_version=involved.get("apiVersion"), kind=involved.get("kind"), name=involved["name"],
                namespace=involved["namespace"], uid=involved.get("uid"),
            ),
            reason=reason, message=message[:1024], type="Warning" if warning else "Normal",
            source=kubernetes.client.V1EventSource(component=COMPONENT),
            reporting_component=COMPONENT, reporting_instance=COMPONENT,
            first_timestamp=now, last_timestamp=now, event_time=None, count=1,
        )
        try:
            await asyncio.to_thread(self._core().create_namespaced_event, involved["namespace"], body)
        except ApiException as exc:  # never fail a pass for an Event
            log.warning("could not post Event %s on %s/%s: %s", reason, involved["namespace"], involved["name"], exc.reason)

    async def last_verdict_events(self, policy: str) -> dict[tuple[str, str, str], str]:
        """(namespace, name, uid) -> reason of the newest verdict Event any leader posted for `policy`."""
        def fetch() -> dict[tuple[str, str, str], str]:
            events = self._core().list_event_for_all_namespaces(
                label_selector=f"{OVERRIDE_EVENT_LABEL}=verdict,{POLICY_LABEL}={policy},{MANAGED_BY_LABEL}={MANAGED_BY}",
                _request_timeout=10)
            def when(e: Any) -> tuple[Any, str]:
                return (e.first_timestamp or e.metadata.creation_timestamp or datetime.min.replace(tzinfo=UTC),
                        str(e.metadata.creation_timestamp))
            out: dict[tuple[str, str, str], str] = {}
            for event in sorted(events.items or (), key=when):
                ref = event.involved_object
                if ref is not None:
                    out[(str(ref.namespace), str(ref.name), str(ref.uid or ""))] = str(event.reason)
            return out

        return await asyncio.to_thread(fetch)

    async def list_override_approvals(self) -> dict[Key, OverrideApproval]:
        """The overrides any replica's webhook admitted, from its labelled ReadinessOverride Events
        (one list call; the newest generation per Deployment wins)."""
        def fetch() -> dict[Key, OverrideApproval]:
            events = self._core().list_event_for_all_namespaces(
                label_selector=f"{OVERRIDE_EVENT_LABEL}=override,{MANAGED_BY_LABEL}={MANAGED_BY}", _request_timeout=10)
            out: dict[Key, OverrideApproval] = {}
            for event in events.items or ():
                notes = event.metadata.annotations or {}
                generation = str(notes.get(OVERRIDE_EVENT_ANNOTATIONS["generation"]) or "")
                if not generation.isdigit() or event.involved_object is None:
                    continue
                key = (str(event.involved_object.namespace), str(event.involved_object.name))
                approval = OverrideApproval(str(notes.get(OVERRIDE_EVENT_ANNOTATIONS["user"]) or ""),
                                            str(notes.get(OVERRIDE_EVENT_ANNOTATIONS["reason"]) or ""), int(generation))
                if key not in out or out[key].generation <= approval.generation:
                    out[key] = approval
            return out

        return await asyncio.to_thread(fetch)

    # ------------------------------------------------------------------ admission objects (ours only)

    def _get_admission(self, kind: str, name: str) -> dict[str, Any] | None:
        try:
            obj: Any = self._custom().get_cluster_custom_object(ADMISSION_GROUP, "v1", ADMISSION_PLURALS[kind], name)
            return dict(obj)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def get_admission_object(self, kind: str, name: str) -> dict[str, Any] | None:
        return await asyncio.to_thread(self._get_admission, kind, name)

    async def put_admission_object(self, obj: Mapping[str, Any], *, create: bool = True) -> bool:
        """Replace a cluster-scoped admissionregistration/v1 object of ours: get, then update with its
        resourceVersion (the chart creates these objects and grants get and update on their names only).

        A replace, not a merge patch, so a field or condition left out of `obj` is gone; the current
        labels and annotations are kept (Helm's release annotations among them) except our own
        `readiness.dev/` keys, which `obj` sets afresh, and owner references are dropped (the
        release owns the object). A foreign object of the name raises ForeignObject and is left as it
        is. A missing one is created when `create` (with admin credentials outside the chart; the
        chart's ServiceAccount gets 403: AdmissionObjectMissing); else False is returned.
        """

        def put() -> bool:
            api, kind, name = self._custom(), str(obj["kind"]), str(obj["metadata"]["name"])
            plural = ADMISSION_PLURALS[kind]
            for _ in range(3):  # a conflict: someone changed (or created) it between our read and our write
                current = self._get_admission(kind, name)
                try:
                    if current is None:
                        if not create:
                            return False
                        try:
                            api.create_cluster_custom_object(ADMISSION_GROUP, "v1", plural, dict(obj))
                        except ApiException as exc:
                            if exc.status == 403:
                                raise AdmissionObjectMissing(kind, name) from exc
                            raise
                        return True
                    if not ours(current):
                        raise ForeignObject(f"{kind} {name} exists and is not managed by {MANAGED_BY}; not changing it")
                    api.replace_cluster_custom_object(ADMISSION_GROUP, "v1", plural, name, replacement(current, obj))
                    return True
                except ApiException as exc:
                    if exc.status != 409:
                        raise
            raise RuntimeError(f"{kind} {name}: still conflicting after 3 attempts")

        return await asyncio.to_thread(put)

    # ------------------------------------------------------------------ reads outside the watches

    def read_secret_key(self, namespace: str, name: str, key: str) -> bytes | None:
        """One key of a Secret (None when the key is missing); raises ApiException otherwise."""
        secret = self._core().read_namespaced_secret(name, namespace)
        data = (secret.data or {}).get(key)
        return None if data is None else base64.b64decode(data)

    # ------------------------------------------------------------------ the leader-election Lease

    async def _on_lease_thread(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._lease_thread, call)

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Lease, or None when there is none yet."""

        def get() -> dict[str, Any] | None:
            try:
                obj: Any = self._custom().get_namespaced_custom_object(LEASE_GROUP, "v1", namespace, "leases", name,
                                                                 _request_timeout=LEASE_TIMEOUT)
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise
            return dict(obj)

        return await self._on_lease_thread(get)

    async def create_lease(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        """Create it; None when another replica created it first (409)."""

        def create() -> dict[str, Any] | None:
            try:
                obj: Any = self._custom().create_namespaced_custom_object(
                    LEASE_GROUP, "v1", namespace, "leases", dict(body), _request_timeout=LEASE_TIMEOUT)
            except ApiException as exc:
                if exc.status == 409:
                    return None
                raise
            return dict(obj)

        return await self._on_lease_thread(create)

    async def replace_lease(self, namespace: str, name: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        """Replace it, conditional on the body's resourceVersion; None when it changed meanwhile (409)."""

        def replace() -> dict[str, Any] | None:
            try:
                obj: Any = self._custom().replace_namespaced_custom_object(
                    LEASE_GROUP, "v1", namespace, "leases", name, dict(body), _request_timeout=LEASE_TIMEOUT)
            except ApiException as exc:
                if exc.status == 409:
                    return None
                raise
            return dict(obj)

        return await self._on_lease_thread(replace)
