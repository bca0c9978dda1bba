"""Fault tests (issue 7, part 3) against a real, private control plane and a real operator process.

The module runs its own control plane (its API server is stopped and started again by one test, and
thousands of Deployments are created by others, which must not disturb the shared session cluster).
Bulk Deployments are `paused` with 0 replicas so the controller manager creates no ReplicaSets.
Two operator replicas at once and Prometheus outages are covered elsewhere (test_slo.py).
"""

from __future__ import annotations

import json
import select
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.cluster import REPO_ROOT, Cluster, KubectlError, eventually, local_cluster
from tests.support.faults import audit, start_apiserver, stop_apiserver
from tests.support.operator import OperatorProcess

pytestmark = pytest.mark.e2e

NONCOMPLIANT, COMPLIANT = "ReadinessNoncompliant", "ReadinessCompliant"
STATUS_LIMIT = 16 * 1024  # bytes of `kubectl get rp X -o json`


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plane(tools: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, Path]]:
    """A private control plane (cluster, state directory) with the repository's CRDs."""
    state = tmp_path_factory.mktemp("fault-plane")
    with local_cluster(state) as cluster:
        cluster.kubectl("apply", "-f", str(REPO_ROOT / "crds"))
        cluster.kubectl("wait", "--for=condition=established", "--timeout=60s", "crd",
                        "readinesspolicies.readiness.dev", "policyreports.wgpolicyk8s.io")
        yield cluster, state


@pytest.fixture(scope="module")
def private_cluster(plane: tuple[Cluster, Path]) -> Cluster:
    return plane[0]


@pytest.fixture(scope="module")
def operator(private_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    log = tmp_path_factory.mktemp("fault-operator") / "operator.log"
    op = OperatorProcess(private_cluster.kubeconfig, log, "--log-format", "full").start()
    yield op
    was_alive = alive(op)
    if not was_alive:
        op.start()
    try:
        # Tests delete their policies without waiting: kopf stops a policy's daemon within its
        # cancellation timeout (10 s), so the finalizers go in parallel here, while it still runs.
        eventually(lambda: not private_cluster.kubectl("get", "rp", "-o", "name").stdout.strip(), timeout=90,
                   what="every fault- policy deleted while the operator runs")
    finally:
        op.stop()
    assert was_alive, f"operator died during the fault tests:\n{op.logs()[-5000:]}"


# --- helpers ----------------------------------------------------------------------------------


def deployment(namespace: str, name: str, *, probe: bool = False, resources: bool = False,
               image: str = "registry.example/app:1.2.3", labels: dict[str, str] | None = None,
               pod: dict[str, Any] | None = None, container: dict[str, Any] | None = None) -> dict[str, Any]:
    """A paused Deployment with 0 replicas (no ReplicaSets, no pods) and one container."""
    app = name[:63].rstrip(".-")
    main: dict[str, Any] = {"name": "app", "image": image}
    if probe:
        main["readinessProbe"] = {"httpGet": {"path": "/ready", "port": 8080}}
    if resources:
        main["resources"] = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}
    main.update(container or {})
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {
            "replicas": 0, "paused": True,
            "selector": {"matchLabels": {"app": app}},
            "template": {"metadata": {"labels": {"app": app, **(labels or {})}},
                         "spec": {"containers": [main], **(pod or {})}},
        },
    }


def policy(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "readiness.dev/v1alpha1", "kind": "ReadinessPolicy", "metadata": {"name": name},
            "spec": spec}


def manifest(*docs: dict[str, Any]) -> str:
    """A `kind: List` as JSON, so that strings such as "1e3" stay strings (YAML would make a number)."""
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": list(docs)})


def apply_many(cluster: Cluster, docs: list[dict[str, Any]]) -> None:
    """Create many objects quickly: concurrent POSTs (`kubectl create -f` sends them one by one)."""
    cluster.create_many(docs)


def status(cluster: Cluster, name: str) -> dict[str, Any]:
    return dict(cluster.get_json("rp", name).get("status") or {})


