"""The chart's RBAC is enough for the whole job, and two replicas elect exactly one active (issue 6)."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.cluster import REPO_ROOT, Cluster, KubectlError, eventually
from tests.support.operator import OperatorProcess, free_port

pytestmark = pytest.mark.e2e

CHART = REPO_ROOT / "charts" / "readiness-operator"
RELEASE, NS, WORK = "rbac-proof", "rbac-proof", "rbac-work"


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def deployment(name: str, probe: bool) -> str:
    container: dict[str, Any] = {"name": "app", "image": "app:1.0"}
    if probe:
        container["readinessProbe"] = {"tcpSocket": {"port": 8080}}
    return yaml.safe_dump({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": WORK},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}}},
    })


@pytest.fixture(scope="module")
def chart_sa_operator(
    crds: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[OperatorProcess, dict[str, str]]]:
    """helm install the chart, then run the operator locally with its ServiceAccount's token."""
    cluster = crds
    tmp = tmp_path_factory.mktemp("rbac")
    subprocess_helm(["install", RELEASE, str(CHART), "-n", NS, "--create-namespace", "--wait=false",
                     "--set", "peering.name=rbac-proof"], cluster)
    chart_deploy = cluster.get_json("-n", NS, "deployment", "-l", f"app.kubernetes.io/instance={RELEASE}")["items"][0]
    pod = chart_deploy["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"] if "value" in e}
    env["READINESS_NAMESPACE"] = NS
    sa = pod["serviceAccountName"]
    kubeconfig = cluster.token_kubeconfig(NS, sa, tmp)
    port, metrics = free_port(), free_port()
    env.update({"READINESS_WEBHOOK_URL": f"https://127.0.0.1:{port}", "READINESS_WEBHOOK_ADDR": "127.0.0.1",
                "READINESS_WEBHOOK_PORT": str(port)})
    env.pop("HOME", None)
    op = OperatorProcess(kubeconfig, tmp / "operator.log", "--webhook-port", str(port), "--metrics-port", str(metrics),
                         "--peering", "rbac-proof", env=env).start()
    cluster.kubectl("create", "namespace", WORK)
    yield op, {"metrics": str(metrics), "sa": sa, **env}
    cluster.kubectl("delete", "rp", "rbac-proof", "--ignore-not-found")
    op.stop()
    config = env.get("READINESS_WEBHOOK_CONFIGURATION", "")
    if config:
        cluster.kubectl("delete", "validatingwebhookconfiguration", config, "--ignore-not-found")
    subprocess_helm(["uninstall", RELEASE, "-n", NS], cluster)
    log = op.logs()
    assert "Traceback" not in log, log[-5000:]


