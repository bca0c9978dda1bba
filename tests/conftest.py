"""Session fixtures: one real control plane and one real Prometheus per test run.

Set KUBECONFIG to run the end-to-end tests against an existing cluster (e.g. kind) instead.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import HACK, REPO_ROOT, Cluster, local_cluster
from tests.support.prometheus import Prometheus, local_prometheus


@pytest.fixture(scope="session")
def state_root() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="readiness-test-") as tmp:
        yield Path(tmp)


@pytest.fixture(scope="session")
def tools() -> str:
    """Put the cached kubectl (matching the server) and helm first on PATH, building them if needed."""
    path = subprocess.run(
        [str(HACK / "build.sh"), "path"], check=True, capture_output=True, text=True, timeout=3600
    ).stdout.strip()
    os.environ["PATH"] = f"{path}:{os.environ['PATH']}"
    return path


@pytest.fixture(scope="session")
def cluster(state_root: Path, tools: str) -> Iterator[Cluster]:
    existing = os.environ.get("KUBECONFIG")
    if existing:
        yield Cluster(Path(existing))
        return
    with local_cluster(state_root / "cluster") as started:
        yield started


@pytest.fixture(scope="session")
def crds(cluster: Cluster) -> Cluster:
    """The repository's CRDs (ReadinessPolicy, PolicyReport) installed and established."""
    cluster.kubectl("apply", "-f", str(REPO_ROOT / "crds"))
    cluster.kubectl("wait", "--for=condition=established", "--timeout=60s", "crd",
                    "readinesspolicies.readiness.dev", "policyreports.wgpolicyk8s.io")
    return cluster


@pytest.fixture(scope="session")
def prometheus(state_root: Path) -> Iterator[Prometheus]:
    with local_prometheus(state_root / "prometheus") as started:
        yield started
