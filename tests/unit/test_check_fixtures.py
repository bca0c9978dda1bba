"""Polaris-style fixtures: tests/fixtures/checks/<check-id>/{pass,fail,unknown}-*.yaml.

Each file holds a ReadinessPolicy, one Deployment, optional PDBs/HPAs/Pods and an optional
``kind: FixtureWorld`` document (now, sloMeasurements, namespaceLabels, ``live: true`` for the
living cluster's state; its Pods are mapped to the Deployment like the operator maps them). The file
name's prefix is the expected status of that check's finding.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from readiness_operator.checks import CATALOGUE, SLO_CHECK_ID
from readiness_operator.engine import evaluate
from readiness_operator.manifests import iter_documents
from readiness_operator.model import ReadinessPolicy
from readiness_operator.world import SloMeasurement, World, deployment_of_pod

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "checks"
FILES = sorted(FIXTURES.glob("*/*.yaml"))


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def load_fixture(path: Path) -> tuple[ReadinessPolicy, dict[str, Any], World]:
    """Split a fixture file into policy, Deployment and World."""
    docs = [doc for _, doc in iter_documents(str(path))]
    policy = ReadinessPolicy.model_validate(docs[0])
    deployments = [d for d in docs if d.get("kind") == "Deployment"]
    assert len(deployments) == 1, f"{path}: expected exactly one Deployment"
    extra = next((d for d in docs if d.get("kind") == "FixtureWorld"), {})
    measurements = {
        name: SloMeasurement(m.get("value"), _time(m.get("measuredAt")), m.get("error"))
        for name, m in (extra.get("sloMeasurements") or {}).items()
    }
    world = World(
        pdbs=[d for d in docs if d.get("kind") == "PodDisruptionBudget"],
        hpas=[d for d in docs if d.get("kind") == "HorizontalPodAutoscaler"],
        network_policies=[d for d in docs if d.get("kind") == "NetworkPolicy"],
        namespace_labels=extra.get("namespaceLabels") or {},
        slo_measurements=measurements,
        now=_time(extra.get("now")) or datetime(2025, 1, 1, tzinfo=UTC),
        live=bool(extra.get("live")),
        pods=[d for d in docs if d.get("kind") == "Pod"
              and deployment_of_pod(d) == deployments[0]["metadata"]["name"]] if extra.get("live") else [],
    )
    return policy, deployments[0], world


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.stem}" for p in FILES])
def test_fixture(path: Path) -> None:
    check_id = path.parent.name
    expected = path.stem.split("-", 1)[0]
    assert expected in ("pass", "fail", "unknown"), (
        f"{path.name}: name must start with pass-, fail- or unknown-"
    )
    policy, deployment, world = load_fixture(path)
    verdict = evaluate(policy.spec, deployment, world)
    if check_id == SLO_CHECK_ID:
        findings = [f for f in verdict.findings if f.category == "slo"]
    else:
        findings = [f for f in verdict.findings if f.check == check_id]
    assert len(findings) == 1, f"{path}: check {check_id} was not evaluated exactly once"
    finding = findings[0]
    assert finding.status == expected, f"{path}: {finding.status}: {finding.message}"
    assert finding.message
    if expected == "fail":
        # Actionable: a failure message says what to set or change.
        assert any(
            word in finding.message
            for word in ("set ", "add ", "create ", "raise ", "lower ", "remove ", "restore ")
        ), finding.message


def test_every_check_has_pass_and_fail_fixtures() -> None:
    missing = []
    for check_id in CATALOGUE:
        names = [p.stem for p in (FIXTURES / check_id).glob("*.yaml")]
        for prefix in ("pass-", "fail-"):
            if not any(n.startswith(prefix) for n in names):
                missing.append(f"{check_id}/{prefix}*.yaml")
    assert not missing, f"missing fixtures: {missing}"


def test_no_fixture_directory_for_unknown_checks() -> None:
    stray = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir() and p.name not in CATALOGUE)
    assert not stray, f"fixture directories for checks not in the catalogue: {stray}"