def subprocess_helm(args: list[str], cluster: Cluster) -> None:
    import subprocess

    result = subprocess.run(["helm", "--kubeconfig", str(cluster.kubeconfig), *args], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr


def test_chart_service_account_can_do_the_whole_job(chart_sa_operator: tuple[OperatorProcess, dict[str, str]],
                                                    crds: Cluster) -> None:
    op, info = chart_sa_operator
    cluster = crds
    metrics = f"http://127.0.0.1:{info['metrics']}"
    eventually(lambda: http_status(f"{metrics}/readyz") == 200, timeout=60, what="sole replica becomes active")
    config = info["READINESS_WEBHOOK_CONFIGURATION"]
    # Webhook configuration written by the ServiceAccount, with the CA of the Secret it created.
    eventually(lambda: cluster.kubectl("get", "validatingwebhookconfiguration", config, check=False).returncode == 0,
               what="webhook configuration")
    secret = cluster.get_json("-n", NS, "secret", info["READINESS_WEBHOOK_CERT_SECRET"])
    vwc = cluster.get_json("validatingwebhookconfiguration", config)
    assert vwc["webhooks"][0]["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]

    cluster.apply(deployment("web", probe=False))
    cluster.apply(yaml.safe_dump({
        "apiVersion": "readiness.dev/v1alpha1", "kind": "ReadinessPolicy", "metadata": {"name": "rbac-proof"},
        "spec": {"mode": "Enforce", "match": {"namespaces": [WORK]},
                 "rules": {"probes": {"liveness": False, "readiness": True}}},
    }))
    # Status, PolicyReport, fail-safe VAP: all written with the chart's RBAC.
    eventually(lambda: (cluster.get_json("rp", "rbac-proof").get("status") or {}).get("noncompliant") == 1,
               what="status written")
    eventually(lambda: cluster.kubectl("-n", WORK, "get", "policyreport", "readiness-rbac-proof",
                                       check=False).returncode == 0, what="PolicyReport written")
    eventually(lambda: cluster.kubectl("get", "validatingadmissionpolicy", "readiness-rbac-proof",
                                       check=False).returncode == 0, what="VAP written")
    # Admission answered by this operator (the VAP or the webhook, whichever the API server asks first).
    with pytest.raises(KubectlError) as denied:
        cluster.apply(deployment("other", probe=False))
    assert "probe-readiness" in denied.value.stderr
    # An Event on a verdict flip.
    cluster.apply(deployment("web", probe=True))
    eventually(lambda: cluster.get_json("-n", WORK, "events",
                                        "--field-selector=involvedObject.name=web,reason=ReadinessCompliant")["items"],
               what="Event posted")
    # Its own metrics.
    with urllib.request.urlopen(f"{metrics}/metrics", timeout=5) as r:
        text = r.read().decode()
    assert "readiness_evaluations_total" in text and 'readiness_policy_targets{policy="rbac-proof"' in text
    assert "forbidden" not in op.logs().lower(), [line for line in op.logs().splitlines() if "orbidden" in line][:5]


PEERING_CRD = REPO_ROOT / "charts" / "readiness-operator" / "crds" / "kopf.dev_clusterkopfpeerings.yaml"


@pytest.fixture
def two_replicas(crds: Cluster, tmp_path: Path) -> Iterator[list[tuple[OperatorProcess, int]]]:
    cluster = crds
    cluster.kubectl("apply", "-f", str(PEERING_CRD))
    cluster.kubectl("wait", "--for=condition=established", "crd", "clusterkopfpeerings.kopf.dev", "--timeout=30s")
    eventually(lambda: cluster.apply("apiVersion: kopf.dev/v1\nkind: ClusterKopfPeering\nmetadata: {name: ha-e2e}\n"),
               what="peering object")
    replicas = []
    for i in range(2):
        port = free_port()
        op = OperatorProcess(cluster.kubeconfig, tmp_path / f"replica-{i}.log", "--peering", "ha-e2e",
                             "--metrics-port", str(port), env={"POD_ID": f"replica-{i}"}).start()
        replicas.append((op, port))
    yield replicas
    cluster.kubectl("delete", "rp", "ha", "--ignore-not-found", "--wait=false")
    for op, _ in replicas:
        op.stop()


def test_two_replicas_exactly_one_acts_and_the_other_takes_over(two_replicas: list[tuple[OperatorProcess, int]],
                                                               crds: Cluster) -> None:
    cluster = crds
    cluster.kubectl("create", "namespace", "ha-e2e")

    def active() -> list[int]:
        return [i for i, (_, port) in enumerate(two_replicas) if http_status(f"http://127.0.0.1:{port}/readyz") == 200]

    leader = eventually(lambda: active() if len(active()) == 1 else None, timeout=60, what="exactly one active replica")[0]
    ha_deploy = deployment("web", probe=False).replace(f"namespace: {WORK}", "namespace: ha-e2e")
    cluster.apply(ha_deploy)
    cluster.apply(yaml.safe_dump({
        "apiVersion": "readiness.dev/v1alpha1", "kind": "ReadinessPolicy", "metadata": {"name": "ha"},
        "spec": {"match": {"namespaces": ["ha-e2e"]}, "rules": {"probes": {"liveness": False, "readiness": True}}},
    }))
    eventually(lambda: (cluster.get_json("rp", "ha").get("status") or {}).get("noncompliant") == 1, what="evaluated")
    standby_log = two_replicas[1 - leader][0].logs()
    assert "policy ha:" not in standby_log  # the standby wrote no status

    two_replicas[leader][0].kill()
    eventually(lambda: active() == [1 - leader], timeout=90, what="the standby takes over")
    cluster.apply(ha_deploy.replace("image: app:1.0", "image: app:1.0\n        readinessProbe: {tcpSocket: {port: 8080}}"))
    eventually(lambda: (cluster.get_json("rp", "ha").get("status") or {}).get("compliant") == 1, timeout=60,
               what="the new active replica reconciles")
