"""Which replica is active under kopf peering, for readiness (and so for the webhook Service).

kopf pauses every replica but the highest-priority live peer and closes a paused replica's watch
streams, so a standby's indexes go stale. Only the active replica should answer admission
requests: `/readyz` reports ready only while this replica holds the highest priority.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

log = logging.getLogger(__name__)


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
    """Whether this replica is the active one; `watch` keeps it current from the peering object."""

    def __init__(self, peering: str | None = None, priority: int = 0, namespace: str | None = None) -> None:
        self.peering, self.priority, self.namespace = peering, priority, namespace
        self.active = peering is None  # standalone: always active

    async def watch(self, read_status: Callable[[str, str | None], dict[str, Any] | None], interval: float = 2.0) -> None:
        """Poll the peering status (`read_status(peering, namespace)`, None: no peering object)."""
        while self.peering is not None:
            try:
                status = await asyncio.to_thread(read_status, self.peering, self.namespace)
                active = True if status is None else leads(status, self.priority, datetime.now(UTC))
            except Exception as exc:  # unknown: keep the last answer rather than flap
                log.debug("peering status unavailable: %s", exc)
                active = self.active
            if active != self.active:
                log.info("this replica is now %s", "active" if active else "standby")
            self.active = active
            await asyncio.sleep(interval)
