"""Run a reconcile again and again, as controller-runtime's workqueue does for one key.

The reconcile says when it wants to run next (`requeue_after`); a wake-up event (a watch marked
something dirty) brings that forward; a failure is retried with exponential backoff; `stopped`
(the policy was deleted, or the operator stops) ends the loop at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol


class Stopped(Protocol):
    """kopf's DaemonStopped, as this loop uses it."""

    def __bool__(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> Awaitable[object]: ...


async def sleep_until(timeout: float, wake: asyncio.Event, stopped: Stopped) -> None:
    """Sleep up to `timeout` seconds, or until `wake` is set or `stopped` fires."""
    waiters = {asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stopped.wait())}
    try:
        await asyncio.wait(waiters, timeout=max(0.0, timeout), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def run_until_stopped(
    reconcile: Callable[[], Awaitable[float]],
    *,
    wake: asyncio.Event,
    stopped: Stopped,
    on_error: Callable[[Exception, float], None],
    debounce: float = 0.2,
    max_backoff: float = 60.0,
) -> None:
    """Call `reconcile` (returning seconds until it wants to run again) until `stopped`.

    `debounce` coalesces a burst of watch events into one pass; `on_error(exc, retry_in)` reports a
    failed pass before the backoff sleep.
    """
    backoff = 1.0
    while not stopped:
        try:
            requeue_after = await reconcile()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            on_error(exc, backoff)
            await stopped.wait(backoff)
            backoff = min(backoff * 2, max_backoff)
            continue
        backoff = 1.0
        await sleep_until(requeue_after, wake, stopped)
        if stopped:
            break
        await asyncio.sleep(debounce)
