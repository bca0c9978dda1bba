"""Which replica is active under kopf peering, for readiness (and so for the webhook Service).

kopf pauses every replica but the highest-priority live peer and closes a paused replica's watch
streams, so a standby's indexes go stale. Only the active replica should answer admission
requests: `/readyz` reports ready only while this replica holds the highest priority.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

log = logging.getLogger(__name__)
PEERING_GROUP, PEERING_VERSION = "kopf.dev", "v1"


def leads(status: dict[str, Any], own_priority: int, now: datetime) -> bool:
    """Whether `own_priority` is the unique highest among live peers (kopf's own rule: ties pause)."""
    alive = []
    for peer in status.values():
        if not isinstance(peer, dict):
            continue
        try:
            seen = datetime.fromisoformat(str(peer.get("lastseen")).replace("Z", "+00:00"))
            if seen.tzinfo is None:
                seen = seen.replace(tzinfo=UTC)
            if seen + timedelta(seconds=int(peer.get("lifetime", 60))) > now:
                alive.append(int(peer.get("priority", 0)))
        except (TypeError, ValueError):
            continue
    return own_priority in alive and max(alive) == own_priority and alive.count(own_priority) == 1


class Leadership:
    def __init__(self, peering: str | None, priority: int, namespace: str | None = None) -> None:
        self.peering, self.priority, self.namespace = peering, priority, namespace
        self.active = peering is None  # standalone: always active

    def _status(self) -> dict[str, Any] | None:
        """The peering object's status, or None when there is no peering object (kopf then runs alone)."""
        import kubernetes
        from kubernetes.client.exceptions import ApiException

        from .api import client

        api = kubernetes.client.CustomObjectsApi(client())
        name = str(self.peering)
        try:
            if self.namespace:
                obj: Any = api.get_namespaced_custom_object(PEERING_GROUP, PEERING_VERSION, self.namespace, "kopfpeerings", name)
            else:
                obj = api.get_cluster_custom_object(PEERING_GROUP, PEERING_VERSION, "clusterkopfpeerings", name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return dict(obj.get("status") or {})

    async def watch(self, interval: float = 2.0) -> None:
        while self.peering is not None:
            try:
                status = await asyncio.to_thread(self._status)
                active = True if status is None else leads(status, self.priority, datetime.now(UTC))
            except Exception as exc:  # unknown: keep the last answer rather than flap
                log.debug("peering status unavailable: %s", exc)
                active = self.active
            if active != self.active:
                log.info("this replica is now %s", "active" if active else "standby")
            self.active = active
            await asyncio.sleep(interval)


LEADERSHIP = Leadership(None, 0)
