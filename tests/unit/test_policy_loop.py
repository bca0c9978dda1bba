"""A policy's loop under leader election: a standby never writes; each term starts fresh (no repeated Events)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from readiness_operator.kube.context import OperatorContext
from readiness_operator.kube.leadership import Leadership
from readiness_operator.kube.policy_loop import run_policy
from readiness_operator.kube.reconcile import PassInput
from readiness_operator.settings import Settings
from tests.unit.test_leadership import LeaseStore, in_loop
from tests.unit.test_reconcile import SPEC, View, Writer, deployment


class Api(Writer):
    """Records every write the loop makes (status, reports, Events, VAP), and every report listing."""

    def __init__(self) -> None:
        super().__init__()
        self.listings = 0
        self.admission: list[str] = []

    async def list_policy_reports(self, policy: str) -> list[dict[str, Any]]:
        self.listings += 1
        return await super().list_policy_reports(policy)

    async def put_admission_object(self, obj: Mapping[str, Any], *, create: bool = True) -> bool:
        self.admission.append(f"put {obj['kind']}")
        return True

    def read_secret_key(self, namespace: str, name: str, key: str) -> bytes | None:
        raise AssertionError("no Secret is read")

    def writes(self) -> int:
        return len(self.statuses) + len(self.reports) + len(self.deleted) + len(self.events) + len(self.admission)


class Stopped:
    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.reason: int | None = None

    def __bool__(self) -> bool:
        return self.event.is_set()

    async def wait(self, timeout: float | None = None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.event.wait(), timeout)


async def until(check: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


@in_loop
async def test_standby_never_writes_and_each_term_starts_fresh() -> None:
    store, api, view, stopped = LeaseStore(), Api(), View(), Stopped()
    view.put(deployment("a", "web", probe=False))
    me = Leadership("lease", "ns", "me", lease_duration=15, renew_deadline=10)
    ctx = OperatorContext(settings=Settings(vap=True), api=api, leadership=me)  # type: ignore[arg-type]
    # Someone else leads: this replica stands by.
    await store.create_lease("ns", {"metadata": {"name": "lease"}, "spec": {"holderIdentity": "other",
                                                                            "leaseDurationSeconds": 15}})
    await me.step(store)
    assert not me.leading

    def read() -> PassInput:
        return PassInput("p", "uid-p", 1, SPEC, {})

    loop = asyncio.create_task(run_policy(ctx, "p", "uid-p", read, view, stopped, lambda: False))
    await asyncio.sleep(0.3)
    ctx.registry.mark_deployment("a", "web")
    await asyncio.sleep(0.3)
    assert api.writes() == 0 and api.listings == 0, "a standby wrote or read its reports"
    assert "p" not in ctx.registry.policies  # nothing judged, nothing to mark

    # The other replica shuts down gracefully (releases): this one acquires and writes at once.
    assert store.obj is not None
    store.obj["spec"]["holderIdentity"] = ""
    await me.step(store)
    assert me.leading
    await until(lambda: bool(api.statuses) and bool(api.reports), "status and reports written by the new leader")
    assert api.listings == 1  # seeded from its PolicyReports, as after a restart
    assert api.statuses[-1]["noncompliant"] == 1 and api.events == []
    view.put(deployment("a", "web", probe=True))
    ctx.registry.mark_deployment("a", "web")
    await until(lambda: api.events == [("web", "ReadinessCompliant")], "the flip's Event")
    assert ctx.metrics.registry.get_sample_value("readiness_policy_targets", {"policy": "p", "verdict": "compliant"}) == 1
    assert ctx.metrics.registry.get_sample_value("readiness_namespace_compliant", {"policy": "p", "namespace": "a"}) == 1

    # Lose the Lease (another replica took it over): writing stops, state and series are dropped.
    store.obj["spec"]["holderIdentity"] = "other"
    store.obj["metadata"]["resourceVersion"] = "taken"
    await me.step(store)
    assert not me.leading
    await until(lambda: "p" not in ctx.registry.policies, "the runtime dropped")
    before = api.writes()
    view.put(deployment("a", "web", probe=False))
    ctx.registry.mark_deployment("a", "web")
    await asyncio.sleep(0.5)
    assert api.writes() == before, "a replica that lost the Lease kept writing"
    assert ctx.metrics.registry.get_sample_value("readiness_policy_targets", {"policy": "p", "verdict": "compliant"}) is None
    verdict_series = [s for m in ctx.metrics.registry.collect() for s in m.samples
                      if s.name.startswith(("readiness_namespace_", "readiness_policy_score", "readiness_check_"))]
    assert verdict_series == [], "a replica that lost the Lease still exports verdict series (double counting)"

    # Leading again: a fresh runtime reads its reports back; the flip it sees is against what the
    # reports recorded (compliant -> noncompliant), posted once, and the compliant Event is not repeated.
    store.obj["spec"]["holderIdentity"] = ""
    await me.step(store)
    assert me.leading and me.term == 2
    await until(lambda: api.listings == 2 and len(api.events) == 2, "the second term's first pass")
    await asyncio.sleep(0.3)
    assert api.events == [("web", "ReadinessCompliant"), ("web", "ReadinessNoncompliant")]
    stopped.event.set()
    await asyncio.wait_for(loop, 2)


class Queries:
    """Stands in for PrometheusClients: every query answers one sample for a/web."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def query_fn(self, config: Any) -> Any:
        async def query(promql: str) -> list[dict[str, Any]]:
            self.sent.append(promql)
            return [{"metric": {"namespace": "a", "deployment": "web"}, "value": [0, "0.25"]}]

        return query