def counts(cluster: Cluster, name: str) -> tuple[int, int, int] | None:
    s = status(cluster, name)
    return (s["targets"], s["compliant"], s["noncompliant"]) if "targets" in s else None


def condition(cluster: Cluster, name: str, type_: str) -> dict[str, Any]:
    return dict({c["type"]: c for c in status(cluster, name).get("conditions") or []}.get(type_) or {})


def reports(cluster: Cluster, name: str) -> list[dict[str, Any]]:
    """Every PolicyReport the operator wrote for policy `name`, in all namespaces."""
    return list(cluster.get_json("policyreports", "-A", f"-l=readiness.dev/policy={name}")["items"])


def readiness_events(cluster: Cluster, namespace: str) -> Counter[tuple[str, str]]:
    """(Deployment name, reason) -> number of our verdict Events in the namespace."""
    items = cluster.get_json("-n", namespace, "events")["items"]
    return Counter((e["involvedObject"]["name"], e["reason"]) for e in items if e["reason"] in (NONCOMPLIANT, COMPLIANT))


def report_verdicts(items: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[bool, int]]:
    """(namespace, Deployment) -> (compliant, score) from PolicyReport results."""
    out: dict[tuple[str, str], tuple[bool, int]] = {}
    for report in items:
        for r in report["results"]:
            ref = r["resources"][0]
            out[(ref["namespace"], ref["name"])] = (r["properties"]["compliant"] == "true", int(r["properties"]["score"]))
    return out


def expected_verdicts(cluster: Cluster, policy_doc: dict[str, Any], tmp: Path,
                      kinds: str = "deployments") -> dict[tuple[str, str], tuple[bool, int]]:
    """What `readiness-operator audit` says about the cluster's current objects."""
    objects, policy_file = tmp / "objects.yaml", tmp / "policy.yaml"
    objects.write_text(cluster.kubectl("get", kinds, "-A", "-o", "yaml", timeout=120).stdout)
    policy_file.write_text(yaml.safe_dump(policy_doc))
    return {(r["namespace"], r["name"]): (r["compliant"], r["score"]) for r in audit(policy_file, objects)}


def delete_policy(cluster: Cluster, name: str) -> None:
    """Delete while the operator runs (its finalizer needs it); the operator fixture waits for it."""
    cluster.kubectl("delete", "rp", name, "--ignore-not-found", "--wait=false")


def alive(op: OperatorProcess) -> bool:
    return op.process is not None and op.process.poll() is None


def tracebacks(log: str) -> list[str]:
    """Each Traceback in `log` with the lines that follow it (for assertion messages)."""
    lines = log.splitlines()
    return ["\n".join(lines[i:i + 30]) for i, line in enumerate(lines) if "Traceback" in line]


# --- tests ------------------------------------------------------------------------------------


def test_policy_selecting_nothing(operator: OperatorProcess, private_cluster: Cluster) -> None:
    cluster = private_cluster
    ns, name = "fault-nothing", "fault-nothing"
    cluster.kubectl("create", "namespace", ns)
    cluster.apply(manifest(deployment(ns, "web")))
    cluster.apply(manifest(policy(name, {
        "match": {"namespaces": [ns], "selector": {"matchLabels": {"fault": "matches-nothing"}}},
        "rules": {"probes": {"readiness": True}, "replicas": {"min": 2}},
    })))
    try:
        eventually(lambda: condition(cluster, name, "Ready").get("status") == "True", what="Ready=True")
        s = status(cluster, name)
        assert (s["targets"], s["compliant"], s["noncompliant"], s["score"]) == (0, 0, 0, 100), s
        assert not s.get("worstOffenders"), s
        assert condition(cluster, name, "Compliant")["status"] == "True", s
        assert reports(cluster, name) == []
        assert readiness_events(cluster, ns) == Counter()
    finally:
        delete_policy(cluster, name)


