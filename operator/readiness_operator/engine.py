"""The rule engine: one Deployment + its World + a policy -> findings, score, level, compliance.

Pure and synchronous (no API or Prometheus calls) so the operator, the admission webhook and the CLI
share it. A policy is compiled once into a plan (enabled checks, severities, weights, exemptions), so
evaluating a Deployment costs only the checks themselves.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any, Literal

from readiness_operator.checks import CATALOGUE, SLO_CHECK_ID, Check, Context, Outcome, Target, slo_state
from readiness_operator.model.check_ids import SLO_CATEGORY, SLO_PREFIX
from readiness_operator.model.common import BLOCKING, Severity
from readiness_operator.model.slo import Slo
from readiness_operator.model.spec import Exemption, ReadinessPolicySpec
from readiness_operator.selectors import label_selector_matches
from readiness_operator.shape import MalformedObject, deployment_problem
from readiness_operator.world import World, namespace_of

__all__ = [
    "DEFAULT_WEIGHTS",
    "CompiledPolicy",
    "DeploymentVerdict",
    "Finding",
    "FindingStatus",
    "Level",
    "compile_policy",
    "evaluate",
    "level_for",
    "matches",
    "remeasure",
]

FindingStatus = Literal["pass", "fail", "exempt", "unknown"]
Level = Literal["ready", "nearly-ready", "not-ready", "not-production-ready"]

#: Score weight of a check by severity, unless ``spec.weights`` overrides it.
DEFAULT_WEIGHTS: Mapping[Severity, int] = {Severity.CRITICAL: 3, Severity.WARNING: 2, Severity.INFO: 1}


@dataclass(frozen=True, slots=True)
class Finding:
    """The verdict of one check on one Deployment."""

    check: str
    category: str
    severity: Severity
    status: FindingStatus
    message: str
    remediation: str
    weight: int
    value: float | None = None
    threshold: float | None = None
    measured_at: datetime | None = None
    state: str | None = None
    detail: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (camelCase like the rest of the API)."""
        out: dict[str, Any] = {
            "check": self.check,
            "category": self.category,
            "severity": str(self.severity),
            "status": self.status,
            "message": self.message,
            "remediation": self.remediation,
        }
        if self.category == SLO_CATEGORY:
            out.update(
                value=self.value,
                threshold=self.threshold,
                state=self.state,
                measuredAt=self.measured_at.isoformat() if self.measured_at else None,
            )
        return out


@dataclass(frozen=True, slots=True)
class DeploymentVerdict:
    """Everything the operator, webhook and CLI report about one Deployment under one policy."""

    namespace: str
    name: str
    compliant: bool
    score: int
    level: Level
    findings: list[Finding]

    @property
    def failures(self) -> list[Finding]:
        """Failed findings only (what a person has to fix)."""
        return [f for f in self.findings if f.status == "fail"]

    @property
    def failed_checks(self) -> list[str]:
        """Ids of failed checks, for status and Events."""
        return [f.check for f in self.findings if f.status == "fail"]


def level_for(score: int) -> Level:
    """>= 90 ready, 75-89 nearly ready, 50-74 not ready, < 50 not production ready."""
    if score >= 90:
        return "ready"
    if score >= 75:
        return "nearly-ready"
    if score >= 50:
        return "not-ready"
    return "not-production-ready"


@dataclass(frozen=True, slots=True)
class _Exemption:
    checks: frozenset[str]
    namespaces: frozenset[str]
    names: tuple[str, ...]
    selector: dict[str, Any] | None
    reason: str
    expires: datetime | None

    @classmethod
    def of(cls, e: Exemption) -> _Exemption:
        return cls(
            frozenset(e.checks),
            frozenset(e.namespaces),
            tuple(e.names),
            e.selector.as_dict() if e.selector is not None else None,
            e.reason,
            e.expires,
        )

    def applies(self, target: Target) -> bool:
        if self.namespaces and target.namespace not in self.namespaces:
            return False
        if self.names and not any(fnmatchcase(target.name, pattern) for pattern in self.names):
            return False
        return self.selector is None or label_selector_matches(self.selector, target.labels)

    def covers(self, check_id: str) -> bool:
        return "*" in self.checks or check_id in self.checks


@dataclass(frozen=True, slots=True)
class _Planned:
    check: Check
    rule: Any
    severity: Severity
    weight: int
    #: One shared Finding per (status, message) of this check: most Deployments get the same text
    #: ("every container has a readinessProbe"), and the operator keeps every finding of every
    #: Deployment under every policy (~800,000 at 10,000 Deployments and four policies).
    shared: dict[tuple[str, str], Finding] = field(default_factory=dict, compare=False, hash=False, repr=False)


