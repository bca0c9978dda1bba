"""The load generator (hack/loadgen.py) as a subprocess, pointed at some namespaces."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .cluster import HACK, Cluster


@dataclass(frozen=True)
class LoadGenerator:
    port: int
    log_path: Path

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def scrape(self) -> str:
        """The exposition text, as Prometheus sees it."""
        with urllib.request.urlopen(f"http://{self.target}/metrics", timeout=5) as r:
            return str(r.read().decode())


@contextmanager
def running_loadgen(cluster: Cluster, state_dir: Path, *namespaces: str) -> Iterator[LoadGenerator]:
    state_dir.mkdir(parents=True, exist_ok=True)
    port_file, log_path = state_dir / "loadgen.port", state_dir / "loadgen.log"
    cmd = [sys.executable, str(HACK / "loadgen.py"), "--kubeconfig", str(cluster.kubeconfig), "--port-file",
           str(port_file), "--interval", "0.5"]
    for ns in namespaces:
        cmd += ["--namespace", ns]
    with log_path.open("ab") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"loadgen did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)
        yield LoadGenerator(int(port_file.read_text()), log_path)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
