"""The admission benchmark client: loopback guard, request shape and a tiny in-process run."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_admission", ROOT / "hack" / "bench" / "admission.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_accepted(bench: ModuleType, host: str) -> None:
    bench.require_loopback(host)


@pytest.mark.parametrize("host", ["10.0.0.5", "8.8.8.8", "::ffff:10.0.0.1"])
def test_non_loopback_refused(bench: ModuleType, host: str) -> None:
    with pytest.raises(SystemExit, match="refusing non-loopback"):
        bench.require_loopback(host)


def test_url_must_be_loopback(bench: ModuleType) -> None:
    with pytest.raises(SystemExit, match="refusing non-loopback"):
        bench.main(["--url", "https://10.1.2.3:8443/x", "--cacert", "/dev/null", "--duration", "1"])


def test_admission_review_shape(bench: ModuleType) -> None:
    review = bench.admission_review(bench.realistic_deployment(), "web-000001")
    req = review["request"]
    assert review["apiVersion"] == "admission.k8s.io/v1" and review["kind"] == "AdmissionReview"
    assert req["operation"] == "CREATE" and req["name"] == "web-000001" == req["object"]["metadata"]["name"]
    assert req["resource"] == {"group": "apps", "version": "v1", "resource": "deployments"}


def test_in_process_run(bench: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--in-process", "--calls", "50", "--objects", "100", "--namespaces", "10", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["calls"] == 50 and out["allowed"] + out["denied"] == 50
    assert set(out["latency_us"]) == {"p50", "p95", "p99", "max"}