@dataclass(frozen=True, slots=True)
class _PlannedSlo:
    slo: Slo
    weight: int
    remediation: str


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    """A policy spec turned into a plan: the enabled checks with resolved severities and weights."""

    spec: ReadinessPolicySpec
    checks: tuple[_Planned, ...]
    slos: tuple[_PlannedSlo, ...]
    exemptions: tuple[_Exemption, ...]
    namespaces: frozenset[str]
    exclude_namespaces: frozenset[str]
    namespace_selector: dict[str, Any] | None
    selector: dict[str, Any] | None

    @property
    def check_ids(self) -> list[str]:
        """Ids of the findings every evaluation produces, in order."""
        return [p.check.id for p in self.checks] + [SLO_PREFIX + p.slo.name for p in self.slos]


def _weight(spec: ReadinessPolicySpec, check_id: str, category: str, severity: Severity) -> int:
    if check_id in spec.weights:
        return spec.weights[check_id]
    if category in spec.weights:
        return spec.weights[category]
    return DEFAULT_WEIGHTS[severity]


def compile_policy(spec: ReadinessPolicySpec | CompiledPolicy) -> CompiledPolicy:
    """The plan of a spec (a CompiledPolicy passes through). Callers that judge many Deployments
    compile once and pass the plan; long-lived plans live in :class:`readiness_operator.policies.PolicyCache`."""
    if isinstance(spec, CompiledPolicy):
        return spec
    planned: list[_Planned] = []
    for check in CATALOGUE.values():
        if check.id == SLO_CHECK_ID:
            continue
        rule = getattr(spec.rules, check.group)
        if rule is None or not check.enabled(rule):
            continue
        severity = rule.severity or check.default_severity
        planned.append(_Planned(check, rule, severity, _weight(spec, check.id, check.category, severity)))
    slo_check = CATALOGUE[SLO_CHECK_ID]
    slos = tuple(
        _PlannedSlo(s, _weight(spec, SLO_PREFIX + s.name, SLO_CATEGORY, s.severity), slo_check.remediation)
        for s in spec.slos
    )
    m = spec.match
    compiled = CompiledPolicy(
        spec=spec,
        checks=tuple(planned),
        slos=slos,
        exemptions=tuple(_Exemption.of(e) for e in spec.exemptions),
        namespaces=frozenset(m.namespaces),
        exclude_namespaces=frozenset(m.exclude_namespaces),
        namespace_selector=m.namespace_selector.as_dict() if m.namespace_selector is not None else None,
        selector=m.selector.as_dict() if m.selector is not None else None,
    )
    return compiled


def matches(
    policy: ReadinessPolicySpec | CompiledPolicy,
    deployment: Mapping[str, Any],
    namespace_labels: Mapping[str, str] | None = None,
) -> bool:
    """Whether the policy's ``match`` selects the Deployment (a namespace-less one counts as ``default``)."""
    plan = compile_policy(policy)
    ns = namespace_of(deployment)
    if plan.namespaces and ns not in plan.namespaces:
        return False
    if ns in plan.exclude_namespaces:
        return False
    if plan.namespace_selector is not None and not label_selector_matches(
        plan.namespace_selector, namespace_labels or {}
    ):
        return False
    labels = (deployment.get("metadata") or {}).get("labels") or {}
    return plan.selector is None or label_selector_matches(plan.selector, labels)


def _exemption_for(
    plan: CompiledPolicy, target: Target, check_id: str, now: datetime
) -> tuple[_Exemption | None, _Exemption | None]:
    """(active exemption, expired exemption) covering the check for this Deployment."""
    expired = None
    for e in plan.exemptions:
        if not e.covers(check_id) or not e.applies(target):
            continue
        if e.expires is not None and e.expires < now:
            expired = expired or e
            continue
        return e, None
    return None, expired


def _finding(
    check_id: str,
    category: str,
    severity: Severity,
    weight: int,
    remediation: str,
    outcome: Outcome,
    expired: _Exemption | None,
) -> Finding:
    message = outcome.message
    if expired is not None and expired.expires is not None:
        message = f"{message} (exemption expired at {expired.expires.isoformat()}: {expired.reason})"
    # Most messages repeat across Deployments ("readinessProbe set on every container"); the operator
    # keeps ~15 findings for each of 10,000s of Deployments, so share one copy of each text.
    message = sys.intern(message)
    return Finding(
        check=check_id,
        category=category,
        severity=severity,
        status=outcome.status,
        message=message,
        remediation=remediation,
        weight=weight,
        value=outcome.value,
        threshold=outcome.threshold,
        measured_at=outcome.measured_at,
        detail=outcome.detail,
        state=outcome.state,
    )


#: Bound on the distinct findings shared per check and policy (messages naming containers or values
#: can be unique per Deployment; those are not worth keeping twice).
SHARED_FINDINGS_PER_CHECK = 512


