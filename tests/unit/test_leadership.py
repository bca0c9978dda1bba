"""Leader election with a Lease: the pure rule (table-driven) and the elector against an in-memory Lease store."""

from __future__ import annotations

import asyncio
import copy
import functools
import threading
import time
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from readiness_operator.kube.leadership import (
    Action,
    Leadership,
    LeaderTerm,
    LeaderWriter,
    LeaseState,
    Never,
    NotLeading,
    decide,
    identity,
    lease_spec,
    released_spec,
    renewal_overdue,
)

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def in_loop(test: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    """Run an async test in a fresh event loop (no pytest-asyncio here)."""

    @functools.wraps(test)
    def run() -> None:
        asyncio.run(test())

    return run


def lease(holder: str, duration: float = 15, rv: str = "1", transitions: int = 0) -> LeaseState:
    return LeaseState(holder=holder, duration=duration, acquired="2026-11-24T11:00:00.000000Z", transitions=transitions,
                      resource_version=rv)


@pytest.mark.parametrize(
    ("current", "now", "observed_at", "expected"),
    [
        (None, 100.0, 100.0, Action.CREATE),  # no Lease yet
        (lease("me"), 100.0, 0.0, Action.RENEW),  # ours, even when we have not renewed for long
        (lease(""), 100.0, 100.0, Action.ACQUIRE),  # released by a leader that shut down: at once
        (lease("other"), 100.0, 99.0, Action.STANDBY),  # renewed a second ago
        (lease("other"), 100.0, 85.5, Action.STANDBY),  # just under the lease duration
        (lease("other"), 100.0, 85.0, Action.TAKE_OVER),  # not renewed for a whole lease duration
        (lease("other", duration=60), 100.0, 50.0, Action.STANDBY),  # the holder's duration counts, not ours
        (lease("other", duration=1), 100.0, 98.0, Action.TAKE_OVER),
    ],
)
def test_decide(current: LeaseState | None, now: float, observed_at: float, expected: Action) -> None:
    assert decide(current, "me", now=now, observed_at=observed_at) is expected


@pytest.mark.parametrize(
    ("last", "now", "overdue"),
    [(None, 5.0, True), (0.0, 9.9, False), (0.0, 10.0, True), (50.0, 52.0, False)],
)
def test_renewal_overdue(last: float | None, now: float, overdue: bool) -> None:
    assert renewal_overdue(last, now, renew_deadline=10.0) is overdue


def test_lease_spec_per_action() -> None:
    renewed = lease_spec(lease("me", transitions=3), "me", Action.RENEW, NOW, 15)
    assert renewed == {"holderIdentity": "me", "leaseDurationSeconds": 15, "acquireTime": "2026-11-24T11:00:00.000000Z",
                       "renewTime": "2026-11-24T12:00:00.000000Z", "leaseTransitions": 3}
    taken = lease_spec(lease("other", transitions=3), "me", Action.TAKE_OVER, NOW, 15)
    assert taken["acquireTime"] == taken["renewTime"] == "2026-11-24T12:00:00.000000Z"
    assert (taken["holderIdentity"], taken["leaseTransitions"]) == ("me", 4)
    assert lease_spec(None, "me", Action.CREATE, NOW, 15)["leaseTransitions"] == 0
    with pytest.raises(ValueError):
        lease_spec(lease("other"), "me", Action.STANDBY, NOW, 15)
    released = released_spec(lease("me", transitions=4), NOW)
    assert released["holderIdentity"] == "" and released["leaseTransitions"] == 4
    assert decide(LeaseState.of({"spec": released, "metadata": {"resourceVersion": "9"}}), "you", now=0, observed_at=0) \
        is Action.ACQUIRE


def test_identity_is_the_pod_name_plus_a_random_suffix() -> None:
    a, b = identity("op-7d9f-abc"), identity("op-7d9f-abc")
    assert a.startswith("op-7d9f-abc_") and b.startswith("op-7d9f-abc_") and a != b


class LeaseStore:
    """One Lease with the API server's optimistic concurrency: a stale resourceVersion is a conflict."""

    def __init__(self) -> None:
        self.obj: dict[str, Any] | None = None
        self.version = 0
        self.writes: list[str] = []
        self.failing = False
        self.conflicts = 0

    def _check(self) -> None:
        if self.failing:
            raise ConnectionError("API server unreachable")

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._check()
        seen = copy.deepcopy(self.obj)
        await asyncio.sleep(0)  # let another replica read the same version before anyone writes
        return seen

    def _store(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self.version += 1
        self.obj = copy.deepcopy(dict(body))
        self.obj["metadata"]["resourceVersion"] = str(self.version)
        self.writes.append(str(body["spec"]["holderIdentity"]))
        return copy.deepcopy(self.obj)

    async def create_lease(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        self._check()
        if self.obj is not None:
            self.conflicts += 1
            return None
        return self._store(body)

    async def replace_lease(self, namespace: str, name: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        self._check()
        assert self.obj is not None
        if body["metadata"].get("resourceVersion") != self.obj["metadata"]["resourceVersion"]:
            self.conflicts += 1
            return None
        return self._store(body)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def elector(me: str, clock: Clock) -> Leadership:
    return Leadership("readiness-operator", "readiness-system", me, clock=clock)


@in_loop
async def test_two_replicas_elect_one_and_the_other_takes_over_when_renewals_stop() -> None:
    store, clock = LeaseStore(), Clock()
    a, b = elector("a", clock), elector("b", clock)
    await a.step(store)
    await b.step(store)
    assert (a.leading, b.leading) == (True, False) and b.holder == "a"
    assert store.obj is not None and store.obj["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "readiness-operator"}
    for _ in range(10):  # a renews every 2 s; b keeps seeing fresh versions and stands by
        clock.now += 2
        await a.step(store)
        await b.step(store)
        assert (a.leading, b.leading) == (True, False)
    # a dies (no more renewals): b takes over once it has seen no change for the lease duration.
    clock.now += 14
    await b.step(store)
    assert not b.leading
    clock.now += 1
    await b.step(store)
    assert b.leading and b.term == 1
    assert store.obj is not None and store.obj["spec"]["leaseTransitions"] == 1
    # a comes back (it was only cut off): it sees b's Lease and stands by.
    await a.step(store)
    assert not a.leading


@in_loop
async def test_a_conflicting_write_loses_the_race() -> None:
    store, clock = LeaseStore(), Clock()
    a, b = elector("a", clock), elector("b", clock)
    # Both read "no Lease" before either writes: only one create succeeds.
    await asyncio.gather(a.step(store), b.step(store))
    assert [a.leading, b.leading].count(True) == 1
    assert len(store.writes) == 1 and store.conflicts == 1
    loser = b if a.leading else a
    await loser.step(store)
    assert not loser.leading


@in_loop
async def test_release_hands_over_at_once() -> None:
    store, clock = LeaseStore(), Clock()
    a, b = elector("a", clock), elector("b", clock)
    await a.step(store)
    await b.step(store)
    await a.release(store)
    assert not a.leading and store.writes[-1] == ""
    await b.step(store)  # no waiting for the lease duration
    assert b.leading
    await a.step(store)  # a released for good: it never leads again
    assert not a.leading


@in_loop
async def test_the_leader_steps_down_when_it_cannot_renew_before_the_deadline() -> None:
    store, clock = LeaseStore(), Clock()
    a = Leadership("readiness-operator", "readiness-system", "a", clock=clock, retry_period=0.01)
    await a.step(store)
    store.failing = True
    task = asyncio.create_task(a.run(store))
    await asyncio.sleep(0.05)
    assert a.leading  # failures within the renew deadline keep it leading (client-go's rule)
    clock.now += 10
    await asyncio.sleep(0.05)
    assert not a.leading
    task.cancel()


def test_renew_deadline_must_be_shorter_than_the_lease() -> None:
    with pytest.raises(ValueError):
        Leadership("l", "ns", "me", lease_duration=10, renew_deadline=10)


class Recorder:
    def __init__(self) -> None:
        self.writes: list[str] = []

    async def policy_reports_available(self) -> bool:
        return True

    async def list_policy_reports(self, policy: str) -> list[dict[str, Any]]:
        return []

    async def patch_policy_status(self, name: str, status: Mapping[str, Any]) -> None:
        self.writes.append("status")

    async def put_policy_report(self, report: Mapping[str, Any]) -> None:
        self.writes.append("report")

    async def delete_policy_report(self, namespace: str, name: str) -> None:
        self.writes.append("delete-report")

    async def post_event(self, involved: Mapping[str, Any], *, reason: str, message: str, warning: bool = False,
                         labels: Mapping[str, str] | None = None) -> None:
        self.writes.append("event")

    async def put_admission_object(self, obj: Mapping[str, Any], *, create: bool = True) -> bool:
        self.writes.append("admission")
        return True


@in_loop
async def test_a_term_ends_with_leadership_and_its_writer_refuses_from_then_on() -> None:
    store, clock = LeaseStore(), Clock()
    a = elector("a", clock)
    await a.step(store)
    term, recorder = LeaderTerm(a, Never()), Recorder()
    writer = LeaderWriter(recorder, term)
    await writer.patch_policy_status("p", {})
    assert term.current and not term
    waiting = asyncio.create_task(term.wait())
    await asyncio.sleep(0)
    await a.release(store)
    await asyncio.wait_for(waiting, 1)  # the wait ends with the term
    assert term
    for write in (writer.patch_policy_status("p", {}), writer.post_event({}, reason="r", message="m"),
                  writer.put_policy_report({}), writer.put_admission_object({})):
        with pytest.raises(NotLeading):
            await write
    assert recorder.writes == ["status"]
    assert await writer.policy_reports_available()  # reads still pass


@in_loop
async def test_writes_stop_at_the_renew_deadline_even_while_the_election_loop_hangs() -> None:
    store, clock = LeaseStore(), Clock()
    a = Leadership("readiness-operator", "readiness-system", "a", clock=clock, retry_period=0.05)
    await a.step(store)
    recorder = Recorder()
    writer = LeaderWriter(recorder, LeaderTerm(a, Never()))
    await writer.post_event({}, reason="r", message="m")
    clock.now += 9.9
    await writer.post_event({}, reason="r", message="m")
    clock.now += 0.1  # no renewal for 10 s: the API call renewing it may still be pending
    assert a.leading and not a.writable
    with pytest.raises(NotLeading):
        await writer.post_event({}, reason="r", message="m")
    assert recorder.writes == ["event", "event"]
    # Policy loops wait (no spinning) until a renewal succeeds, then a new run may write again.
    waiting = asyncio.create_task(a.wait_leading(Never()))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await a.step(store)
    assert a.writable
    await asyncio.wait_for(waiting, 3)


@in_loop
async def test_standalone_always_leads() -> None:
    alone = Leadership()
    seen: list[bool] = []
    alone.listen(seen.append)
    assert alone.leading and alone.standalone and seen == [True]
    assert LeaderTerm(alone, Never()).current


def quick_elector(me: str) -> Leadership:
    """On the real clock, with periods short enough for a test: renew every 0.1 s, deadline 1 s."""
    return Leadership("readiness-operator", "readiness-system", me, lease_duration=1.5, renew_deadline=1.0,
                      retry_period=0.1)


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


@in_loop
async def test_a_busy_operator_loop_does_not_hold_renewals_back_when_electing_on_a_thread() -> None:
    """The operator's loop blocked for twice the renew deadline (a first pass judging 40,000 verdicts on a
    starved CPU): electing on its own thread, the leader renews meanwhile and still writes afterwards; the
    listeners hear of the change on the operator's loop."""
    store = LeaseStore()
    a = quick_elector("a")
    heard: list[tuple[bool, bool]] = []  # (leading, called on the loop's thread)
    loop_thread = threading.get_ident()
    a.listen(lambda leading: heard.append((leading, threading.get_ident() == loop_thread)))
    task = asyncio.create_task(a.run_in_thread(store))
    await until(lambda: a.writable)
    assert heard == [(False, True), (True, True)]
    writes = len(store.writes)
    time.sleep(2.0)  # the loop is blocked: nothing else runs on it
    assert a.writable and a.term == 1, "the leader stepped down while its loop was busy"
    assert len(store.writes) >= writes + 5  # renewed on its thread meanwhile
    await a.release(store)
    await asyncio.wait_for(task, 5)
    assert not a.leading and store.writes[-1] == "" and heard[-1] == (False, True)


@in_loop
async def test_electing_on_the_operator_loop_a_busy_loop_loses_the_lease() -> None:
    """The same block with the election on the operator's loop: the renewal is overdue afterwards."""
    store = LeaseStore()
    a = quick_elector("a")
    task = asyncio.create_task(a.run(store))
    await until(lambda: a.writable)
    time.sleep(2.0)
    assert not a.writable  # what run_in_thread avoids
    await a.release(store)
    task.cancel()
