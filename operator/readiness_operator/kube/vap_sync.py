"""The one writer of the merged ValidatingAdmissionPolicy + binding (fixed names, leader only).

Every Enforce policy's rules live in one policy and one binding (`admission.vap`), so the chart's
RBAC can name the only two admission objects the operator may change. The chart creates both as
inert placeholders and the operator may only get and update them (no create, no delete: a
compromised operator cannot register admission objects of its own). This replaces them when any
policy changes, only differences (plus a periodic re-put), through `AdmissionWriter`, which never
touches an object that is not labelled as ours, and writes the placeholders back when no Enforce
policy is left. A missing object (deleted by someone) is created only where the credentials allow
it (an admin outside the chart); with the chart's ServiceAccount that is one clear error, then a
quiet retry every FOREIGN_RETRY: the webhook still enforces.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from readiness_operator.admission.vap import generate_vap, placeholder_objects
from readiness_operator.model import ReadinessPolicySpec

from .api import AdmissionObjectMissing, ForeignObject

if TYPE_CHECKING:
    from .context import OperatorContext

log = logging.getLogger(__name__)

#: Unchanged objects are still re-put this often (a no-op when they are intact): one the garbage
#: collector removed in a race with a new policy, or someone deleted, comes back.
REWRITE_AFTER = timedelta(minutes=5)
#: While a foreign object holds our name, or ours is missing, look again this often (it may change).
FOREIGN_RETRY = timedelta(seconds=30)


class AdmissionWriter(Protocol):
    async def put_admission_object(self, obj: Mapping[str, Any], *, create: bool = True) -> bool: ...


@dataclass(frozen=True, slots=True)
class EnforcedPolicy:
    """A policy as the merged objects need it: its uid and its spec."""

    uid: str
    spec: ReadinessPolicySpec


class AdmissionPolicySync:
    """Keeps the two fixed-name objects equal to what the current Enforce policies generate."""

    def __init__(self, name: str, writer: AdmissionWriter, excluded_namespaces: Collection[str]) -> None:
        self.name, self.writer, self.excluded_namespaces = name, writer, excluded_namespaces
        self.written: list[dict[str, Any]] | None = None  # None: nothing known (first sync of a term)
        self.written_at: datetime | None = None
        self.next_expiry: datetime | None = None  # when an exemption ends and the CEL must change
        self.foreign: set[str] = set()  # kinds whose fixed name is taken by an object that is not ours
        self.missing: set[str] = set()  # kinds of ours that are gone and may not be created here
        self.policies: tuple[str, ...] = ()  # the policies the written objects hold

    async def sync(self, policies: Mapping[str, EnforcedPolicy], now: datetime) -> None:
        generated = generate_vap({n: p.spec for n, p in policies.items()}, name=self.name, now=now,
                                 excluded_namespaces=self.excluded_namespaces)
        self.next_expiry = generated.next_expiry
        objects = generated.objects
        if objects == self.written and self.written_at is not None and now - self.written_at < REWRITE_AFTER:
            return
        # No Enforce policy (or the first sync of a term): the placeholders, only over objects that
        # exist (nothing absent enforces). Either way the policy before its binding.
        placeholder = not objects
        foreign: set[str] = set()
        missing: set[str] = set()
        for obj in placeholder_objects(self.name, self.excluded_namespaces) if placeholder else objects:
            kind = str(obj["kind"])
            try:
                await self.writer.put_admission_object(obj, create=not placeholder)
            except ForeignObject as exc:  # never ours to change; the webhook still enforces
                foreign.add(kind)
                if foreign != self.foreign:
                    log.warning("no fail-safe ValidatingAdmissionPolicy for %s: %s",
                                ", ".join(generated.policies) or "no Enforce policy", exc)
            except AdmissionObjectMissing as exc:
                missing.add(kind)
                if missing != self.missing:
                    log.error("no fail-safe ValidatingAdmissionPolicy for %s: %s (the chart creates it, value "
                              "vap.name; `helm upgrade` the release to restore it); retrying every %.0fs",
                              ", ".join(generated.policies), exc, FOREIGN_RETRY.total_seconds())
            if foreign or missing:
                break  # our binding must never bind a foreign (or absent) policy of our name
        if objects != self.written or foreign != self.foreign or missing != self.missing:
            log.info("%s %s: %s", "wrote" if objects else "placeholder for", self.name,
                     ", ".join(generated.policies) or "no Enforce policy")
        self.foreign, self.missing, self.policies = foreign, missing, tuple(generated.policies)
        self.written, self.written_at = objects, now
        if foreign or missing:  # not written: try again on the next change, or after FOREIGN_RETRY
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
