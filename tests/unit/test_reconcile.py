"""The reconcile pass with an in-memory cluster view and a recording writer (no API server)."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from readiness_operator.kube.objects import trim_deployment
from readiness_operator.kube.reconcile import PassInput, run_pass
from readiness_operator.kube.reports import (
    DEPLOYMENTS_PER_REPORT,
    MAX_RESULTS_PER_REPORT,
    bucket_count,
    bucket_of,
    build_reports,
    encode_reports,
    prior_verdicts,
    report_name,
)
from readiness_operator.kube.state import OverrideApproval, PolicyRuntime
from readiness_operator.names import OVERRIDE_ANNOTATION

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
SPEC = {"match": {"namespaces": ["a", "b"]}, "rules": {"probes": {"liveness": False, "readiness": True}}}


def deployment(ns: str, name: str, probe: bool) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": "img:1", "terminationMessagePath": "/dev/" + "y" * 100}
    if probe:
        container["readinessProbe"] = {"tcpSocket": {"port": 80}}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}", "managedFields": [{"big": "x"}]},
        "spec": {"replicas": 1, "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}}},
        "status": {"replicas": 1, "collisionCount": 2},
    }


class View:
    def __init__(self) -> None:
        self.objects: dict[str, list[dict[str, Any]]] = {}
        self.reads: list[str] = []

    def put(self, d: dict[str, Any]) -> None:
        ns = d["metadata"]["namespace"]
        self.objects[ns] = [o for o in self.objects.get(ns, []) if o["metadata"]["name"] != d["metadata"]["name"]]
        self.objects[ns].append(trim_deployment(d))

    def namespaces(self) -> Iterable[str]:
        return list(self.objects)

    def deployments(self, namespace: str) -> Iterable[Mapping[str, Any]]:
        self.reads.append(namespace)
        return self.objects.get(namespace, [])

    def pdbs(self, namespace: str) -> Iterable[Mapping[str, Any]]:
        return []

    def hpas(self, namespace: str) -> Iterable[Mapping[str, Any]]:
        return []

    def network_policies(self, namespace: str) -> Iterable[Mapping[str, Any]]:
        return []

    def namespace_labels(self, namespace: str) -> Mapping[str, str]:
        return {}


class Writer:
    def __init__(self, reports: bool = True) -> None:
        self.reports_on = reports
        self.statuses: list[dict[str, Any]] = []
        self.reports: dict[tuple[str, str], dict[str, Any]] = {}
        self.deleted: list[tuple[str, str]] = []
        self.events: list[tuple[str, str]] = []

    async def patch_policy_status(self, name: str, status: Mapping[str, Any]) -> None:
        self.statuses.append(dict(status))

    async def policy_reports_available(self) -> bool:
        return self.reports_on

    async def list_policy_reports(self, policy: str) -> list[dict[str, Any]]:
        return list(self.reports.values())

    async def put_policy_report(self, report: Mapping[str, Any]) -> None:
        self.reports[(report["metadata"]["namespace"], report["metadata"]["name"])] = dict(report)

    async def delete_policy_report(self, namespace: str, name: str) -> None:
        self.deleted.append((namespace, name))
        self.reports.pop((namespace, name), None)

    async def post_event(self, involved: Mapping[str, Any], *, reason: str, message: str, warning: bool = False,
                         labels: Mapping[str, str] | None = None) -> None:
        self.events.append((involved["name"], reason))


def record_report_names(writer: Writer) -> list[str]:
    """The names of the reports the writer is sent from now on, in order."""
    names: list[str] = []
    put = writer.put_policy_report

    async def recording(report: Mapping[str, Any]) -> None:
        names.append(report["metadata"]["name"])
        await put(report)

    writer.put_policy_report = recording  # type: ignore[method-assign]
    return names


def run(runtime: PolicyRuntime, view: View, writer: Writer, spec: Mapping[str, Any] = SPEC,
        status: Mapping[str, Any] | None = None, now: datetime = NOW, generation: int = 1) -> bool:
    item = PassInput("p", "uid-p", generation, spec, status or {})
    return asyncio.run(run_pass(runtime, item, view, writer, now=now)).patched


def test_first_pass_counts_and_writes_once() -> None:
    view, writer, rt = View(), Writer(), PolicyRuntime("p", "uid-p")
    view.put(deployment("a", "good", True))
    view.put(deployment("a", "bad", False))
    view.put(deployment("other", "ignored", False))
    assert run(rt, view, writer)
    status = writer.statuses[-1]
    assert (status["targets"], status["compliant"], status["noncompliant"]) == (2, 1, 1)
    assert status["worstOffenders"][0]["name"] == "bad"
    assert set(writer.reports) == {("a", "readiness-p")}
    assert writer.events == []  # nothing is a transition on the first pass

    # Nothing changed: no status patch, no report write.
    rt.mark(everything=True)
    assert not run(rt, view, writer, now=NOW + timedelta(minutes=1))
    assert len(writer.statuses) == 1


def test_only_dirty_deployments_are_read_and_transitions_emit_events() -> None:
    view, writer, rt = View(), Writer(), PolicyRuntime("p", "uid-p")
    view.put(deployment("a", "web", False))
    view.put(deployment("b", "api", False))
    run(rt, view, writer)
    view.reads.clear()
    view.put(deployment("a", "web", True))
    rt.mark(key=("a", "web"))
    assert run(rt, view, writer)
    assert view.reads == ["a"]  # namespace b untouched
    assert writer.events == [("web", "ReadinessCompliant")]
    assert writer.statuses[-1]["compliant"] == 1


def test_verdicts_are_folded_again_only_when_one_changed() -> None:
    """A pass that changes no verdict (an SLO tick whose values only moved, a resync) reuses the fold
    of the last one (status counts, offenders, the overview without SLOs); a change refolds, right."""
    view, writer, rt = View(), Writer(), PolicyRuntime("p", "uid-p")
    view.put(deployment("a", "web", False))
    view.put(deployment("a", "api", False))
    run(rt, view, writer)
    assert rt.folded is not None
    first = rt.folded
    rt.mark(everything=True)
    run(rt, view, writer, now=NOW + timedelta(minutes=1))
    assert rt.folded is first  # nothing changed: not folded again
    assert rt.overview is not None and rt.overview.generated_at == NOW + timedelta(minutes=1)
    view.put(deployment("a", "web", True))
    rt.mark(key=("a", "web"))
    assert run(rt, view, writer, now=NOW + timedelta(minutes=2))
    assert rt.folded is not first
    status = writer.statuses[-1]
    assert (status["targets"], status["compliant"], status["noncompliant"]) == (2, 1, 1)
    assert [o["name"] for o in status["worstOffenders"]] == ["api"]
    assert rt.overview.compliant == 1 and rt.overview.targets == 2
    view.objects["a"] = [o for o in view.objects["a"] if o["metadata"]["name"] != "api"]  # deleted
    rt.mark(namespace="a")
    assert run(rt, view, writer, now=NOW + timedelta(minutes=3))
    status = writer.statuses[-1]
    assert (status["targets"], status["compliant"], status["noncompliant"], status.get("worstOffenders", [])) == (1, 1, 0, [])


def test_reports_are_not_written_without_the_crd() -> None:
    view, writer, rt = View(), Writer(reports=False), PolicyRuntime("p", "uid-p")
    view.put(deployment("a", "web", False))
    run(rt, view, writer)
    assert writer.reports == {} and writer.statuses[-1]["targets"] == 1


def test_invalid_spec_is_reported_not_raised() -> None:
    view, writer, rt = View(), Writer(), PolicyRuntime("p", "uid-p")
    view.put(deployment("a", "web", False))
    run(rt, view, writer, spec={"rules": {"replicas": {"min": "three"}}})
    ready = writer.statuses[-1]["conditions"][0]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "False", "InvalidPolicy")
    assert "spec.rules.replicas.min" in ready["message"]
    assert "score" not in writer.statuses[-1]  # no perfect SCORE next to READY=False
    ghost = {"name": "ghost", "query": "up", "comparison": "<", "threshold": 1}
    run(rt, view, writer, spec={"slos": [ghost, ghost]}, generation=2)  # a spec-level (not field) error
    message = writer.statuses[-1]["conditions"][0]["message"]
    assert message.startswith("spec: ") and "duplicate name(s) ghost" in message
    # Fixed in the next generation: evaluated normally.
    run(rt, view, writer, spec=SPEC, generation=3)
    assert writer.statuses[-1]["targets"] == 1 and writer.statuses[-1]["observedGeneration"] == 3


def test_restart_seeds_from_reports_no_duplicate_events_or_writes() -> None:
    view, writer = View(), Writer()
    view.put(deployment("a", "web", False))
    first = PolicyRuntime("p", "uid-p")
    run(first, view, writer)
    writes = dict(writer.reports)
    restarted = PolicyRuntime("p", "uid-p")  # a new process: only the cluster remembers
    assert not run(restarted, view, writer, status=writer.statuses[-1], now=NOW + timedelta(hours=1))
    assert writer.reports == writes and writer.events == []
    view.put(deployment("a", "web", True))  # changed while the operator was down
    again = PolicyRuntime("p", "uid-p")
    run(again, view, writer, status=writer.statuses[-1], now=NOW + timedelta(hours=2))
    assert writer.events == [("web", "ReadinessCompliant")]


def test_deleted_deployment_drops_out_and_empty_namespace_report_is_deleted() -> None:
    view, writer, rt = View(), Writer(), PolicyRuntime("p", "uid-p")
    view.put(deployment("b", "api", False))
    run(rt, view, writer)
    view.objects["b"] = []
    rt.mark(key=("b", "api"))
    run(rt, view, writer)
    assert writer.statuses[-1]["targets"] == 0
    assert writer.deleted == [("b", "readiness-p")]


def test_large_namespaces_are_spread_over_small_reports_and_a_change_rewrites_one() -> None:
    view, writer, rt = View(), Writer(), PolicyRuntime("p", "uid-p")
    spec = {"match": {"namespaces": ["a"]}, "rules": {"probes": {"liveness": True, "readiness": True, "startup": True}}}
    count = MAX_RESULTS_PER_REPORT // 3 + 50
    for i in range(count):
        view.put(deployment("a", f"d{i:04}", i % 2 == 0))
    run(rt, view, writer, spec=spec)
    buckets = bucket_count(count)
    assert buckets == 64  # 383 Deployments, at most 8 a bucket on average
    sizes = [len(r["results"]) for r in writer.reports.values()]
    assert len(sizes) <= buckets and max(sizes) <= 3 * 4 * DEPLOYMENTS_PER_REPORT, sizes
    assert sum(sizes) == 3 * count
    homes: dict[str, set[str]] = {}
    for (_, name), report in writer.reports.items():
        for result in report["results"]:
            homes.setdefault(result["resources"][0]["name"], set()).add(name)
    assert len(homes) == count and all(len(names) == 1 for names in homes.values())
    assert {n for names in homes.values() for n in names} == {k[1] for k in writer.reports}
    home = homes["d0001"].pop()
    assert home == report_name("p", bucket_of("d0001", buckets))

    # One Deployment fixed: its report alone is sent again.
    sent = record_report_names(writer)
    view.put(deployment("a", "d0001", True))
    rt.mark(key=("a", "d0001"))
    run(rt, view, writer, spec=spec, now=NOW + timedelta(seconds=5))
    assert sent == [home] and writer.deleted == []


def test_a_change_builds_only_its_reports_and_a_doubled_namespace_rebuilds_all(monkeypatch: Any) -> None:
    from readiness_operator.kube import reports

    built: list[str] = []
    results_for = reports.results_for

    def counting(policy: str, judged: Any, approval: Any = None) -> list[dict[str, Any]]:
        built.append(judged.verdict.name)
        return results_for(policy, judged, approval)

    monkeypatch.setattr(reports, "results_for", counting)
    view, writer, rt = View(), Writer(), PolicyRuntime("p", "uid-p")
    spec = {"match": {"namespaces": ["a"]}, "rules": {"probes": {"readiness": True}}}
    for i in range(64):
        view.put(deployment("a", f"d{i:02}", False))
    run(rt, view, writer, spec=spec)
    assert len(built) == 64 and rt.report_buckets == {"a": 8} and not rt.reports_dirty

    # Two Deployments fixed: only the Deployments sharing their buckets are built again.
    built.clear()
    for name in ("d03", "d40"):
        view.put(deployment("a", name, True))
        rt.mark(key=("a", name))
    run(rt, view, writer, spec=spec, now=NOW + timedelta(seconds=5))
    touched = {bucket_of("d03", 8), bucket_of("d40", 8)}
    assert sorted(built) == sorted(f"d{i:02}" for i in range(64) if bucket_of(f"d{i:02}", 8) in touched)
    fixed = {r["resources"][0]["name"] for rep in writer.reports.values() for r in rep["results"] if r["result"] == "pass"}
    assert fixed == {"d03", "d40"} and not rt.reports_pending

    # A bucket emptied by deletions: its report goes, the others stay.
    bucket = bucket_of("d00", 8)
    gone = [f"d{i:02}" for i in range(64) if bucket_of(f"d{i:02}", 8) == bucket]
    view.objects["a"] = [d for d in view.objects["a"] if d["metadata"]["name"] not in gone]
    for name in gone:
        rt.mark(key=("a", name))
    before = set(writer.reports)
    run(rt, view, writer, spec=spec, now=NOW + timedelta(seconds=10))
    assert bucket_count(64 - len(gone)) == 8  # the count stays (it halves only at 32)
    assert writer.deleted == [("a", report_name("p", bucket))] and set(writer.reports) == before - set(writer.deleted)

    # The namespace doubles: every report is built again under the new count, each Deployment in one.
    built.clear()
    for i in range(64, 140):
        view.put(deployment("a", f"d{i:03}", False))
        rt.mark(key=("a", f"d{i:03}"))
    run(rt, view, writer, spec=spec, now=NOW + timedelta(seconds=15))
    count = 64 - len(gone) + 76
    assert len(built) == count and rt.report_buckets == {"a": bucket_count(count)} == {"a": 32}
    homes = {(r["resources"][0]["name"], name) for (_, name), rep in writer.reports.items() for r in rep["results"]}
    assert len(homes) == count == len({n for n, _ in homes})  # every Deployment in exactly one report
    assert all(name == report_name("p", bucket_of(n, 32)) for n, name in homes)


def test_bucket_count_doubles_only_with_the_namespace() -> None:
    assert [bucket_count(n) for n in (0, 1, 8, 9, 16, 17, 200, 10_000)] == [1, 1, 1, 2, 2, 4, 32, 2048]
    names = [f"web-{i}" for i in range(2000)]
    assert [bucket_of(n, 256) for n in names] == [bucket_of(n, 256) for n in names]  # the same every call
    # Doubling the count splits each bucket in two: b goes to b or b + count.
    assert all(bucket_of(n, 512) % 256 == bucket_of(n, 256) for n in names)
    spread = Counter(bucket_of(n, 256) for n in names)
    assert len(spread) == 256 and max(spread.values()) <= 3 * len(names) // 256


def test_trimmed_deployment_drops_what_the_engine_never_reads() -> None:
    trimmed = trim_deployment(deployment("a", "web", True))
    container = trimmed["spec"]["template"]["spec"]["containers"][0]
    assert "terminationMessagePath" not in container and "readinessProbe" in container
    assert "managedFields" not in trimmed["metadata"] and trimmed["status"] == {"replicas": 1}  # what live checks read


@pytest.mark.parametrize("compliant", [True, False])
def test_prior_verdicts_round_trip(compliant: bool) -> None:
    view, writer, rt = View(), Writer(), PolicyRuntime("p", "uid-p")
    view.put(deployment("a", "web", compliant))
    run(rt, view, writer)
    [report] = writer.reports.values()
    assert prior_verdicts(report) == {("a", "web"): (compliant, int(NOW.timestamp()))}
    assert build_reports("p", "uid-p", "a", rt.judged.values()) == [report]


def test_noncompliant_events_carry_slo_measurements() -> None:
    from readiness_operator.engine import Finding
    from readiness_operator.kube.reconcile import _describe_failure
    from readiness_operator.model.common import Severity

    finding = Finding("slo:errors", "slo", Severity.CRITICAL, "fail", "too many errors", "fix it", 3,
                      value=0.2, threshold=0.001, measured_at=NOW)
    assert _describe_failure(finding) == f"slo:errors (measured 0.2, objective 0.001 at {NOW.isoformat()})"
    plain = Finding("probe-readiness", "probes", Severity.CRITICAL, "fail", "no probe", "add one", 3)
    assert _describe_failure(plain) == "probe-readiness"


def test_a_pass_woken_early_requeues_for_when_the_slo_is_due_not_a_whole_interval() -> None:
    """An SLO tick must not drift when watch events wake the loop between ticks (issue 16)."""
    from readiness_operator.slo.store import SloStore

    spec = {**SPEC, "slos": [{"name": "e", "interval": "10s", "comparison": "<", "threshold": 1,
                              "query": 'x{namespace="{{namespace}}", deployment="{{name}}"}'}]}
    store = SloStore()

    async def query(_: str) -> list[dict[str, Any]]:
        return []

    view, writer, rt = View(), Writer(), PolicyRuntime("p", "uid-p")
    view.put(deployment("a", "web", True))
    item = PassInput("p", "uid-p", 1, spec, {})
    first = asyncio.run(run_pass(rt, item, view, writer, slo_store=store, slo_query=lambda _c: query, now=NOW))
    assert first.requeue_after == 10  # queried now: due again in a whole interval
    rt.mark(key=("a", "web"))  # a watch event 4 s later
    early = asyncio.run(run_pass(rt, item, view, writer, slo_store=store, slo_query=lambda _c: query,
                                 now=NOW + timedelta(seconds=4)))
    assert early.requeue_after == pytest.approx(6)  # not 10: the query falls due 10 s after the last one


class ApprovingWriter(Writer):
    """A writer whose cluster holds the override Events a webhook replica posted."""

    def __init__(self) -> None:
        super().__init__()
        self.approvals: dict[tuple[str, str], OverrideApproval] = {}
        self.listed = 0

    async def list_override_approvals(self) -> dict[tuple[str, str], OverrideApproval]:
        self.listed += 1
        return dict(self.approvals)


def overridden(name: str, generation: int, reason: str = "INC-9") -> dict[str, Any]:
    d = deployment("a", name, False)
    d["metadata"].update(generation=generation, annotations={OVERRIDE_ANNOTATION: reason})
    return d


def override_props(writer: Writer, name: str) -> dict[str, str]:
    [result, *_] = [r for r in writer.reports[("a", "readiness-p")]["results"] if r["resources"][0]["name"] == name]
    return {k: v for k, v in result["properties"].items() if k.startswith("override")}


def test_an_override_is_recorded_with_its_approver_only_once_the_webhook_admitted_it() -> None:
    view, writer, rt = View(), ApprovingWriter(), PolicyRuntime("p", "uid-p")
    view.put(overridden("annotated-only", 1))  # a metadata-only edit added it: nothing was admitted
    view.put(overridden("hotfix", 2))
    run(rt, view, writer)
    assert override_props(writer, "annotated-only") == {} and override_props(writer, "hotfix") == {}
    listed = writer.listed
    assert listed == 1  # one list for all the Deployments lacking an approval
    # The replica that admitted hotfix posts its Event just after answering: the next pass (polled
    # within seconds) records it, with the user and reason the webhook saw.
    writer.approvals[("a", "hotfix")] = OverrideApproval("alice", "INC-9", 2)
    result = asyncio.run(run_pass(rt, PassInput("p", "uid-p", 1, SPEC, {}), view, writer, now=NOW + timedelta(seconds=3)))
    assert result.requeue_after <= 3  # annotated-only is still looked up for a while
    assert override_props(writer, "hotfix") == {"override": "INC-9", "overrideBy": "alice", "overrideGeneration": "2"}
    assert override_props(writer, "annotated-only") == {}
    # A restarted leader reads the approval back from its report (the Event may have expired).
    fresh, writer.approvals = PolicyRuntime("p", "uid-p"), {}
    run(fresh, view, writer, now=NOW + timedelta(minutes=5))
    assert override_props(writer, "hotfix")["overrideBy"] == "alice"
    # A later rollout is a new generation the override did not cover; after the wait, no more lookups.
    view.put(overridden("hotfix", 3))
    fresh.mark(key=("a", "hotfix"))
    run(fresh, view, writer, now=NOW + timedelta(minutes=6))
    assert override_props(writer, "hotfix") == {}
    listed = writer.listed
    result = asyncio.run(run_pass(fresh, PassInput("p", "uid-p", 1, SPEC, {}), view, writer,
                                  now=NOW + timedelta(minutes=8)))
    assert writer.listed == listed and result.requeue_after > 3


class EventLog(Writer):
    """A writer whose cluster keeps the verdict Events (by their labels), as the API server does."""

    def __init__(self) -> None:
        super().__init__()
        self.labelled: list[tuple[tuple[str, str, str], str, dict[str, str]]] = []

    async def post_event(self, involved: Mapping[str, Any], *, reason: str, message: str, warning: bool = False,
                         labels: Mapping[str, str] | None = None) -> None:
        await super().post_event(involved, reason=reason, message=message, warning=warning)
        key = (involved["namespace"], involved["name"], involved.get("uid") or "")
        self.labelled.append((key, reason, dict(labels or {})))

    async def last_verdict_events(self, policy: str) -> dict[tuple[str, str, str], str]:
        return {key: reason for key, reason, labels in self.labelled if labels.get("readiness.dev/policy") == policy}


def test_a_new_leader_does_not_repeat_a_flip_the_killed_leader_posted_before_its_report() -> None:
    view, writer = View(), EventLog()
    view.put(deployment("a", "web", True))
    run(PolicyRuntime("p", "uid-p"), view, writer)  # compliant, recorded in the report
    stale = {k: dict(v) for k, v in writer.reports.items()}
    # The leader sees web break, posts the flip, and is SIGKILLed before its report is rewritten.
    view.put(deployment("a", "web", False))
    run(PolicyRuntime("p", "uid-p"), view, writer)
    assert writer.events[-1] == ("web", "ReadinessNoncompliant")
    assert writer.labelled[-1][2]["readiness.dev/policy"] == "p"
    writer.reports = stale
    posted = len(writer.events)
    run(PolicyRuntime("p", "uid-p"), view, writer, now=NOW + timedelta(seconds=30))  # the next leader
    assert len(writer.events) == posted  # told already: not repeated
    assert writer.reports[("a", "readiness-p")]["results"][0]["properties"]["compliant"] == "false"
    # A real flip after that is still posted.
    view.put(deployment("a", "web", True))
    run(PolicyRuntime("p", "uid-p"), view, writer, now=NOW + timedelta(seconds=60))
    assert writer.events[-1] == ("web", "ReadinessCompliant") and len(writer.events) == posted + 1


def test_a_moving_measurement_rewrites_no_report_but_a_breach_does() -> None:
    """Idle must stay idle (issue 16): an SLO value moving in its last digits, or an Unknown confirmed
    again at a later tick or resync, rewrites no PolicyReport; a value that breaks the objective does."""
    from readiness_operator.slo.store import SloStore

    spec = {**SPEC, "slos": [{"name": "e", "interval": "10s", "comparison": "<", "threshold": 1,
                              "query": 'x{namespace="{{namespace}}", deployment="{{name}}"}'}]}
    store, values = SloStore(), {"web": "0.0001"}

    async def query(_: str) -> list[dict[str, Any]]:
        return [{"metric": {"namespace": "a", "deployment": name}, "value": [0, v]} for name, v in values.items()]

    view, writer, rt = View(), Writer(), PolicyRuntime("p", "uid-p")
    puts = record_report_names(writer)
    view.put(deployment("a", "web", True))
    view.put(deployment("a", "unmeasured", True))  # no series: Unknown at every tick
    item = PassInput("p", "uid-p", 1, spec, {})

    def tick(seconds: int, *, resync: bool = False) -> None:
        if resync:
            rt.mark(everything=True)
        asyncio.run(run_pass(rt, item, view, writer, slo_store=store, slo_query=lambda _c: query,
                             now=NOW + timedelta(seconds=seconds)))

    tick(0)
    assert len(puts) == 1
    report = writer.reports[("a", "readiness-p")]
    assert {r["properties"].get("value") for r in report["results"] if r["rule"] == "slo:e"} == {"0.0001", None}
    values["web"] = "0.00010000001"
    tick(10)
    tick(20, resync=True)
    assert len(puts) == 1  # nothing a reader acts on changed
    assert writer.statuses[-1]["slos"][0]["measuredAt"].startswith("2026-11-24T12:00:20")  # status stays current
    values["web"] = "5"  # breaches the objective (< 1)
    tick(30)
    assert len(puts) == 2
    web = [r for r in writer.reports[("a", "readiness-p")]["results"]
           if r["rule"] == "slo:e" and r["resources"][0]["name"] == "web"]
    assert web[0]["result"] == "fail" and web[0]["properties"]["value"] == "5.0"


def test_report_writes_stop_for_a_due_slo_query_and_resume_next_pass() -> None:
    """Minutes of first report writes must not hold back the SLO ticks (issue 16): once something more
    urgent is due, only what is being sent is finished (one report a pass at least) and the rest stays
    pending for the next pass, whose status goes first."""
    from readiness_operator.kube.reconcile import _write_reports

    view, writer, rt = View(), Writer(), PolicyRuntime("p", "uid-p")
    spec = {"match": {"namespaces": [f"n{i}" for i in range(12)]}, "rules": SPEC["rules"]}
    for i in range(12):
        view.put(deployment(f"n{i}", "web", True))
    rt.reports_pending.clear()
    writer.reports_on = False  # judge only: the reports are written below
    run(rt, view, writer, spec=spec)
    rt.reports_pending |= {f"n{i}" for i in range(12)}
    late = itertools.count(start=100).__next__  # every reading of the clock is past the pass's slice
    asyncio.run(_write_reports(writer, rt, NOW, more_urgent=lambda: True, clock=late))
    assert len(writer.reports) == 1
    assert len(rt.reports_pending) == 11
    asyncio.run(_write_reports(writer, rt, NOW, more_urgent=lambda: True, clock=late))  # every pass makes progress
    assert len(writer.reports) == 2 and len(rt.reports_pending) == 10
    asyncio.run(_write_reports(writer, rt, NOW))
    assert len(writer.reports) == 12 and not rt.reports_pending


def test_a_woken_pass_keeps_writing_reports_for_its_slice() -> None:
    """Under a steady stream of watch events (a controller-manager updating 2,000 Deployments' status,
    20 a second) every pass is woken at once: one report a pass then took 256 passes for one
    namespace (CI, stop 24). A pass keeps sending until its slice has passed, then yields."""
    from readiness_operator.kube import reconcile

    view, rt = View(), PolicyRuntime("p", "uid-p")
    spec = {"match": {"namespaces": [f"n{i}" for i in range(12)]}, "rules": SPEC["rules"]}
    for i in range(12):
        view.put(deployment(f"n{i}", "web", True))
    run(rt, view, Writer(reports=False), spec=spec)
    rt.reports_pending = {f"n{i}" for i in range(12)}
    rt.wake.set()  # new work is waiting all along
    ticks = itertools.count()
    slice_tenths = int(reconcile.REPORT_SLICE_SECONDS * 10)
    writer = Writer()
    asyncio.run(reconcile._write_reports(writer, rt, NOW, clock=lambda: next(ticks) / 10))  # 0.1 s a reading
    assert 1 < len(writer.reports) < 12, len(writer.reports)  # more than one, not all
    assert len(writer.reports) <= slice_tenths + 1 and len(rt.reports_pending) == 12 - len(writer.reports)
    asyncio.run(reconcile._write_reports(writer, rt, NOW))  # an unhurried clock: the rest in one pass
    assert len(writer.reports) == 12 and not rt.reports_pending


def test_a_pass_woken_while_sending_a_namespaces_reports_stops_after_the_one_in_flight(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A change arriving while a big namespace's reports are sent must not wait for all of them (issue
    16: 100 changed Deployments took 55 s to show in status): the report being sent is finished, the
    namespace stays pending, and the next pass sends only what was not written."""
    import functools

    from readiness_operator.kube import reconcile

    view, rt = View(), PolicyRuntime("p", "uid-p")
    for i in range(30):
        view.put(deployment("a", f"web-{i:02d}", i % 2 == 0))
    quiet = Writer(reports=False)
    run(rt, view, quiet)
    monkeypatch.setattr(reconcile, "encode_reports", functools.partial(reconcile.encode_reports, max_bytes=4000))
    assert len(reconcile.encode_reports("p", "uid-p", "a", rt.judged.values())) > 3  # several reports

    class Waking(Writer):
        async def put_policy_report(self, report: Mapping[str, Any]) -> None:
            rt.wake.set()  # a watch event arrives while this one is sent
            await super().put_policy_report(report)

    writer = Waking()
    rt.reports_pending = {"a"}
    asyncio.run(reconcile._write_reports(writer, rt, NOW, clock=itertools.count(start=100).__next__))
    assert len(writer.reports) == 1 and rt.reports_pending == {"a"}
    rt.wake.clear()
    sent: list[tuple[str, str]] = []

    class Counting(Writer):
        async def put_policy_report(self, report: Mapping[str, Any]) -> None:
            sent.append((report["metadata"]["namespace"], report["metadata"]["name"]))
            await super().put_policy_report(report)

    asyncio.run(reconcile._write_reports(Counting(), rt, NOW))
    expected = {r.key for r in reconcile.encode_reports("p", "uid-p", "a", rt.judged.values())}
    assert set(sent) | set(writer.reports) == expected and not rt.reports_pending
    assert len(sent) == len(expected) - 1 and not set(sent) & set(writer.reports)  # nothing sent twice


