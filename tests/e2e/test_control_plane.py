"""Proof that the local control plane is a real Kubernetes API server (issue 2)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import Cluster, KubectlError, eventually
from tests.support.prometheus import Prometheus
from tests.support.webhook import serve_webhook

pytestmark = pytest.mark.e2e

WIDGET_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.proof.readiness.dev}
spec:
  group: proof.readiness.dev
  names: {kind: Widget, plural: widgets, singular: widget, shortNames: [wdg]}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Colour, type: string, jsonPath: .spec.colour}
    - {name: Size, type: integer, jsonPath: .spec.size}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              colour: {type: string, enum: [red, blue]}
              size: {type: integer, minimum: 1}
"""


def test_readyz_and_version(cluster: Cluster) -> None:
    assert cluster.kubectl("get", "--raw", "/readyz").stdout.strip() == "ok"
    out = cluster.kubectl("version", "-o", "json").stdout
    assert '"gitVersion": "v1.' in out.replace('":"', '": "')


def test_crd_printer_columns_and_schema(cluster: Cluster) -> None:
    cluster.apply(WIDGET_CRD)
    eventually(lambda: "Established" in cluster.kubectl(
        "get", "crd", "widgets.proof.readiness.dev", "-o", "jsonpath={.status.conditions[*].type}").stdout,
        what="CRD established")
    cluster.kubectl("create", "namespace", "proof-crd")
    eventually(lambda: cluster.apply(
        "apiVersion: proof.readiness.dev/v1\nkind: Widget\nmetadata: {name: w1, namespace: proof-crd}\n"
        "spec: {colour: red, size: 3}\n"), what="widget created")
    table = cluster.kubectl("-n", "proof-crd", "get", "wdg").stdout.splitlines()
    assert table[0].split() == ["NAME", "COLOUR", "SIZE"]
    assert table[1].split()[:3] == ["w1", "red", "3"]
    with pytest.raises(KubectlError) as denied:
        cluster.apply("apiVersion: proof.readiness.dev/v1\nkind: Widget\n"
                      "metadata: {name: w2, namespace: proof-crd}\nspec: {colour: green, size: 0}\n")
    assert "spec.colour" in denied.value.stderr and "spec.size" in denied.value.stderr


def test_deployment_gets_replicaset_from_controller_manager(cluster: Cluster) -> None:
    cluster.kubectl("create", "namespace", "proof-deploy")
    cluster.kubectl("-n", "proof-deploy", "create", "deployment", "web", "--image=nginx:1.27", "--replicas=2")
    rs: Any = eventually(lambda: cluster.get_json("-n", "proof-deploy", "replicasets")["items"],
                         what="ReplicaSet made by the deployment controller")
    assert rs[0]["metadata"]["ownerReferences"][0]["name"] == "web"
    assert rs[0]["spec"]["replicas"] == 2


def test_validating_webhook_is_called_and_its_deny_reaches_kubectl(cluster: Cluster, tmp_path: Path) -> None:
    def decide(request: dict[str, Any]) -> tuple[bool, str]:
        labels = request["object"]["metadata"].get("labels", {})
        if labels.get("proof") == "deny":
            return False, "denied by the proof webhook"
        return True, ""

    cluster.kubectl("create", "namespace", "proof-webhook")
    with serve_webhook(tmp_path, decide) as hook:
        cluster.apply(f"""
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {{name: proof-webhook}}
webhooks:
- name: proof.readiness.dev
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: Fail
  timeoutSeconds: 5
  clientConfig:
    url: https://127.0.0.1:{hook.port}/validate
    caBundle: {hook.ca_bundle}
  namespaceSelector:
    matchLabels: {{kubernetes.io/metadata.name: proof-webhook}}
  rules:
  - {{apiGroups: [""], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [configmaps]}}
""")
        try:
            deny = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad, namespace: proof-webhook, labels: {proof: deny}}\n"

            def denied() -> bool:
                try:
                    cluster.apply(deny)
                except KubectlError as exc:
                    assert "denied by the proof webhook" in exc.stderr
                    return True
                cluster.kubectl("-n", "proof-webhook", "delete", "configmap", "bad")
                return False

            eventually(denied, what="webhook deny")  # the configuration takes a moment to be loaded
            cluster.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: good, namespace: proof-webhook}\n")
            names = [r["request"]["name"] for r in hook.requests]
            assert "bad" in names and "good" in names
        finally:
            cluster.kubectl("delete", "validatingwebhookconfiguration", "proof-webhook")


def test_rbac_can_i_and_service_account_tokens(cluster: Cluster, tmp_path: Path) -> None:
    ns = "proof-rbac"
    cluster.kubectl("create", "namespace", ns)
    cluster.kubectl("-n", ns, "create", "serviceaccount", "reader")
    cluster.kubectl("-n", ns, "create", "role", "read-pods", "--verb=get,list", "--resource=pods")
    cluster.kubectl("-n", ns, "create", "rolebinding", "reader", "--role=read-pods", f"--serviceaccount={ns}:reader")
    who = f"--as=system:serviceaccount:{ns}:reader"

    def can(verb: str, resource: str, namespace: str = ns) -> str:
        return cluster.kubectl("auth", "can-i", verb, resource, "-n", namespace, who, check=False).stdout.strip()

    assert can("list", "pods") == "yes"
    assert can("delete", "pods") == "no"
    assert can("list", "pods", "default") == "no"
    assert can("get", "secrets") == "no"

    # A real token from the TokenRequest API authenticates as the ServiceAccount.
    kubeconfig = cluster.token_kubeconfig(ns, "reader", tmp_path)
    as_sa = Cluster(kubeconfig)
    assert as_sa.kubectl("-n", ns, "get", "pods").returncode == 0
    with pytest.raises(KubectlError) as forbidden:
        as_sa.kubectl("-n", ns, "get", "secrets")
    assert "forbidden" in forbidden.value.stderr.lower()


@pytest.mark.prometheus
def test_promql_returns_backfilled_value(prometheus: Prometheus) -> None:
    start = int(time.time()) - 2 * 3600
    lines = ["# TYPE proof_requests counter"]
    lines += [f'proof_requests_total{{deployment="web"}} {i * 60} {start + i * 60}' for i in range(61)]
    prometheus.load("\n".join(lines), name="proof")
    at = start + 3600
    result = prometheus.query('rate(proof_requests_total{deployment="web"}[5m])', at=at)
    assert result["status"] == "success"
    [sample] = result["data"]["result"]
    assert float(sample["value"][1]) == pytest.approx(1.0)
