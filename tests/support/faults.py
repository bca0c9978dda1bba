"""Helpers for fault tests: stop/start a private control plane's API server, judge objects offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from .cluster import HACK


def _cluster_sh(state_dir: Path, command: str, timeout: float = 120) -> None:
    env = {**os.environ, "CLUSTER_DIR": str(state_dir)}
    env.pop("KUBECONFIG", None)
    result = subprocess.run([str(HACK / "cluster.sh"), command], env=env, capture_output=True, text=True,
                            timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"hack/cluster.sh {command} failed ({result.returncode}):\n{result.stderr}")


def stop_apiserver(state_dir: Path) -> None:
    """Stop only the kube-apiserver of the control plane in `state_dir` (etcd keeps the data)."""
    _cluster_sh(state_dir, "stop-apiserver")


def start_apiserver(state_dir: Path) -> None:
    """Start that kube-apiserver again with the same flags and port; returns once it is ready."""
    _cluster_sh(state_dir, "start-apiserver")


def audit(policy: Path, objects: Path) -> list[dict[str, Any]]:
    """`readiness-operator audit -o json` over files: the expected verdict of each matched Deployment."""
    result = subprocess.run(
        [sys.executable, "-m", "readiness_operator", "audit", "--policy", str(policy), "-f", str(objects),
         "-o", "json"],
        capture_output=True, text=True, timeout=300,
    )
    if result.returncode not in (0, 1):
        raise RuntimeError(f"audit failed ({result.returncode}): {result.stderr}")
    return list(json.loads(result.stdout)["results"])
