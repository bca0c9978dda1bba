"""The operator as a real subprocess (`readiness-operator run`), as users and the chart run it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .cluster import Cluster


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OperatorProcess:
    def __init__(self, kubeconfig: Path, log_path: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.args = args
        self.extra_env = env or {}
        self.liveness_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, wait: bool = True) -> OperatorProcess:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), **self.extra_env}
        cmd = [sys.executable, "-m", "readiness_operator", "run",
               "--liveness", f"http://127.0.0.1:{self.liveness_port}/healthz", *self.args]
        if not {"--leader-election-lease", "--peering", "--standalone"} & set(self.args):
            cmd.append("--standalone")  # one replica: no election
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        if wait:
            self.wait_live()
        return self

    def wait_live(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"operator exited with {self.process.returncode}:\n{self.logs()[-4000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"operator not live after {timeout}s:\n{self.logs()[-4000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@contextmanager
def running_operator(
    cluster: Cluster, log_path: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[OperatorProcess]:
    op = OperatorProcess(cluster.kubeconfig, log_path, *args, env=env).start()
    try:
        yield op
    finally:
        op.stop()
        errors = [line for line in op.logs().splitlines() if "Traceback" in line]
        if errors:
            print(f"operator log {log_path} has tracebacks")
