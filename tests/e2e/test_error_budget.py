"""Error budgets on the living cluster (issue 14): live load-generator traffic per pod (labels
`namespace`/`pod` only, no `deployment`), an hour of backfilled history, the operator mapping pods
to Deployments through their ReplicaSets, a page-level burn freezing rollouts, and the freeze lifting.

The SLO is short (period 1h, page on 1m/15s) so a burn and a recovery fit in seconds. No sample is
backfilled after now: Prometheus refuses scraped samples older than its newest block, so this module
runs before the ones that load samples ahead of time (test_prometheus_secrets, test_slo*).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.cluster import Cluster, eventually
from tests.support.loadgen import LoadGenerator, running_loadgen
from tests.support.operator import OperatorProcess, free_port
from tests.support.prometheus import Prometheus

pytestmark = [pytest.mark.e2e, pytest.mark.prometheus]

NS = "e2e-budget"
STEP = 15
AVAILABILITY = {
    "name": "availability", "objective": 99, "period": "1h", "interval": "2s", "onBreach": "Block",
    "sli": {"ratio": {"bad": 'http_requests_total{code=~"5.."}', "total": "http_requests_total"}},
    "burnRates": [{"severity": "page", "longWindow": "1m", "shortWindow": "15s", "factor": 14.4},
                  {"severity": "ticket", "longWindow": "5m", "shortWindow": "1m", "factor": 3}],
}
POLICY = {"apiVersion": "readiness.dev/v1alpha1", "kind": "ReadinessPolicy", "metadata": {"name": "budget"},
          "spec": {"mode": "Audit", "match": {"namespaces": [NS]}, "slos": [AVAILABILITY]}}
# "uneven": 30 minutes of 50 req/s with 45 errors, then 15 minutes of 0.2 req/s with 90 errors (half
# of them). By requests: 135 bad of 90,180 -> SLI 0.998503..., 85.0% of a 1% budget left. Sloth's
# mean of the nine 5-minute ratios, (6 x 0.9995 + 3 x 0.5) / 9 = 0.8330, would call it spent.
UNEVEN_SLI = 1 - 135 / 90_180
UNEVEN_REMAINING = 1 - (135 / 90_180) / 0.01


def deployment(name: str, replicas: int, rps: str, image: str = "app:1.0") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "annotations": {"readiness.dev/loadgen-rps": rps}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "app", "image": image, "ports": [{"containerPort": 8080}]}]}}},
    }


def counter_lines(pod: str, t0: int, segments: list[tuple[int, float, float]]) -> list[str]:
    """http_requests_total of one pod from `t0` on, every STEP s: (seconds, req/s, error share) segments.
    Counters start high so increase() never extrapolates towards zero; every series shares timestamps."""
    ok = bad = 1_000_000.0
    t = t0
    lines: list[str] = []
    for seconds, rps, errors in segments:
        for _ in range(seconds // STEP):
            lines += [f'http_requests_total{{namespace="{NS}",pod="{pod}",container="app",code="200"}} {ok:.6f} {t}',
                      f'http_requests_total{{namespace="{NS}",pod="{pod}",container="app",code="500"}} {bad:.6f} {t}']
            ok += rps * STEP * (1 - errors)
            bad += rps * STEP * errors
            t += STEP
    lines += [f'http_requests_total{{namespace="{NS}",pod="{pod}",container="app",code="200"}} {ok:.6f} {t}',
              f'http_requests_total{{namespace="{NS}",pod="{pod}",container="app",code="500"}} {bad:.6f} {t}']
    return lines


def replicaset(cluster: Cluster, app: str) -> str:
    [rs] = cluster.get_json("-n", NS, "replicasets", "-l", f"app={app}")["items"]
    return str(rs["metadata"]["name"])


@pytest.fixture(scope="module")
def budget_operator(cluster: Cluster, crds: Cluster, prometheus: Prometheus,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OperatorProcess, LoadGenerator]]:
    crds.kubectl("create", "namespace", NS)
    crds.apply(yaml.safe_dump(deployment("shop", 2, "100")))
    crds.apply(yaml.safe_dump(deployment("uneven", 1, "0")))  # serves nothing live: its history decides
    eventually(lambda: all(crds.get_json("-n", NS, "deployment", d).get("status", {}).get("availableReplicas")
                           for d in ("shop", "uneven")), timeout=60, what="Deployments Available")
    # History, as pods of the current ReplicaSets that are gone (the operator maps them by name): 10
    # idle minutes, the traffic, 6 idle minutes up to now. While the 1h window slides over the first
    # idle minutes during the test it holds exactly the traffic; the burn windows (up to 5m) hold none.
    t0 = int(time.time()) // STEP * STEP - 61 * 60
    history = ["# TYPE http_requests counter"]
    # shop's history is a pod whose name says nothing (e.g. a pod adopted by the ReplicaSet): only
    # kube-state-metrics' kube_pod_owner maps it, and its 0.1% errors must count.
    history += counter_lines("shop-adopted", t0, [(10 * 60, 0.0, 0.0), (45 * 60, 1000.0, 0.001), (6 * 60, 0.0, 0.0)])
    history += ["# TYPE kube_pod_owner gauge"] + [
        f'kube_pod_owner{{namespace="{NS}",pod="shop-adopted",owner_kind="ReplicaSet",'
        f'owner_name="{replicaset(crds, "shop")}",owner_is_controller="true"}} 1 {t}' for t in range(t0, t0 + 61 * 60 + 1, STEP)]
    history += counter_lines(f"{replicaset(crds, 'uneven')}-hist0", t0, [
        (10 * 60, 0.0, 0.0), (30 * 60, 50.0, 45 / 90_000), (15 * 60, 0.2, 0.5), (6 * 60, 0.0, 0.0)])
    prometheus.load("\n".join(history), name="budget-history")
    state = tmp_path_factory.mktemp("budget")
    with running_loadgen(crds, state, NS) as loadgen:
        prometheus.scrape(loadgen.target)
        port = free_port()
        op = OperatorProcess(crds.kubeconfig, state / "operator.log", "--webhook-port", str(port), env={
            "READINESS_PROMETHEUS_URL": prometheus.url, "READINESS_WEBHOOK_URL": f"https://127.0.0.1:{port}",
            "READINESS_WEBHOOK_ADDR": "127.0.0.1", "READINESS_WEBHOOK_CONFIGURATION": "readiness-budget-e2e"}).start()
        crds.apply(yaml.safe_dump(POLICY))
        try:
            yield op, loadgen
        finally:
            crds.kubectl("delete", "rp", "budget", "--ignore-not-found")
            op.stop()
            crds.kubectl("delete", "validatingwebhookconfiguration", "readiness-budget-e2e", "--ignore-not-found")
            crds.kubectl("delete", "namespace", NS, "--wait=false")
    assert "Traceback" not in op.logs(), op.logs()[-5000:]


def slo_status(cluster: Cluster) -> dict[str, Any]:
    status = cluster.get_json("rp", "budget").get("status") or {}
    return next((s for s in status.get("slos", []) if s["name"] == "availability"), {})


def result(cluster: Cluster, name: str) -> dict[str, Any]:
    report = cluster.get_json("-n", NS, "policyreport", "readiness-budget")
    return next(r for r in report["results"] if r["rule"] == "slo:availability" and r["resources"][0]["name"] == name)


def test_budget_from_pods_and_history_is_traffic_weighted(budget_operator: Any, crds: Cluster) -> None:
    eventually(lambda: slo_status(crds).get("measured") == 2, timeout=60, what="both Deployments measured")
    entry = slo_status(crds)
    assert (entry["objective"], entry["period"], entry["state"], entry["noData"]) == (99, "1h", "Met", 0)
    uneven = eventually(lambda: result(crds, "uneven"), timeout=30, what="uneven in the report")
    props = uneven["properties"]
    assert uneven["result"] == "pass" and props["state"] == "ok" and props["firing"] == "none"
    assert float(props["value"]) == pytest.approx(UNEVEN_SLI, rel=1e-9)
    assert float(props["budgetRemaining"]) == pytest.approx(UNEVEN_REMAINING, rel=1e-5)
    assert (props["objective"], props["period"]) == ("99", "1h")
    # Live values move every 2 s; the report, whose verdicts do not change, is not rewritten for them.
    version = crds.get_json("-n", NS, "policyreport", "readiness-budget")["metadata"]["resourceVersion"]
    for _ in range(3):
        seen = slo_status(crds).get("measuredAt")
        eventually(lambda seen=seen: slo_status(crds).get("measuredAt") != seen, timeout=20, what="a new measurement")
    assert crds.get_json("-n", NS, "policyreport", "readiness-budget")["metadata"]["resourceVersion"] == version
    # shop: 2,700 errors of 2.7M requests in its history (mapped through kube_pod_owner) plus the
    # live, error-free traffic of its pods (mapped by their names): 99.9%, a little more as live traffic
    # adds up. Without the history (kube_pod_owner unread) it would be 100%.
    shop = float(result(crds, "shop")["properties"]["value"])
    assert 0.9989 < shop < 0.9991, shop


def test_a_page_burn_freezes_rollouts_but_not_scale_downs_or_rollbacks_until_it_stops(
    budget_operator: Any, crds: Cluster
) -> None:
    cluster = crds
    eventually(lambda: result(cluster, "shop")["result"] == "pass", timeout=60, what="shop within budget")
    # Revision 2 while healthy (allowed); revision 1 is then a rollback target.
    cluster.kubectl("-n", NS, "set", "image", "deployment/shop", "app=app:2.0")
    raised = time.monotonic()
    cluster.kubectl("-n", NS, "annotate", "deployment", "shop", "readiness.dev/loadgen-error-ratio=0.5", "--overwrite")
    eventually(lambda: result(cluster, "shop")["properties"]["state"] == "critical", timeout=60, interval=0.5,
               what="page-level burn")
    assert time.monotonic() - raised < 45  # the 1m window crosses 14.4x after ~20 s of 50% errors
    frozen = result(cluster, "shop")
    assert frozen["result"] == "fail" and frozen["properties"]["firing"].startswith("page 1m/15s")
    assert 0.5 < float(frozen["properties"]["budgetRemaining"]) < 1  # an hour of healthy history
    entry = slo_status(cluster)
    assert entry["frozen"] == 1 and entry["worst"][0]["name"] == "shop" and "1m" in entry["worst"][0]["burnRates"]

    denied = cluster.kubectl("-n", NS, "set", "image", "deployment/shop", "app=app:3.0", check=False)
    assert denied.returncode != 0, denied.stdout
    for words in ("slo:availability", "error-budget freeze", "page burn", "over 1m", "over 15s",
                  "of the error budget left", "objective 99%"):
        assert words in denied.stderr, (words, denied.stderr)
    cluster.kubectl("-n", NS, "scale", "deployment/shop", "--replicas=1")  # a scale-down passes
    cluster.kubectl("-n", NS, "rollout", "undo", "deployment/shop")  # back to app:1.0: a rollback passes
    image = cluster.get_json("-n", NS, "deployment", "shop")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "app:1.0"
    def freeze_event() -> list[str]:
        events = cluster.get_json("-n", NS, "events", "--field-selector", "reason=ErrorBudgetFreeze")["items"]
        messages = [e["message"] for e in events if e["involvedObject"]["name"] == "shop"]
        assert any("slo:availability (objective 99% over 1h, budget remaining" in m and "firing: page 1m/15s" in m
                   and "burn rates" in m for m in messages), messages
        return messages

    eventually(freeze_event, timeout=20, what="an ErrorBudgetFreeze Event")

    cluster.kubectl("-n", NS, "annotate", "deployment", "shop", "readiness.dev/loadgen-error-ratio-")
    eventually(lambda: cluster.kubectl("-n", NS, "set", "image", "deployment/shop", "app=app:3.0",
                                       check=False).returncode == 0, timeout=90, interval=1, what="the freeze lifting")
    eventually(lambda: cluster.get_json("-n", NS, "events", "--field-selector", "reason=ErrorBudgetFreezeLifted")["items"],
               timeout=20, what="an ErrorBudgetFreezeLifted Event")
    healthy = result(cluster, "shop")
    assert healthy["properties"]["state"] in ("ok", "warning")  # a ticket may still burn over 5m; it only warns
    assert float(healthy["properties"]["budgetRemaining"]) > 0.5


def test_no_deployment_label_is_needed(budget_operator: tuple[OperatorProcess, LoadGenerator]) -> None:
    _, loadgen = budget_operator
    text = loadgen.scrape()
    assert "http_requests_total{" in text and "deployment=" not in text
    assert "container_memory_working_set_bytes{" in text
    assert not (Path(__file__).resolve().parents[2] / "hack" / "demo.sh").read_text().count("--derive-deployment-label")
