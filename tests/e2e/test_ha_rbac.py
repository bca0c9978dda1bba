"""Two replicas with the chart's ServiceAccount: both Ready and serving admission, one writes (issue 11).

The chart is installed (its pods stay Pending: no nodes); two operator processes then run locally
with its ServiceAccount's token, its environment and its leader-election Lease, each with its own
webhook and metrics port. Tests run in file order and share the two replicas.
"""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from kubernetes.client import ApiException

from tests.support.admission import deployment_review, post_review
from tests.support.cluster import REPO_ROOT, Cluster, KubectlError, eventually
from tests.support.operator import OperatorProcess, free_port
from tests.support.vap import held_policies, holds

pytestmark = pytest.mark.e2e

CHART = REPO_ROOT / "charts" / "readiness-operator"
RELEASE, NS, WORK = "rbac-proof", "rbac-proof", "rbac-work"
LEASE_DURATION = 15.0  # the operator's (kube/leadership.py), for the failover bound


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return int(r.status), r.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()
    except OSError:
        return 0, ""


def deployment_obj(name: str, probe: bool, namespace: str = WORK) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": "app:1.0"}
    if probe:
        container["readinessProbe"] = {"tcpSocket": {"port": 8080}}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}}},
    }


def deployment(name: str, probe: bool) -> str:
    return yaml.safe_dump(deployment_obj(name, probe))


def policy(name: str, mode: str = "Enforce") -> str:
    return yaml.safe_dump({
        "apiVersion": "readiness.dev/v1alpha1", "kind": "ReadinessPolicy", "metadata": {"name": name},
        "spec": {"mode": mode, "match": {"namespaces": [WORK]},
                 "rules": {"probes": {"liveness": False, "readiness": True}}},
    })


