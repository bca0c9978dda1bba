"""SLO gates against a real Prometheus holding backfilled, deterministic series (issue 5)."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.support.cluster import REPO_ROOT, Cluster, eventually
from tests.support.operator import OperatorProcess, free_port
from tests.support.prometheus import Prometheus

pytestmark = [pytest.mark.e2e, pytest.mark.prometheus]

NS = "e2e-slo"
ERROR_RATIO = {"healthy": 0.0005, "warning": 0.02, "critical": 0.1, "frozen": 0.2}  # "nodata" has no series
STEP = 15


def series(now: int, pods: dict[str, str]) -> str:
    """Samples from 10 minutes ago to 50 minutes ahead, so instant queries at `now` always see data.
    The gauge carries a `deployment` label (the PromQL `query` form); the counters and the histogram
    only `namespace` and `pod` (the `sli` form, as the example policies use them)."""
    start, end = now - 600, now + 3000
    lines = ["# TYPE slo_error_ratio gauge"]
    for name, value in ERROR_RATIO.items():
        lines += [f'slo_error_ratio{{namespace="{NS}",deployment="{name}"}} {value} {t}' for t in range(start, end, STEP)]
    # Counters and a histogram for the example SLOs: "healthy" serves 100 req/s with 0.01% 5xx
    # and fast responses; "critical" fails 10% and is slow.
    lines.append("# TYPE http_requests counter")
    for name, (ok, bad) in {"healthy": (99.99, 0.01), "critical": (90.0, 10.0)}.items():
        for code, rate in (("200", ok), ("500", bad)):
            lines += [f'http_requests_total{{namespace="{NS}",pod="{pods[name]}",code="{code}"}} '
                      f'{rate * (t - start):.3f} {t}' for t in range(start, end, STEP)]
    lines.append("# TYPE http_request_duration_seconds histogram")
    for name, fast in {"healthy": 1.0, "critical": 0.5}.items():
        pod = pods[name]
        for le, share in (("0.5", fast), ("2", fast), ("5", 1.0), ("+Inf", 1.0)):
            lines += [f'http_request_duration_seconds_bucket{{namespace="{NS}",pod="{pod}",le="{le}"}} '
                      f'{100 * share * (t - start):.3f} {t}' for t in range(start, end, STEP)]
        lines += [f'http_request_duration_seconds_count{{namespace="{NS}",pod="{pod}"}} '
                  f'{100 * (t - start):.3f} {t}' for t in range(start, end, STEP)]
        lines += [f'http_request_duration_seconds_sum{{namespace="{NS}",pod="{pod}"}} '
                  f'{30 * (t - start):.3f} {t}' for t in range(start, end, STEP)]
    return "\n".join(lines)


def pod_names(cluster: Cluster, *names: str) -> dict[str, str]:
    """A pod name per Deployment, in its ReplicaSet (`<replicaset>-<suffix>`: the operator maps it)."""
    def replicasets() -> dict[str, str]:
        found = {rs["metadata"]["ownerReferences"][0]["name"]: rs["metadata"]["name"]
                 for rs in cluster.get_json("-n", NS, "replicasets")["items"]}
        assert set(names) <= set(found), found
        return found

    found = eventually(replicasets, timeout=30, what="ReplicaSets")
    return {name: f"{found[name]}-hist0" for name in names}


def deployment(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NS},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "app", "image": "app:1.0"}]}}},
    }


def example_slo(name: str) -> dict[str, Any]:
    production = yaml.safe_load((REPO_ROOT / "examples" / "policies" / "production.yaml").read_text())
    [slo] = [s for s in production["spec"]["slos"] if s["name"] == name]
    return {**slo, "interval": "2s"}


POLICY = {
    "apiVersion": "readiness.dev/v1alpha1", "kind": "ReadinessPolicy", "metadata": {"name": "slo-gates"},
    "spec": {
        "mode": "Audit",
        "match": {"namespaces": [NS]},
        "slos": [
            {"name": "error-ratio", "query": 'max(slo_error_ratio{namespace="{{namespace}}", deployment="{{name}}"})',
             "comparison": "<", "threshold": 0.001, "warning": 0.01, "critical": 0.05, "interval": "2s",
             "onBreach": "Block"},
            example_slo("availability"),
            example_slo("latency-p99"),
        ],
    },
}


@pytest.fixture(scope="module")
def slo_operator(crds: Cluster, prometheus: Prometheus, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    crds.kubectl("create", "namespace", NS)
    for name in (*ERROR_RATIO, "nodata"):
        crds.apply(yaml.safe_dump(deployment(name)))
    prometheus.load(series(int(time.time()), pod_names(crds, "healthy", "critical")), name="slo")
    port = free_port()
    op = OperatorProcess(crds.kubeconfig, tmp_path_factory.mktemp("slo") / "operator.log", "--webhook-port", str(port),
                         env={"READINESS_PROMETHEUS_URL": prometheus.url,
                              "READINESS_WEBHOOK_URL": f"https://127.0.0.1:{port}", "READINESS_WEBHOOK_ADDR": "127.0.0.1",
                              "READINESS_WEBHOOK_CONFIGURATION": "readiness-slo-e2e"}).start()
    crds.apply(yaml.safe_dump(POLICY))
    yield op
    crds.kubectl("delete", "rp", "slo-gates", "--ignore-not-found")  # while the operator can finalize it
    op.stop()
    crds.kubectl("delete", "validatingwebhookconfiguration", "readiness-slo-e2e", "--ignore-not-found")
    assert "Traceback" not in op.logs(), op.logs()[-5000:]


def status(cluster: Cluster) -> dict[str, Any]:
    return dict(cluster.get_json("rp", "slo-gates").get("status") or {})


def condition(cluster: Cluster, kind: str) -> str | None:
    return {c["type"]: c["status"] for c in status(cluster).get("conditions", [])}.get(kind)


def slo_entry(cluster: Cluster, name: str) -> dict[str, Any]:
    return next((s for s in status(cluster).get("slos", []) if s["name"] == name), {})


def report_results(cluster: Cluster, rule: str) -> dict[str, dict[str, Any]]:
    report = cluster.get_json("-n", NS, "policyreport", "readiness-slo-gates")
    return {r["resources"][0]["name"]: r for r in report["results"] if r["rule"] == rule}


def test_measured_verdicts_values_and_levels(slo_operator: OperatorProcess, crds: Cluster) -> None:
    cluster = crds
    eventually(lambda: condition(cluster, "PrometheusReachable") == "True", timeout=30, what="Prometheus reachable")
    eventually(lambda: slo_entry(cluster, "error-ratio").get("measured") == 4, timeout=20, what="4 measured")
    entry = slo_entry(cluster, "error-ratio")
    assert (entry["state"], entry["breaching"], entry["noData"]) == ("Breaching", 3, 1)
    assert [w["name"] for w in entry["worst"]] == ["frozen", "critical", "warning"]
    assert entry["worst"][1]["value"] == pytest.approx(0.1) and entry["threshold"] == 0.001
    assert "measuredAt" in entry
    s = status(cluster)
    assert (s["targets"], s["compliant"], s["noncompliant"]) == (5, 2, 3)  # no data is Unknown, not a failure

    results = eventually(lambda: report_results(cluster, "slo:error-ratio"), what="SLO results in the report")
    assert results["healthy"]["result"] == "pass"
    assert (results["critical"]["result"], results["critical"]["severity"]) == ("fail", "critical")
    assert (results["warning"]["result"], results["warning"]["severity"]) == ("fail", "medium")
    assert results["nodata"]["result"] == "error"
    props = results["critical"]["properties"]
    assert float(props["value"]) == pytest.approx(0.1) and float(props["threshold"]) == 0.001 and props["measuredAt"]

    # The example templates (rate ratio and histogram_quantile) batch correctly too.
    availability = report_results(cluster, "slo:availability")
    assert float(availability["healthy"]["properties"]["value"]) == pytest.approx(0.9999, abs=1e-4)
    assert availability["healthy"]["result"] == "pass" and availability["critical"]["result"] == "fail"
    latency = report_results(cluster, "slo:latency-p99")
    assert latency["healthy"]["result"] == "pass" and latency["critical"]["result"] == "fail"
    assert float(latency["critical"]["properties"]["value"]) > 2


def test_query_count_does_not_grow_with_deployments(slo_operator: OperatorProcess, crds: Cluster,
                                                    prometheus: Prometheus) -> None:
    def queries() -> float:
        with urllib.request.urlopen(f"{prometheus.url}/metrics", timeout=5) as r:
            text = r.read().decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("prometheus_http_requests_total{") and 'handler="/api/v1/query"' in line)

    def per_window(seconds: float = 8.0) -> float:
        before = queries()
        time.sleep(seconds)
        return queries() - before

    eventually(lambda: condition(crds, "PrometheusReachable") == "True", timeout=30, what="reachable")
    few = per_window()
    try:
        crds.apply(yaml.safe_dump_all([deployment(f"extra-{i}") for i in range(25)]))  # one kubectl call
        eventually(lambda: status(crds).get("targets") == 30, timeout=30, what="30 targets")
        many = per_window()
    finally:  # the next tests expect the five Deployments only
        crds.kubectl("-n", NS, "delete", "deployment", *(f"extra-{i}" for i in range(25)), "--wait=false",
                     "--ignore-not-found")
    # 3 SLOs every 2 s: about 12 queries in 8 s, whether 5 or 30 Deployments are selected.
    assert 6 <= few <= 18 and 6 <= many <= 18, (few, many)
    assert many <= few + 4, (few, many)


def test_prometheus_outage_is_unknown_never_a_failure(slo_operator: OperatorProcess, crds: Cluster,
                                                      prometheus: Prometheus) -> None:
    cluster = crds
    eventually(lambda: slo_entry(cluster, "error-ratio").get("state") == "Breaching", timeout=30, what="measured")
    eventually(lambda: status(cluster).get("targets") == 5, timeout=30, what="extra Deployments gone")
    before = status(cluster)
    compliant_before = before["compliant"]
    prometheus.stop()
    try:
        eventually(lambda: condition(cluster, "PrometheusReachable") == "False", timeout=30, what="unreachable")
        reachable = {c["type"]: c for c in status(cluster)["conditions"]}["PrometheusReachable"]
        assert reachable["reason"] == "QueryFailed" and "slo:error-ratio" in reachable["message"]
        entry = slo_entry(cluster, "error-ratio")
        assert entry["state"] == "Unknown" and entry["error"]
        # the last measurement is kept with its time
        assert entry["measuredAt"] == slo_entry(cluster, "error-ratio")["measuredAt"]
        after = status(cluster)
        assert after["noncompliant"] <= before["noncompliant"]  # nothing flipped to failed
        assert after["compliant"] >= compliant_before
        results = report_results(cluster, "slo:error-ratio")
        assert {r["result"] for r in results.values()} == {"error"}
    finally:
        prometheus.start()
    eventually(lambda: condition(cluster, "PrometheusReachable") == "True", timeout=60, what="reachable again")
    eventually(lambda: status(cluster).get("noncompliant") == 3, timeout=30, what="breaches measured again")


def test_block_freezes_rollouts_of_a_breaching_deployment_until_it_recovers(
    slo_operator: OperatorProcess, crds: Cluster, prometheus: Prometheus
) -> None:
    cluster = crds
    eventually(lambda: report_results(cluster, "slo:error-ratio").get("frozen", {}).get("result") == "fail",
               timeout=60, what="frozen measured as breaching")
    rollout = ["-n", NS, "set", "image", "deployment/frozen", "app=app:2.0"]
    denied = cluster.kubectl(*rollout, check=False)
    assert denied.returncode != 0, denied.stdout
    assert "slo:error-ratio" in denied.stderr and "frozen" in denied.stderr
    # The freeze allows scaling down (a replicas-only change) ...
    cluster.kubectl("-n", NS, "patch", "deployment", "frozen", "--type=merge", "-p", '{"spec":{"replicas":0}}')
    # Break-glass during a freeze: revision 2, applied together with the override annotation (so the
    # Deployment controller copies it only onto the new ReplicaSet, not onto revision 1's).
    hotfix = deployment("frozen")
    hotfix["metadata"]["annotations"] = {"readiness.dev/override": "hotfix during freeze"}
    hotfix["spec"]["replicas"] = 0
    hotfix["spec"]["template"]["spec"]["containers"][0]["image"] = "app:2.0"
    cluster.apply(yaml.safe_dump(hotfix))
    cluster.kubectl("-n", NS, "annotate", "deployment", "frozen", "readiness.dev/override-")
    eventually(lambda: len(cluster.get_json("-n", NS, "replicasets", "-l", "app=frozen")["items"]) == 2,
               what="two revisions")
    # Rolling back to revision 1 is allowed during the freeze; a template never seen is not.
    cluster.kubectl("-n", NS, "rollout", "undo", "deployment/frozen")
    current = cluster.get_json("-n", NS, "deployment", "frozen")
    assert current["spec"]["template"]["spec"]["containers"][0]["image"] == "app:1.0"
    assert "readiness.dev/override" not in (current["metadata"].get("annotations") or {})
    new_rollout = ["-n", NS, "set", "image", "deployment/frozen", "app=app:3.0"]
    denied = cluster.kubectl(*new_rollout, check=False)
    assert denied.returncode != 0 and "slo:error-ratio" in denied.stderr

    # The series recovers: drop the bad samples from now on and load healthy ones.
    now = int(time.time())
    prometheus.delete_series('slo_error_ratio{deployment="frozen"}', start=now - 1)
    prometheus.load("# TYPE slo_error_ratio gauge\n" + "\n".join(
        f'slo_error_ratio{{namespace="{NS}",deployment="frozen"}} 0.0001 {t}' for t in range(now, now + 3000, STEP)),
        name="recovered")
    eventually(lambda: report_results(cluster, "slo:error-ratio").get("frozen", {}).get("result") == "pass",
               timeout=90, what="frozen measured healthy again")
    eventually(lambda: cluster.kubectl(*new_rollout, check=False).returncode == 0, timeout=30, what="rollout allowed")
