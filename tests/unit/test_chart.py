"""The Helm chart, the plain manifests rendered from it, and the operator image's entrypoint.

Needs `helm` (the session fixture `tools` builds it into the cache and puts it on PATH); no cluster.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from readiness_operator.admission.vap import placeholder_objects
from readiness_operator.kube.api import ours
from readiness_operator.settings import Settings
from tests.support.cluster import HACK, REPO_ROOT

CHART = REPO_ROOT / "charts" / "readiness-operator"
RELEASE, NAMESPACE = "readiness-operator", "readiness-system"
HARDENED_VALUES = CHART / "ci" / "hardened-values.yaml"
CHART_VERSION = yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]
KUBE_VERSION = "1.34.0"  # helm template's default (1.20) is below the chart's kubeVersion
CRD_KINDS = ["CustomResourceDefinition"] * 3
ADMISSION_KINDS = ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "ValidatingWebhookConfiguration"]
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"}


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["helm", *args], capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def template(*extra: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION, *extra,
                check=check)


def render(*extra: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(template(*extra).stdout) if doc]


def only(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def default_docs(tools: str) -> list[dict[str, Any]]:
    return render()


@pytest.fixture(scope="module")
def all_features_docs(tools: str) -> list[dict[str, Any]]:
    return render(
        "--set", "webhook.tls=cert-manager",
        "--set", "metrics.serviceMonitor.enabled=true",
        "--set", "metrics.prometheusRule.enabled=true",
        "--set", "metrics.grafanaDashboard.enabled=true",
        "--set", "autoscaling.enabled=true",
    )


# --- lint and render --------------------------------------------------------------------------


def test_helm_lint_is_clean(tools: str) -> None:
    for values in ([], ["-f", str(HARDENED_VALUES)], ["--set", "webhook.tls=cert-manager"]):
        result = helm("lint", "--strict", "--kube-version", KUBE_VERSION, str(CHART), *values)
        assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout


def test_default_render_has_every_object(default_docs: list[dict[str, Any]]) -> None:
    kinds = sorted(d["kind"] for d in default_docs)
    assert kinds == sorted([
        "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Deployment",
        "Service", "Service", "PodDisruptionBudget", *CRD_KINDS, *ADMISSION_KINDS,
    ])
    for doc in default_docs:
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/part-of"] == "readiness-operator"  # the admission objects: ours()
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["helm.sh/chart"] == f"readiness-operator-{CHART_VERSION}"
        if doc["kind"] not in {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", *ADMISSION_KINDS}:
            assert doc["metadata"]["namespace"] == NAMESPACE


def test_deployment_runs_the_operator_contract(default_docs: list[dict[str, Any]]) -> None:
    deployment = only(default_docs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == [
        "run", "--liveness=http://0.0.0.0:8080/healthz", "--webhook-port=9443", "--metrics-port=8000",
        "--log-format=json", "--leader-election-lease=readiness-operator",
    ]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["READINESS_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["READINESS_POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["READINESS_WEBHOOK_SERVICE"] == "readiness-operator-webhook"
    assert env["READINESS_WEBHOOK_PORT"] == "9443"
    assert env["READINESS_WEBHOOK_FAILURE_POLICY"] == "Ignore"
    assert env["READINESS_WEBHOOK_TIMEOUT_SECONDS"] == "5"
    assert env["READINESS_WEBHOOK_TLS"] == "self-signed"
    assert env["READINESS_WEBHOOK_CERT_SECRET"] == "readiness-operator-webhook-tls"
    assert env["READINESS_VAP"] == "true"
    assert env["READINESS_RESYNC_SECONDS"] == "3600"
    assert env["READINESS_LOG_LEVEL"] == "info"
    assert "READINESS_WEBHOOK_CERT_DIR" not in env
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"health": 8080, "webhook": 9443, "metrics": 8000}
    for probe in ("livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    # readiness = indexes filled and webhook serving, on every replica (not leadership)
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert pod["terminationGracePeriodSeconds"] >= 30
    assert container["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    term = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]

    services = {s["metadata"]["name"]: s for s in default_docs if s["kind"] == "Service"}
    webhook = services["readiness-operator-webhook"]["spec"]
    assert webhook["ports"] == [{"name": "https", "port": 443, "targetPort": "webhook", "protocol": "TCP"}]
    assert services["readiness-operator-metrics"]["spec"]["ports"][0]["port"] == 8000
    for svc in services.values():
        assert svc["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    pdb = only(default_docs, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]


def _containers(doc: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    spec = doc["spec"]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    pod = spec if doc["kind"] == "Pod" else spec["template"]["spec"]
    for container in [*pod.get("initContainers", []), *pod["containers"]]:
        yield pod, container


@pytest.mark.parametrize("values", [[], ["-f", str(HARDENED_VALUES)], ["--set", "webhook.tls=cert-manager"]])
def test_every_workload_container_is_hardened(tools: str, values: list[str]) -> None:
    workloads = [d for d in render(*values) if d["kind"] in WORKLOAD_KINDS]
    assert workloads
    for doc in workloads:
        for pod, container in _containers(doc):
            where = f"{doc['kind']}/{doc['metadata']['name']} container {container['name']}"
            ctx = container["securityContext"]
            assert pod["securityContext"]["runAsNonRoot"] is True, where
            assert ctx["runAsNonRoot"] is True and ctx["runAsUser"] == 65532, where
            assert ctx["readOnlyRootFilesystem"] is True, where
            assert ctx["allowPrivilegeEscalation"] is False, where
            assert ctx.get("privileged", False) is False, where
            assert ctx["capabilities"]["drop"] == ["ALL"] and not ctx["capabilities"].get("add"), where
            assert ctx["seccompProfile"]["type"] == "RuntimeDefault", where
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][kind]), where
            assert ":" in container["image"] and not container["image"].endswith(":latest"), where


def test_optional_features_render(all_features_docs: list[dict[str, Any]]) -> None:
    kinds = {d["kind"] for d in all_features_docs}
    assert {"Issuer", "Certificate", "ServiceMonitor", "PrometheusRule", "ConfigMap", "HorizontalPodAutoscaler"} <= kinds
    # cert-manager: the certificate is mounted, and the operator gets no Secret access at all (its
    # Role only holds the leader-election Lease).
    assert {r for rule in _rules(all_features_docs, "Role") for r in rule["resources"]} == {"leases"}
    deployment = only(all_features_docs, "Deployment")
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["READINESS_WEBHOOK_TLS"] == "cert-manager"
    assert env["READINESS_WEBHOOK_CERT_DIR"] == "/etc/readiness/webhook-certs"
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["webhook-certs"]["secret"]["secretName"] == "readiness-operator-webhook-tls"
    certificate = only(all_features_docs, "Certificate")
    assert "readiness-operator-webhook.readiness-system.svc" in certificate["spec"]["dnsNames"]
    assert certificate["spec"]["secretName"] == "readiness-operator-webhook-tls"
    dashboard = json.loads(only(all_features_docs, "ConfigMap")["data"]["readiness-operator.json"])
    assert dashboard["panels"]
    monitor = only(all_features_docs, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"


def test_prometheus_rule_alerts_are_valid_promql(all_features_docs: list[dict[str, Any]], tmp_path: Path) -> None:
    rule = only(all_features_docs, "PrometheusRule")
    alerts = {r["alert"]: r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert {"ReadinessOperatorDown", "ReadinessWebhookErrors", "ReadinessPrometheusUnreachable",
            "ReadinessNoncomplianceGrowing"} <= set(alerts)
    used = " ".join(alerts.values())
    for metric in ("readiness_admission_requests_total", "readiness_admission_duration_seconds_bucket",
                   "readiness_prometheus_query_errors_total", "readiness_reconcile_errors_total",
                   "readiness_policy_targets"):
        assert metric in used
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (hack/setup.sh installs Debian's prometheus)")
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    result = subprocess.run([promtool, "check", "rules", str(rules_file)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_standalone_mode(tools: str) -> None:
    docs = render("--set", "leaderElection.enabled=false", "--set", "replicaCount=1")
    (container,) = only(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert "--standalone" in container["args"] and not [a for a in container["args"] if "lease" in a]
    assert not [r for r in _rules(docs, "Role") if "leases" in r["resources"]]
    # Standalone with cert-manager needs no namespaced access at all.
    kinds = {d["kind"] for d in render("--set", "leaderElection.enabled=false", "--set", "replicaCount=1",
                                       "--set", "webhook.tls=cert-manager")}
    assert not {"Role", "RoleBinding"} & kinds


def test_lease_name_follows_the_release_and_can_be_set(tools: str) -> None:
    for extra, lease in (([], "other-readiness-operator"), (["--set", "leaderElection.leaseName=mine"], "mine")):
        docs = [d for d in yaml.safe_load_all(helm("template", "other", str(CHART), "-n", NAMESPACE, "--kube-version",
                                                   KUBE_VERSION, *extra).stdout) if d]
        (container,) = only(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
        assert f"--leader-election-lease={lease}" in container["args"]
        (named,) = [r for r in _rules(docs, "Role") if "leases" in r["resources"] and r.get("resourceNames")]
        assert named["resourceNames"] == [lease]


def disruptions_allowed(pdb: dict[str, Any], ready: int, expected: int) -> int:
    """The disruption controller's arithmetic for minAvailable (policy/v1): ready pods above it."""
    minimum = pdb["spec"]["minAvailable"]
    if isinstance(minimum, str) and minimum.endswith("%"):
        minimum = -(-int(minimum[:-1]) * expected // 100)  # rounded up, as the controller does
    return max(0, ready - int(minimum))


@pytest.mark.parametrize(
    ("values", "replicas"),
    [([], 2), (["-f", str(HARDENED_VALUES)], 3),
     (["--set", "replicaCount=3", "--set", "podDisruptionBudget.minAvailable=50%"], 3)],
)
def test_pdb_allows_one_disruption_with_every_replica_ready(tools: str, values: list[str], replicas: int) -> None:
    """Every replica is Ready (the readinessProbe is /readyz, which leader and standbys pass), so a
    drain may evict one pod; when only the leader was Ready the default PDB allowed none."""
    docs = render(*values)
    deployment, pdb = only(docs, "Deployment"), only(docs, "PodDisruptionBudget")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert deployment["spec"].get("replicas", replicas) == replicas
    assert disruptions_allowed(pdb, ready=replicas, expected=replicas) >= 1
    assert disruptions_allowed(pdb, ready=1, expected=replicas) == 0  # the old leader-only readiness


# --- values.schema.json -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--set", "webhook.failurePolicy=Sometimes"], "failurePolicy"),
        (["--set", "replicaCount=-1"], "replicaCount"),
        (["--set", "replicaCount=two"], "replicaCount"),
        (["--set", "unknownKey=1"], "unknownKey"),
        (["--set", "webhook.timeoutSeconds=31"], "timeoutSeconds"),
        (["--set", "webhook.timeoutSeconds=0"], "timeoutSeconds"),
        (["--set", "webhook.tls=letsencrypt"], "tls"),
        (["--set", "webhook.bogus=true"], "bogus"),
        (["--set", "logLevel=verbose"], "logLevel"),
        (["--set", "resyncSeconds=10"], "resyncSeconds"),
        (["--set", "image.pullPolicy=Sometimes"], "pullPolicy"),
        (["--set", "vap.enabled=maybe"], "enabled"),
        (["--set", "prometheus.url=prometheus:9090"], "url"),
        (["--set", "resources.limits.memory=lots"], "memory"),
        (["--set", "terminationGracePeriodSeconds=5"], "terminationGracePeriodSeconds"),
        (["--set", "webhook.excludeNamespaces[0]=Not_A_Namespace"], "excludeNamespaces"),
        (["--set", "podAntiAffinity=always"], "podAntiAffinity"),
        (["--set", "leaderElection.enabled=false"], "replicaCount"),  # standalone with 2 replicas
        (["--set", "leaderElection.leaseName=Not_A_Name"], "leaseName"),
    ],
)
def test_schema_rejects_bad_values(tools: str, args: list[str], field: str) -> None:
    result = template(*args, check=False)
    assert result.returncode != 0, f"{args} was accepted"
    assert "values don't meet the specifications of the schema" in result.stderr, result.stderr
    assert field in result.stderr, result.stderr


