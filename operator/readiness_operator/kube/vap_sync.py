"""The one writer of the merged ValidatingAdmissionPolicy + binding (fixed names, leader only).

Every Enforce policy's rules live in one policy and one binding (`admission.vap`), so the chart's
RBAC can name the only two admission objects the operator may change. This writes them when any
policy changes, only differences (plus a periodic re-put), through `AdmissionWriter`, which never
touches an object that is not labelled as ours. Both carry an owner reference to every policy they
hold (not a controller reference: the garbage collector removes them only once all those policies
are gone, e.g. when this process is not running), and are deleted when no Enforce policy is left.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from readiness_operator.admission.vap import generate_vap
from readiness_operator.model import API_VERSION, KIND, ReadinessPolicySpec

from .api import ForeignObject

if TYPE_CHECKING:
    from .context import OperatorContext

log = logging.getLogger(__name__)

VAP_KINDS = ("ValidatingAdmissionPolicyBinding", "ValidatingAdmissionPolicy")  # bindings before policies
#: Unchanged objects are still re-put this often (a no-op when they are intact): one the garbage
#: collector removed in a race with a new policy, or someone deleted, comes back.
REWRITE_AFTER = timedelta(minutes=5)
#: While a foreign object holds our name, look again this often (it may be removed).
FOREIGN_RETRY = timedelta(seconds=30)


class AdmissionWriter(Protocol):
    async def put_admission_object(self, obj: Mapping[str, Any]) -> None: ...
    async def delete_admission_object(self, kind: str, name: str) -> None: ...


@dataclass(frozen=True, slots=True)
class EnforcedPolicy:
    """A policy as the merged objects need it: its uid (for the owner reference) and its spec."""

    uid: str
    spec: ReadinessPolicySpec


def owned(obj: Mapping[str, Any], owners: Mapping[str, str]) -> dict[str, Any]:
    """The object with an owner reference to each policy (name -> uid) it holds.

    Not `controller` (several owners) and no blockOwnerDeletion (it would need RBAC on the policies'
    finalizers).
    """
    refs = [{"apiVersion": API_VERSION, "kind": KIND, "name": name, "uid": uid} for name, uid in sorted(owners.items())]
    return {**obj, "metadata": {**obj["metadata"], "ownerReferences": refs}}


class AdmissionPolicySync:
    """Keeps the two fixed-name objects equal to what the current Enforce policies generate."""

    def __init__(self, name: str, writer: AdmissionWriter, excluded_namespaces: Collection[str]) -> None:
        self.name, self.writer, self.excluded_namespaces = name, writer, excluded_namespaces
        self.written: list[dict[str, Any]] | None = None  # None: nothing known (first sync of a term)
        self.written_at: datetime | None = None
        self.next_expiry: datetime | None = None  # when an exemption ends and the CEL must change
        self.foreign: set[str] = set()  # kinds whose fixed name is taken by an object that is not ours
        self.policies: tuple[str, ...] = ()  # the policies the written objects hold

    async def sync(self, policies: Mapping[str, EnforcedPolicy], now: datetime) -> None:
        generated = generate_vap({n: p.spec for n, p in policies.items()}, name=self.name, now=now,
                                 excluded_namespaces=self.excluded_namespaces)
        self.next_expiry = generated.next_expiry
        owners = {n: policies[n].uid for n in generated.policies}
        objects = [owned(o, owners) for o in generated.objects]
        if objects == self.written and self.written_at is not None and now - self.written_at < REWRITE_AFTER:
            return
        if not objects and self.written == [] and now - (self.written_at or now) < REWRITE_AFTER:
            return  # deleted already
        foreign: set[str] = set()
        for obj in objects:  # the policy before its binding
            try:
                await self.writer.put_admission_object(obj)
            except ForeignObject as exc:  # never ours to change; the webhook still enforces
                foreign.add(str(obj["kind"]))
                if foreign != self.foreign:
                    log.warning("no fail-safe ValidatingAdmissionPolicy for %s: %s", ", ".join(owners), exc)
                break  # our binding must never bind a foreign policy of our name
        if not objects:  # no Enforce policy left (or first sync of a term): remove ours, if any
            for kind in VAP_KINDS:
                await self.writer.delete_admission_object(kind, self.name)
        if objects != self.written or foreign != self.foreign:
            log.info("%s %s: %s", "wrote" if objects else "removed", self.name,
                     ", ".join(generated.policies) or "no Enforce policy")
        self.foreign, self.policies = foreign, tuple(generated.policies)
        self.written, self.written_at = objects, now
        if foreign:  # not written: try again on the next change, or after FOREIGN_RETRY
            self.written, self.written_at = None, now - REWRITE_AFTER + FOREIGN_RETRY

    def requeue_after(self, now: datetime) -> float:
        """Seconds until the objects must be re-put or an exemption expires."""
        horizon = REWRITE_AFTER.total_seconds()
        if self.written_at is not None:
            horizon = max(1.0, (self.written_at + REWRITE_AFTER - now).total_seconds())
        if self.next_expiry is not None:
            horizon = min(horizon, max(1.0, (self.next_expiry - now).total_seconds()))
        return horizon


def enforced_policies(ctx: OperatorContext) -> dict[str, EnforcedPolicy]:
    """The valid, not deleting policies from the policy index (the generator keeps Enforce ones)."""
    out: dict[str, EnforcedPolicy] = {}
    for name, entries in (ctx.policy_index or {}).items():
        for uid, generation, spec, deleting in entries:
            if deleting:
                continue
            plan = ctx.policies.get(name, generation, spec).plan
            if plan is not None:
                out[name] = EnforcedPolicy(uid, plan.spec)
    return out


def index_entry(uid: str, generation: int | None, spec: Mapping[str, Any], deleting: bool) -> tuple[Any, ...]:
    """What the policy index keeps of a ReadinessPolicy (handlers.policy_index)."""
    return (uid, generation, copy.deepcopy(dict(spec)), deleting)


async def run_admission_policy_writer(ctx: OperatorContext) -> None:
    """Forever: wait to lead, then keep the merged objects current for as long as the term lasts."""
    from .leadership import LeaderTerm, LeaderWriter, Never, NotLeading
    from .loop import run_until_stopped

    while True:
        await ctx.leadership.wait_leading(Never())
        while not ctx.indexed or ctx.policy_index is None:  # every policy must be known before writing
            await asyncio.sleep(0.1)
        term = LeaderTerm(ctx.leadership, Never())
        sync = AdmissionPolicySync(ctx.settings.vap_name, LeaderWriter(ctx.api, term), ctx.settings.excluded_namespaces)

        async def reconcile(sync: AdmissionPolicySync = sync) -> float:
            ctx.admission_policy_wake.clear()
            now = datetime.now(UTC)
            await sync.sync(enforced_policies(ctx), now)
            return sync.requeue_after(now)

        def failed(exc: Exception, retry_in: float) -> None:
            if not isinstance(exc, NotLeading):
                log.error("could not write the ValidatingAdmissionPolicy %s; retrying in %.0fs",
                          ctx.settings.vap_name, retry_in, exc_info=exc)

        ctx.admission_policy_wake.set()
        # A short debounce: a pass that changes nothing costs no API call (diff against what was written).
        await run_until_stopped(reconcile, wake=ctx.admission_policy_wake, stopped=term, on_error=failed, debounce=0.05)
        if ctx.leadership.writable:  # pragma: no cover - the loop only ends with the term
            await asyncio.sleep(1)
