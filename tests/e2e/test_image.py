"""The operator image, built by hack/image.sh, runs as a pod would (issue 15, item 7).

The chart is installed (its own pods never run: kwok fakes them); the image then runs in podman on
host networking with the chart's arguments, environment, ServiceAccount token (mounted where a pod
has it, with KUBERNETES_SERVICE_HOST/PORT pointing at the local API server) and the chart's
securityContext: the image's own non-root user, a read-only root filesystem with a tmpfs on /tmp,
no capabilities. Ports are free ones (host networking on a shared machine), VAP generation is off so
that a denial can only come from the webhook. Tests run in file order and share the container.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.support.cluster import HACK, REPO_ROOT, Cluster, KubectlError, eventually
from tests.support.operator import free_port

pytestmark = pytest.mark.e2e

CHART = REPO_ROOT / "charts" / "readiness-operator"
RELEASE, NS, WORK, POLICY = "image-proof", "image-proof", "image-work", "image-proof"
IMAGE_UID = 65532  # the Dockerfile's USER, and the chart's runAsUser
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """podman with this machine's flags and the image store of hack/image.sh."""
    result = subprocess.run([str(HACK / "image.sh"), "podman", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return int(r.status), r.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()
    except OSError:
        return 0, ""


def deployment(name: str, probe: bool) -> str:
    container: dict[str, Any] = {"name": "app", "image": "app:1.0"}
    if probe:
        container["readinessProbe"] = {"tcpSocket": {"port": 8080}}
    return yaml.safe_dump({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": WORK},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}}},
    })


@dataclass
class Container:
    name: str
    image: str
    metrics: int
    webhook: int
    webhook_configuration: str

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def metric(self, sample: str) -> float | None:
        _, text = http_get(f"http://127.0.0.1:{self.metrics}/metrics")
        for line in text.splitlines():
            if line.startswith(sample + " "):
                return float(line.rsplit(" ", 1)[1])
        return None


@pytest.fixture(scope="module")
def image() -> str:
    """hack/image.sh: a no-op when nothing changed; the cold build (base rootfs + dependencies) is minutes."""
    began = time.monotonic()
    result = subprocess.run([str(HACK / "image.sh")], capture_output=True, text=True, timeout=3600)
    print(f"hack/image.sh took {time.monotonic() - began:.1f}s")
    assert result.returncode == 0, f"hack/image.sh failed (hack/setup.sh installs podman, runc, mmdebstrap):\n{result.stderr}"
    return result.stdout.strip().splitlines()[-1]


def service_account_dir(cluster: Cluster, service_account: str, directory: Path) -> Path:
    """What the kubelet mounts for a pod: a token of the chart's ServiceAccount, the cluster CA, the namespace."""
    directory.mkdir(mode=0o755)
    token = cluster.kubectl("-n", NS, "create", "token", service_account, "--duration=1h").stdout.strip()
    (directory / "token").write_text(token)
    (directory / "namespace").write_text(NS)
    cluster.ca_file(directory)
    for file in directory.iterdir():
        file.chmod(0o644)  # readable by the image's user, as the kubelet's default mode allows
    return directory


def container_command(chart_container: dict[str, Any], metrics: int, webhook: int, liveness: int) -> list[str]:
    """The chart's args with free ports in place of its fixed ones (host networking)."""
    replace = {"--liveness=": f"--liveness=http://127.0.0.1:{liveness}/healthz",
               "--webhook-port=": f"--webhook-port={webhook}", "--metrics-port=": f"--metrics-port={metrics}"}
    args: list[str] = []
    for arg in chart_container["args"]:
        prefix = next((p for p in replace if arg.startswith(p)), None)
        args.append(replace.pop(prefix) if prefix else arg)
    assert not replace, f"the chart's args no longer set {sorted(replace)}"
    return args


@pytest.fixture(scope="module")
def running(crds: Cluster, image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Container]:
    cluster = crds
    tmp = tmp_path_factory.mktemp("image")
    subprocess.run(["helm", "--kubeconfig", str(cluster.kubeconfig), "install", RELEASE, str(CHART), "-n", NS,
                    "--create-namespace", "--wait=false", "--set", "vap.enabled=false"],
                   check=True, capture_output=True, text=True, timeout=300)
    chart_deploy = cluster.get_json("-n", NS, "deployment", "-l", f"app.kubernetes.io/instance={RELEASE}")["items"][0]
    pod = chart_deploy["spec"]["template"]["spec"]
    (chart_container,) = pod["containers"]
    metrics, webhook, liveness = free_port(), free_port(), free_port()
    env = {e["name"]: e["value"] for e in chart_container["env"] if "value" in e}
    server = urlsplit(cluster.server())
    env.update({
        "READINESS_NAMESPACE": NS, "READINESS_POD_NAME": f"{RELEASE}-image",  # the downward API's values
        "READINESS_WEBHOOK_PORT": str(webhook), "READINESS_WEBHOOK_ADDR": "127.0.0.1",
        "READINESS_WEBHOOK_URL": f"https://127.0.0.1:{webhook}",  # the API server reaches us on loopback
        "KUBERNETES_SERVICE_HOST": str(server.hostname), "KUBERNETES_SERVICE_PORT": str(server.port),
    })
    sa = service_account_dir(cluster, pod["serviceAccountName"], tmp / "serviceaccount")
    name = f"readiness-image-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", WORK)
    security = chart_container["securityContext"]
    assert security["readOnlyRootFilesystem"] and security["capabilities"]["drop"] == ["ALL"]
    run = ["run", "--detach", "--name", name, "--network", "host",
           "--read-only", "--read-only-tmpfs=false", "--tmpfs", "/tmp:rw,size=64m,mode=1777",
           "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
           "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
           "--volume", f"{sa}:{SA_DIR}:ro"]
    for key, value in sorted(env.items()):
        run += ["--env", f"{key}={value}"]
    started = Container(name, image, metrics, webhook, env["READINESS_WEBHOOK_CONFIGURATION"])
    try:
        podman(*run, image, *container_command(chart_container, metrics, webhook, liveness))
        eventually(lambda: http_get(f"http://127.0.0.1:{metrics}/readyz")[0] == 200, timeout=90,
                   what=f"the container is Ready; its log:\n{started.logs()[-3000:]}")
        yield started
    finally:
        # The policy first: its finalizer is the running container's to remove.
        cluster.kubectl("delete", "rp", POLICY, "--ignore-not-found", "--timeout=30s", check=False)
        stopped = time.monotonic()
        podman("stop", "--time", "20", name, check=False)
        print(f"podman stop (SIGTERM) took {time.monotonic() - stopped:.1f}s")
        inspected = podman("inspect", name, check=False)
        state = json.loads(inspected.stdout)[0]["State"] if inspected.returncode == 0 else {"ExitCode": "no container"}
        logs = started.logs()
        podman("rm", "--force", name, check=False)
        cluster.kubectl("delete", "validatingwebhookconfiguration", started.webhook_configuration, "--ignore-not-found")
        cluster.kubectl("delete", "namespace", WORK, "--ignore-not-found", "--wait=false")
        subprocess.run(["helm", "--kubeconfig", str(cluster.kubeconfig), "uninstall", RELEASE, "-n", NS],
                       capture_output=True, timeout=300)
    assert "Traceback" not in logs, logs[-5000:]
    assert state["ExitCode"] == 0, f"exit code {state['ExitCode']}: {logs[-3000:]}"


def test_image_runs_as_its_non_root_user_with_a_read_only_root_filesystem(running: Container) -> None:
    inspected = json.loads(podman("inspect", running.name).stdout)[0]
    assert inspected["Config"]["User"] == f"{IMAGE_UID}:{IMAGE_UID}"  # the image's USER; the test sets none
    assert inspected["HostConfig"]["ReadonlyRootfs"] is True
    status = podman("exec", running.name, "cat", "/proc/1/status").stdout
    uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
    gids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Gid:"))
    assert uids == [str(IMAGE_UID)] * 4 and gids == [str(IMAGE_UID)] * 4, status
    assert "readiness-operator" in podman("exec", running.name, "cat", "/proc/1/cmdline").stdout
    capabilities = next(line.split()[1] for line in status.splitlines() if line.startswith("CapEff:"))
    assert int(capabilities, 16) == 0
    root = next(line.split() for line in podman("exec", running.name, "cat", "/proc/1/mountinfo").stdout.splitlines()
                if line.split()[4] == "/")
    assert "ro" in root[5].split(","), root
    denied = podman("exec", running.name, "sh", "-c", "echo x > /opt/venv/probe", check=False)
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr
    assert podman("exec", running.name, "sh", "-c", "echo x > /tmp/probe && cat /tmp/probe").stdout.strip() == "x"


def test_image_judges_a_policy_and_its_webhook_denies_through_the_api_server(running: Container, crds: Cluster) -> None:
    cluster = crds
    cluster.apply(deployment("web", probe=False))
    cluster.apply(yaml.safe_dump({
        "apiVersion": "readiness.dev/v1alpha1", "kind": "ReadinessPolicy", "metadata": {"name": POLICY},
        "spec": {"mode": "Enforce", "match": {"namespaces": [WORK]},
                 "rules": {"probes": {"liveness": False, "readiness": True}}},
    }))
    eventually(lambda: (cluster.get_json("rp", POLICY).get("status") or {}).get("noncompliant") == 1,
               timeout=60, what="status written by the container")
    eventually(lambda: cluster.kubectl("-n", WORK, "get", "policyreport", f"readiness-{POLICY}",
                                       check=False).returncode == 0, what="PolicyReport written")
    vwc = cluster.get_json("validatingwebhookconfiguration", running.webhook_configuration)
    assert vwc["webhooks"][0]["clientConfig"]["url"].startswith(f"https://127.0.0.1:{running.webhook}")
    # VAPs are off: a denial can only come from the container's webhook.
    with pytest.raises(KubectlError) as denied:
        cluster.kubectl("create", "--dry-run=server", "-f", "-", input=deployment("other", probe=False))
    assert "admission webhook" in denied.value.stderr and "probe-readiness" in denied.value.stderr, denied.value.stderr
    allowed = cluster.kubectl("create", "--dry-run=server", "-f", "-", input=deployment("other", probe=True))
    assert "created (server dry run)" in allowed.stdout
    assert cluster.kubectl("-n", WORK, "get", "deployment", "other", check=False).returncode != 0  # dry run only
    log = running.logs()
    assert "forbidden" not in log.lower(), [line for line in log.splitlines() if "orbidden" in line][:5]


def test_image_serves_metrics_and_readyz(running: Container) -> None:
    status, body = http_get(f"http://127.0.0.1:{running.metrics}/readyz")
    assert status == 200 and "leader" in body, body
    assert running.metric("readiness_leader") == 1.0
    eventually(lambda: running.metric(f'readiness_policy_targets{{policy="{POLICY}",verdict="noncompliant"}}') == 1.0,
               what="the policy's verdict in /metrics")


def test_image_size_is_reported(running: Container) -> None:
    size = int(podman("image", "inspect", "--format", "{{.Size}}", running.image).stdout)
    layers = podman("history", "--format", "{{.Size}}\t{{.CreatedBy}}", running.image).stdout
    print(f"image {running.image}: {size / 1e6:.0f} MB")
    print("\n".join(line[:110] for line in layers.splitlines() if not line.startswith("0B")))
    # Debian's python3 (~105 MB) plus the venv (~215 MB, most of it the kubernetes client): a new heavy
    # dependency shows up here.
    assert 100e6 < size < 400e6, size