def _static_finding(p: _Planned, outcome: Outcome, expired: _Exemption | None) -> Finding:
    """The check's finding, shared with every other Deployment that got the same status and text."""
    check = p.check
    if expired is not None or outcome.value is not None or outcome.measured_at is not None \
            or outcome.state is not None or outcome.detail:
        return _finding(check.id, check.category, p.severity, p.weight, check.remediation, outcome, expired)
    key = (outcome.status, outcome.message)
    found = p.shared.get(key)
    if found is None:
        found = _finding(check.id, check.category, p.severity, p.weight, check.remediation, outcome, None)
        if len(p.shared) < SHARED_FINDINGS_PER_CHECK:
            p.shared[key] = found
    return found


def _exempt(
    check_id: str, category: str, severity: Severity, weight: int, remediation: str, e: _Exemption
) -> Finding:
    until = f" until {e.expires.isoformat()}" if e.expires is not None else ""
    return Finding(check_id, category, severity, "exempt", f"exempt{until}: {e.reason}", remediation, weight)


def evaluate(
    policy: ReadinessPolicySpec | CompiledPolicy, deployment: Mapping[str, Any], world: World
) -> DeploymentVerdict:
    """Run every enabled check of the policy on the Deployment and score the result.

    Score: weighted share of passed checks among pass/fail findings (exempt and unknown do not count;
    no such findings -> 100). Compliant: no failed finding of severity critical or warning.
    """
    problem = deployment_problem(deployment)
    if problem is not None:
        raise MalformedObject(f"malformed Deployment: {problem}")
    plan = compile_policy(policy)
    target = Target.from_deployment(deployment)
    ctx = Context(target, world)
    findings: list[Finding] = []
    has_exemptions = bool(plan.exemptions)
    for p in plan.checks:
        check = p.check
        expired = None
        if has_exemptions:
            active, expired = _exemption_for(plan, target, check.id, world.now)
            if active is not None:
                findings.append(
                    _exempt(check.id, check.category, p.severity, p.weight, check.remediation, active)
                )
                continue
        findings.append(_static_finding(p, check.func(ctx, p.rule), expired))
    findings += _slo_findings(plan, target, ctx)
    return _verdict(target, findings)


def remeasure(
    policy: ReadinessPolicySpec | CompiledPolicy, previous: DeploymentVerdict, deployment: Mapping[str, Any],
    world: World,
) -> DeploymentVerdict | None:
    """`previous` with only its SLO findings judged again, from `world`'s measurements (the only
    part of the World the SLO check reads).

    For a Deployment whose only news is a new SLO measurement: its object and related objects are
    unchanged (else it would be marked for a full evaluation), so its other findings stand. Re-running
    the whole catalogue for the few hundred Deployments with SLOs on every query interval was the
    idle leader's largest cost (issue 16). None when `previous` was judged under another plan.
    """
    plan = compile_policy(policy)
    static = len(plan.checks)
    kept = previous.findings[:static]
    if len(previous.findings) != static + len(plan.slos) or any(
            f.check != p.check.id for f, p in zip(kept, plan.checks, strict=True)):
        return None
    target = Target.from_deployment(deployment)
    if (target.namespace, target.name) != (previous.namespace, previous.name):
        return None
    return _verdict(target, [*kept, *_slo_findings(plan, target, Context(target, world))])


def _slo_findings(plan: CompiledPolicy, target: Target, ctx: Context) -> list[Finding]:
    world = ctx.world
    findings: list[Finding] = []
    for ps in plan.slos:
        check_id = SLO_PREFIX + ps.slo.name
        expired = None
        if plan.exemptions:
            active, expired = _exemption_for(plan, target, check_id, world.now)
            if active is not None:
                findings.append(
                    _exempt(check_id, SLO_CATEGORY, ps.slo.severity, ps.weight, ps.remediation, active)
                )
                continue
        outcome = CATALOGUE[SLO_CHECK_ID].func(ctx, ps.slo)
        measurement = world.slo_measurements.get(ps.slo.name)
        _, severity = slo_state(ps.slo, outcome.value, measurement.budget if measurement is not None else None)
        findings.append(
            _finding(check_id, SLO_CATEGORY, severity, ps.weight, ps.remediation, outcome, expired)
        )
    return findings


def _verdict(target: Target, findings: list[Finding]) -> DeploymentVerdict:
    total = passed = 0
    compliant = True
    for f in findings:
        if f.status == "pass":
            total += f.weight
            passed += f.weight
        elif f.status == "fail":
            total += f.weight
            if f.severity in BLOCKING:
                compliant = False
    # Floor, so a Deployment with any weighted failure never shows 100.
    score = 100 if total == 0 else (100 * passed) // total
    return DeploymentVerdict(target.namespace, target.name, compliant, score, level_for(score), findings)