class SlowWriter(Writer):
    """Counts the namespaces whose reports are being written at the same moment, over every policy."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight: set[tuple[str, str]] = set()
        self.most = 0

    async def put_policy_report(self, report: Mapping[str, Any]) -> None:
        key = (report["metadata"]["namespace"], report["metadata"]["ownerReferences"][0]["name"])
        self.in_flight.add(key)
        self.most = max(self.most, len(self.in_flight))
        await asyncio.sleep(0.001)
        await super().put_policy_report(report)
        self.in_flight.discard(key)


def test_report_slots_bound_the_namespaces_in_flight_over_every_policy() -> None:
    """Four policies' first passes hold the reports of REPORT_WRITERS namespaces at once with the
    operator's shared slots (issue 16: memory), and of REPORT_WRITERS per policy without them."""
    from readiness_operator.kube.reconcile import REPORT_WRITERS, _write_reports

    spec = {"match": {"namespaces": [f"n{i}" for i in range(12)]}, "rules": SPEC["rules"]}
    view = View()
    for i in range(12):
        view.put(deployment(f"n{i}", "web", True))

    def judged(name: str) -> PolicyRuntime:
        rt, quiet = PolicyRuntime(name, f"uid-{name}"), Writer(reports=False)
        item = PassInput(name, f"uid-{name}", 1, spec, {})
        asyncio.run(run_pass(rt, item, view, quiet, now=NOW))
        rt.reports_pending |= {f"n{i}" for i in range(12)}
        return rt

    async def write_all(runtimes: list[PolicyRuntime], shared: bool) -> SlowWriter:
        writer, slots = SlowWriter(), asyncio.Semaphore(REPORT_WRITERS) if shared else None
        await asyncio.gather(*(_write_reports(writer, rt, NOW, slots=slots) for rt in runtimes))
        assert len(writer.reports) == 48 and not any(rt.reports_pending for rt in runtimes)
        return writer

    assert asyncio.run(write_all([judged(f"p{i}") for i in range(4)], shared=True)).most == REPORT_WRITERS
    assert asyncio.run(write_all([judged(f"p{i}") for i in range(4)], shared=False)).most == 4 * REPORT_WRITERS


