"""Leader election with a coordination.k8s.io/v1 Lease, the way client-go's leaderelection does it.

Every replica watches, keeps its indexes, serves the webhook and is Ready; only the holder of the
Lease writes (policy status, PolicyReports, Events, the webhook configuration, the generated
ValidatingAdmissionPolicies). That is controller-runtime's split: kopf's own peering cannot do it,
because kopf pauses a standby and closes its watch streams, so its indexes would go stale.

- `decide` is the pure rule: given the Lease as read, this replica's identity, the local clock and
  when this replica first saw the Lease's current version, acquire / renew / take over / stand by.
  Expiry is measured from that local observation, not from `renewTime` (client-go's rule: no
  trust in another node's clock).
- `Leadership.run` is the I/O loop: read the Lease every `retry_period`, write it with optimistic
  concurrency (a `resourceVersion` conflict means someone else won), step down when renewals keep
  failing for `renew_deadline` (shorter than `lease_duration`, so a cut-off leader has stopped
  writing before anyone may take over), and `release` hands the Lease over on graceful shutdown.
  `run_in_thread` runs that loop on a thread with its own event loop, as client-go renews in its own
  goroutine: the operator's loop judging 40,000 verdicts on a starved CPU once held renewals back past
  the deadline, and the leader stepped down again and again (the 30,000-pod benchmark). Changes of
  leadership reach the operator's loop through `call_soon_threadsafe`.
- `LeaderTerm` and `LeaderWriter` make "only the leader writes" hold at the write boundary: a
  policy loop runs for one term, and every write checks that the term is still current.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from readiness_operator.names import MANAGED_BY_LABELS

from .reconcile import ApprovalReader, VerdictEventReader, Writer
from .state import Key, OverrideApproval
from .vap_sync import AdmissionWriter

log = logging.getLogger(__name__)

LEASE_DURATION = 15.0  # seconds a standby waits, from its last sight of a renewal, before taking over
RENEW_DEADLINE = 10.0  # seconds a leader keeps writing without a successful renewal
RETRY_PERIOD = 2.0  # seconds between two reads (standby) or renewals (leader)
DEFAULT_LEASE = "readiness-operator"


class Action(StrEnum):
    CREATE = "create"  # there is no Lease yet
    ACQUIRE = "acquire"  # the Lease was released (no holder)
    RENEW = "renew"  # we hold it
    TAKE_OVER = "take-over"  # its holder stopped renewing for a whole lease duration
    STANDBY = "standby"  # someone else holds it


@dataclass(frozen=True)
class LeaseState:
    """The parts of a Lease that election reads."""

    holder: str  # "" when released
    duration: float
    acquired: str | None
    transitions: int
    resource_version: str

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> LeaseState:
        spec = obj.get("spec") or {}
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            duration=float(spec.get("leaseDurationSeconds") or LEASE_DURATION),
            acquired=spec.get("acquireTime"),
            transitions=int(spec.get("leaseTransitions") or 0),
            resource_version=str((obj.get("metadata") or {}).get("resourceVersion") or ""),
        )


def decide(lease: LeaseState | None, me: str, *, now: float, observed_at: float) -> Action:
    """What to do with the Lease; `now` and `observed_at` are on this replica's own clock."""
    if lease is None:
        return Action.CREATE
    if lease.holder == me:
        return Action.RENEW
    if not lease.holder:
        return Action.ACQUIRE
    if now - observed_at >= lease.duration:
        return Action.TAKE_OVER
    return Action.STANDBY


def renewal_overdue(last_renewed: float | None, now: float, renew_deadline: float = RENEW_DEADLINE) -> bool:
    """A leader that could not renew for `renew_deadline` must stop writing (it may be cut off)."""
    return last_renewed is None or now - last_renewed >= renew_deadline


