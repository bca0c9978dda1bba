"""The local control plane (hack/cluster.sh) and a thin kubectl wrapper for tests."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
HACK = REPO_ROOT / "hack"


class KubectlError(RuntimeError):
    """kubectl exited non-zero; the message carries its stderr so tests can assert on it."""

    def __init__(self, args: list[str], result: subprocess.CompletedProcess[str]) -> None:
        super().__init__(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
        self.stdout = result.stdout
        self.stderr = result.stderr
        self.returncode = result.returncode


@dataclass(frozen=True)
class Cluster:
    kubeconfig: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        cmd = ["kubectl", f"--kubeconfig={self.kubeconfig}", *args]
        result = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise KubectlError(list(args), result)
        return result

    def apply(self, manifest: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.kubectl("apply", "-f", "-", *extra, input=manifest)

    def get_json(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def server(self) -> str:
        return self.kubectl("config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}").stdout

    def ca_file(self, directory: Path) -> Path:
        """Write the cluster CA to a file (for clients that need a path, e.g. a token kubeconfig)."""
        data = self.kubectl(
            "config", "view", "--raw", "--minify",
            "-o", "jsonpath={.clusters[0].cluster.certificate-authority-data}",
        ).stdout
        import base64

        path = directory / "ca.crt"
        path.write_bytes(base64.b64decode(data))
        return path

    def token_kubeconfig(self, namespace: str, service_account: str, directory: Path) -> Path:
        """A kubeconfig that authenticates as a ServiceAccount, via `kubectl create token`."""
        token = self.kubectl("-n", namespace, "create", "token", service_account, "--duration=2h").stdout.strip()
        path = directory / f"{namespace}-{service_account}.kubeconfig"
        ca = self.ca_file(directory)
        env = {**os.environ, "KUBECONFIG": str(path)}
        for cmd in (
            ["config", "set-cluster", "c", f"--server={self.server()}", f"--certificate-authority={ca}",
             "--embed-certs=true"],
            ["config", "set-credentials", "u", f"--token={token}"],
            ["config", "set-context", "c", "--cluster=c", "--user=u"],
            ["config", "use-context", "c"],
        ):
            subprocess.run(["kubectl", *cmd], env=env, check=True, capture_output=True)
        return path


def eventually(check: Callable[[], Any], timeout: float = 30, interval: float = 0.25, what: str = "") -> Any:
    """Retry `check` until it returns a truthy value (or stops raising AssertionError)."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = check()
            if value:
                return value
            last = None
        except (AssertionError, KubectlError) as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}: {last}")
        time.sleep(interval)


@contextmanager
def local_cluster(state_dir: Path) -> Iterator[Cluster]:
    """Start a private control plane with hack/cluster.sh and stop it afterwards."""
    env = {**os.environ, "CLUSTER_DIR": str(state_dir)}
    env.pop("KUBECONFIG", None)
    result = subprocess.run(
        [str(HACK / "cluster.sh"), "up"], env=env, capture_output=True, text=True, timeout=3600
    )
    if result.returncode != 0:
        subprocess.run([str(HACK / "cluster.sh"), "down"], env=env, capture_output=True)
        raise RuntimeError(f"hack/cluster.sh up failed:\n{result.stderr}")
    try:
        yield Cluster(Path(result.stdout.strip().splitlines()[-1]))
    finally:
        subprocess.run([str(HACK / "cluster.sh"), "down"], env=env, capture_output=True, timeout=120)