def hostile_objects(ns: str) -> list[dict[str, Any]]:
    """Legal but odd objects: the API server accepts them, the operator must judge them calmly."""
    huge = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])  # 253 chars: the longest legal name
    assert len(huge) == 253
    sidecar = {"name": "sidecar", "image": "registry.example/sidecar:1", "restartPolicy": "Always"}
    recreate = deployment(ns, "recreate", probe=True, resources=True)
    recreate["spec"]["strategy"] = {"type": "Recreate"}
    recreate["metadata"]["annotations"] = {"readiness.dev/override": "x" * 10_000}  # a huge (unused) reason
    objects: list[dict[str, Any]] = [
        deployment(ns, huge, probe=True, resources=True, labels={"x" * 63: "y" * 63}),
        # quantities as users write them (the API server canonicalizes some of them)
        deployment(ns, "quantities", probe=True, container={"resources": {
            "requests": {"cpu": "500m", "memory": "129M", "ephemeral-storage": "1e3"},
            "limits": {"cpu": "1e3", "memory": "0.5Gi", "ephemeral-storage": "1.5e9"}}}),
        deployment(ns, "tiny-quantities", probe=True, container={"resources": {
            "requests": {"cpu": "1n", "memory": "1"}, "limits": {"memory": "0.001Ki"}}}),
        deployment(ns, "no-resources-exec-probes", container={
            "livenessProbe": {"exec": {"command": ["true"]}}, "readinessProbe": {"exec": {"command": ["true"]}},
            "startupProbe": {"grpc": {"port": 9000}}}),
        deployment(ns, "tcp-probe-sidecar", resources=True,
                   container={"readinessProbe": {"tcpSocket": {"port": "http"}},
                              "ports": [{"name": "http", "containerPort": 8080}]},
                   pod={"initContainers": [sidecar, {"name": "init", "image": "busybox"}]}),
        deployment(ns, "odd-pod", probe=True, resources=True, image="registry.example/app@sha256:" + "0" * 64, pod={
            "securityContext": {"runAsUser": 0, "runAsNonRoot": False},
            "affinity": {"podAntiAffinity": {}},
            "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway",
                                           "labelSelector": {}}],
            "terminationGracePeriodSeconds": 0}),
        deployment(ns, "many-containers", probe=True, resources=True, pod={"containers": [
            {"name": f"c{i}", "image": f"registry.example/c{i}:latest", "securityContext": {
                "privileged": True, "capabilities": {"add": ["ALL"], "drop": []}}} for i in range(30)]}),
        recreate,
        deployment(ns, "sts-named", probe=True, resources=True),
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "empty-selector", "namespace": ns},
         "spec": {"minAvailable": "100%", "selector": {}}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "no-selector", "namespace": ns},
         "spec": {"maxUnavailable": "0%"}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "expressions", "namespace": ns},
         "spec": {"maxUnavailable": 0, "selector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]}}},
        {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "ghost", "namespace": ns},
         "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "does-not-exist"},
                  "maxReplicas": 3}},
        {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "sts", "namespace": ns},
         "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "sts-named"},
                  "minReplicas": 5, "maxReplicas": 9,
                  "metrics": [{"type": "External", "external": {"metric": {"name": "queue"},
                                                                "target": {"type": "Value", "value": "1e3"}}}]}},
        {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "v1", "namespace": ns},
         "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "quantities"},
                  "maxReplicas": 4, "targetCPUUtilizationPercentage": 500}},
        {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "odd-metrics", "namespace": ns},
         "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "odd-pod"},
                  "minReplicas": 1, "maxReplicas": 1,
                  "metrics": [{"type": "Pods", "pods": {"metric": {"name": "rps"}, "target": {"type": "AverageValue",
                                                                                               "averageValue": "500m"}}},
                              {"type": "ContainerResource", "containerResource": {
                                  "name": "memory", "container": "app",
                                  "target": {"type": "AverageValue", "averageValue": "0.5Gi"}}}]}},
    ]
    return objects


