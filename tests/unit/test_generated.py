"""The CRDs and reference docs are generated from the model and must be checked in up to date."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from readiness_operator.checks import CATALOGUE
from readiness_operator.generate import main, render_all
from readiness_operator.model.crd import readiness_policy_crd

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("rel", sorted(render_all()))
def test_checked_in_file_is_current(rel: str) -> None:
    path = ROOT / rel
    assert path.exists(), f"{rel} missing: run hack/gen_crd.py"
    assert path.read_text() == render_all()[rel], f"{rel} is stale: run hack/gen_crd.py"


def test_check_mode_reports_drift(tmp_path: Path) -> None:
    assert main(["--root", str(tmp_path), "--check"]) == 1
    assert main(["--root", str(tmp_path)]) == 0
    assert main(["--root", str(tmp_path), "--check"]) == 0


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = []
    if isinstance(node, dict):
        out.append((path, node))
        for key, value in node.items():
            out += _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _walk(value, f"{path}[{i}]")
    return out


def test_crd_is_structural() -> None:
    schema = readiness_policy_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        assert "$ref" not in node and "anyOf" not in node and "title" not in node, path
        assert node.get("additionalProperties") is not False, path
        if "properties" in node or "items" in node:
            assert node.get("type") in ("object", "array"), path
        if node.get("x-kubernetes-int-or-string"):
            assert "type" not in node, path
        assert node.get("default", 0) is not None, path


def test_crd_names_scope_and_columns() -> None:
    crd = readiness_policy_crd()
    spec = crd["spec"]
    assert crd["metadata"]["name"] == "readinesspolicies.readiness.dev"
    assert spec["scope"] == "Cluster" and spec["names"]["shortNames"] == ["rp"]
    version = spec["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    columns = [(c["name"], c["jsonPath"]) for c in version["additionalPrinterColumns"]]
    assert columns == [
        ("MODE", ".spec.mode"),
        ("TARGETS", ".status.targets"),
        ("COMPLIANT", ".status.compliant"),
        ("NONCOMPLIANT", ".status.noncompliant"),
        ("EXEMPT", ".status.exempt"),
        ("SCORE", ".status.score"),
        ("READY", '.status.conditions[?(@.type=="Ready")].status'),
        ("AGE", ".metadata.creationTimestamp"),
    ]


def test_crd_carries_defaults_enums_and_cel_rules() -> None:
    spec = readiness_policy_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["mode"]["enum"] == ["Enforce", "Warn", "Audit"]
    assert spec["properties"]["mode"]["default"] == "Audit"
    hpa = spec["properties"]["rules"]["properties"]["horizontalPodAutoscaler"]
    assert any("self.minReplicas <= self.maxReplicas" in r["rule"] for r in hpa["x-kubernetes-validations"])
    slos = spec["properties"]["slos"]
    assert slos["x-kubernetes-list-type"] == "map" and slos["maxItems"]
    checks = spec["properties"]["exemptions"]["items"]["properties"]["checks"]
    assert checks["maxItems"] and checks["items"]["maxLength"]
    text = json.dumps(checks["x-kubernetes-validations"])
    assert all(f"'{cid}'" in text for cid in CATALOGUE if cid != "slo")
    ru = spec["properties"]["rules"]["properties"]["rollingUpdate"]["properties"]["maxUnavailable"]
    assert ru["x-kubernetes-int-or-string"] is True


def test_policy_report_crds() -> None:
    for name, scope in (("policyreports", "Namespaced"), ("clusterpolicyreports", "Cluster")):
        crd = yaml.safe_load((ROOT / f"crds/wgpolicyk8s.io_{name}.yaml").read_text())
        assert crd["spec"]["group"] == "wgpolicyk8s.io" and crd["spec"]["scope"] == scope
        version = crd["spec"]["versions"][0]
        assert version["name"] == "v1alpha2"
        props = version["schema"]["openAPIV3Schema"]["properties"]
        assert set(props["summary"]["properties"]) == {"pass", "fail", "warn", "error", "skip"}
        result = props["results"]["items"]["properties"]
        assert result["result"]["enum"] == ["pass", "fail", "warn", "error", "skip"]
        assert {
            "policy",
            "rule",
            "category",
            "severity",
            "timestamp",
            "scored",
            "source",
            "message",
            "properties",
            "resources",
        } <= set(result)
        assert [c["name"] for c in version["additionalPrinterColumns"]] == [
            "Kind",
            "Name",
            "Pass",
            "Fail",
            "Warn",
            "Error",
            "Skip",
            "Age",
        ]


def test_docs_cover_every_check_and_field() -> None:
    checks_md = (ROOT / "docs/checks.md").read_text()
    for check_id in CATALOGUE:
        assert f"## {check_id}" in checks_md
    reference = (ROOT / "docs/policy-reference.md").read_text()
    for field in (
        "minTerminationGracePeriodSeconds",
        "blockOnUnknown",
        "excludeNamespaces",
        "maxUnavailable",
        "weights",
    ):
        assert f"`{field}`" in reference
