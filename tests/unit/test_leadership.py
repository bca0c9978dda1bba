"""Which replica is active under kopf peering (pure rule, mirrors kopf: the unique highest live priority)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from readiness_operator.kube.leadership import leads

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def peer(priority: int, seconds_ago: float, lifetime: int = 30) -> dict[str, object]:
    return {"priority": priority, "lifetime": lifetime, "lastseen": (NOW - timedelta(seconds=seconds_ago)).isoformat()}


@pytest.mark.parametrize(
    ("status", "own", "expected"),
    [
        ({"a": peer(10, 1), "b": peer(5, 1)}, 10, True),
        ({"a": peer(10, 1), "b": peer(5, 1)}, 5, False),
        ({"a": peer(10, 60), "b": peer(5, 1)}, 5, True),  # the higher peer expired: take over
        ({"a": peer(7, 1), "b": peer(7, 1)}, 7, False),  # kopf pauses everyone on a tie
        ({"b": peer(5, 1)}, 10, False),  # our own record is not there (yet)
        ({"a": peer(10, 1), "junk": "x", "bad": {"lastseen": "never"}}, 10, True),
        ({}, 1, False),
    ],
)
def test_leads(status: dict[str, object], own: int, expected: bool) -> None:
    assert leads(status, own, NOW) is expected
