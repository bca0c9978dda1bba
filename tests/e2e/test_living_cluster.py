"""The local cluster is alive (issue 11): nodes, scheduled and Ready pods, rollouts, PDB status from
the disruption controller, chaos, HPAs computing from the metrics API, live application metrics
scraped by Prometheus. Each test proves one promise hack/cluster.sh makes."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.cluster import Cluster, eventually
from tests.support.loadgen import running_loadgen
from tests.support.prometheus import Prometheus

pytestmark = pytest.mark.e2e


def deployment(namespace: str, name: str, replicas: int = 3, *, image: str = "app:1.0",
               pod_labels: dict[str, str] | None = None, pod_annotations: dict[str, str] | None = None,
               annotations: dict[str, str] | None = None, cpu: str = "100m") -> str:
    return yaml.safe_dump({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}},
        "spec": {
            "replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": name, **(pod_labels or {})}, "annotations": pod_annotations or {}},
                "spec": {"containers": [{"name": "app", "image": image, "ports": [{"containerPort": 8080}],
                                         "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}]},
            },
        },
    })


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == kind), {})


def available(cluster: Cluster, namespace: str, name: str, replicas: int) -> bool:
    d = cluster.get_json("-n", namespace, "deployment", name)
    status = d.get("status", {})
    return (condition(d, "Available").get("status") == "True" and status.get("availableReplicas") == replicas
            and status.get("updatedReplicas") == replicas and status.get("observedGeneration") == d["metadata"]["generation"])


def test_nodes_are_ready_and_spread_over_three_zones(cluster: Cluster) -> None:
    nodes = cluster.get_json("nodes", "-l", "type=kwok")["items"]
    assert len(nodes) == 3
    assert all(condition(n, "Ready").get("status") == "True" for n in nodes), [condition(n, "Ready") for n in nodes]
    zones = {n["metadata"]["labels"]["topology.kubernetes.io/zone"] for n in nodes}
    assert zones == {"zone-a", "zone-b", "zone-c"}
    assert all(n["status"]["allocatable"]["pods"] == "110" for n in nodes)


def test_pods_are_scheduled_across_zones_and_the_deployment_becomes_available(cluster: Cluster) -> None:
    ns = "live-available"
    cluster.kubectl("create", "namespace", ns)
    spread = yaml.safe_load(deployment(ns, "web", 3))
    spread["spec"]["template"]["spec"]["topologySpreadConstraints"] = [{
        "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app": "web"}}}]
    cluster.apply(yaml.safe_dump(spread))
    eventually(lambda: available(cluster, ns, "web", 3), timeout=60, what="web Available 3/3")
    pods = cluster.get_json("-n", ns, "pods", "-l", "app=web")["items"]
    assert {p["status"]["phase"] for p in pods} == {"Running"}
    assert all(condition(p, "Ready").get("status") == "True" and p["status"].get("podIP") for p in pods)
    zone_of = {n["metadata"]["name"]: n["metadata"]["labels"]["topology.kubernetes.io/zone"]
               for n in cluster.get_json("nodes")["items"]}
    assert sorted(zone_of[p["spec"]["nodeName"]] for p in pods) == ["zone-a", "zone-b", "zone-c"]


def test_a_rollout_progresses_through_a_new_replicaset(cluster: Cluster) -> None:
    ns = "live-rollout"
    cluster.kubectl("create", "namespace", ns)
    cluster.apply(deployment(ns, "api", 3, image="app:1.0"))
    eventually(lambda: available(cluster, ns, "api", 3), timeout=60, what="api 1.0 Available")
    cluster.kubectl("-n", ns, "set", "image", "deployment/api", "app=app:2.0")
    # Rolled out as `kubectl rollout status` sees it: the controller sets the Progressing reason in a
    # status write of its own, after the one that counts the new pods available.
    eventually(lambda: available(cluster, ns, "api", 3) and condition(
        cluster.get_json("-n", ns, "deployment", "api"), "Progressing").get("reason") == "NewReplicaSetAvailable",
        timeout=90, what="api 2.0 rolled out")
    replica_sets = cluster.get_json("-n", ns, "replicasets", "-l", "app=api")["items"]
    by_image = {rs["spec"]["template"]["spec"]["containers"][0]["image"]: rs for rs in replica_sets}
    assert set(by_image) == {"app:1.0", "app:2.0"}
    assert by_image["app:1.0"]["spec"]["replicas"] == 0
    assert by_image["app:2.0"]["status"].get("readyReplicas") == 3
    d = cluster.get_json("-n", ns, "deployment", "api")
    assert condition(d, "Progressing")["reason"] == "NewReplicaSetAvailable"
    images = {p["spec"]["containers"][0]["image"] for p in cluster.get_json("-n", ns, "pods", "-l", "app=api")["items"]
              if not p["metadata"].get("deletionTimestamp")}
    assert images == {"app:2.0"}


def test_the_disruption_controller_fills_pdb_status(cluster: Cluster) -> None:
    ns = "live-pdb"
    cluster.kubectl("create", "namespace", ns)
    cluster.apply(deployment(ns, "db", 3))
    cluster.apply(yaml.safe_dump({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                                  "metadata": {"name": "db", "namespace": ns},
                                  "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "db"}}}}))

    def pdb_status() -> dict[str, Any]:
        status: dict[str, Any] = cluster.get_json("-n", ns, "pdb", "db").get("status", {})
        assert status.get("currentHealthy") == 3, status
        return status

    status = eventually(pdb_status, timeout=60, what="PDB status with 3 healthy pods")
    assert (status["desiredHealthy"], status["expectedPods"], status["disruptionsAllowed"]) == (2, 3, 1)
    assert {c["type"]: c["status"] for c in status["conditions"]}["DisruptionAllowed"] == "True"


@pytest.mark.parametrize(("chaos", "reason", "exit_code"), [("crash-loop", "Error", 1), ("oom-kill", "OOMKilled", 137)])
def test_chaos_stage_selected_by_pod_label(cluster: Cluster, chaos: str, reason: str, exit_code: int) -> None:
    ns = f"live-{chaos}"
    cluster.kubectl("create", "namespace", ns)
    cluster.apply(deployment(ns, "flaky", 1, pod_labels={"readiness.dev/chaos": chaos}))

    def crashing() -> dict[str, Any]:
        pods = cluster.get_json("-n", ns, "pods", "-l", "app=flaky")["items"]
        assert len(pods) == 1, [p["metadata"]["name"] for p in pods]  # none yet, right after the apply
        [pod] = pods
        [status] = pod["status"].get("containerStatuses") or [{}]
        assert status.get("restartCount", 0) >= 2, status
        return {"pod": pod, "container": status}

    seen = eventually(crashing, timeout=60, what=f"{chaos}: restarts counted")
    pod, container = seen["pod"], seen["container"]
    assert pod["status"]["phase"] == "Running"
    assert condition(pod, "Ready")["status"] == "False"
    assert container["ready"] is False
    assert container["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert container["lastState"]["terminated"]["reason"] == reason
    assert container["lastState"]["terminated"]["exitCode"] == exit_code
    d = cluster.get_json("-n", ns, "deployment", "flaky")
    assert d["status"].get("availableReplicas", 0) == 0
    assert condition(d, "Available")["status"] == "False"


def test_hpa_computes_from_the_metrics_api_and_scales_when_usage_rises(cluster: Cluster) -> None:
    ns = "live-hpa"
    cluster.kubectl("create", "namespace", ns)
    cluster.apply(deployment(ns, "worker", 2, cpu="100m", pod_annotations={"kwok.x-k8s.io/usage-cpu": "20m"}))
    cluster.apply(yaml.safe_dump({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "worker", "namespace": ns},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "worker"},
                 "minReplicas": 2, "maxReplicas": 6,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                                                               "target": {"type": "Utilization", "averageUtilization": 50}}}]},
    }))
    eventually(lambda: available(cluster, ns, "worker", 2), timeout=60, what="worker Available")

    def measured() -> dict[str, Any]:
        hpa: dict[str, Any] = cluster.get_json("-n", ns, "hpa", "worker")
        assert condition(hpa, "ScalingActive").get("status") == "True", hpa.get("status")
        [metric] = hpa["status"]["currentMetrics"]
        assert metric["resource"]["current"].get("averageUtilization") is not None, metric
        return hpa

    hpa = eventually(measured, timeout=90, interval=1, what="HPA ScalingActive with a CPU measurement")
    # 20m used of 100m requested, as kwok's usage annotation says (metrics-server rates kwok's counter).
    assert 15 <= hpa["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"] <= 25
    assert condition(hpa, "AbleToScale")["status"] == "True"
    assert hpa["status"]["desiredReplicas"] == 2
    # The pods' usage goes to 200m (200% of the request): 2 x 200/50 = 8 desired, capped at maxReplicas 6.
    cluster.kubectl("-n", ns, "annotate", "pods", "-l", "app=worker", "kwok.x-k8s.io/usage-cpu=200m", "--overwrite")
    eventually(lambda: cluster.get_json("-n", ns, "deployment", "worker")["spec"]["replicas"] == 6, timeout=120,
               interval=1, what="the HPA scaling worker to 6")
    hpa = cluster.get_json("-n", ns, "hpa", "worker")
    assert condition(hpa, "ScalingLimited")["status"] == "True"  # TooManyReplicas: wanted more than 6
    eventually(lambda: available(cluster, ns, "worker", 6), timeout=60, what="6 worker pods Available")


def rate_query(prometheus: Prometheus, promql: str) -> list[dict[str, Any]]:
    result = prometheus.query(promql)
    assert result["status"] == "success", result
    return list(result["data"]["result"])


@pytest.mark.prometheus
def test_prometheus_scrapes_live_loadgen_series_and_the_error_ratio_follows_the_annotation(
    cluster: Cluster, prometheus: Prometheus, tmp_path: Path
) -> None:
    ns = "live-loadgen"
    cluster.kubectl("create", "namespace", ns)
    cluster.apply(deployment(ns, "shop", 2, annotations={"readiness.dev/loadgen-rps": "50",
                                                         "readiness.dev/loadgen-latency-seconds": "0.02"}))
    eventually(lambda: available(cluster, ns, "shop", 2), timeout=60, what="shop Available")
    pods = {p["metadata"]["name"]: p for p in cluster.get_json("-n", ns, "pods", "-l", "app=shop")["items"]}

    with running_loadgen(cluster, tmp_path, ns) as loadgen:
        # What the load generator serves: the kube-prometheus labels per pod, and no deployment label.
        text = eventually(lambda: loadgen.scrape() if 'code="200"' in loadgen.scrape() else "", timeout=20,
                          what="loadgen series")
        label_sets = re.findall(r"^http_requests_total\{([^}]*)\}", text, re.MULTILINE)
        assert label_sets and all("deployment=" not in labels for labels in label_sets)
        prometheus.scrape(loadgen.target)
        total = f'sum by (namespace, pod, container, job, instance) (rate(http_requests_total{{namespace="{ns}"}}[10s]))'

        def both_pods_at_50_rps() -> list[dict[str, Any]]:
            series = rate_query(prometheus, total)
            assert len(series) == 2, series
            # Once the 10 s window is full of samples (the first scrapes underestimate a rate).
            assert all(float(s["value"][1]) == pytest.approx(50, rel=0.1) for s in series), series
            return series

        series = eventually(both_pods_at_50_rps, timeout=60, interval=1, what="both pods' series in Prometheus")
        for sample in series:
            labels = sample["metric"]
            pod = pods[labels["pod"]]
            assert labels["namespace"] == ns and labels["container"] == "app" and labels["job"] == "shop"
            assert labels["instance"] == f"{pod['status']['podIP']}:8080"
        raw = rate_query(prometheus, f'http_requests_total{{namespace="{ns}"}}')
        assert raw and all("deployment" not in s["metric"] for s in raw)
        p50 = f'histogram_quantile(0.5, sum by (le) (rate(http_request_duration_seconds_bucket{{namespace="{ns}"}}[10s])))'
        assert 0.01 < float(rate_query(prometheus, p50)[0]["value"][1]) <= 0.025  # the 0.02 s median's bucket

        ratio = (f'sum(rate(http_requests_total{{namespace="{ns}", code=~"5.."}}[6s])) '
                 f'/ sum(rate(http_requests_total{{namespace="{ns}"}}[6s]))')
        assert float(rate_query(prometheus, ratio)[0]["value"][1]) == 0
        cluster.kubectl("-n", ns, "annotate", "deployment", "shop", "readiness.dev/loadgen-error-ratio=0.2")

        def error_ratio() -> float:
            [sample] = rate_query(prometheus, ratio)
            value = float(sample["value"][1])
            assert math.isclose(value, 0.2, abs_tol=0.01), value
            return value

        eventually(error_ratio, timeout=60, interval=1, what="error ratio 0.2 in Prometheus")
