"""Policy status from verdicts: counts, mean score, bounded worst offenders, stable conditions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from readiness_operator.engine import DeploymentVerdict, level_for
from readiness_operator.summary import summarize

NOW = datetime(2025, 6, 1, tzinfo=UTC)


def verdict(name: str, score: int, compliant: bool) -> DeploymentVerdict:
    return DeploymentVerdict("demo", name, compliant, score, level_for(score), [])


def test_counts_score_and_offenders() -> None:
    verdicts = [verdict(f"bad-{i:02}", i, False) for i in range(15)] + [verdict("good", 100, True)]
    status = summarize(verdicts, now=NOW, observed_generation=3)
    assert (status.targets, status.compliant, status.noncompliant) == (16, 1, 15)
    assert status.score == (sum(range(15)) + 100) // 16
    assert len(status.worst_offenders) == 10
    assert [o.name for o in status.worst_offenders][:2] == ["bad-00", "bad-01"]
    conditions = {c.type: c for c in status.conditions}
    assert (
        conditions["Compliant"].status == "False" and conditions["Compliant"].reason == "NoncompliantTargets"
    )
    assert conditions["Ready"].status == "True" and conditions["Ready"].observed_generation == 3


def test_no_targets() -> None:
    status = summarize([], now=NOW)
    assert status.score == 100 and status.targets == 0
    assert {c.type: c.status for c in status.conditions}["Compliant"] == "True"


def test_transition_time_kept_while_status_unchanged() -> None:
    first = summarize([verdict("a", 100, True)], now=NOW)
    later = summarize([verdict("a", 100, True)], now=NOW + timedelta(hours=1), previous=first)
    assert later.conditions == first.conditions
    flipped = summarize([verdict("a", 10, False)], now=NOW + timedelta(hours=2), previous=later)
    compliant = {c.type: c for c in flipped.conditions}["Compliant"]
    assert compliant.last_transition_time == "2025-06-01T02:00:00Z"
    dumped = flipped.model_dump(by_alias=True, exclude_none=True)
    assert set(dumped) >= {"targets", "compliant", "noncompliant", "score", "conditions", "worstOffenders"}
