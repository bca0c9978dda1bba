"""Prometheus credentials with the chart's ServiceAccount (issue 14, 7c/7f): a listed Secret is read
(the chart's Role grants exactly it), any other Secret and the webhook's own TLS Secret are refused,
and no token, header or response body ever reaches status."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.cluster import REPO_ROOT, Cluster, eventually
from tests.support.operator import OperatorProcess
from tests.support.prometheus import Prometheus

pytestmark = [pytest.mark.e2e, pytest.mark.prometheus]

CHART = REPO_ROOT / "charts" / "readiness-operator"
OPS, CREDS, WORK = "promsec-ops", "promsec-creds", "promsec-work"
RBAC_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
SECRETS = {"prom-token": "good-token-4711", "prom-multiline": "line-one-x\nline-two-y", "not-listed": "unlisted-9876"}


def chart_rbac(cluster: Cluster) -> tuple[list[dict[str, Any]], dict[str, str]]:
    out = subprocess.run(
        ["helm", "template", "promsec", str(CHART), "-n", OPS, "--kube-version", "1.34.0",  # chart: kubeVersion >= 1.30
         "--set", f"prometheus.secrets[0].namespace={CREDS}", "--set", "prometheus.secrets[0].name=prom-token",
         "--set", f"prometheus.secrets[1].namespace={CREDS}", "--set", "prometheus.secrets[1].name=prom-multiline"],
        check=True, capture_output=True, text=True, env=cluster.env,
    ).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    env = {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"] if "value" in e}
    return [d for d in docs if d["kind"] in RBAC_KINDS], env


def policy(name: str, secret: str, prometheus: Prometheus) -> str:
    return yaml.safe_dump({
        "apiVersion": "readiness.dev/v1alpha1", "kind": "ReadinessPolicy", "metadata": {"name": name},
        "spec": {"mode": "Audit", "match": {"namespaces": [WORK]},
                 "prometheus": {"url": prometheus.url,
                                "bearerTokenSecretRef": {"namespace": secret.split("/")[0], "name": secret.split("/")[1],
                                                         "key": "token"}},
                 "slos": [{"name": "value", "interval": "2s", "comparison": "<", "threshold": 10,
                           "query": 'max(promsec_value{namespace="{{namespace}}", deployment="{{name}}"})'}]},
    })


@pytest.fixture(scope="module")
def operator(crds: Cluster, prometheus: Prometheus, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    now = int(time.time())
    prometheus.load("# TYPE promsec_value gauge\n" + "\n".join(
        f'promsec_value{{namespace="{WORK}",deployment="web"}} 1 {t}' for t in range(now - 600, now + 3000, 15)),
        name="promsec")
    for ns in (OPS, CREDS, WORK):
        crds.kubectl("create", "namespace", ns)
    rbac, env = chart_rbac(crds)
    crds.apply(yaml.safe_dump_all(rbac))
    cert_secret = env["READINESS_WEBHOOK_CERT_SECRET"]
    for name, value in {**SECRETS, "webhook-key": ""}.items():
        target_ns, target = (OPS, cert_secret) if name == "webhook-key" else (CREDS, name)
        crds.kubectl("-n", target_ns, "create", "secret", "generic", target, f"--from-literal=token={value or 'tls-key-1234'}")
    crds.apply(yaml.safe_dump({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": WORK},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "app", "image": "app:1.0"}]}}}}))
    sa = next(d for d in rbac if d["kind"] == "ServiceAccount")["metadata"]["name"]
    tmp = Path(tmp_path_factory.mktemp("promsec"))
    kubeconfig = crds.token_kubeconfig(OPS, sa, tmp)
    env = {**env, "READINESS_NAMESPACE": OPS}
    env.pop("READINESS_WEBHOOK_PORT", None)
    op = OperatorProcess(kubeconfig, tmp / "operator.log", env=env).start()
    policies = {"promsec-allowed": f"{CREDS}/prom-token", "promsec-unlisted": f"{CREDS}/not-listed",
                "promsec-webhook-key": f"{OPS}/{cert_secret}", "promsec-multiline": f"{CREDS}/prom-multiline"}
    for name, secret in policies.items():
        crds.apply(policy(name, secret, prometheus))
    yield {"log": str(tmp / "operator.log")}
    for name in policies:
        crds.kubectl("delete", "rp", name, "--ignore-not-found")
    op.stop()
    assert "Traceback" not in op.logs(), op.logs()[-4000:]
    for value in SECRETS.values():
        for part in value.split("\n"):
            assert part not in op.logs(), "a credential reached the operator's log"


def slo_status(cluster: Cluster, policy_name: str) -> dict[str, Any]:
    status = cluster.get_json("rp", policy_name).get("status") or {}
    entry = next((s for s in status.get("slos", []) if s["name"] == "value"), {})
    assert entry.get("state") in ("Met", "Breaching", "Unknown"), status
    return dict(entry)


def slo_in_state(cluster: Cluster, policy_name: str, state: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        entry = slo_status(cluster, policy_name)
        return entry if entry.get("state") == state and (state != "Unknown" or entry.get("error")) else None

    return dict(eventually(check, timeout=90, what=f"{policy_name}'s SLO {state}"))


def test_a_listed_secret_is_read_with_the_charts_role(operator: dict[str, str], crds: Cluster) -> None:
    entry = slo_in_state(crds, "promsec-allowed", "Met")
    assert entry["measured"] == 1


@pytest.mark.parametrize(("policy_name", "says"), [
    ("promsec-unlisted", "is not one the operator may read"),
    ("promsec-webhook-key", "is not one the operator may read"),
    ("promsec-multiline", "not a valid HTTP header value"),
])
def test_other_secrets_are_refused_and_nothing_is_echoed(
    operator: dict[str, str], crds: Cluster, policy_name: str, says: str
) -> None:
    entry = slo_in_state(crds, policy_name, "Unknown")
    assert says in entry["error"]
    text = json.dumps(crds.get_json("rp", policy_name)) + json.dumps(crds.get_json("-n", WORK, "policyreports"))
    for value in (*SECRETS.values(), "tls-key-1234"):
        for part in value.split("\n"):
            assert part not in text, f"{part!r} reached status or a report"
