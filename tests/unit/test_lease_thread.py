"""Lease calls never wait behind a busy default thread pool (PolicyReport writes): a renewal stuck
in that queue for 10 s would make the leader step down mid-pass (seen in operator_scale.py)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from readiness_operator.kube.api import KubeApi


class _Custom:
    def __init__(self) -> None:
        self.threads: list[str] = []

    def get_namespaced_custom_object(self, *_: Any, **__: Any) -> dict[str, Any]:
        self.threads.append(threading.current_thread().name)
        return {"kind": "Lease", "metadata": {"name": "l"}}


def test_a_lease_read_runs_while_every_default_worker_is_busy() -> None:
    api = KubeApi(client=object())  # type: ignore[arg-type]
    custom = _Custom()
    api._custom = lambda: custom  # type: ignore[method-assign]
    release = threading.Event()

    async def scenario() -> float:
        blockers = [asyncio.create_task(asyncio.to_thread(release.wait, 10)) for _ in range(64)]
        await asyncio.sleep(0.1)  # every default worker now waits on `release`
        started = time.monotonic()
        lease = await asyncio.wait_for(api.get_lease("ns", "l"), 5)
        took = time.monotonic() - started
        release.set()
        await asyncio.gather(*blockers)
        assert lease is not None and lease["kind"] == "Lease"
        return took

    assert asyncio.run(scenario()) < 2.0
    assert custom.threads and all(name.startswith("readiness-lease") for name in custom.threads)