HOSTILE_RULES: dict[str, Any] = {
    "probes": {"liveness": True, "readiness": True, "startup": True},
    "resources": {"requests": {"cpu": {"min": "0.5m", "max": "1e3"}, "memory": {"min": "0.5Ki", "max": "0.5Gi"}},
                  "limits": {"memory": {"max": "129M"}, "cpu": {"required": False, "max": "1e3"}}},
    "replicas": {"min": 1},
    "podDisruptionBudget": {"minAvailable": 1},
    "horizontalPodAutoscaler": {"minReplicas": 2, "maxReplicas": 3, "metrics": ["cpu"],
                                "targetUtilization": {"cpu": 80}},
    "securityContext": {},
    "antiAffinity": {"required": True},
    "images": {"forbidLatest": True},
    "rollingUpdate": {"required": True},
    "gracefulShutdown": {"minTerminationGracePeriodSeconds": 10},
}


def test_hostile_objects_never_crash_a_handler(operator: OperatorProcess, private_cluster: Cluster, tmp_path: Path) -> None:
    cluster = private_cluster
    ns, name, invalid = "fault-hostile", "fault-hostile", "fault-hostile-invalid"
    log_start = len(operator.logs())
    cluster.kubectl("create", "namespace", ns)
    # The API server rejects a Deployment without containers, so that oddity never reaches us.
    with pytest.raises(KubectlError, match="containers"):
        empty = deployment(ns, "no-containers")
        empty["spec"]["template"]["spec"] = {"containers": [], "initContainers": [{"name": "i", "image": "busybox"}]}
        cluster.kubectl("create", "-f", "-", input=manifest(empty))
    good = policy(name, {"mode": "Audit", "match": {"namespaces": [ns]}, "rules": HOSTILE_RULES})
    # Passes the CRD schema (weights keys may be any `slo:<name>`) but not the model: the SLO does
    # not exist. The operator must say so in status instead of crashing or retrying in a loop.
    bad = policy(invalid, {"match": {"namespaces": [ns]}, "rules": {"replicas": {"min": 2}},
                           "weights": {"slo:ghost": 5}})
    cluster.apply(manifest(good, bad))
    try:
        # Objects created after the first pass, so each one goes through the watch handlers live.
        eventually(lambda: condition(cluster, name, "Ready").get("status") == "True", what="hostile policy Ready")
        objects = hostile_objects(ns)
        cluster.apply(manifest(*objects))
        deployments = [o["metadata"]["name"] for o in objects if o["kind"] == "Deployment"]
        eventually(lambda: (counts(cluster, name) or (-1,))[0] == len(deployments), timeout=60,
                   what="every hostile Deployment judged")

        ready = eventually(lambda: condition(cluster, invalid, "Ready") or None, what="invalid policy status")
        assert (ready["status"], ready["reason"]) == ("False", "InvalidPolicy"), ready
        assert "slo:ghost" in ready["message"] and "spec." in ready["message"], ready
        assert status(cluster, invalid).get("targets", 0) == 0
        assert reports(cluster, invalid) == []

        # Every verdict equals the offline engine's over the same objects (PDBs and HPAs included).
        expected = {k: v for k, v in expected_verdicts(cluster, good, tmp_path, "deployments,pdb,hpa").items() if k[0] == ns}
        assert len(expected) == len(deployments)

        def verdicts_match() -> bool:
            got = report_verdicts(reports(cluster, name))
            assert got == expected, {k: (got.get(k), v) for k, v in expected.items() if got.get(k) != v}
            return True

        eventually(verdicts_match, timeout=30, what="reported verdicts equal the offline audit")
        # Born after the first pass: one verdict Event each, the 253-character name included.
        born = Counter({(d, COMPLIANT if expected[(ns, d)][0] else NONCOMPLIANT): 1 for d in deployments})
        eventually(lambda: readiness_events(cluster, ns) == born, timeout=10, what="one Event per hostile Deployment")
        s = status(cluster, name)
        assert condition(cluster, name, "Ready")["status"] == "True"
        assert s["noncompliant"] == sum(1 for c, _ in expected.values() if not c)
        assert len(json.dumps(s)) < STATUS_LIMIT
        # An HPA on a StatefulSet of the same name is not the Deployment's HPA.
        [sts] = [r for report in reports(cluster, name) for r in report["results"]
                 if r["resources"][0]["name"] == "sts-named" and r["rule"] == "hpa-present"]
        assert sts["result"] == "fail", sts

        assert alive(operator), operator.logs()[-5000:]
        log = operator.logs()[log_start:]
        assert not tracebacks(log), tracebacks(log)[:3]
        # The invalid policy is reported once, not re-parsed and re-written in a loop.
        version = cluster.get_json("rp", invalid)["metadata"]["resourceVersion"]
        cluster.kubectl("-n", ns, "annotate", "deployment", "quantities", "touched=1")
        time.sleep(2)
        assert cluster.get_json("rp", invalid)["metadata"]["resourceVersion"] == version
    finally:
        delete_policy(cluster, name)
        delete_policy(cluster, invalid)
    assert alive(operator)