def micro_time(moment: datetime) -> str:
    """A Lease's MicroTime (RFC 3339 with microseconds)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_spec(lease: LeaseState | None, me: str, action: Action, now: datetime, duration: float) -> dict[str, Any]:
    """The spec to write for `action` (not STANDBY): a renewal keeps acquireTime, a new holder counts a transition."""
    if action is Action.STANDBY:
        raise ValueError("a standby writes nothing")
    stamp = micro_time(now)
    transitions = lease.transitions if lease is not None else 0
    if action is Action.RENEW and lease is not None:
        return {"holderIdentity": me, "leaseDurationSeconds": int(duration), "acquireTime": lease.acquired or stamp,
                "renewTime": stamp, "leaseTransitions": transitions}
    return {"holderIdentity": me, "leaseDurationSeconds": int(duration), "acquireTime": stamp, "renewTime": stamp,
            "leaseTransitions": transitions + (1 if lease is not None and lease.holder != me else 0)}


def released_spec(lease: LeaseState, now: datetime) -> dict[str, Any]:
    """What a leader writes on graceful shutdown (as client-go does): no holder, so the next replica
    to read it acquires at once instead of waiting for the lease duration."""
    stamp = micro_time(now)
    return {"holderIdentity": "", "leaseDurationSeconds": 1, "acquireTime": stamp, "renewTime": stamp,
            "leaseTransitions": lease.transitions}


def identity(pod_name: str | None) -> str:
    """This process's holderIdentity: the pod name (or host name) plus a random suffix, so that a
    restarted container never mistakes its predecessor's Lease for its own."""
    return f"{pod_name or socket.gethostname()}_{uuid.uuid4().hex[:8]}"


class LeaseApi(Protocol):
    """The Lease calls election makes (KubeApi implements them); writes return None on a conflict."""

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    async def create_lease(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any] | None: ...
    async def replace_lease(self, namespace: str, name: str, body: Mapping[str, Any]) -> dict[str, Any] | None: ...