def test_an_slo_tick_judges_only_the_slo_findings_of_what_it_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    """Idle must stay idle (issue 16): a Deployment whose only news is a new measurement gets its SLO
    findings judged again, not the whole catalogue; one whose object was replaced meanwhile is judged
    in full even when only the measurement marked it."""
    from readiness_operator.engine import evaluate
    from readiness_operator.kube import reconcile
    from readiness_operator.slo.store import SloStore

    spec = {**SPEC, "slos": [{"name": "e", "interval": "10s", "comparison": "<", "threshold": 1,
                              "query": 'x{namespace="{{namespace}}", deployment="{{name}}"}'}]}
    store, values = SloStore(), {"web": "0.5", "api": "0.5"}

    async def query(_: str) -> list[dict[str, Any]]:
        return [{"metric": {"namespace": "a", "deployment": name}, "value": [0, v]} for name, v in values.items()]

    evaluated: list[str] = []

    def counting_evaluate(plan: Any, d: Mapping[str, Any], world: Any) -> Any:
        evaluated.append(d["metadata"]["name"])
        return evaluate(plan, d, world)

    monkeypatch.setattr(reconcile, "evaluate", counting_evaluate)
    view, writer, rt = View(), Writer(), PolicyRuntime("p", "uid-p")
    for name in ("web", "api", "quiet"):
        view.put(deployment("a", name, True))
    item = PassInput("p", "uid-p", 1, spec, {})

    def tick(seconds: int) -> None:
        evaluated.clear()
        asyncio.run(run_pass(rt, item, view, writer, slo_store=store, slo_query=lambda _c: query,
                             now=NOW + timedelta(seconds=seconds)))

    tick(0)
    assert sorted(evaluated) == ["api", "quiet", "web"] and rt.judged[("a", "web")].verdict.compliant
    values["web"] = "5"  # breaches the objective (< 1)
    tick(10)
    assert evaluated == []  # only the SLO finding was judged again
    web = rt.judged[("a", "web")]
    assert not web.verdict.compliant and web.verdict.failed_checks == ["slo:e"]
    assert writer.statuses[-1]["noncompliant"] == 1
    values["api"] = "7"
    view.put(deployment("a", "api", False))  # replaced, and (in this test) no watch event marked it
    tick(20)
    assert evaluated == ["api"]  # a replaced object is never remeasured from its old verdict
    assert set(rt.judged[("a", "api")].verdict.failed_checks) == {"slo:e", "probe-readiness"}


