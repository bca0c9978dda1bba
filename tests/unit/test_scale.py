"""The performance fixes of issue 7 keep behaviour: PDB/HPA candidates, resync timing, report
writing in preemptible steps."""

from __future__ import annotations

import asyncio
import itertools
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from readiness_operator.checks.relations import hpa_targets, pdb_selects
from readiness_operator.engine import compile_policy
from readiness_operator.kube.reconcile import _write_reports
from readiness_operator.kube.state import PolicyRuntime
from readiness_operator.model import ReadinessPolicySpec
from readiness_operator.policies import CompiledEntry
from readiness_operator.world import RelatedIndex as _Related

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _pdb(name: str, selector: Any) -> dict[str, Any]:
    spec = {} if selector == "missing" else {"selector": selector}
    return {"metadata": {"name": name, "namespace": "ns"}, "spec": spec}


def _hpa(name: str, target: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target}}}


def _deployment(name: str, labels: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns"}, "spec": {"template": {"metadata": {"labels": labels}}}}


def test_related_candidates_contain_every_match_in_watch_order() -> None:
    rng = random.Random(3)
    values = ["a", "b", "c"]
    selectors: list[Any] = [
        None, {}, "missing", {"matchLabels": {"bad": ["unhashable"]}},
        {"matchExpressions": [{"key": "app", "operator": "In", "values": ["a", "b"]}]},
    ]
    selectors += [{"matchLabels": {"app": v}} for v in values]
    selectors += [{"matchLabels": {"app": v, "tier": t}} for v in values for t in ("web", "db")]
    pdbs = [_pdb(f"p{i}", rng.choice(selectors)) for i in range(60)]
    hpas = [_hpa(f"h{i}", rng.choice(["d0", "d1", "d2", None, 7])) for i in range(30)]
    related = _Related(pdbs, hpas)
    for i in range(40):
        labels = {k: rng.choice(values) for k in rng.sample(["app", "tier", "x"], rng.randint(0, 3))}
        if rng.random() < 0.3:
            labels["tier"] = rng.choice(["web", "db"])
        name = f"d{i % 4}"
        pdb_candidates, hpa_candidates = related.for_deployment(_deployment(name, labels))
        want_pdbs = [p for p in pdbs if pdb_selects(p, "ns", labels)]
        assert [p for p in pdb_candidates if pdb_selects(p, "ns", labels)] == want_pdbs
        assert [pdbs.index(p) for p in pdb_candidates] == sorted(pdbs.index(p) for p in pdb_candidates)
        assert [h for h in hpa_candidates if hpa_targets(h, "ns", name)] == [h for h in hpas if hpa_targets(h, "ns", name)]
        assert len(pdb_candidates) < len(pdbs)  # the point: not every PDB for every Deployment


def test_related_falls_back_to_everything_for_odd_shapes() -> None:
    pdbs, hpas = [_pdb("p", {"matchLabels": {"app": "a"}})], [_hpa("h", "d")]
    related = _Related(pdbs, hpas)
    odd = {"metadata": {"name": "d"}, "spec": {"template": {"metadata": {"labels": ["not", "a", "map"]}}}}
    assert related.for_deployment(odd) == (tuple(pdbs), tuple(hpas))


def test_full_pass_only_on_resync_or_exemption_expiry() -> None:
    rt = PolicyRuntime("p", "uid")
    assert rt.needs_full_pass(300, NOW)
    rt.full_pass_at = NOW
    assert not rt.needs_full_pass(300, NOW + timedelta(seconds=30))  # an SLO tick alone
    assert rt.needs_full_pass(300, NOW + timedelta(seconds=300))
    spec = ReadinessPolicySpec.model_validate({
        "rules": {"probes": {"liveness": True}},
        "exemptions": [{"checks": ["*"], "reason": "migration", "expires": (NOW + timedelta(seconds=60)).isoformat()}],
    })
    rt.entry = CompiledEntry(1, compile_policy(spec))
    assert not rt.needs_full_pass(300, NOW + timedelta(seconds=59))
    assert rt.needs_full_pass(300, NOW + timedelta(seconds=61))


class _Writer:
    def __init__(self, runtime: PolicyRuntime, wake_after: int | None = None) -> None:
        self.runtime, self.wake_after, self.puts = runtime, wake_after, []  # type: list[str]

    async def put_policy_report(self, report: Any) -> None:
        self.puts.append(report["metadata"]["namespace"])
        await asyncio.sleep(0)
        if self.wake_after is not None and len(self.puts) >= self.wake_after:
            self.runtime.wake.set()  # a watch event arrives while reports are written

    async def delete_policy_report(self, namespace: str, name: str) -> None:
        raise AssertionError("nothing to delete")


def _judged_runtime(namespaces: int) -> PolicyRuntime:
    from readiness_operator.engine import evaluate
    from readiness_operator.kube.state import Judged
    from readiness_operator.world import World

    rt = PolicyRuntime("p", "uid")
    plan = compile_policy(ReadinessPolicySpec.model_validate({"rules": {"probes": {"liveness": True}}}))
    for i in range(namespaces):
        d = {"metadata": {"name": "d", "namespace": f"ns{i:02d}", "uid": "u"},
             "spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}}
        rt.judged[(f"ns{i:02d}", "d")] = Judged(evaluate(plan, d, World(now=NOW)), d, NOW)
    rt.reports_pending = {f"ns{i:02d}" for i in range(namespaces)}
    return rt


def test_report_writing_yields_to_new_work_and_resumes() -> None:
    rt = _judged_runtime(20)
    writer = _Writer(rt, wake_after=1)
    asyncio.run(_write_reports(writer, rt, clock=itertools.count(start=100).__next__))  # type: ignore[arg-type]
    assert 0 < len(writer.puts) < 20 and len(rt.reports_pending) == 20 - len(writer.puts)
    rt.wake.clear()
    writer.wake_after = None
    asyncio.run(_write_reports(writer, rt))  # type: ignore[arg-type]
    assert sorted(writer.puts) == [f"ns{i:02d}" for i in range(20)] and not rt.reports_pending


def test_report_writing_without_new_work_writes_everything_once() -> None:
    rt = _judged_runtime(9)
    writer = _Writer(rt)
    asyncio.run(_write_reports(writer, rt))  # type: ignore[arg-type]
    asyncio.run(_write_reports(writer, rt))  # nothing pending, nothing rewritten
    assert sorted(writer.puts) == [f"ns{i:02d}" for i in range(9)]