class Leadership:
    """Whether this replica writes. `lease=None` (standalone): always. Otherwise `run` elects."""

    def __init__(
        self, lease: str | None = None, namespace: str = "", me: str = "", *,
        lease_duration: float = LEASE_DURATION, renew_deadline: float = RENEW_DEADLINE,
        retry_period: float = RETRY_PERIOD, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if lease is not None and not renew_deadline < lease_duration:
            raise ValueError("the renew deadline must be shorter than the lease duration")
        self.lease, self.namespace, self.me = lease, namespace, me
        self.lease_duration, self.renew_deadline, self.retry_period = lease_duration, renew_deadline, retry_period
        self.clock = clock
        self.leading = lease is None
        self.term = 1 if self.leading else 0  # counts acquisitions: a policy loop runs for one term
        self.holder: str | None = me if self.leading else None  # who holds the Lease, as last read
        self._changed = asyncio.Event()
        self._listeners: list[Callable[[bool], None]] = []
        self._held: LeaseState | None = None  # the Lease as we last wrote it while holding it
        self._observed: tuple[str, float] | None = None  # its resourceVersion, and when we first saw it
        self._last_renewed: float | None = None  # our last successful write (clock seconds)
        self._closing = False
        # The loop whose tasks wait on `changed` and whose listeners are called (run_in_thread sets it).
        self._home: asyncio.AbstractEventLoop | None = None

    @property
    def standalone(self) -> bool:
        return self.lease is None

    @property
    def writable(self) -> bool:
        """Leading and, when elected, renewed within the renew deadline. Checked at every write, so a
        leader whose renewal hangs stops writing on time even before its election loop notices."""
        if self.standalone or not self.leading:
            return self.leading
        return not renewal_overdue(self._last_renewed, self.clock(), self.renew_deadline)

    def listen(self, callback: Callable[[bool], None]) -> None:
        """Call `callback(leading)` now and on every change."""
        self._listeners.append(callback)
        callback(self.leading)

    def _set(self, leading: bool) -> None:
        if leading and self._closing:
            return
        if leading == self.leading:
            return
        self.leading = leading
        if leading:
            self.term += 1
        log.info("this replica (%s) %s", self.me or "standalone",
                 "is the leader now: it writes" if leading else "stands by: it serves, it does not write")
        home = self._home
        if home is None or _running_loop() is home:
            self._announce(leading)
        else:  # from the election thread: asyncio.Event and the listeners belong to the home loop
            home.call_soon_threadsafe(self._announce, leading)

    def _announce(self, leading: bool) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        for callback in list(self._listeners):
            try:
                callback(leading)
            except Exception:
                log.exception("leadership listener failed")

    async def changed(self) -> None:
        """Return at the next change of leadership."""
        await self._changed.wait()

    async def wait_leading(self, stopped: Stopped) -> None:
        """Return once this replica leads and may write, or `stopped` fires. (Leading but past the
        renew deadline changes no flag when a late renewal succeeds, hence the periodic re-check.)"""
        while not self.writable and not stopped:
            waiters = {asyncio.ensure_future(self.changed()), asyncio.ensure_future(stopped.wait(self.retry_period))}
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()

    def _body(self, spec: Mapping[str, Any], resource_version: str | None) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": self.lease, "namespace": self.namespace, "labels": dict(MANAGED_BY_LABELS)}
        if resource_version:
            meta["resourceVersion"] = resource_version
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": dict(spec)}

    async def step(self, api: LeaseApi) -> None:
        """One round of election: read the Lease, decide, maybe write it."""
        assert self.lease is not None
        now = self.clock()
        obj = await api.get_lease(self.namespace, self.lease)
        lease = LeaseState.of(obj) if obj is not None else None
        if lease is not None and (self._observed is None or self._observed[0] != lease.resource_version):
            self._observed = (lease.resource_version, now)
        action = decide(lease, self.me, now=now, observed_at=self._observed[1] if self._observed else now)
        holder = lease.holder if lease is not None else None
        if action is Action.STANDBY and holder != self.holder:
            log.info("standing by: %s holds Lease %s/%s", holder, self.namespace, self.lease)
        self.holder = holder
        if action is Action.STANDBY:
            self._held = None
            self._set(False)
            return
        if self._closing:
            return
        spec = lease_spec(lease, self.me, action, datetime.now(UTC), self.lease_duration)
        if action is Action.CREATE:
            written = await api.create_lease(self.namespace, self._body(spec, None))
        else:
            assert lease is not None
            written = await api.replace_lease(self.namespace, self.lease, self._body(spec, lease.resource_version))
        if written is None:  # someone else wrote it first: read again next round
            return
        if action is Action.TAKE_OVER:
            log.info("took over Lease %s/%s from %s (not renewed for %.0fs)", self.namespace, self.lease,
                     lease.holder if lease else "?", self.lease_duration)
        self._held = LeaseState.of(written)
        self._observed, self._last_renewed = (self._held.resource_version, now), now
        self.holder = self.me
        self._set(True)

    async def run(self, api: LeaseApi) -> None:
        """Elect until `release`: renew while leading, poll (with a little jitter) while standing by."""
        while self.lease is not None and not self._closing:
            try:
                await self.step(api)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep leading until the renew deadline, as client-go does
                log.warning("Lease %s/%s: %s", self.namespace, self.lease, exc)
            if self.leading and renewal_overdue(self._last_renewed, self.clock(), self.renew_deadline):
                log.warning("could not renew Lease %s/%s for %.0fs: stepping down", self.namespace, self.lease,
                            self.renew_deadline)
                self._held = None
                self._set(False)
            delay = self.retry_period if self.leading else self.retry_period * random.uniform(1.0, 1.2)
            await asyncio.sleep(delay)

    async def run_in_thread(self, api: LeaseApi) -> None:
        """`run` on a thread of its own (with its own event loop), until `release`: a busy or starved
        operator loop cannot delay a renewal. `api` must be callable from any loop (KubeApi runs the
        Lease calls on its own thread)."""
        home = self._home = asyncio.get_running_loop()
        done: asyncio.Future[None] = home.create_future()

        def elect() -> None:
            outcome: BaseException | None = None
            try:
                asyncio.run(self.run(api))
            except BaseException as exc:  # reported on the home loop; the thread ends either way
                outcome = exc
            with contextlib.suppress(RuntimeError):  # the home loop closed first (shutdown)
                home.call_soon_threadsafe(_settle, done, outcome)

        threading.Thread(target=elect, name="leader-election", daemon=True).start()
        await done

    async def release(self, api: LeaseApi, attempts: int = 3) -> None:
        """Stop writing and hand the Lease over (graceful shutdown): the next reader acquires at once."""
        self._closing = True
        held = self._held
        self._set(False)
        if self.lease is None or held is None:
            return
        for _ in range(attempts):
            try:
                obj = await api.get_lease(self.namespace, self.lease)
                if obj is None or LeaseState.of(obj).holder != self.me:
                    return
                current = LeaseState.of(obj)
                body = self._body(released_spec(current, datetime.now(UTC)), current.resource_version)
                if await api.replace_lease(self.namespace, self.lease, body) is not None:
                    log.info("released Lease %s/%s", self.namespace, self.lease)
                    return
            except Exception as exc:
                log.warning("could not release Lease %s/%s: %s", self.namespace, self.lease, exc)
                return


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():  # cancelled: the operator is stopping
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


class Stopped(Protocol):
    """kopf's DaemonStopped (and loop.Stopped), as these helpers use it."""

    def __bool__(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> Awaitable[object]: ...


class Never:
    """A `Stopped` that never fires: for work bounded by the leadership term alone."""

    def __bool__(self) -> bool:
        return False

    async def wait(self, timeout: float | None = None) -> None:
        if timeout is None:
            await asyncio.Event().wait()
        await asyncio.sleep(timeout or 0)


class LeaderTerm:
    """A `loop.Stopped` that fires when kopf stops the daemon or this replica's leadership term ends."""

    def __init__(self, leadership: Leadership, stopped: Stopped) -> None:
        self.leadership, self.stopped, self.term = leadership, stopped, leadership.term

    @property
    def current(self) -> bool:
        return self.leadership.writable and self.leadership.term == self.term

    def __bool__(self) -> bool:
        return bool(self.stopped) or not self.current

    async def wait(self, timeout: float | None = None) -> None:
        if self:
            return
        waiters = {asyncio.ensure_future(self.stopped.wait(timeout)), asyncio.ensure_future(self._ended())}
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _ended(self) -> None:
        while self.current:
            await self.leadership.changed()


class WriteApi(Writer, AdmissionWriter, ApprovalReader, VerdictEventReader, Protocol):
    """Everything a policy loop writes through (KubeApi)."""


class NotLeading(RuntimeError):
    """A write was refused: this replica's leadership term has ended."""


class LeaderWriter:
    """The reconcile's Writer and the admission objects' AdmissionWriter, writing only during one leadership term.

    Reads pass through; every write first checks the term, so a pass that is under way when the
    Lease is lost stops at its next write instead of racing the new leader.
    """

    def __init__(self, api: WriteApi, term: LeaderTerm) -> None:
        self.api, self.term = api, term

    def _check(self) -> None:
        if not self.term.current:
            raise NotLeading("no longer the leader")

    async def policy_reports_available(self) -> bool:
        return await self.api.policy_reports_available()

    async def list_policy_reports(self, policy: str) -> list[dict[str, Any]]:
        return await self.api.list_policy_reports(policy)

    async def list_override_approvals(self) -> dict[Key, OverrideApproval]:
        return await self.api.list_override_approvals()

    async def patch_policy_status(self, name: str, status: Mapping[str, Any]) -> None:
        self._check()
        await self.api.patch_policy_status(name, status)

    async def put_policy_report(self, report: Mapping[str, Any]) -> None:
        self._check()
        await self.api.put_policy_report(report)

    async def delete_policy_report(self, namespace: str, name: str) -> None:
        self._check()
        await self.api.delete_policy_report(namespace, name)

    async def post_event(
        self, involved: Mapping[str, Any], *, reason: str, message: str, warning: bool = False,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self._check()
        await self.api.post_event(involved, reason=reason, message=message, warning=warning, labels=labels)

    async def last_verdict_events(self, policy: str) -> dict[tuple[str, str, str], str]:
        return await self.api.last_verdict_events(policy)

    async def put_admission_object(self, obj: Mapping[str, Any], *, create: bool = True) -> bool:
        self._check()
        return await self.api.put_admission_object(obj, create=create)