def test_status_slos_are_summarised_again_only_when_a_verdict_or_a_measurement_moved(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """status.slos and the budgets walk every target per SLO; an idle leader's passes (woken by HPA
    status moves) redid them each time (issue 16). Nothing moved: the last summary; a new measurement
    or a verdict change: summarised again, and status shows the new value."""
    from readiness_operator.slo.store import SloStore

    spec = {**SPEC, "slos": [{"name": "e", "interval": "10s", "comparison": "<", "threshold": 1,
                              "query": 'x{namespace="{{namespace}}", deployment="{{name}}"}'}]}
    store, values = SloStore(), {"web": "0.5"}

    async def query(_: str) -> list[dict[str, Any]]:
        return [{"metric": {"namespace": "a", "deployment": name}, "value": [0, v]} for name, v in values.items()]

    summaries: list[int] = []
    status_of = SloStore.status
    monkeypatch.setattr(SloStore, "status", lambda self, *a: summaries.append(1) or status_of(self, *a))
    view, writer, rt = View(), Writer(), PolicyRuntime("p", "uid-p")
    view.put(deployment("a", "web", True))
    item = PassInput("p", "uid-p", 1, spec, {})

    def tick(seconds: float) -> dict[str, Any]:
        summaries.clear()
        asyncio.run(run_pass(rt, item, view, writer, slo_store=store, slo_query=lambda _c: query,
                             now=NOW + timedelta(seconds=seconds)))
        return next(s for s in (rt.written_status or {}).get("slos", ()) if s["name"] == "e")

    assert tick(0)["breaching"] == 0 and summaries == [1]
    rt.mark(key=("a", "web"))  # a watch event, nothing due: same verdict, same measurements
    assert tick(1)["breaching"] == 0 and summaries == []
    values["web"] = "5"
    assert tick(10)["breaching"] == 1 and summaries == [1]  # measured again
    view.put(deployment("a", "api", True))
    rt.mark(key=("a", "api"))
    assert tick(11)["noData"] == 1 and summaries == [1]  # a new target


class FailingWriter(Writer):
    """Records the names of the reports it is sent; fails the ones in ``failing`` as the API would."""

    def __init__(self, failing: frozenset[str] = frozenset()) -> None:
        super().__init__()
        self.failing = failing
        self.started: list[str] = []

    async def put_policy_report(self, report: Mapping[str, Any]) -> None:
        name = report["metadata"]["name"]
        self.started.append(name)
        await asyncio.sleep(0)
        if name in self.failing:
            raise ApiException(status=500, reason="etcd timeout")
        await super().put_policy_report(report)


def one_big_namespace(count: int) -> PolicyRuntime:
    view, rt = View(), PolicyRuntime("p", "uid-p")
    for i in range(count):
        view.put(deployment("a", f"web-{i:02d}", i % 2 == 0))
    run(rt, view, Writer(reports=False))
    rt.reports_pending = {"a"}
    return rt


def test_an_api_error_mid_namespace_leaves_it_pending_and_the_next_pass_sends_the_rest_once() -> None:
    """A failing write raises out of the pass (its loop retries); the namespace's reports after it are
    not sent, and what was not written is sent by the next pass, nothing twice."""
    from readiness_operator.kube.reconcile import _write_reports

    rt = one_big_namespace(128)
    reports = encode_reports("p", "uid-p", "a", rt.judged.values())
    expected = {r.key for r in reports}
    failing = frozenset({reports[2].key[1]})  # among the first sends
    writer = FailingWriter(failing)
    with pytest.raises(ApiException):
        asyncio.run(_write_reports(writer, rt, NOW))
    assert len(writer.started) < len(expected) and rt.reports_pending == {"a"}
    assert not {key for key in rt.written_reports if key[1] in failing}
    retry = FailingWriter()
    asyncio.run(_write_reports(retry, rt, NOW))
    assert not rt.reports_pending and set(writer.reports) | set(retry.reports) == expected
    assert not set(writer.reports) & set(retry.reports)  # nothing written twice
