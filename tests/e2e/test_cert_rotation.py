"""The webhook's serving certificate rotates without failing a request (issue 15 item 5).

Admission requests go through the real API server (server-side dry-run creates, with
`failurePolicy: Fail`, so a TLS failure is a failed request and not a silent fail-open) from a
thread that never stops while certificates change underneath: a self-signed certificate with a
20 s lifetime renewed at 30 % of it (Secret mode, twice; a low fraction leaves
each new certificate more than 10 s before the old one expires, even on a loaded machine), and cert-manager-style mounted files
replaced on disk, atomically (kubelet's `..data` symlink swap) and then file by file.
"""

from __future__ import annotations

import base64
import datetime
import itertools
import os
import ssl
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import kubernetes
import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from readiness_operator.admission.certs import ServingCertificate, generate, issued_by, not_after, split_pem
from tests.support.cluster import Cluster, eventually
from tests.support.operator import OperatorProcess, free_port

pytestmark = pytest.mark.e2e

NAMESPACE = "ro-rotation"  # the operator's (holds the Secret; never judged)
APP_NAMESPACE = "rot-app"
POLICY = "rot-warn"


@dataclass
class AdmissionLoad:
    """Dry-run creates issued back to back; each must come back admitted with our webhook's warning."""

    api: kubernetes.client.AppsV1Api
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def run(self) -> None:
        body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "rot", "namespace": APP_NAMESPACE},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "rot"}},
                         "template": {"metadata": {"labels": {"app": "rot"}},
                                      "spec": {"containers": [{"name": "app", "image": "app:1.0"}]}}}}
        while not self.stop.is_set():
            try:
                _, status, headers = self.api.create_namespaced_deployment_with_http_info(
                    APP_NAMESPACE, body, dry_run="All", _request_timeout=30)
                warning = headers.get("Warning", "")
                if status == 201 and "probe-readiness" in warning:
                    self.ok += 1
                else:
                    self.failures.append(f"{status}, no readiness warning: {warning!r}")
            except ApiException as exc:
                self.failures.append(f"{exc.status}: {exc.body}")
            except Exception as exc:
                self.failures.append(repr(exc))


@pytest.fixture(scope="module")
def app_namespace(crds: Cluster) -> Iterator[Cluster]:
    for ns in (NAMESPACE, APP_NAMESPACE):
        crds.kubectl("create", "namespace", ns, check=False)
    crds.apply(yaml.safe_dump({
        "apiVersion": "readiness.dev/v1alpha1", "kind": "ReadinessPolicy", "metadata": {"name": POLICY},
        "spec": {"mode": "Warn", "match": {"namespaces": [APP_NAMESPACE]},
                 "rules": {"probes": {"liveness": False, "readiness": True}}}}))
    yield crds
    crds.kubectl("delete", "rp", POLICY, "--ignore-not-found", "--wait=false")
    crds.kubectl("delete", "namespace", APP_NAMESPACE, NAMESPACE, "--ignore-not-found", "--wait=false")


@pytest.fixture
def load(app_namespace: Cluster) -> Iterator[AdmissionLoad]:
    client = kubernetes.config.new_client_from_config(config_file=str(app_namespace.kubeconfig))
    running = AdmissionLoad(kubernetes.client.AppsV1Api(client))
    yield running
    running.stop.set()
    if running.thread is not None:
        running.thread.join(60)
    client.close()


def start_load(load: AdmissionLoad) -> None:
    load.thread = threading.Thread(target=load.run, daemon=True)
    load.thread.start()


def operator(cluster: Cluster, log: Path, config: str, **env: str) -> tuple[OperatorProcess, int, int]:
    port, metrics_port = free_port(), free_port()
    op = OperatorProcess(cluster.kubeconfig, log, "--webhook-port", str(port), "--metrics-port", str(metrics_port),
                         env={
                             "READINESS_WEBHOOK_URL": f"https://127.0.0.1:{port}", "READINESS_WEBHOOK_ADDR": "127.0.0.1",
                             "READINESS_NAMESPACE": NAMESPACE, "READINESS_WEBHOOK_CONFIGURATION": config,
                             "READINESS_WEBHOOK_FAILURE_POLICY": "Fail", "READINESS_WEBHOOK_CERT_CHECK_SECONDS": "0.5",
                             "READINESS_VAP": "false", **env,
                         })
    return op, port, metrics_port


def served(port: int) -> bytes:
    return ssl.get_server_certificate(("127.0.0.1", port), timeout=5).encode()


def published(cluster: Cluster, config: str) -> bytes:
    vwc = cluster.get_json("validatingwebhookconfiguration", config)
    bundles = {w["clientConfig"]["caBundle"] for w in vwc["webhooks"]}
    assert len(bundles) == 1, "every webhook trusts the same CAs"
    return base64.b64decode(bundles.pop())


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"{name} not exported")


def webhook_answers(load: AdmissionLoad) -> None:
    eventually(lambda: load.ok > 0, timeout=60, what="the webhook answering through the API server")
    load.failures.clear()  # before the webhook configuration existed the API server did not call us