def test_schema_accepts_documented_values(tools: str) -> None:
    template(
        "--set", "webhook.failurePolicy=Fail", "--set", "webhook.timeoutSeconds=30",
        "--set", "webhook.excludeNamespaces={monitoring,istio-system}", "--set", "logLevel=debug",
        "--set", "prometheus.url=http://prometheus.monitoring:9090", "--set", "vap.enabled=false",
        "--set", "replicaCount=3", "--set", "podDisruptionBudget.minAvailable=50%",
        "--set", "webhook.tls=cert-manager", "--set", "webhook.certManager.issuerRef.name=ca",
        "--set", "webhook.certManager.issuerRef.kind=ClusterIssuer",
    )


# --- RBAC ------------------------------------------------------------------------------------


def _rules(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [rule for d in docs if d["kind"] == kind for rule in d["rules"]]


def test_rbac_is_least_privilege(default_docs: list[dict[str, Any]], all_features_docs: list[dict[str, Any]]) -> None:
    for docs in (default_docs, all_features_docs):
        for kind in ("ClusterRole", "Role"):
            for rule in _rules(docs, kind):
                assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule
                assert "*" not in rule["apiGroups"], rule
                assert not {"escalate", "bind", "impersonate", "deletecollection"} & set(rule["verbs"]), rule
                assert not rule.get("nonResourceURLs"), rule
        cluster_resources = {r for rule in _rules(docs, "ClusterRole") for r in rule["resources"]}
        assert not cluster_resources & {"secrets", "pods/exec", "configmaps", "serviceaccounts/token"}
        for rule in _rules(docs, "ClusterRole"):
            if "pods" in rule["resources"]:  # watched for the live check pods-stable, nothing else
                assert rule["resources"] == ["pods"] and set(rule["verbs"]) == {"list", "watch"}, rule
        for rule in _rules(docs, "ClusterRole"):
            if "deployments" in rule["resources"]:
                assert set(rule["verbs"]) == {"get", "list", "watch"}
            if {"validatingwebhookconfigurations", "validatingadmissionpolicies",
                "validatingadmissionpolicybindings"} & set(rule["resources"]):
                # The chart creates them: get and update (replace) of exactly their names; no create
                # (RBAC cannot narrow it by name), delete, patch, list or watch.
                assert rule["resourceNames"] == ["readiness-operator"], rule
                assert set(rule["verbs"]) == {"get", "update"}, rule
        admission = [r for r in _rules(docs, "ClusterRole") if r["apiGroups"] == ["admissionregistration.k8s.io"]]
        assert [sorted(r["resources"]) for r in admission] == [
            ["validatingwebhookconfigurations"], ["validatingadmissionpolicies", "validatingadmissionpolicybindings"]]

    role = _rules(default_docs, "Role")
    assert role == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["readiness-operator"],
         "verbs": ["get", "update"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["readiness-operator-webhook-tls"],
         "verbs": ["get", "update", "patch"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
    ]
    binding = only(default_docs, "ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "readiness-operator", "namespace": NAMESPACE}]


# --- CRDs and plain manifests ------------------------------------------------------------------


def test_chart_crds_are_copies_of_the_repo_crds() -> None:
    repo = {p.name: p.read_bytes() for p in (REPO_ROOT / "crds").glob("*.yaml")}
    chart = {p.name: p.read_bytes() for p in (CHART / "files" / "crds").glob("*.yaml")}
    assert repo, "no CRDs in crds/"
    assert not (CHART / "crds").exists(), "Helm's crds/ directory is never upgraded: CRDs are templates/crds.yaml"
    for name, content in repo.items():
        assert chart.get(name) == content, f"charts/readiness-operator/files/crds/{name} differs: run hack/render-manifests.sh"
    assert set(chart) == set(repo), "kopf's peering CRD is gone: leader election uses a core Lease"


def test_manifests_are_in_sync(tools: str) -> None:
    result = subprocess.run(
        [str(HACK / "render-manifests.sh"), "--check"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"manifests/ drifted; run hack/render-manifests.sh\n{result.stdout}{result.stderr}"
    docs = [d for f in sorted((REPO_ROOT / "manifests").glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
    kinds = [d["kind"] for d in docs]
    assert kinds.count("CustomResourceDefinition") == 3
    assert {"Namespace", "Deployment", "ClusterRole", "ServiceAccount"} <= set(kinds)


# --- dogfooding ------------------------------------------------------------------------------


def _audit(manifest: Path, policy: str = "hardened") -> subprocess.CompletedProcess[str]:
    cli = Path(sys.executable).with_name("readiness-operator")
    return subprocess.run(
        [str(cli), "audit", "--policy", str(REPO_ROOT / "examples" / "policies" / f"{policy}.yaml"),
         "-f", str(manifest), "-o", "json"],
        capture_output=True, text=True, timeout=60,
    )


def test_chart_passes_the_hardened_policy(tools: str, tmp_path: Path) -> None:
    manifest = tmp_path / "hardened.yaml"
    manifest.write_text(template("-f", str(HARDENED_VALUES)).stdout)
    result = _audit(manifest)
    report = json.loads(result.stdout)
    names = [r["name"] for r in report["results"]]
    assert names == ["readiness-operator"], "the hardened policy must select the chart's Deployment"
    assert result.returncode == 0, json.dumps(report, indent=2)


def test_chart_defaults_pass_every_per_pod_hardened_check(tools: str, tmp_path: Path) -> None:
    """Defaults fail only the hardened checklist's capacity asks (PDB of 2, an HPA), nothing per pod."""
    manifest = tmp_path / "defaults.yaml"
    manifest.write_text(template("--set-string", "podLabels.readiness\\.dev/profile=hardened").stdout)
    (result,) = json.loads(_audit(manifest).stdout)["results"]
    failed = {f["check"] for f in result["findings"]}
    assert failed <= {"pdb-min-available", "hpa-present", "hpa-min-replicas", "hpa-max-replicas", "hpa-metrics"}, failed


# --- the image's entrypoint, from a wheel in a clean venv --------------------------------------


def test_wheel_installs_a_working_entrypoint(tmp_path: Path) -> None:
    """What the Dockerfile does: build a wheel from pyproject.toml + README.md + operator/, install it.

    Dependencies come from the development venv (added via a .pth after the clean venv's own
    site-packages), so the test needs no index; the package itself must come from the wheel.
    """
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(REPO_ROOT / "pyproject.toml", src)
    shutil.copy(REPO_ROOT / "README.md", src)
    shutil.copytree(REPO_ROOT / "operator", src / "operator", ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    build = subprocess.run([*pip, "wheel", "--no-deps", "-w", str(wheels), str(src)],
                           capture_output=True, text=True, timeout=300)
    if build.returncode != 0 and "setuptools" in build.stderr and "Could not" in build.stderr:
        pytest.skip(f"cannot fetch the build backend (offline?): {build.stderr[-300:]}")
    assert build.returncode == 0, build.stderr
    (wheel,) = wheels.glob("readiness_operator-*.whl")

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--disable-pip-version-check",
                    str(wheel)], check=True, capture_output=True, timeout=120)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    dev_site = next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
    Path(site, "zz-dev-deps.pth").write_text(dev_site + "\n")

    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    result = subprocess.run([str(venv / "bin" / "readiness-operator"), "version"], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "readiness-operator 0.1.0"
    where = subprocess.run([str(python), "-c", "import readiness_operator; print(readiness_operator.__file__)"],
                           check=True, capture_output=True, text=True, env=env, cwd=tmp_path).stdout
    assert where.startswith(str(venv)), f"imported from {where}, not from the wheel"
    help_text = subprocess.run([str(venv / "bin" / "readiness-operator"), "run", "--help"], capture_output=True,
                               text=True, env=env, cwd=tmp_path, timeout=60)
    assert help_text.returncode == 0 and "--webhook-port" in help_text.stdout, help_text.stderr


def test_dockerfile_is_multi_stage_non_root() -> None:
    text = (REPO_ROOT / "Dockerfile").read_text()
    froms = [line for line in text.splitlines() if line.startswith("FROM ")]
    # The dependencies, the project on its own prefix, the runtime (the dependency stage plus the project).
    assert froms == ["FROM ${PYTHON_IMAGE} AS deps", "FROM deps AS builder", "FROM deps"]
    final = text[text.rindex(froms[-1]):]
    assert "COPY --from=builder /opt/project/ /opt/venv/" in final
    assert "USER 65532:65532" in final
    assert not any(word in final for word in ("apt-get", "gcc", "pip install", "build-essential"))
    assert 'ENTRYPOINT ["readiness-operator"]' in final and 'CMD ["run"]' in final
    assert "python:3.11-slim" in text


def test_the_chart_grants_get_on_exactly_the_listed_secrets() -> None:
    docs = render("--set", "prometheus.secrets[0].namespace=monitoring", "--set", "prometheus.secrets[0].name=prom-token",
                  "--set", "prometheus.secrets[1].namespace=monitoring", "--set", "prometheus.secrets[1].name=prom-ca")
    roles = [d for d in docs if d["kind"] == "Role" and d["metadata"]["name"].endswith("-prometheus-secrets")]
    assert [r["metadata"]["namespace"] for r in roles] == ["monitoring"]
    assert roles[0]["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["prom-token", "prom-ca"],
                                  "verbs": ["get"]}]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["READINESS_PROMETHEUS_SECRETS"] == "monitoring/prom-token,monitoring/prom-ca"
    assert not any(d["kind"] == "Role" and d["metadata"]["name"].endswith("-prometheus-secrets") for d in render())


def test_readiness_page_is_off_by_default_and_gets_its_own_port_and_service(
    default_docs: list[dict[str, Any]], tools: str
) -> None:
    def page_bits(docs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any], list[str]]:
        (container,) = only(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        services = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"].endswith("-page")]
        return services, env, [p["name"] for p in container["ports"]]

    services, env, ports = page_bits(default_docs)
    assert services == [] and "READINESS_PAGE_PORT" not in env and "page" not in ports
    assert "READINESS_METRICS_DEPLOYMENT_SLO_BUDGETS" not in env
    docs = render("--set", "readinessPage.enabled=true", "--set", "readinessPage.port=9100",
                  "--set", "metrics.deploymentSloBudgets=true")
    services, env, ports = page_bits(docs)
    (service,) = services
    assert service["spec"]["ports"] == [{"name": "page", "port": 80, "targetPort": "page", "protocol": "TCP"}]
    assert service["spec"]["type"] == "ClusterIP"
    assert env["READINESS_PAGE_PORT"] == "9100" and "page" in ports
    assert env["READINESS_METRICS_DEPLOYMENT_SLO_BUDGETS"] == "true"
    refused = template("--set", "readinessPage.port=80", check=False)  # below 1024: the pod runs as non-root
    assert refused.returncode != 0 and "readinessPage" in refused.stderr, refused.stderr


# --- issue 15 item 6: CRDs, kubeVersion, securityContext, alerts, ServiceMonitor ----------------


def test_kube_version_is_enforced(tools: str) -> None:
    old = helm("template", RELEASE, str(CHART), "--kube-version", "1.29.9", check=False)
    assert old.returncode != 0 and "kubeVersion" in old.stderr, old.stderr
    for version in ("1.30.0", "1.30.2-eks-1a2b3c", "1.34.1+k3s1"):
        helm("template", RELEASE, str(CHART), "--kube-version", version)


def test_crds_are_templates_kept_on_uninstall_and_switchable(default_docs: list[dict[str, Any]]) -> None:
    crds = {d["metadata"]["name"]: d for d in default_docs if d["kind"] == "CustomResourceDefinition"}
    assert set(crds) == {"readinesspolicies.readiness.dev", "policyreports.wgpolicyk8s.io",
                         "clusterpolicyreports.wgpolicyk8s.io"}
    for path in (REPO_ROOT / "crds").glob("*.yaml"):
        source = yaml.safe_load(path.read_text())
        rendered = crds[source["metadata"]["name"]]
        assert rendered["spec"] == source["spec"], f"{path.name}: the template must render the CRD unchanged"
        assert rendered["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
        assert rendered["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert not [d for d in render("--set", "crds.install=false") if d["kind"] == "CustomResourceDefinition"]


def _security_contexts(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return pod["securityContext"], container["securityContext"]


def test_security_context_is_configurable_and_omits_ids_for_openshift(tools: str) -> None:
    pod, container = _security_contexts(render("--set", "securityContext.omitUserAndGroup=true"))
    assert not {"runAsUser", "runAsGroup", "fsGroup"} & (set(pod) | set(container))
    assert pod["runAsNonRoot"] is True and pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["readOnlyRootFilesystem"] is True and container["capabilities"] == {"drop": ["ALL"]}
    assert container["allowPrivilegeEscalation"] is False and container["runAsNonRoot"] is True
    pod, container = _security_contexts(render("--set", "securityContext.pod.runAsUser=1000700000",
                                               "--set", "securityContext.container.runAsUser=1000700000"))
    assert pod["runAsUser"] == container["runAsUser"] == 1000700000
    bad = template("--set", "securityContext.container.runAsUser=-1", check=False)
    assert bad.returncode != 0 and "runAsUser" in bad.stderr


def _alerts(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    rule = only(docs, "PrometheusRule")
    return {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}


def test_every_alert_has_a_runbook_section(all_features_docs: list[dict[str, Any]]) -> None:
    alerts = _alerts(all_features_docs)
    base = yaml.safe_load((CHART / "values.yaml").read_text())["metrics"]["prometheusRule"]["runbookBaseUrl"]
    runbooks = (REPO_ROOT / "docs" / "runbooks.md").read_text()
    sections = {line[3:].strip() for line in runbooks.splitlines() if line.startswith("## ")}
    assert sections == set(alerts), "docs/runbooks.md has one section per alert, no more"
    for name, alert in alerts.items():
        assert alert["annotations"]["runbook_url"] == f"{base}#{name.lower()}", name
        body = runbooks.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]
        for part in ("Meaning", "Diagnosis", "Fix"):
            assert f"**{part}**" in body, f"{name}: runbook lacks {part}"


def test_alerts_key_on_our_metrics_not_a_job_name(tools: str, all_features_docs: list[dict[str, Any]]) -> None:
    alerts = _alerts(all_features_docs)
    assert alerts["ReadinessOperatorDown"]["expr"] == f'absent(readiness_build_info{{namespace="{NAMESPACE}"}})'
    assert not [n for n, a in alerts.items() if "job=" in a["expr"]]
    custom = _alerts(render("--set", "metrics.prometheusRule.enabled=true",
                            "--set-string", 'metrics.prometheusRule.selector=kubernetes_namespace="ops"'))
    for name, alert in custom.items():
        assert 'kubernetes_namespace="ops"' in alert["expr"] and f'namespace="{NAMESPACE}"' not in alert["expr"], name


PROMTOOL_TESTS = """
rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      # scraped under a job name nobody predicted, then gone (pod deleted / scrape failing)
      - series: 'readiness_build_info{job="kubernetes-service-endpoints", namespace="readiness-system", version="0.1.0"}'
        values: '1x10 _x20'
      - series: 'readiness_webhook_certificate_expiry_timestamp_seconds{job="x", namespace="readiness-system"}'
        values: '864000x30'
    alert_rule_test:
      - eval_time: 9m
        alertname: ReadinessOperatorDown
        exp_alerts: []
      - eval_time: 22m
        alertname: ReadinessOperatorDown
        exp_alerts:
          - exp_labels: {severity: critical, namespace: readiness-system}
            exp_annotations: {}
      # expires at t=10 days: no alert at 30 minutes in (still 9.9 days left) with a 7-day threshold
      - eval_time: 30m
        alertname: ReadinessWebhookCertificateExpiring
        exp_alerts: []
"""


def test_alerts_fire_in_prometheus_rule_tests(all_features_docs: list[dict[str, Any]], tmp_path: Path) -> None:
    """Prometheus's own rule engine (`promtool test rules`): the Down alert fires once the operator's
    series vanish, whatever the scrape job was called."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (hack/setup.sh installs Debian's prometheus)")
    rule = only(all_features_docs, "PrometheusRule")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    tests = yaml.safe_load(PROMTOOL_TESTS)
    firing = tests["tests"][0]["alert_rule_test"][1]["exp_alerts"][0]
    firing["exp_annotations"] = dict(_alerts(all_features_docs)["ReadinessOperatorDown"]["annotations"])
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    result = subprocess.run([promtool, "test", "rules", "tests.yaml"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_service_monitor_selects_exactly_the_metrics_service(all_features_docs: list[dict[str, Any]]) -> None:
    monitor = only(all_features_docs, "ServiceMonitor")["spec"]
    selector = monitor["selector"]["matchLabels"]
    assert set(monitor["selector"]) == {"matchLabels"}
    services = [d for d in all_features_docs if d["kind"] == "Service"]
    selected = [s for s in services if selector.items() <= s["metadata"]["labels"].items()]
    assert [s["metadata"]["name"] for s in selected] == ["readiness-operator-metrics"], "selector ⊆ Service labels"
    assert monitor["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    ports = {p["name"] for p in selected[0]["spec"]["ports"]}
    assert {e["port"] for e in monitor["endpoints"]} <= ports


def test_the_operator_is_told_the_admission_policy_name_its_rbac_names() -> None:
    for extra, name in (((), "readiness-operator"), (("--set", "vap.name=fail-safe"), "fail-safe")):
        docs = render(*extra)
        (container,) = only(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["READINESS_VAP_NAME"] == name
        named = [r for r in _rules(docs, "ClusterRole") if "validatingadmissionpolicies" in r["resources"] and
                 "resourceNames" in r]
        assert [r["resourceNames"] for r in named] == [[name]]
    docs = render("--set", "vap.enabled=false")  # no fail-safe: no rights on admission policies at all
    assert not [r for r in _rules(docs, "ClusterRole") if "validatingadmissionpolicies" in r["resources"]]
    assert [d["kind"] for d in docs if d["kind"] in ADMISSION_KINDS] == ["ValidatingWebhookConfiguration"]


def test_the_chart_creates_the_admission_objects_as_the_operator_writes_them_back() -> None:
    """The operator may not create admission objects: the chart does, with the names its RBAC and
    environment give, the webhook configuration without webhooks (nothing is blocked before the
    operator serves) and the VAP + binding as the very placeholders the operator writes back when no
    Enforce policy is left (so its write over the chart's changes nothing)."""
    for extra, webhook, vap in (((), "readiness-operator", "readiness-operator"),
                                (("--set", "vap.name=fail-safe", "--set", "webhook.configurationName=hooks",
                                  "--set", "webhook.excludeNamespaces={monitoring,kube-system,istio-system}"),
                                 "hooks", "fail-safe")):
        docs = render(*extra)
        (container,) = only(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert (env["READINESS_WEBHOOK_CONFIGURATION"], env["READINESS_VAP_NAME"]) == (webhook, vap)
        config = only(docs, "ValidatingWebhookConfiguration")
        assert config["metadata"]["name"] == webhook and config["webhooks"] == [] and ours(config)
        settings = Settings(namespace=NAMESPACE, exclude_namespaces=env["READINESS_WEBHOOK_EXCLUDE_NAMESPACES"])
        for written in placeholder_objects(vap, settings.excluded_namespaces):
            chart = only(docs, written["kind"])
            assert chart["spec"] == written["spec"], written["kind"]
            assert chart["metadata"]["name"] == vap
            assert ours(chart), chart["metadata"]["labels"]  # the operator changes them (and no other)
            assert "annotations" not in chart["metadata"]  # an upgrade would put them back over the operator's
        assert "validations" not in only(docs, "ValidatingAdmissionPolicy")["spec"]  # denies nothing