def helm(args: list[str], cluster: Cluster) -> None:
    result = subprocess.run(["helm", "--kubeconfig", str(cluster.kubeconfig), *args], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr


@dataclass
class Replica:
    name: str
    webhook: int
    metrics: int
    process: OperatorProcess

    def ready(self) -> bool:
        return http_get(f"http://127.0.0.1:{self.metrics}/readyz")[0] == 200

    def metric(self, sample: str) -> float | None:
        """One sample's value from /metrics (None when the series is absent)."""
        _, text = http_get(f"http://127.0.0.1:{self.metrics}/metrics")
        for line in text.splitlines():
            if line.startswith(sample + " "):
                return float(line.rsplit(" ", 1)[1])
        return None


@dataclass
class HA:
    cluster: Cluster
    lease: str
    env: dict[str, str]
    kubeconfig: Path
    tmp: Path
    ca_pem: bytes = b""
    replicas: dict[str, Replica] = field(default_factory=dict)  # the current process of each name
    started: list[Replica] = field(default_factory=list)  # every process, for the log checks

    def start(self, name: str, webhook: int, webhook_url_port: int) -> Replica:
        metrics = free_port()
        env = {**self.env, "READINESS_POD_NAME": name, "READINESS_WEBHOOK_PORT": str(webhook),
               "READINESS_WEBHOOK_URL": f"https://127.0.0.1:{webhook_url_port}"}
        op = OperatorProcess(self.kubeconfig, self.tmp / f"{name}.log", "--webhook-port", str(webhook),
                             "--metrics-port", str(metrics), "--leader-election-lease", self.lease, env=env).start()
        replica = self.replicas[name] = Replica(name, webhook, metrics, op)
        self.started.append(replica)
        return replica

    def holder(self) -> str:
        result = self.cluster.kubectl("-n", NS, "get", "lease", self.lease, "-o", "json", check=False)
        return str(json.loads(result.stdout)["spec"].get("holderIdentity") or "") if result.returncode == 0 else ""

    def leader(self) -> Replica | None:
        holder = self.holder()
        return next((r for r in self.replicas.values() if holder.startswith(r.name + "_")), None)

    def events(self, name: str, reason: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.cluster.get_json(
            "-n", WORK, "events", f"--field-selector=involvedObject.name={name},reason={reason}")["items"]
        return items


@pytest.fixture(scope="module")
def ha(crds: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HA]:
    """helm install the chart, then run replica-a (which takes the Lease) and replica-b with its token.

    Both get the chart's environment; the webhook configuration the leader writes points the API
    server at replica-b's port (one URL only on loopback), so admission through the API server keeps
    working while replica-a is killed below. Each port also answers direct AdmissionReviews.
    """
    cluster = crds
    tmp = tmp_path_factory.mktemp("ha")
    helm(["install", RELEASE, str(CHART), "-n", NS, "--create-namespace", "--wait=false"], cluster)
    chart_deploy = cluster.get_json("-n", NS, "deployment", "-l", f"app.kubernetes.io/instance={RELEASE}")["items"][0]
    pod = chart_deploy["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (lease_arg,) = [a for a in container["args"] if a.startswith("--leader-election-lease=")]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    env.update({"READINESS_NAMESPACE": NS, "READINESS_WEBHOOK_ADDR": "127.0.0.1"})
    env.pop("HOME", None)
    kubeconfig = cluster.token_kubeconfig(NS, pod["serviceAccountName"], tmp)
    cluster.kubectl("create", "namespace", WORK)
    setup = HA(cluster, lease_arg.split("=", 1)[1], env, kubeconfig, tmp)
    try:  # a replica that fails to start must not leave the other running for the modules after this one
        b_port = free_port()
        a = setup.start("replica-a", free_port(), b_port)
        eventually(lambda: setup.holder().startswith("replica-a_"), timeout=60, what="replica-a holds the Lease")
        setup.start("replica-b", b_port, b_port)
        secret = cluster.get_json("-n", NS, "secret", env["READINESS_WEBHOOK_CERT_SECRET"])
        setup.ca_pem = base64.b64decode(secret["data"]["ca.crt"])
        assert a.process.process is not None
        yield setup
    finally:
        for name in ("rbac-proof", "ha-delete"):
            cluster.kubectl("delete", "rp", name, "--ignore-not-found", "--timeout=30s", check=False)
        for replica in setup.started:
            replica.process.stop()
        logs = {str(r.process.log_path.name): r.process.logs() for r in setup.started}
        cluster.kubectl("delete", "namespace", WORK, "--ignore-not-found", "--wait=false")
        helm(["uninstall", RELEASE, "-n", NS], cluster)
    for name, log in logs.items():
        assert "Traceback" not in log, f"{name}: {log[-5000:]}"


def test_both_replicas_are_ready_and_exactly_one_holds_the_lease(ha: HA) -> None:
    a, b = ha.replicas["replica-a"], ha.replicas["replica-b"]
    eventually(lambda: a.ready() and b.ready(), timeout=60, what="both replicas Ready")
    assert "leader" in http_get(f"http://127.0.0.1:{a.metrics}/readyz")[1]
    assert "standby" in http_get(f"http://127.0.0.1:{b.metrics}/readyz")[1]
    assert ha.leader() is a
    assert (a.metric("readiness_leader"), b.metric("readiness_leader")) == (1.0, 0.0)
    # Each replica, the standby too, keeps every Deployment itself (its own LIST+WATCH, with the
    # chart's ServiceAccount token).
    deployments = len(ha.cluster.get_json("deployments", "-A")["items"])
    for replica in (a, b):
        eventually(lambda r=replica: r.metric('readiness_watched_objects{kind="deployments"}') == deployments,
                   timeout=30, what="every Deployment kept")


def test_chart_service_account_can_do_the_whole_job_and_only_the_leader_writes(ha: HA) -> None:
    cluster, a, b = ha.cluster, ha.replicas["replica-a"], ha.replicas["replica-b"]
    config = ha.env["READINESS_WEBHOOK_CONFIGURATION"]
    # The chart created the webhook configuration without webhooks; the leader wrote them in with the
    # ServiceAccount (get + update), with the CA of the shared Secret.
    eventually(lambda: cluster.get_json("validatingwebhookconfiguration", config).get("webhooks"),
               what="webhook configuration filled in")
    vwc = cluster.get_json("validatingwebhookconfiguration", config)
    assert vwc["metadata"]["annotations"]["meta.helm.sh/release-name"] == RELEASE  # still the release's
    assert base64.b64decode(vwc["webhooks"][0]["clientConfig"]["caBundle"]) == ha.ca_pem
    assert "wrote ValidatingWebhookConfiguration" in a.process.logs()
    assert "wrote ValidatingWebhookConfiguration" not in b.process.logs()

    cluster.apply(deployment("web", probe=False))
    cluster.apply(policy("rbac-proof"))
    # Status, PolicyReport, fail-safe VAP: all written with the chart's RBAC.
    eventually(lambda: (cluster.get_json("rp", "rbac-proof").get("status") or {}).get("noncompliant") == 1,
               what="status written")
    eventually(lambda: cluster.kubectl("-n", WORK, "get", "policyreport", "readiness-rbac-proof",
                                       check=False).returncode == 0, what="PolicyReport written")
    eventually(lambda: holds(cluster, "rbac-proof", ha.env["READINESS_VAP_NAME"]), what="VAP written")
    # Admission through the API server (the VAP or replica-b's webhook, whichever is asked first).
    with pytest.raises(KubectlError) as denied:
        cluster.apply(deployment("other", probe=False))
    assert "probe-readiness" in denied.value.stderr
    # One Event per verdict flip, from the leader alone.
    cluster.apply(deployment("web", probe=True))
    eventually(lambda: ha.events("web", "ReadinessCompliant"), what="Event posted")
    in_work = f'readiness_namespace_compliant{{namespace="{WORK}",policy="rbac-proof"}}'
    eventually(lambda: b.metric('readiness_policy_targets{policy="rbac-proof",verdict="compliant"}') is None
               and a.metric('readiness_policy_targets{policy="rbac-proof",verdict="compliant"}') == 1.0
               and b.metric(in_work) is None and a.metric(in_work) == 1.0,
               what="the leader's verdict metrics (and none on the standby: no double counting)")
    time.sleep(3)  # a second writer would have posted its own Event by now
    assert len(ha.events("web", "ReadinessCompliant")) == 1
    assert "policy rbac-proof:" in a.process.logs() and "policy rbac-proof:" not in b.process.logs()
    for replica in (a, b):
        log = replica.process.logs()
        assert "forbidden" not in log.lower(), [line for line in log.splitlines() if "orbidden" in line][:5]


def test_admission_answers_from_either_replica(ha: HA) -> None:
    for replica in ha.replicas.values():
        denied = post_review(replica.webhook, deployment_review(deployment_obj("new", probe=False)), ha.ca_pem)
        assert not denied["allowed"] and "probe-readiness" in denied["status"]["message"], replica.name
        allowed = post_review(replica.webhook, deployment_review(deployment_obj("new", probe=True)), ha.ca_pem)
        assert allowed["allowed"], replica.name


FOREIGN = [
    {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
     "metadata": {"name": "someone-elses", "labels": {"app.kubernetes.io/managed-by": "readiness-operator"}},
     "spec": {"matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                                      "operations": ["CREATE"], "resources": ["configmaps"]}]},
              "validations": [{"expression": "true"}]}},
    {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
     "metadata": {"name": "someone-elses"}, "spec": {"policyName": "someone-elses", "validationActions": ["Deny"]}},
    {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
     "metadata": {"name": "someone-elses"}, "webhooks": []},
]


def test_the_service_account_changes_only_its_own_admission_objects(ha: HA) -> None:
    """RBAC by name (issue #13 item 7): foreign admission objects are out of the ServiceAccount's reach,
    even one carrying our label; its own fixed-name VAP and binding it can read and replace."""
    cluster, as_operator = ha.cluster, Cluster(ha.kubeconfig)
    api = kubernetes.client.CustomObjectsApi(kubernetes.config.new_client_from_config(config_file=str(ha.kubeconfig)))
    group = "admissionregistration.k8s.io"
    for obj in FOREIGN:
        cluster.apply(json.dumps(obj))
    try:
        for obj in FOREIGN:
            kind, name = obj["kind"].lower(), obj["metadata"]["name"]
            plural = {"validatingadmissionpolicy": "validatingadmissionpolicies"}.get(kind, kind + "s")
            current = cluster.get_json(kind, name)
            label = {"metadata": {"labels": {"taken": "over"}}}
            attempts: dict[str, Callable[[], object]] = {  # one request each, straight to the API server
                "get": partial(api.get_cluster_custom_object, group, "v1", plural, name),
                "update": partial(api.replace_cluster_custom_object, group, "v1", plural, name, current),
                "patch": partial(api.patch_cluster_custom_object, group, "v1", plural, name, label),
                "delete": partial(api.delete_cluster_custom_object, group, "v1", plural, name),
            }
            for verb, attempt in attempts.items():
                with pytest.raises(ApiException) as refused:
                    attempt()
                assert refused.value.status == 403, (kind, verb, refused.value)
                assert f"cannot {verb} resource" in str(refused.value.body), (kind, verb, refused.value.body)
            assert cluster.get_json(kind, name)["metadata"].get("labels") == obj["metadata"].get("labels")
        ours = ha.env["READINESS_VAP_NAME"]
        eventually(lambda: holds(cluster, "rbac-proof", ours), what="our merged VAP")
        config = ha.env["READINESS_WEBHOOK_CONFIGURATION"]
        for kind, name in (("validatingadmissionpolicy", ours), ("validatingadmissionpolicybinding", ours),
                           ("validatingwebhookconfiguration", config)):
            mine = as_operator.get_json(kind, name)  # get and update: granted on exactly this name
            mine["metadata"].setdefault("annotations", {})["readiness.dev/touched"] = "by the operator's account"
            as_operator.kubectl("replace", "-f", "-", input=json.dumps(mine))
            plural = {"validatingadmissionpolicy": "validatingadmissionpolicies"}.get(kind, kind + "s")
            with pytest.raises(ApiException) as refused:  # but not delete, not even its own
                api.delete_cluster_custom_object(group, "v1", plural, name)
            assert refused.value.status == 403 and "cannot delete resource" in str(refused.value.body), kind
        for obj in FOREIGN:  # nor create any, of any name: the chart creates ours
            fresh = {**obj, "metadata": {**obj["metadata"], "name": "operator-made"}}
            plural = {"ValidatingAdmissionPolicy": "validatingadmissionpolicies"}.get(obj["kind"], obj["kind"].lower() + "s")
            with pytest.raises(ApiException) as refused:
                api.create_cluster_custom_object(group, "v1", plural, fresh)
            assert refused.value.status == 403 and "cannot create resource" in str(refused.value.body), obj["kind"]
        denied = as_operator.kubectl("get", "validatingadmissionpolicies", check=False)  # no list
        assert denied.returncode != 0 and "cannot list resource" in denied.stderr, denied.stderr
    finally:
        for obj in FOREIGN:
            cluster.kubectl("delete", obj["kind"].lower(), obj["metadata"]["name"], "--ignore-not-found")


def test_a_deleted_admission_object_is_reported_once_and_helm_upgrade_restores_it(ha: HA) -> None:
    """The operator may not create its VAP: gone, it says so once (naming it and the chart value),
    keeps running and writes it again once `helm upgrade` has restored the chart's placeholder."""
    cluster, vap = ha.cluster, ha.env["READINESS_VAP_NAME"]
    leader = ha.leader()
    assert leader is not None
    cluster.kubectl("delete", "validatingadmissionpolicy", vap)
    cluster.apply(policy("ha-missing"))  # a change: the leader writes (tries to)
    error = f"ValidatingAdmissionPolicy {vap} does not exist and the operator may not create it"
    eventually(lambda: error in leader.process.logs(), what="the leader reporting the missing VAP")
    cluster.kubectl("delete", "rp", "ha-missing", "--timeout=30s")  # another change: tried again, quietly
    config = ha.env["READINESS_WEBHOOK_CONFIGURATION"]
    webhooks = cluster.get_json("validatingwebhookconfiguration", config)["webhooks"]
    helm(["upgrade", RELEASE, str(CHART), "-n", NS, "--reuse-values", "--wait=false"], cluster)
    # The upgrade left what the operator wrote into the webhook configuration (the chart's has none).
    assert cluster.get_json("validatingwebhookconfiguration", config)["webhooks"] == webhooks
    cluster.kubectl("annotate", "rp", "rbac-proof", "readiness.dev/poke=1")  # wakes the writer (else: within 30 s)
    eventually(lambda: holds(cluster, "rbac-proof", vap), timeout=60, what="the restored VAP filled in again")
    assert held_policies(cluster, vap) == ["rbac-proof"]
    logs = [r.process.logs() for r in ha.replicas.values()]
    assert [log.count(error) for log in logs] == [1 if r is leader else 0 for r in ha.replicas.values()]
    assert leader.process.process is not None and leader.process.process.poll() is None  # still running


def test_deleting_a_policy_works_with_two_replicas(ha: HA) -> None:
    cluster, vap = ha.cluster, ha.env["READINESS_VAP_NAME"]
    cluster.apply(policy("ha-delete"))
    eventually(lambda: holds(cluster, "ha-delete", vap), what="merged into the VAP")
    eventually(lambda: cluster.kubectl("-n", WORK, "get", "policyreport", "readiness-ha-delete",
                                       check=False).returncode == 0, what="PolicyReport written")
    cluster.kubectl("delete", "rp", "ha-delete", "--timeout=30s")  # both replicas' finalizer handling ends
    eventually(lambda: held_policies(cluster, vap) == ["rbac-proof"], what="its rules removed by the leader")
    eventually(lambda: cluster.kubectl("-n", WORK, "get", "policyreport", "readiness-ha-delete",
                                       check=False).returncode != 0, what="PolicyReport deleted")


class AdmissionLoop(threading.Thread):
    """AdmissionReviews against one replica, back to back, until stopped; counts failures."""

    def __init__(self, port: int, ca_pem: bytes) -> None:
        super().__init__(daemon=True)
        self.port, self.ca_pem = port, ca_pem
        self.sent, self.failures = 0, list[str]()
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            self.sent += 1
            try:
                answer = post_review(self.port, deployment_review(deployment_obj(f"loop-{self.sent}", probe=False)),
                                     self.ca_pem, timeout=5)
                if answer["allowed"] or "probe-readiness" not in answer["status"]["message"]:
                    self.failures.append(f"wrong answer: {answer}")
            except Exception as exc:
                self.failures.append(repr(exc))
            time.sleep(0.02)


def test_sigkill_of_the_leader_fails_no_admission_and_the_standby_takes_over(ha: HA) -> None:
    cluster, a, b = ha.cluster, ha.replicas["replica-a"], ha.replicas["replica-b"]
    assert ha.leader() is a
    loop = AdmissionLoop(b.webhook, ha.ca_pem)
    loop.start()
    time.sleep(1)
    killed_at = time.monotonic()
    a.process.stop(signal.SIGKILL)
    eventually(lambda: ha.leader() is b, timeout=LEASE_DURATION + 10, interval=0.1, what="replica-b takes the Lease")
    failover = time.monotonic() - killed_at
    print(f"failover after SIGKILL of the leader: {failover:.1f}s")
    # The lease duration from the standby's last sight of a renewal (which lags the renewal by up to one
    # jittered retry period), plus the retry period after it, plus slack for a loaded machine.
    assert failover <= LEASE_DURATION + 2 * 2.4 + 3
    assert "took over Lease" in b.process.logs()
    # Its writes appear: a new Deployment is counted in status, with one Event for its verdict.
    cluster.apply(deployment("web2", probe=True))
    eventually(lambda: (cluster.get_json("rp", "rbac-proof").get("status") or {}).get("compliant") == 2,
               timeout=30, what="the new leader reconciles")
    eventually(lambda: ha.events("web2", "ReadinessCompliant"), what="the new leader's Event")
    eventually(lambda: b.metric(f'readiness_namespace_compliant{{namespace="{WORK}",policy="rbac-proof"}}') == 2.0,
               what="the new leader exports the verdict series")
    time.sleep(2)
    loop.halt.set()
    loop.join(10)
    assert loop.sent > 50 and loop.failures == [], loop.failures[:5]
    assert len(ha.events("web", "ReadinessCompliant")) == 1  # the new leader did not repeat the old flip
    assert len(ha.events("web2", "ReadinessCompliant")) == 1
    assert b.metric("readiness_leader") == 1.0


def test_graceful_stop_of_the_leader_hands_over_at_once(ha: HA) -> None:
    cluster, b = ha.cluster, ha.replicas["replica-b"]
    a = ha.start("replica-a", free_port(), b.webhook)  # a new process (new identity) comes back as a standby
    eventually(a.ready, timeout=60, what="the restarted replica is Ready")
    assert ha.leader() is b and a.metric("readiness_leader") == 0.0
    stopped_at = time.monotonic()
    b.process.stop(signal.SIGTERM)
    handover = time.monotonic() - stopped_at
    eventually(lambda: ha.leader() is a, timeout=10, interval=0.1, what="replica-a takes the released Lease")
    took = time.monotonic() - stopped_at
    print(f"handover after SIGTERM of the leader: {took:.1f}s (the leader's shutdown took {handover:.1f}s)")
    assert took - handover < 2 * 2.4 + 1, "the Lease was not released: the standby waited for it to expire"
    assert "released Lease" in b.process.logs()
    assert "took over Lease" not in a.process.logs()
    cluster.apply(deployment("web3", probe=True))
    eventually(lambda: (cluster.get_json("rp", "rbac-proof").get("status") or {}).get("compliant") == 3,
               timeout=30, what="the new leader reconciles")
    eventually(lambda: ha.events("web3", "ReadinessCompliant"), what="the new leader's Event")
    time.sleep(2)
    assert [len(ha.events(name, "ReadinessCompliant")) for name in ("web", "web2", "web3")] == [1, 1, 1]