def test_self_signed_certificate_rotates_twice_without_a_failed_request(
    app_namespace: Cluster, load: AdmissionLoad, tmp_path: Path,
) -> None:
    cluster, config, secret = app_namespace, "readiness-rotation", "rotation-tls"
    op, port, metrics_port = operator(cluster, tmp_path / "operator.log", config, **{
        "READINESS_WEBHOOK_CERT_SECRET": secret, "READINESS_WEBHOOK_CERT_LIFETIME_SECONDS": "20",
        "READINESS_WEBHOOK_CERT_RENEW_FRACTION": "0.3",
    })
    op.start()
    try:
        start_load(load)
        webhook_answers(load)
        certificates = [(served(port), datetime.datetime.now(datetime.UTC))]

        def rotated_twice() -> bool:
            current = served(port)
            if current != certificates[-1][0]:
                certificates.append((current, datetime.datetime.now(datetime.UTC)))
            return len(certificates) >= 3

        eventually(rotated_twice, timeout=120, interval=0.25, what="two certificate rotations")
        load.stop.set()
        assert load.failures == [], f"{len(load.failures)} of {load.ok + len(load.failures)} failed: {load.failures[:3]}"
        assert load.ok >= 20, f"only {load.ok} admission requests ran across the rotations"
        for (old, _), (_, replaced_at) in itertools.pairwise(certificates):
            left = not_after(old) - replaced_at
            assert left > datetime.timedelta(seconds=5), f"replaced only {left} before it expired"

        def consistent() -> bool:
            """Served = the Secret's, trusted by the caBundle, its expiry exported (renewal goes on meanwhile)."""
            current = served(port)
            in_secret = base64.b64decode(cluster.get_json("secret", secret, "-n", NAMESPACE)["data"]["tls.crt"])
            expiry = metric(metrics_port, "readiness_webhook_certificate_expiry_timestamp_seconds")
            return (current == in_secret and issued_by(current, published(cluster, config))
                    and expiry == not_after(current).timestamp())

        eventually(consistent, timeout=30, what="served certificate = Secret's, trusted, exported")
        assert metric(metrics_port, "readiness_webhook_certificate_rotations_total") >= 2
    finally:
        op.kill()  # nothing to shut down gracefully here; kopf's graceful stop costs seconds
        cluster.kubectl("delete", "validatingwebhookconfiguration", config, "--ignore-not-found")
    assert "Traceback" not in op.logs(), op.logs()[-4000:]


def write_generation(directory: Path, name: str, cert: ServingCertificate) -> Path:
    generation = directory / name
    generation.mkdir()
    for file, content in (("ca.crt", cert.ca_pem), ("tls.crt", cert.cert_pem), ("tls.key", cert.key_pem)):
        (generation / file).write_bytes(content)
    return generation


def test_mounted_files_replaced_on_disk_are_served_without_restart(
    app_namespace: Cluster, load: AdmissionLoad, tmp_path: Path,
) -> None:
    cluster, config = app_namespace, "readiness-rotation-files"
    hosts, lifetime = ["127.0.0.1", "localhost"], datetime.timedelta(hours=1)
    first, second, third = (generate(hosts, lifetime=lifetime) for _ in range(3))
    mount = tmp_path / "certs"
    mount.mkdir()
    # kubelet's layout for a Secret volume: files are links into ..data, a link to a timestamped directory
    write_generation(mount, "..gen1", first)
    (mount / "..data").symlink_to("..gen1")
    for file in ("ca.crt", "tls.crt", "tls.key"):
        (mount / file).symlink_to(f"..data/{file}")
    op, port, _ = operator(cluster, tmp_path / "operator.log", config, **{
        "READINESS_WEBHOOK_TLS": "cert-manager", "READINESS_WEBHOOK_CERT_DIR": str(mount)})
    op.start()
    try:
        start_load(load)
        webhook_answers(load)
        assert served(port) == first.cert_pem
        pid = op.process.pid if op.process else None

        # 1. kubelet's atomic update: a new timestamped directory, then ..data renamed onto it.
        write_generation(mount, "..gen2", second)
        (mount / "..data_tmp").symlink_to("..gen2")
        os.rename(mount / "..data_tmp", mount / "..data")
        eventually(lambda: served(port) == second.cert_pem, timeout=30, what="the renewed files served")
        bundle = published(cluster, config)
        assert issued_by(second.cert_pem, bundle)
        assert len(split_pem(bundle)) == 2, "the old CA stays trusted until it expires (another replica may serve it)"

        # 2. Files overwritten one by one: a certificate whose CA is not there yet is never served.
        for file in ("ca.crt", "tls.crt", "tls.key"):
            (mount / file).unlink()
        (mount / "tls.crt").write_bytes(third.cert_pem)
        time.sleep(2.5)
        assert served(port) == second.cert_pem, "a half-replaced set of files is not served"
        (mount / "tls.key").write_bytes(third.key_pem)
        (mount / "ca.crt").write_bytes(third.ca_pem)
        eventually(lambda: served(port) == third.cert_pem, timeout=30, what="the completed files served")
        load.stop.set()
        assert load.failures == [], f"{len(load.failures)} of {load.ok + len(load.failures)} failed: {load.failures[:3]}"
        assert issued_by(third.cert_pem, published(cluster, config))
        assert op.process is not None and op.process.poll() is None and op.process.pid == pid, "no restart"
    finally:
        op.kill()  # nothing to shut down gracefully here; kopf's graceful stop costs seconds
        cluster.kubectl("delete", "validatingwebhookconfiguration", config, "--ignore-not-found")
    assert "Traceback" not in op.logs(), op.logs()[-4000:]
