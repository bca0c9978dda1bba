"""Fold per-Deployment verdicts into the small ``ReadinessPolicy.status`` (counts + worst offenders).

Pure, so the status writer only has to compare the result with the current status and patch when it
differs; condition transition times are carried over from the previous status when nothing changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import partial

from readiness_operator.engine import DeploymentVerdict
from readiness_operator.model.status import MAX_WORST_OFFENDERS, Condition, Offender, ReadinessPolicyStatus

__all__ = ["summarize"]


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


def summarize(
    verdicts: Iterable[DeploymentVerdict],
    *,
    now: datetime,
    observed_generation: int | None = None,
    previous: ReadinessPolicyStatus | None = None,
    extra_conditions: Iterable[Condition] = (),
    last_evaluated: bool = True,
) -> ReadinessPolicyStatus:
    """Status for a policy from the verdicts of all Deployments it selects.

    ``score`` is the mean Deployment score (floored; 100 with no targets); ``worstOffenders`` lists at
    most 10 noncompliant Deployments, lowest score first. ``extra_conditions`` (e.g. PrometheusReachable)
    are appended as given.
    """
    items = list(verdicts)
    bad = [v for v in items if not v.compliant]
    score = 100 if not items else sum(v.score for v in items) // len(items)
    worst = sorted(bad, key=lambda v: (v.score, v.namespace, v.name))[:MAX_WORST_OFFENDERS]
    cond = partial(_condition, now=now, generation=observed_generation, previous=previous)
    conditions = [
        cond("Ready", "True", "Evaluated", f"evaluated {len(items)} Deployment(s)"),
        cond(
            "Compliant",
            "False" if bad else "True",
            "NoncompliantTargets" if bad else "AllCompliant",
            f"{len(bad)} of {len(items)} Deployment(s) fail critical or warning checks"
            if bad
            else f"all {len(items)} Deployment(s) comply",
        ),
        *extra_conditions,
    ]
    return ReadinessPolicyStatus(
        observed_generation=observed_generation,
        targets=len(items),
        compliant=len(items) - len(bad),
        noncompliant=len(bad),
        exempt=sum(1 for v in items if any(f.status == "exempt" for f in v.findings)),
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
