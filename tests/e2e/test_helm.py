"""`helm install / upgrade / uninstall` of the chart into the real local API server, and its RBAC.

The local control plane has no nodes, so the operator pods stay Pending: these tests prove the
objects, the pod admission (PodSecurity `restricted`) and the ServiceAccount's permissions, not
the running operator. Tests run in file order; the last one uninstalls.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import yaml

from readiness_operator.admission.vap import generate_vap
from readiness_operator.kube.api import ours, replacement
from readiness_operator.model import ReadinessPolicySpec
from readiness_operator.settings import Settings
from tests.support.cluster import REPO_ROOT, Cluster, KubectlError, eventually

pytestmark = pytest.mark.e2e

CHART = REPO_ROOT / "charts" / "readiness-operator"
RELEASE = NAMESPACE = "ro-helm-e2e"
FULLNAME = f"{RELEASE}-readiness-operator"
LEASE = FULLNAME  # the leader-election Lease in the release namespace
SA = f"system:serviceaccount:{NAMESPACE}:{FULLNAME}"
CERT_SECRET = f"{FULLNAME}-webhook-tls"
SELECTOR = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/name=readiness-operator"
CRDS = ("readinesspolicies.readiness.dev", "policyreports.wgpolicyk8s.io", "clusterpolicyreports.wgpolicyk8s.io")
OURS = "app.kubernetes.io/managed-by"
#: The webhook configuration as an operator of a release before the chart created it left it: labelled
#: as the operator's, no Helm annotations, its webhooks filled in (here a harmless one).
OLD_CONFIG = {
    "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
    "metadata": {"name": FULLNAME, "labels": {OURS: "readiness-operator"}},
    "webhooks": [{"name": "deployments.readiness.dev", "admissionReviewVersions": ["v1"], "sideEffects": "None",
                  "failurePolicy": "Ignore", "clientConfig": {"url": "https://127.0.0.1:1/validate-deployment"},
                  "rules": [{"apiGroups": ["example.com"], "apiVersions": ["v1"], "operations": ["CREATE"],
                             "resources": ["nothings"]}]}],
}


def helm(cluster: Cluster, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["helm", f"--kubeconfig={cluster.kubeconfig}", *args], capture_output=True, text=True,
                            timeout=180)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def release(cluster: Cluster) -> Iterator[Cluster]:
    # A namespace that enforces the `restricted` Pod Security Standard: the pods must still be admitted.
    cluster.apply(json.dumps({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": NAMESPACE, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}},
    }))
    cluster.apply(json.dumps(OLD_CONFIG))  # an upgrade from before the chart created it
    helm(cluster, "install", RELEASE, str(CHART), "-n", NAMESPACE)
    try:
        yield cluster
    finally:
        helm(cluster, "uninstall", RELEASE, "-n", NAMESPACE, "--wait", check=False)
        cluster.kubectl("delete", "validatingwebhookconfiguration", FULLNAME, "--ignore-not-found", check=False)
        cluster.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=false", check=False)


def names(cluster: Cluster, kind: str, namespaced: bool = True) -> set[str]:
    args = [kind, "-l", f"app.kubernetes.io/instance={RELEASE}"] + (["-n", NAMESPACE] if namespaced else [])
    return {item["metadata"]["name"] for item in cluster.get_json(*args)["items"]}


def test_install_creates_every_object(release: Cluster) -> None:
    status = json.loads(helm(release, "status", RELEASE, "-n", NAMESPACE, "-o", "json").stdout)
    assert status["info"]["status"] == "deployed"
    assert names(release, "serviceaccounts") == {FULLNAME}
    assert names(release, "roles") == {FULLNAME}
    assert names(release, "rolebindings") == {FULLNAME}
    assert names(release, "clusterroles", namespaced=False) == {FULLNAME}
    assert names(release, "clusterrolebindings", namespaced=False) == {FULLNAME}
    assert names(release, "deployments") == {FULLNAME}
    assert names(release, "services") == {f"{FULLNAME}-webhook", f"{FULLNAME}-metrics"}
    assert names(release, "poddisruptionbudgets") == {FULLNAME}
    webhook = release.get_json("service", f"{FULLNAME}-webhook", "-n", NAMESPACE)["spec"]["ports"]
    assert [(p["port"], p["targetPort"]) for p in webhook] == [(443, "webhook")]


def test_install_creates_the_admission_objects_and_leaves_an_older_operators_alone(release: Cluster) -> None:
    """The chart creates the VAP + binding placeholders (the operator may not create them), labelled
    as the operator's; the webhook configuration an older operator wrote is not the release's, so
    Helm would refuse to adopt it: it is not rendered and stays exactly as it was."""
    for kind in ADMISSION_POLICY_KINDS:
        obj = release.get_json(kind, FULLNAME)
        assert ours(obj) and obj["metadata"]["labels"][OURS] == "Helm", kind  # the release's, the operator's to fill
        assert obj["metadata"]["annotations"]["meta.helm.sh/release-name"] == RELEASE, kind
    assert "validations" not in release.get_json(ADMISSION_POLICY_KINDS[0], FULLNAME)["spec"]  # denies nothing
    config = release.get_json("validatingwebhookconfiguration", FULLNAME)
    assert "meta.helm.sh/release-name" not in (config["metadata"].get("annotations") or {})
    assert [w["clientConfig"] for w in config["webhooks"]] == [OLD_CONFIG["webhooks"][0]["clientConfig"]]


def test_crds_are_established(release: Cluster) -> None:
    for crd in CRDS:
        conditions = release.get_json("crd", crd)["status"]["conditions"]
        assert {"type": "Established", "status": "True"} in [
            {"type": c["type"], "status": c["status"]} for c in conditions
        ], crd
    release.kubectl("get", "rp")  # the short name works


def test_pods_are_admitted_under_restricted_pod_security(release: Cluster) -> None:
    """The controller manager creates the pods (Pending: no nodes); PodSecurity would refuse a weak spec."""

    def two_pods() -> bool:
        pods = release.get_json("pods", "-n", NAMESPACE, "-l", SELECTOR)["items"]
        return len(pods) == 2

    eventually(two_pods, timeout=60, what="2 operator pods created")
    pod = release.get_json("pods", "-n", NAMESPACE, "-l", SELECTOR)["items"][0]
    assert pod["spec"]["serviceAccountName"] == FULLNAME


def can_i(cluster: Cluster, *args: str) -> bool:
    result = cluster.kubectl("auth", "can-i", *args, f"--as={SA}", check=False)
    assert result.stdout.strip() in {"yes", "no"}, result.stderr
    return result.stdout.strip() == "yes"


ADMISSION_POLICY_RESOURCES = ("validatingadmissionpolicies.admissionregistration.k8s.io",
                              "validatingadmissionpolicybindings.admissionregistration.k8s.io")
ADMISSION_POLICY_KINDS = ("validatingadmissionpolicy", "validatingadmissionpolicybinding")
WEBHOOK_CONFIGURATIONS = "validatingwebhookconfigurations.admissionregistration.k8s.io"
ALLOWED = [
    *[(verb, "readinesspolicies.readiness.dev", ()) for verb in ("get", "list", "watch", "patch")],
    *[(verb, "readinesspolicies.readiness.dev", ("--subresource=status",)) for verb in ("get", "patch", "update")],
    *[(verb, "deployments.apps", ("-A",)) for verb in ("get", "list", "watch")],
    *[(verb, "replicasets.apps", ("-A",)) for verb in ("list", "watch")],
    *[(verb, "poddisruptionbudgets.policy", ("-A",)) for verb in ("list", "watch")],
    *[(verb, "horizontalpodautoscalers.autoscaling", ("-A",)) for verb in ("list", "watch")],
    *[(verb, "namespaces", ()) for verb in ("list", "watch")],
    *[(verb, "pods", ("-A",)) for verb in ("list", "watch")],
    *[(verb, "events", ("-n", "default")) for verb in ("create", "patch", "list")],
    *[(verb, "events.events.k8s.io", ("-n", "default")) for verb in ("create", "patch")],
    *[(verb, "policyreports.wgpolicyk8s.io", ("-n", "default"))
      for verb in ("get", "list", "watch", "create", "patch", "update", "delete")],
    # The three admission objects the chart creates: read and replaced by name, nothing else.
    *[(verb, f"{resource}/{FULLNAME}", ())
      for resource in (WEBHOOK_CONFIGURATIONS, *ADMISSION_POLICY_RESOURCES) for verb in ("get", "update")],
    *[(verb, "customresourcedefinitions.apiextensions.k8s.io", ()) for verb in ("get", "list", "watch")],
    *[(verb, f"leases.coordination.k8s.io/{LEASE}", ("-n", NAMESPACE)) for verb in ("get", "update")],
    ("create", "leases.coordination.k8s.io", ("-n", NAMESPACE)),
    *[(verb, f"secrets/{CERT_SECRET}", ("-n", NAMESPACE)) for verb in ("get", "update", "patch")],
    ("create", "secrets", ("-n", NAMESPACE)),
]

DENIED = [
    ("get", "secrets", ("-A",)),
    ("list", "secrets", ("-A",)),
    ("list", "secrets", ("-n", "default")),
    ("get", "secrets", ("-n", "kube-system")),
    ("list", "secrets", ("-n", NAMESPACE)),  # only its own Secret, by name
    ("get", "secrets/other", ("-n", NAMESPACE)),
    ("delete", f"secrets/{CERT_SECRET}", ("-n", NAMESPACE)),
    ("create", "secrets", ("-n", "default")),
    ("delete", "deployments.apps", ("-A",)),
    ("update", "replicasets.apps", ("-A",)),
    ("update", "deployments.apps", ("-A",)),
    ("patch", "deployments.apps", ("-A",)),
    ("create", "deployments.apps", ("-n", "default")),
    ("create", "pods", ("-n", "default")),
    ("get", "pods", ("-A",)),  # list/watch only (the live check pods-stable), never by name
    ("create", "pods/exec", ("-n", NAMESPACE)),
    ("get", "configmaps", ("-A",)),
    ("create", "serviceaccounts/token", ("-n", NAMESPACE)),
    ("patch", "validatingwebhookconfigurations.admissionregistration.k8s.io/someone-elses", ()),
    ("get", "validatingwebhookconfigurations.admissionregistration.k8s.io/someone-elses", ()),
    ("delete", "validatingwebhookconfigurations.admissionregistration.k8s.io/someone-elses", ()),
    ("list", "validatingwebhookconfigurations.admissionregistration.k8s.io", ()),
    ("watch", "validatingwebhookconfigurations.admissionregistration.k8s.io", ()),
    ("patch", f"validatingwebhookconfigurations.admissionregistration.k8s.io/{FULLNAME}", ()),
    *[(verb, resource, ()) for resource in ADMISSION_POLICY_RESOURCES for verb in ("list", "watch", "deletecollection")],
    *[(verb, f"{resource}/someone-elses", ())  # nobody else's, labelled as ours or not
      for resource in ADMISSION_POLICY_RESOURCES for verb in ("get", "update", "patch", "delete")],
    *[("patch", f"{resource}/{FULLNAME}", ()) for resource in ADMISSION_POLICY_RESOURCES],
    ("create", "mutatingadmissionpolicies.admissionregistration.k8s.io", ()),
    ("delete", f"validatingwebhookconfigurations.admissionregistration.k8s.io/{FULLNAME}", ()),
    # No create (RBAC cannot narrow it by name: it would let the operator register any webhook) and
    # no delete of its own (no Enforce policy left: it writes the placeholders back).
    *[("create", resource, ()) for resource in (WEBHOOK_CONFIGURATIONS, *ADMISSION_POLICY_RESOURCES)],
    *[("delete", f"{resource}/{FULLNAME}", ()) for resource in ADMISSION_POLICY_RESOURCES],
    ("create", "mutatingwebhookconfigurations.admissionregistration.k8s.io", ()),
    ("create", "readinesspolicies.readiness.dev", ()),
    ("delete", "readinesspolicies.readiness.dev", ()),
    ("update", "readinesspolicies.readiness.dev", ()),
    ("create", "customresourcedefinitions.apiextensions.k8s.io", ()),
    ("delete", "customresourcedefinitions.apiextensions.k8s.io", ()),
    ("create", "poddisruptionbudgets.policy", ("-n", "default")),
    ("create", "horizontalpodautoscalers.autoscaling", ("-n", "default")),
    ("patch", "namespaces", ()),
    ("delete", "events", ("-n", "default")),
    ("get", "leases.coordination.k8s.io/someone-elses", ("-n", NAMESPACE)),
    ("update", "leases.coordination.k8s.io/someone-elses", ("-n", NAMESPACE)),
    ("delete", f"leases.coordination.k8s.io/{LEASE}", ("-n", NAMESPACE)),
    ("list", "leases.coordination.k8s.io", ("-n", NAMESPACE)),
    ("create", "leases.coordination.k8s.io", ("-n", "kube-system")),
    ("update", "leases.coordination.k8s.io", ("-n", "kube-system")),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io", ()),
    ("escalate", "clusterroles.rbac.authorization.k8s.io", ()),
    ("impersonate", "serviceaccounts", ("-A",)),
    ("*", "*", ("-A",)),
]


@pytest.mark.parametrize(("verb", "resource", "extra"), ALLOWED, ids=lambda v: v if isinstance(v, str) else None)
def test_rbac_grants_what_the_operator_uses(release: Cluster, verb: str, resource: str, extra: tuple[str, ...]) -> None:
    assert can_i(release, verb, resource, *extra), f"the operator cannot {verb} {resource} {' '.join(extra)}"


@pytest.mark.parametrize(("verb", "resource", "extra"), DENIED, ids=lambda v: v if isinstance(v, str) else None)
def test_rbac_grants_nothing_more(release: Cluster, verb: str, resource: str, extra: tuple[str, ...]) -> None:
    assert not can_i(release, verb, resource, *extra), f"the operator may {verb} {resource} {' '.join(extra)}"


ENFORCE_WEB = ReadinessPolicySpec.model_validate({"mode": "Enforce", "rules": {"probes": {"readiness": True}}})


def written_by_the_operator(cluster: Cluster) -> list[object]:
    """The VAP and binding as the API server holds them (what the operator's write must keep)."""
    objects = [cluster.get_json(kind, FULLNAME) for kind in ADMISSION_POLICY_KINDS]
    return [(o["metadata"].get("annotations"), o["metadata"]["labels"], o["spec"]) for o in objects]


def test_the_service_account_replaces_the_placeholders(release: Cluster) -> None:
    """What the operator does with them (its pods stay Pending here): the merged objects of an
    Enforce policy, written with get + update as its ServiceAccount (KubeApi.put_admission_object's body)."""
    settings = Settings(namespace=NAMESPACE)
    generated = generate_vap({"web": ENFORCE_WEB}, name=FULLNAME, now=datetime.now(UTC),
                             excluded_namespaces=settings.excluded_namespaces).objects
    for obj, kind in zip(generated, ADMISSION_POLICY_KINDS, strict=True):
        body = replacement(release.get_json(kind, FULLNAME), obj)
        release.kubectl("replace", f"--as={SA}", "-f", "-", input=json.dumps(body))
    (vap_notes, vap_labels, vap_spec), (_, binding_labels, binding_spec) = written_by_the_operator(release)
    assert vap_notes["readiness.dev/policies"] == "web" and vap_notes["meta.helm.sh/release-name"] == RELEASE
    assert vap_spec["validations"] == generated[0]["spec"]["validations"]
    assert binding_spec["matchResources"]["namespaceSelector"] == generated[1]["spec"]["matchResources"]["namespaceSelector"]
    assert vap_labels[OURS] == binding_labels[OURS] == "Helm"  # still the release's (and ours)


def test_upgrade_changes_values(release: Cluster) -> None:
    before = written_by_the_operator(release)
    helm(release, "upgrade", RELEASE, str(CHART), "-n", NAMESPACE, "--reuse-values",
         "--set", "webhook.failurePolicy=Fail", "--set", "logLevel=debug", "--set", "replicaCount=3",
         "--set", "webhook.excludeNamespaces={monitoring,istio-system}")
    status = json.loads(helm(release, "status", RELEASE, "-n", NAMESPACE, "-o", "json").stdout)
    assert (status["version"], status["info"]["status"]) == (2, "deployed")
    deployment = release.get_json("deployment", FULLNAME, "-n", NAMESPACE)
    assert deployment["spec"]["replicas"] == 3
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["READINESS_WEBHOOK_FAILURE_POLICY"] == "Fail"
    assert env["READINESS_LOG_LEVEL"] == "debug"
    assert env["READINESS_WEBHOOK_EXCLUDE_NAMESPACES"] == "monitoring,istio-system"
    assert f"--leader-election-lease={LEASE}" in container["args"]
    # Helm's patch resets only the fields the chart sets, and the operator writes those identically:
    # what it wrote over the placeholder policy stays (and the chart's labels with it)...
    after = written_by_the_operator(release)
    assert after[0] == before[0]
    # ...and the binding follows the new exclusions, as the operator restarted with them writes it.
    excluded = Settings(namespace=NAMESPACE, exclude_namespaces="monitoring,istio-system").excluded_namespaces
    _, binding = generate_vap({"web": ENFORCE_WEB}, name=FULLNAME, now=datetime.now(UTC),
                              excluded_namespaces=excluded).objects
    assert after[1][2]["matchResources"]["namespaceSelector"] == binding["spec"]["matchResources"]["namespaceSelector"]


def test_upgrade_rejects_a_bad_value_and_keeps_the_release(release: Cluster) -> None:
    result = helm(release, "upgrade", RELEASE, str(CHART), "-n", NAMESPACE, "--reuse-values",
                  "--set", "webhook.failurePolicy=Sometimes", check=False)
    assert result.returncode != 0 and "failurePolicy" in result.stderr
    status = json.loads(helm(release, "status", RELEASE, "-n", NAMESPACE, "-o", "json").stdout)
    assert (status["version"], status["info"]["status"]) == (2, "deployed")


def test_upgrade_takes_over_an_older_operators_webhook_configuration(release: Cluster) -> None:
    """The hand-over docs/operations.md gives: label and annotate it as the release's, `helm upgrade`.
    Still ours throughout; its webhooks stay (the chart's manifest has none, and Helm's patch deletes
    nothing it did not write)."""
    release.kubectl("label", "--overwrite", "validatingwebhookconfiguration", FULLNAME, f"{OURS}=Helm",
                    "app.kubernetes.io/part-of=readiness-operator")
    release.kubectl("annotate", "validatingwebhookconfiguration", FULLNAME, f"meta.helm.sh/release-name={RELEASE}",
                    f"meta.helm.sh/release-namespace={NAMESPACE}")
    assert ours(release.get_json("validatingwebhookconfiguration", FULLNAME))  # the operator may go on writing it
    helm(release, "upgrade", RELEASE, str(CHART), "-n", NAMESPACE, "--reuse-values")
    manifest = [d for d in yaml.safe_load_all(helm(release, "get", "manifest", RELEASE, "-n", NAMESPACE).stdout) if d]
    assert ("ValidatingWebhookConfiguration", FULLNAME) in [(d["kind"], d["metadata"]["name"]) for d in manifest]
    config = release.get_json("validatingwebhookconfiguration", FULLNAME)
    assert ours(config)  # still the operator's to change
    assert config["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
    assert [w["clientConfig"] for w in config["webhooks"]] == [OLD_CONFIG["webhooks"][0]["clientConfig"]]


def test_uninstall_removes_every_object(release: Cluster) -> None:
    helm(release, "uninstall", RELEASE, "-n", NAMESPACE, "--wait")
    for kind in ("serviceaccounts", "roles", "rolebindings", "deployments", "services", "poddisruptionbudgets"):
        assert names(release, kind) == set(), kind
    for kind in ("clusterroles", "clusterrolebindings"):
        assert names(release, kind, namespaced=False) == set(), kind
    with pytest.raises(KubectlError):
        release.kubectl("get", "clusterrole", FULLNAME)
    for kind in ("validatingwebhookconfiguration", *ADMISSION_POLICY_KINDS):  # the admission objects too
        assert release.kubectl("get", kind, FULLNAME, check=False).returncode != 0, kind
    # Helm never deletes CRDs (that would delete every ReadinessPolicy); they stay established.
    for crd in CRDS:
        release.kubectl("get", "crd", crd)
