"""Make kopf's index-readiness wait linear in the number of watched objects (kopf 1.45).

kopf holds every handler back until all indexes are filled. During the initial listing it makes a
toggle per listed object in one `ToggleSet`; each object's worker drops its toggle and then waits on
the set's condition. `make_toggle` and `drop_toggle` call `notify_all()` every time, so each of N
objects wakes every waiting worker, and each woken worker must re-acquire the condition's lock:
O(N^2) task wake-ups. With 10,000 Deployments + 8,500 PDBs/HPAs the operator spent minutes at
full CPU before a single handler ran (`hack/bench/operator_scale.py`).

The waiters only wait for the set's aggregate state (`is_on() == state`), so a change that leaves
the aggregate as it was cannot satisfy any of them. These replacements notify only when the
aggregate flips; once the last toggle is dropped every waiter wakes once: O(N).
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def apply() -> bool:
    """Patch `kopf._cogs.aiokits.aiotoggles.ToggleSet` (idempotent); False if kopf changed shape."""
    try:
        from kopf._cogs.aiokits import aiotoggles
    except ImportError:  # pragma: no cover - kopf moved its internals: run unpatched
        log.warning("kopf internals moved; index readiness stays O(N^2) in watched objects")
        return False
    cls: Any = aiotoggles.ToggleSet
    if getattr(cls, "_readiness_linear", False):
        return True
    if not all(hasattr(cls, m) for m in ("make_toggle", "drop_toggle", "drop_toggles", "is_on")):  # pragma: no cover
        log.warning("kopf ToggleSet changed; index readiness stays O(N^2) in watched objects")
        return False

    async def make_toggle(self: Any, __val: bool = False, *, name: str | None = None) -> Any:
        toggle = aiotoggles.Toggle(__val, name=name, condition=self._condition)
        async with self._condition:
            before = self.is_on()
            self._toggles.add(toggle)
            if self.is_on() != before:
                self._condition.notify_all()
        return toggle

    async def drop_toggle(self: Any, toggle: Any) -> None:
        async with self._condition:
            before = self.is_on()
            self._toggles.discard(toggle)
            if self.is_on() != before:
                self._condition.notify_all()

    async def drop_toggles(self: Any, toggles: Any) -> None:
        async with self._condition:
            before = self.is_on()
            self._toggles.difference_update(toggles)
            if self.is_on() != before:
                self._condition.notify_all()

    cls.make_toggle, cls.drop_toggle, cls.drop_toggles = make_toggle, drop_toggle, drop_toggles
    cls._readiness_linear = True
    return True
