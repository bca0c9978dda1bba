"""PolicyReports are split by encoded size, and a refused one is backed off, counted and shown in
status (issue #13 item 2)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from readiness_operator.kube.metrics import OperatorMetrics
from readiness_operator.kube.reconcile import PassInput, run_pass
from readiness_operator.kube.reports import (
    MAX_REPORT_BYTES,
    ReportRejected,
    bucket_count,
    bucket_of,
    build_reports,
    report_name,
)
from readiness_operator.kube.state import PolicyRuntime
from tests.unit.test_reconcile import NOW, View, Writer

# Every check group on: the most results (and the longest messages) per Deployment.
SPEC: dict[str, Any] = {
    "match": {"namespaces": ["big"]},
    "rules": {"probes": {"liveness": True, "readiness": True, "startup": True},
              "resources": {"requests": {"cpu": {}, "memory": {}}, "limits": {"cpu": {}, "memory": {}}},
              "securityContext": {"runAsNonRoot": True, "runAsUserMin": 1000, "readOnlyRootFilesystem": True,
                                  "dropAllCapabilities": True, "seccompRuntimeDefault": True,
                                  "noPrivilegeEscalation": True, "noPrivileged": True},
              "gracefulShutdown": {"minTerminationGracePeriodSeconds": 30}, "antiAffinity": {"required": True},
              "images": {"forbidLatest": True}, "replicas": {"min": 3}},
}


def wide_deployment(i: int) -> dict[str, Any]:
    """A 253-character name and 10 containers with long names (every per-container message is long)."""
    name = f"d{i:03}-" + "x" * 248
    containers = [{"name": f"c{j}-" + "y" * 58, "image": "img"} for j in range(10)]
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "big", "uid": f"uid-{i}"},
            "spec": {"replicas": 1, "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": containers}}}}


def judged_runtime(count: int, spec: Mapping[str, Any] = SPEC) -> tuple[PolicyRuntime, View]:
    view, rt = View(), PolicyRuntime("p", "uid-p")
    for i in range(count):
        view.put(wide_deployment(i))
    asyncio.run(run_pass(rt, PassInput("p", "uid-p", 1, spec, {}), view, Writer(reports=False), now=NOW))
    assert rt.invalid is None and len(rt.judged) == count, rt.invalid
    return rt, view


def test_wide_deployments_are_split_by_encoded_size_under_the_margin() -> None:
    rt, _ = judged_runtime(60)
    reports = build_reports("p", "uid-p", "big", rt.judged.values())
    sizes = [len(json.dumps(r)) for r in reports]
    total_results = sum(len(r["results"]) for r in reports)
    assert sum(sizes) > 1.5 * MAX_REPORT_BYTES, sizes  # one report would be what etcd refused
    assert len(reports) >= 2 and max(sizes) <= MAX_REPORT_BYTES, sizes
    assert total_results == sum(len(j.verdict.findings) for j in rt.judged.values())
    # Each report holds one bucket's Deployments and is named after it.
    buckets = bucket_count(60)
    for r in reports:
        assert {r["metadata"]["name"]} == {report_name("p", bucket_of(x["resources"][0]["name"], buckets))
                                           for x in r["results"]}
    # Stable: the same verdicts give the same reports, whatever the input order.
    again = build_reports("p", "uid-p", "big", reversed(list(rt.judged.values())))
    assert again == reports


def test_a_deployment_larger_than_a_report_is_cut_between_its_results() -> None:
    rt, _ = judged_runtime(2)
    reports = build_reports("p", "uid-p", "big", rt.judged.values(), max_bytes=8192)
    assert len(reports) > 2 and all(len(json.dumps(r)) <= 8192 + 4096 for r in reports)
    assert all(r["results"] for r in reports)
    names = [r["metadata"]["name"] for r in reports]  # one bucket (two Deployments), cut into parts
    assert names == [report_name("p")] + [report_name("p", 0, part) for part in range(1, len(reports))]


class RefusingWriter(Writer):
    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0
        self.refuse = True

    async def put_policy_report(self, report: Mapping[str, Any]) -> None:
        self.attempts += 1
        if self.refuse:
            raise ReportRejected(500, "etcdserver: request is too large")
        await super().put_policy_report(report)


def test_a_refused_report_is_backed_off_counted_and_surfaced_in_status() -> None:
    view, rt, writer, metrics = View(), PolicyRuntime("p", "uid-p"), RefusingWriter(), OperatorMetrics()
    view.put(wide_deployment(0))

    def run(at: timedelta) -> Any:
        item = PassInput("p", "uid-p", 1, SPEC, {})
        return asyncio.run(run_pass(rt, item, view, writer, metrics=metrics, now=NOW + at))

    first = run(timedelta(0))
    assert writer.attempts == 1 and first.requeue_after <= 10
    status = writer.statuses[-1]
    assert status["reportErrors"] == 1
    [cond] = [c for c in status["conditions"] if c["type"] == "ReportsWritten"]
    assert cond["status"] == "False" and "request is too large" in cond["message"]
    assert metrics.registry.get_sample_value("readiness_policy_report_write_errors_total", {"policy": "p"}) == 1

    rt.mark(everything=True)
    run(timedelta(seconds=5))  # within the backoff: not resent
    assert writer.attempts == 1
    run(timedelta(seconds=11))  # due: resent, refused again, the next wait doubles
    assert writer.attempts == 2 and rt.report_failures[("big", "readiness-p")].attempts == 2
    run(timedelta(seconds=25))
    assert writer.attempts == 2

    writer.refuse = False
    run(timedelta(seconds=40))
    assert writer.attempts == 3 and ("big", "readiness-p") in writer.reports
    status = writer.statuses[-1]
    assert status["reportErrors"] == 0 and all(c["type"] != "ReportsWritten" for c in status["conditions"])


def test_reports_carry_no_scope_so_each_result_is_told_apart_by_its_deployment() -> None:
    """A report holds many Deployments: with a Namespace `scope`, Policy Reporter ids results by the scope
    and folds the same check passing on two Deployments into one row (seen with hack/policy-reporter.sh)."""
    from readiness_operator.kube.reports import as_written

    rt, _ = judged_runtime(3)
    (report,) = build_reports("p", "uid-p", "big", rt.judged.values())
    assert "scope" not in report
    by_rule: dict[str, set[str]] = {}
    for result in report["results"]:
        (resource,) = result["resources"]
        by_rule.setdefault(result["rule"], set()).add(resource["name"])
    assert by_rule and all(len(names) == 3 for names in by_rule.values())
    assert as_written({**report, "scope": {"kind": "Namespace", "name": "big"}}) != as_written(report)  # rewritten once
