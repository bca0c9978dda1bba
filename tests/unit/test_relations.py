"""Related-object semantics: PDB percentages, HPA targeting, image references, IntOrString."""

from __future__ import annotations

from typing import Any

import pytest

from readiness_operator.checks.autoscaling import resource_targets
from readiness_operator.checks.disruption import guaranteed_available
from readiness_operator.checks.images import split_image
from readiness_operator.checks.relations import hpa_targets, pdb_selects, scaled_value


@pytest.mark.parametrize(
    ("value", "total", "round_up", "expected"),
    [
        (2, 10, True, 2),
        ("50%", 3, True, 2),
        ("50%", 3, False, 1),
        ("25%", 4, False, 1),
        ("25%", 3, False, 0),
        ("25%", 3, True, 1),
        ("29%", 100, True, 29),  # integer arithmetic: no float drift
        ("100%", 7, True, 7),
        ("0%", 7, True, 0),
        ("3", 10, True, 3),
        ("abc%", 3, True, None),
        ("x", 3, True, None),
        (None, 3, True, None),
    ],
)
def test_scaled_value(value: int | str | None, total: int, round_up: bool, expected: int | None) -> None:
    assert scaled_value(value, total, round_up=round_up) == expected


@pytest.mark.parametrize(
    ("spec", "replicas", "kept"),
    [
        ({"minAvailable": 2}, 3, 2),
        ({"minAvailable": 5}, 3, 3),  # cannot keep more than exist
        ({"minAvailable": "50%"}, 3, 2),  # roundUp
        ({"minAvailable": "50%"}, 4, 2),
        ({"maxUnavailable": 1}, 3, 2),
        ({"maxUnavailable": "50%"}, 3, 1),  # ceil(1.5) = 2 unavailable
        ({"maxUnavailable": "10%"}, 5, 4),  # ceil(0.5) = 1 unavailable
        ({"maxUnavailable": 5}, 3, 0),
        ({}, 3, 0),  # neither field: protects nothing
        ({"minAvailable": "junk%"}, 3, None),
    ],
)
def test_pdb_guaranteed_available(spec: dict[str, Any], replicas: int, kept: int | None) -> None:
    assert guaranteed_available({"spec": spec}, replicas) == kept


@pytest.mark.parametrize(
    ("pdb", "expected"),
    [
        ({"metadata": {"namespace": "demo"}, "spec": {"selector": {"matchLabels": {"app": "web"}}}}, True),
        ({"metadata": {"namespace": "other"}, "spec": {"selector": {"matchLabels": {"app": "web"}}}}, False),
        ({"metadata": {"namespace": "demo"}, "spec": {"selector": {}}}, True),
        ({"metadata": {"namespace": "demo"}, "spec": {}}, False),
        ({"metadata": {"namespace": "demo"}, "spec": {"selector": {"matchLabels": {"app": "api"}}}}, False),
    ],
)
def test_pdb_selects(pdb: dict[str, Any], expected: bool) -> None:
    assert pdb_selects(pdb, "demo", {"app": "web"}) is expected


@pytest.mark.parametrize(
    ("ref", "namespace", "expected"),
    [
        ({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "demo", True),
        ({"kind": "Deployment", "name": "web"}, "demo", True),
        ({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "other", False),
        ({"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web"}, "demo", False),
        ({"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"}, "demo", False),
        ({"apiVersion": "example.com/v1", "kind": "Deployment", "name": "web"}, "demo", False),
    ],
)
def test_hpa_targets(ref: dict[str, str], namespace: str, expected: bool) -> None:
    hpa = {"metadata": {"namespace": namespace}, "spec": {"scaleTargetRef": ref}}
    assert hpa_targets(hpa, "demo", "web") is expected


def test_resource_targets_v2_and_v1() -> None:
    v2 = {
        "spec": {
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
                },
                {
                    "type": "Resource",
                    "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "1Gi"}},
                },
                {"type": "Pods", "pods": {"metric": {"name": "rps"}}},
            ]
        }
    }
    assert resource_targets(v2) == {"cpu": 70, "memory": None}
    assert resource_targets({"spec": {"targetCPUUtilizationPercentage": 50}}) == {"cpu": 50}


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("nginx", ("nginx", None, None)),
        ("nginx:1.27", ("nginx", "1.27", None)),
        ("nginx:latest", ("nginx", "latest", None)),
        ("localhost:5000/web", ("localhost:5000/web", None, None)),
        ("localhost:5000/team/web:2.0", ("localhost:5000/team/web", "2.0", None)),
        ("web@sha256:abc", ("web", None, "sha256:abc")),
        ("web:1.0@sha256:abc", ("web", "1.0", "sha256:abc")),
    ],
)
def test_split_image(image: str, expected: tuple[str, str | None, str | None]) -> None:
    assert split_image(image) == expected
