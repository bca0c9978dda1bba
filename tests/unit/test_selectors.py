"""LabelSelector semantics shared by match, exemptions, PDBs and anti-affinity."""

from __future__ import annotations

from typing import Any

import pytest

from readiness_operator.selectors import label_selector_matches

LABELS = {"app": "web", "tier": "production"}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        (None, True),
        ({}, True),
        ({"matchLabels": {"app": "web"}}, True),
        ({"matchLabels": {"app": "api"}}, False),
        ({"matchLabels": {"app": "web", "tier": "dev"}}, False),
        ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]}, True),
        ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["api"]}]}, False),
        ({"matchExpressions": [{"key": "missing", "operator": "In", "values": ["x"]}]}, False),
        ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["api"]}]}, True),
        ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}, False),
        ({"matchExpressions": [{"key": "missing", "operator": "NotIn", "values": ["x"]}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, True),
        ({"matchExpressions": [{"key": "missing", "operator": "Exists"}]}, False),
        ({"matchExpressions": [{"key": "missing", "operator": "DoesNotExist"}]}, True),
        ({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, False),
        ({"matchExpressions": [{"key": "app", "operator": "Gt", "values": ["1"]}]}, False),
        (
            {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["dev"]}],
            },
            False,
        ),
    ],
)
def test_label_selector(selector: dict[str, Any] | None, expected: bool) -> None:
    assert label_selector_matches(selector, LABELS) is expected


def test_selector_against_no_labels() -> None:
    assert label_selector_matches({"matchLabels": {"a": "b"}}, None) is False
    assert label_selector_matches({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, None)