@in_loop
async def test_a_standby_measures_slos_for_the_webhook_but_writes_nothing() -> None:
    """Both replicas are Ready and answer admission: a standby's freeze must see real measurements."""
    store, api, view, stopped = LeaseStore(), Api(), View(), Stopped()
    view.put(deployment("a", "web", probe=True))
    me = Leadership("lease", "ns", "me", lease_duration=15, renew_deadline=10)
    ctx = OperatorContext(settings=Settings(vap=False), api=api, leadership=me)  # type: ignore[arg-type]
    queries = Queries()
    ctx.prometheus = queries  # type: ignore[assignment]
    await store.create_lease("ns", {"metadata": {"name": "lease"}, "spec": {"holderIdentity": "other",
                                                                            "leaseDurationSeconds": 15}})
    await me.step(store)
    spec = {**SPEC, "slos": [{"name": "errors", "interval": "1s", "comparison": "<", "threshold": 0.1, "onBreach": "Block",
                              "query": 'x{namespace="{{namespace}}", deployment="{{name}}"}'}]}
    loop = asyncio.create_task(run_policy(ctx, "p", "uid-p", lambda: PassInput("p", "uid-p", 1, spec, {}), view,
                                          stopped, lambda: False))
    await until(lambda: "errors" in ctx.slos.measurements("p", ("a", "web")), "the standby's measurement")
    assert ctx.slos.measurements("p", ("a", "web"))["errors"].value == 0.25
    from readiness_operator.world import Worlds
    world = Worlds(view, slos=ctx.slos.measurements).of(view.objects["a"][0], "p")  # what the webhook judges with
    assert world.slo_measurements["errors"].value == 0.25
    await until(lambda: len(queries.sent) >= 2, "a second interval's query")
    assert api.writes() == 0 and api.listings == 0
    stopped.event.set()
    await asyncio.wait_for(loop, 2)


def test_the_resync_period_comes_from_the_settings_with_a_field_level_error_for_bad_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pydantic import ValidationError

    monkeypatch.setenv("READINESS_RESYNC_SECONDS", "900")
    assert Settings.from_env().resync_seconds == 900
    monkeypatch.setenv("READINESS_RESYNC_SECONDS", "5")
    with pytest.raises(ValidationError, match="resync_seconds"):
        Settings.from_env()