def test_apiserver_restart_reconnects_and_converges(
    operator: OperatorProcess, plane: tuple[Cluster, Path]
) -> None:
    cluster, state = plane
    ns, name = "fault-apiserver", "fault-apiserver"
    canary = "fault-apiserver-canary"  # a policy of its own, to see the watches reconnect
    log_start = len(operator.logs())
    cluster.kubectl("create", "namespace", ns)
    cluster.kubectl("create", "namespace", canary)
    rules = {"probes": {"liveness": False, "readiness": True}}
    cluster.apply(manifest(policy(name, {"match": {"namespaces": [ns]}, "rules": rules}),
                           policy(canary, {"match": {"namespaces": [canary]}, "rules": rules})))
    try:
        eventually(lambda: counts(cluster, name) == (0, 0, 0) and counts(cluster, canary) == (0, 0, 0),
                   what="policies evaluated (nothing yet)")
        # Created after the first pass: each is born with one verdict Event.
        cluster.apply(manifest(*[deployment(ns, f"web-{i}") for i in range(3)], deployment(ns, "ok", probe=True)))
        born = Counter({("web-0", NONCOMPLIANT): 1, ("web-1", NONCOMPLIANT): 1, ("web-2", NONCOMPLIANT): 1,
                        ("ok", COMPLIANT): 1})
        eventually(lambda: counts(cluster, name) == (4, 1, 3), what="four judged")
        eventually(lambda: readiness_events(cluster, ns) == born, what="one Event per Deployment")
        time.sleep(1)  # let the pass finish its writes
        policy_version = cluster.get_json("rp", name)["metadata"]["resourceVersion"]
        report_version = cluster.get_json("-n", ns, "policyreport", f"readiness-{name}")["metadata"]["resourceVersion"]

        stop_apiserver(state)
        try:
            time.sleep(10)  # no change meanwhile; the operator's watches and writes fail
            assert alive(operator), f"operator died while the API server was down:\n{operator.logs()[-5000:]}"
        finally:
            start_apiserver(state)

        # A Deployment only the canary selects: once it is judged, the watches are back.
        cluster.apply(manifest(deployment(canary, "web")))
        eventually(lambda: counts(cluster, canary) == (1, 0, 1), timeout=90, what="watches reconnected")
        time.sleep(1)
        # Reconnecting (kopf lists everything again) rewrote nothing and repeated no Event.
        assert cluster.get_json("rp", name)["metadata"]["resourceVersion"] == policy_version
        assert cluster.get_json("-n", ns, "policyreport", f"readiness-{name}")["metadata"]["resourceVersion"] == \
            report_version
        assert readiness_events(cluster, ns) == born

        cluster.apply(manifest(deployment(ns, "web-0", probe=True)))  # the first change after the outage
        eventually(lambda: counts(cluster, name) == (4, 2, 2), timeout=30, what="converged after reconnecting")
        s = status(cluster, name)
        assert condition(cluster, name, "Ready")["status"] == "True"
        assert {o["name"] for o in s["worstOffenders"]} == {"web-1", "web-2"}
        expected_events = born + Counter({("web-0", COMPLIANT): 1})
        eventually(lambda: readiness_events(cluster, ns) == expected_events, what="exactly one more Event")
        time.sleep(3)  # a duplicate would come from a later pass: give it the time to show up
        assert readiness_events(cluster, ns) == expected_events

        [report] = reports(cluster, name)  # one report for the policy, in its namespace
        assert (report["metadata"]["namespace"], report["metadata"]["name"]) == (ns, f"readiness-{name}")
        keys = [(r["resources"][0]["name"], r["rule"]) for r in report["results"]]
        assert len(keys) == len(set(keys)) == 4
        assert report_verdicts([report]) == {(ns, "web-0"): (True, 100), (ns, "ok"): (True, 100),
                                             (ns, "web-1"): (False, 0), (ns, "web-2"): (False, 0)}
        assert len(reports(cluster, canary)) == 1
    finally:
        delete_policy(cluster, name)
        delete_policy(cluster, canary)
    # Handled errors during the outage may be logged with a traceback; none may have stopped it.
    assert alive(operator), f"operator died; tracebacks: {tracebacks(operator.logs()[log_start:])[:3]}"


