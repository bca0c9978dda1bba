"""Fold per-Deployment verdicts into the small ``ReadinessPolicy.status`` (counts + worst offenders).

Pure, so the status writer only has to compare the result with the current status and patch when it
differs; condition transition times are carried over from the previous status when nothing changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from readiness_operator.engine import DeploymentVerdict
from readiness_operator.model.status import MAX_WORST_OFFENDERS, Condition, Offender, ReadinessPolicyStatus

__all__ = ["VerdictFold", "fold_verdicts", "summarize"]


def _condition(
    type_: str,
    status: str,
    reason: str,
    message: str,
    *,
    now: datetime,
    generation: int | None,
    previous: ReadinessPolicyStatus | None,
) -> Condition:
    since = now.isoformat().replace("+00:00", "Z")
    for old in previous.conditions if previous else ():
        if old.type == type_ and old.status == status and old.last_transition_time:
            since = old.last_transition_time
    return Condition.model_validate(
        {
            "type": type_,
            "status": status,
            "reason": reason,
            "message": message,
            "lastTransitionTime": since,
            "observedGeneration": generation,
        }
    )


@dataclass(frozen=True, slots=True)
class VerdictFold:
    """What the status needs from every verdict, folded once: the operator keeps it while no verdict
    changes, so a pass that only refreshed SLO values does not walk 10,000 verdicts again."""

    targets: int
    noncompliant: int
    exempt: int
    score: int
    worst: tuple[DeploymentVerdict, ...]


def fold_verdicts(verdicts: Iterable[DeploymentVerdict]) -> VerdictFold:
    items = list(verdicts)
    bad = [v for v in items if not v.compliant]
    return VerdictFold(
        targets=len(items), noncompliant=len(bad),
        exempt=sum(1 for v in items if any(f.status == "exempt" for f in v.findings)),
        score=100 if not items else sum(v.score for v in items) // len(items),
        worst=tuple(sorted(bad, key=lambda v: (v.score, v.namespace, v.name))[:MAX_WORST_OFFENDERS]),
    )


def summarize(
    verdicts: Iterable[DeploymentVerdict] | VerdictFold,
    *,
    now: datetime,
    observed_generation: int | None = None,
    previous: ReadinessPolicyStatus | None = None,
    extra_conditions: Iterable[Condition] = (),
    last_evaluated: bool = True,
) -> ReadinessPolicyStatus:
    """Status for a policy from the verdicts of all Deployments it selects (or their fold).

    ``score`` is the mean Deployment score (floored; 100 with no targets); ``worstOffenders`` lists at
    most 10 noncompliant Deployments, lowest score first. ``extra_conditions`` (e.g. PrometheusReachable)
    are appended as given.
    """
    folded = verdicts if isinstance(verdicts, VerdictFold) else fold_verdicts(verdicts)
    targets, noncompliant, score, worst = folded.targets, folded.noncompliant, folded.score, folded.worst
    cond = partial(_condition, now=now, generation=observed_generation, previous=previous)
    conditions = [
        cond("Ready", "True", "Evaluated", f"evaluated {targets} Deployment(s)"),
        cond(
            "Compliant",
            "False" if noncompliant else "True",
            "NoncompliantTargets" if noncompliant else "AllCompliant",
            f"{noncompliant} of {targets} Deployment(s) fail critical or warning checks"
            if noncompliant
            else f"all {targets} Deployment(s) comply",
        ),
        *extra_conditions,
    ]
    return ReadinessPolicyStatus(
        observed_generation=observed_generation,
        targets=targets,
        compliant=targets - noncompliant,
        noncompliant=noncompliant,
        exempt=folded.exempt,
        score=score,
        conditions=conditions,
        worst_offenders=[
            Offender(
                namespace=v.namespace,
                name=v.name,
                score=v.score,
                level=v.level,
                failed_checks=v.failed_checks[:64],
            )
            for v in worst
        ],
        last_evaluated=now.isoformat().replace("+00:00", "Z") if last_evaluated else None,
    )