KILL_NAMESPACES = [f"fault-kill-{i:02d}" for i in range(50)]
KILL_POLICY = policy("fault-kill", {
    "match": {"namespaces": KILL_NAMESPACES},
    "rules": {"probes": {"liveness": False, "readiness": True}, "resources": {}},
})


def kill_fleet() -> list[dict[str, Any]]:
    """6 Deployments in each of 50 namespaces: d-0 and d-4 comply, the others fail different checks.

    50 namespaces mean 50 PolicyReports written one after the other: the first pass takes a moment.
    """
    return [deployment(ns, f"d-{i}", probe=i % 4 in (0, 2), resources=i % 4 in (0, 1))
            for ns in KILL_NAMESPACES for i in range(6)]


def kill_mid_pass(cluster: Cluster, operator: OperatorProcess, policy_name: str) -> None:
    """SIGKILL the operator as soon as its first PolicyReport for the policy exists (watched, not polled)."""
    watch = subprocess.Popen(
        ["kubectl", f"--kubeconfig={cluster.kubeconfig}", "get", "policyreports", "-A", "--watch", "-o", "name",
         f"-l=readiness.dev/policy={policy_name}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        time.sleep(0.5)  # let the watch start (a report created before that is in its initial list anyway)
        cluster.apply(manifest(KILL_POLICY))
        assert watch.stdout is not None
        ready, _, _ = select.select([watch.stdout], [], [], 60)
        operator.kill()
        assert ready, "the operator wrote no PolicyReport within 60 s"
    finally:
        watch.kill()
        watch.wait(10)


def test_sigkill_mid_pass_then_restart_converges(operator: OperatorProcess, private_cluster: Cluster, tmp_path: Path) -> None:
    cluster = private_cluster
    name = KILL_POLICY["metadata"]["name"]
    apply_many(cluster, [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} for ns in KILL_NAMESPACES])
    apply_many(cluster, kill_fleet())
    try:
        kill_mid_pass(cluster, operator, name)
        at_kill = status(cluster, name)
        written = {r["metadata"]["namespace"] for r in reports(cluster, name)}
        print(f"SIGKILL after {len(written)} of {len(KILL_NAMESPACES)} PolicyReports")
        # The pass patches status first, then streams the reports: a kill while some reports are still
        # unwritten lands mid-pass.
        assert 0 < len(written) < len(KILL_NAMESPACES), \
            f"SIGKILL missed the first pass: status {at_kill}, {len(written)} reports written"

        # Changes while it is dead, in every namespace: d-0 breaks, d-1 is fixed, d-5 is deleted (its
        # results must not linger). `replace`, not `apply`: these were created without last-applied.
        # The controller manager may still be writing the fresh Deployments' status: retry a Conflict.
        changes = manifest(*[deployment(ns, "d-0", resources=True) for ns in KILL_NAMESPACES],
                           *[deployment(ns, "d-1", probe=True, resources=True) for ns in KILL_NAMESPACES])
        eventually(lambda: cluster.kubectl("replace", "-f", "-", input=changes), timeout=60, interval=1,
                   what="the changes made while the operator is dead")
        cluster.kubectl("delete", "deployments", "-A", "--field-selector=metadata.name=d-5", "--wait=false")
        operator.start()

        expected = {k: v for k, v in expected_verdicts(cluster, KILL_POLICY, tmp_path).items() if k[0] in KILL_NAMESPACES}
        noncompliant = sum(1 for c, _ in expected.values() if not c)
        assert (len(expected), noncompliant) == (250, 150), "the fleet as built: d-0, d-2, d-3 fail in each namespace"
        eventually(lambda: counts(cluster, name) == (250, 100, 150), timeout=90, what="status converged after SIGKILL")

        def no_stale_results() -> bool:
            items = reports(cluster, name)
            assert sorted((r["metadata"]["namespace"], r["metadata"]["name"]) for r in items) == \
                [(ns, f"readiness-{name}") for ns in KILL_NAMESPACES]
            got = report_verdicts(items)
            assert got == expected, {k: (got.get(k), expected.get(k)) for k in set(got) | set(expected)
                                     if got.get(k) != expected.get(k)}
            for report in items:  # one result per Deployment x check, summary consistent
                keys = [(r["resources"][0]["name"], r["rule"]) for r in report["results"]]
                assert len(keys) == len(set(keys)) == 5 * 4
                assert sum(report["summary"].values()) == len(keys)
            return True

        eventually(no_stale_results, timeout=30, what="one report per namespace, equal to the offline audit")
        # The first pass posts no Event for what it finds; after the restart, a flip is known only
        # where the killed pass had recorded the verdicts (its reports): one Event per flip there.
        flips = Counter({("d-0", NONCOMPLIANT): 1, ("d-1", COMPLIANT): 1})

        def events_once() -> bool:
            wrong = {ns: got for ns in KILL_NAMESPACES
                     if (got := readiness_events(cluster, ns)) != (flips if ns in written else Counter())}
            assert not wrong, wrong
            return True

        eventually(events_once, timeout=20, what="one Event per recorded flip, none repeated")
        assert alive(operator)
    finally:
        if not alive(operator):
            operator.start()
        delete_policy(cluster, name)
        cluster.kubectl("delete", "namespace", *KILL_NAMESPACES, "--wait=false")


def test_ten_thousand_findings_keep_the_status_small(operator: OperatorProcess, private_cluster: Cluster) -> None:
    cluster = private_cluster
    ns, name, n = "fault-findings", "fault-findings", 2000
    cluster.kubectl("create", "namespace", ns)
    # Bare Deployments on `:latest`: each fails 3 probes, 3 resources and the image tag check (info).
    apply_many(cluster, [deployment(ns, f"bulk-{i:04d}", image="registry.example/app:latest") for i in range(n)])
    cluster.apply(manifest(policy(name, {
        "match": {"namespaces": [ns]},
        "rules": {"probes": {"liveness": True, "readiness": True, "startup": True}, "resources": {},
                  "images": {"forbidLatest": True}},
    })))
    try:
        eventually(lambda: counts(cluster, name) == (n, 0, n), timeout=90, interval=1, what=f"{n} noncompliant")
        raw = cluster.kubectl("get", "rp", name, "-o", "json").stdout
        assert len(raw.encode()) < STATUS_LIMIT, len(raw.encode())
        s = json.loads(raw)["status"]
        assert len(s["worstOffenders"]) == 10  # the ten worst of 2,000, not all of them
        assert all(len(o["failedChecks"]) >= 6 for o in s["worstOffenders"]), s["worstOffenders"]

        def all_findings_reported() -> bool:
            summaries = [r["summary"] for r in reports(cluster, name)]
            failed, warned = sum(x["fail"] for x in summaries), sum(x["warn"] for x in summaries)  # warn: info checks
            assert (failed, warned) == (6 * n, n), (failed, warned)
            return True

        # Each poll reads every report (MBs of JSON): once a second leaves the operator the CPU to write them.
        eventually(all_findings_reported, timeout=60, interval=1, what="12,000 failed findings (and 2,000 warnings) reported")
        assert alive(operator)
    finally:
        # The namespace and its 2,000 Deployments go with the module's private control plane: deleting
        # them here would only keep the operator busy with 2,000 deletions while the module tears down.
        delete_policy(cluster, name)
