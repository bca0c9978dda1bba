"""Fail-safe enforcement: ONE ValidatingAdmissionPolicy (CEL) holding every ``Enforce`` policy's rules.

The API server evaluates it itself, so the static checks stay enforced while the operator (and its
webhook) is down. All Enforce policies share one policy and one binding of fixed names (derived from
the chart's release): the operator's RBAC can then name exactly the two objects it may change
(docs/operations.md, "RBAC"). What is per policy (its namespaces and namespace selector, Deployment
selector, excluded namespaces, override users, exemptions, judgeUnchangedUpdates) lives in that
policy's CEL variables; what all share (the resources, the operator-wide excluded namespaces and the
opt-out label, and the override and rollout guards when every policy agrees on them) stays in
matchConstraints, the binding and matchConditions. It mirrors
:mod:`readiness_operator.admission.decide` for what CEL can see:

* Covered: every catalogue check that declares ``cel=`` in its definition (checks/; probes,
  requests/limits presence and min/max with CEL ``quantity()``, ``replicas-min`` on ``spec.replicas``,
  the security context checks, pinned images, RollingUpdate/maxUnavailable, grace period, preStop,
  anti-affinity or topology spread). Only checks whose severity denies in Enforce (critical, warning)
  are included; info failures only warn in the webhook.
* Not covered (live lookups stay in the webhook): PDB and HPA checks, SLO gates. An HPA is invisible
  here, so ``replicas-min`` and a percentage ``rolling-update`` limit use ``spec.replicas``; when the
  policy has a ``horizontalPodAutoscaler`` rule (HPAs are expected to own the replicas) ``replicas-min``
  is left to the webhook. A Deployment that relies on an HPA for its minimum under a policy without an
  HPA rule must set ``spec.replicas`` to the minimum (or carry an exemption).
* A policy skips objects with a non-blank ``readiness.dev/override`` annotation (from a user allowed
  by its ``spec.admission.overrideUsers/overrideGroups``) and, on UPDATE, objects whose spec did not
  change (unless ``judgeUnchangedUpdates``). A replicas-only change, through the Deployment or its
  ``scale`` subresource (an ``autoscaling/v1`` Scale: ``spec.replicas`` only, no labels, no
  annotations), is judged by ``replicas-min`` only, and only when it scales down; a change of another
  spec field (``strategy``...) judges every check, like decide.py's ``reconfigure``.
* A policy's Deployment selector matches the new or the old object's labels, as a binding's
  objectSelector does (a Scale has no labels).
* Exemptions become part of each covered check's expression (namespace, name globs, label selector);
  ``expires`` is applied at generation time: an expired exemption is left out, and
  :attr:`GeneratedVap.next_expiry` tells the caller when to regenerate.
* One validation lists every denying policy with every failed check and its fix (a VAP reports only
  its first failing validation); each policy's failures are a variable of their own, so each is held
  to CEL's per-expression cost limit on its own (all of them share the per-request budget).
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final

from readiness_operator.admission.decide import SPEC_FIELDS
from readiness_operator.checks import CATALOGUE, Cel
from readiness_operator.checks.cel import lit as _lit
from readiness_operator.engine import compile_policy
from readiness_operator.model.common import BLOCKING as _BLOCKING
from readiness_operator.model.spec import Exemption, Mode, ReadinessPolicySpec
from readiness_operator.names import (
    BLANK_RE2,
    IGNORE_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    OVERRIDE_ANNOTATION,
)

__all__ = [
    "MANAGED_BY",
    "VAP_API_VERSION",
    "GeneratedVap",
    "PolicyCel",
    "generate_vap",
    "placeholder_objects",
]

VAP_API_VERSION = "admissionregistration.k8s.io/v1"
_RULES = [
    {
        "apiGroups": ["apps"],
        "apiVersions": ["v1"],
        "operations": ["CREATE", "UPDATE"],
        "resources": ["deployments"],
        "scope": "Namespaced",
    },
    {  # `kubectl scale`, HPAs: the object is an autoscaling/v1 Scale (spec.replicas only)
        "apiGroups": ["apps"],
        "apiVersions": ["v1"],
        "operations": ["UPDATE"],
        "resources": ["deployments/scale"],
        "scope": "Namespaced",
    },
]

_IS_SCALE = "(has(request.subResource) && request.subResource == 'scale')"
_REPLICAS_DIFFER = "object.spec.?replicas.orValue(1) != oldObject.spec.?replicas.orValue(1)"


def _field_changed(name: str) -> str:
    """CEL: the DeploymentSpec field differs between object and oldObject (set, unset or value)."""
    new, old = f"object.spec.{name}", f"oldObject.spec.{name}"
    return f"(has({new}) != has({old}) || (has({new}) && {new} != {old}))"


#: An UPDATE of a Deployment changing a spec field other than template and replicas (decide.py's
#: ``reconfigure``: strategy, minReadySeconds, progressDeadlineSeconds...).
_RECONFIGURED = " || ".join(_field_changed(f) for f in SPEC_FIELDS)

# Variables shared by the validations (evaluated lazily, once per request).
_VARIABLES: list[dict[str, str]] = [
    {"name": "pod", "expression": "object.spec.template.spec"},
    {"name": "containers", "expression": "object.spec.template.spec.containers"},
    {
        "name": "allContainers",
        "expression": "object.spec.template.spec.?initContainers.orValue([]) + object.spec.template.spec.containers",
    },
    {"name": "podLabels", "expression": "object.spec.template.metadata.?labels.orValue({})"},
    {"name": "labels", "expression": "object.metadata.?labels.orValue({})"},
    {"name": "replicas", "expression": "object.spec.?replicas.orValue(1)"},
    {"name": "isScale", "expression": _IS_SCALE},
    {
        "name": "rollout",
        "expression": "!variables.isScale && (request.operation == 'CREATE' || object.spec.template != oldObject.spec.template)",
    },
    {
        "name": "reconfigured",
        "expression": f"!variables.isScale && request.operation == 'UPDATE' && ({_RECONFIGURED})",
    },
    {
        "name": "scaleDown",
        "expression": "request.operation == 'UPDATE' && object.spec.?replicas.orValue(1) < oldObject.spec.?replicas.orValue(1)",
    },
    {
        "name": "unchanged",
        "expression": f"!variables.isScale && !variables.rollout && !variables.reconfigured && !({_REPLICAS_DIFFER})",
    },
]


@dataclass(frozen=True, slots=True)
class PolicyCel:
    """What one Enforce policy contributes to the merged objects."""

    #: The covered check ids, in catalogue order.
    checks: tuple[str, ...]
    #: Per check: the CEL that must hold and its message (folded into the policy's failures variable).
    per_check: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class GeneratedVap:
    """The objects to apply (empty: put the placeholders back) and when to regenerate."""

    objects: list[dict[str, Any]]
    next_expiry: datetime | None
    #: The policies the objects hold (Enforce, fail-safe, with a covered check), by name, sorted.
    policies: Mapping[str, PolicyCel] = field(default_factory=dict)


# --------------------------------------------------------------------------- label selectors in CEL


def _selector_cel(selector: Mapping[str, Any], labels: str) -> str:
    """CEL for a LabelSelector over the map expression ``labels`` (empty selector: true)."""
    parts: list[str] = []
    for key, value in (selector.get("matchLabels") or {}).items():
        parts.append(f"({_lit(key)} in {labels} && {labels}[{_lit(key)}] == {_lit(value)})")
    for expr in selector.get("matchExpressions") or ():
        key, op, values = _lit(expr["key"]), expr["operator"], _lit(list(expr.get("values") or ()))
        if op == "In":
            parts.append(f"({key} in {labels} && {labels}[{key}] in {values})")
        elif op == "NotIn":
            parts.append(f"!({key} in {labels} && {labels}[{key}] in {values})")
        elif op == "Exists":
            parts.append(f"({key} in {labels})")
        elif op == "DoesNotExist":
            parts.append(f"!({key} in {labels})")
        else:  # pragma: no cover - the model rejects other operators
            parts.append("false")
    return " && ".join(parts) if parts else "true"


# --------------------------------------------------------------------------- exemptions


def _class_re(body: str) -> str:
    """An fnmatch ``[...]`` body as an RE2 class: ``!`` negates, ranges kept, the rest literal."""
    negate = body.startswith("!")
    if negate:
        body = body[1:]
    escaped = "".join("\\" + ch if ch in "\\[]^" else ch for ch in body)
    return "[" + ("^" if negate else "") + escaped + "]"


def _glob_re(pattern: str) -> str:
    """``fnmatch.fnmatchcase`` (what the engine uses) as an anchored RE2 pattern for CEL ``matches()``.

    ``*`` any run, ``?`` one character, ``[...]``/``[!...]`` a class (a ``]`` right after the opening
    bracket is literal, an unclosed ``[`` is literal), everything else literal.
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "[":
            j = i
            if j < n and pattern[j] == "!":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                out.append("\\[")
            else:
                out.append(_class_re(pattern[i:j]))
                i = j + 1
        elif ch.isalnum() or ch in "-_":
            out.append(ch)
        else:
            out.append("\\" + ch)
    return "^" + "".join(out) + "$"


def _exemption_cel(e: Exemption) -> str:
    parts = []
    if e.namespaces:
        parts.append(f"request.namespace in {_lit(list(e.namespaces))}")
    if e.names:
        names = " || ".join(f"object.metadata.name.matches({_lit(_glob_re(n))})" for n in e.names)
        parts.append(f"({names})")
    if e.selector is not None:  # a Scale has no labels: the webhook judges its exemptions (fail open here)
        parts.append(f"(variables.isScale || {_selector_cel(e.selector.as_dict(), 'variables.labels')})")
    return "(" + (" && ".join(parts) if parts else "true") + ")"


# --------------------------------------------------------------------------- objects


def _override_condition(spec: ReadinessPolicySpec) -> str:
    value = f"object.metadata.?annotations[?{_lit(OVERRIDE_ANNOTATION)}].orValue('')"
    blank = f"{value}.matches({_lit(BLANK_RE2)})"  # names.is_blank, in RE2
    adm = spec.admission
    if not adm.restricts_override:
        return blank
    who = []
    if adm.override_users:
        who.append(f"request.userInfo.username in {_lit(list(adm.override_users))}")
    if adm.override_groups:
        who.append(f"request.userInfo.?groups.orValue([]).exists(g, g in {_lit(list(adm.override_groups))})")
    return f"{blank} || !({' || '.join(who)})"


def _active_exemptions(exemptions: Sequence[Exemption], now: datetime) -> tuple[list[Exemption], datetime | None]:
    """The exemptions that have not expired at ``now``, and the earliest expiry among them.

    Expiry is applied at generation time (CEL has no clock), so the caller regenerates then.
    """
    active = [e for e in exemptions if e.expires is None or e.expires >= now]
    expiries = [e.expires for e in active if e.expires is not None]
    return active, min(expiries, default=None)


def _judged_when(check_id: str, spec: ReadinessPolicySpec) -> str:
    """The CEL condition under which a check is judged at all, mirroring decide.py.

    Rollouts and reconfigurations judge every check, scale-downs (also through the scale
    subresource) only replicas-min, scale-ups nothing, unchanged updates everything only with
    judgeUnchangedUpdates.
    """
    judged = ["variables.rollout", "variables.reconfigured"]
    if CATALOGUE[check_id].judges_scale_down:
        judged.append("variables.scaleDown")
    if spec.admission.judge_unchanged_updates:
        judged.append("variables.unchanged")
    return " || ".join(judged)


def _check_validation(
    check_id: str, cel: Cel, remediation: str, active: Sequence[Exemption], spec: ReadinessPolicySpec
) -> tuple[dict[str, Any], str]:
    """One check's validation (expression and message) and its entry in the policy's failures variable:
    ``[message, " Fix: ..."]`` when it fails."""
    exempt = [_exemption_cel(e) for e in active if "*" in e.checks or check_id in e.checks]
    expression = " || ".join([f"!({_judged_when(check_id, spec)})", *exempt, f"({cel.expression})"])
    validation: dict[str, Any] = {"expression": expression, "message": cel.message}
    if cel.message_expression is not None:
        validation["messageExpression"] = cel.message_expression
    message = cel.message_expression if cel.message_expression is not None else _lit(cel.message)
    fix = _lit(f" Fix: {remediation}")
    return validation, f"(({expression}) ? [] : [[{message}, {fix}]])"


@dataclass(frozen=True, slots=True)
class _Covered:
    """The checks CEL enforces for one policy: ids, per-check validations, failures entries."""

    ids: list[str]
    per_check: list[dict[str, Any]]
    failures: list[str]


def _covered_checks(spec: ReadinessPolicySpec, active: Sequence[Exemption]) -> _Covered:
    """Every enabled check whose severity denies in Enforce and that declares its CEL (checks/)."""
    has_hpa_rule = spec.rules.horizontal_pod_autoscaler is not None
    covered = _Covered([], [], [])
    for p in compile_policy(spec).checks:
        if p.severity not in _BLOCKING or p.check.cel is None or (p.check.id == "replicas-min" and has_hpa_rule):
            continue
        cel = p.check.cel(p.check.id, p.rule)
        if cel is None:
            continue
        validation, failure = _check_validation(p.check.id, cel, p.check.remediation, active, spec)
        covered.ids.append(p.check.id)
        covered.per_check.append(validation)
        covered.failures.append(failure)
    return covered



# --------------------------------------------------------------------------- the merged objects

#: A LabelSelector over the namespace's labels (namespaceObject: the request's namespace).
_NAMESPACE_LABELS = {"name": "namespaceLabels", "expression": "namespaceObject.metadata.?labels.orValue({})"}
#: The old object's labels on UPDATE (a binding's objectSelector matches the new or the old object).
_OLD_LABELS = {"name": "oldLabels", "expression": "oldObject == null ? {} : oldObject.metadata.?labels.orValue({})"}


def _strip_empty_values(selector: Mapping[str, Any]) -> dict[str, Any]:
    exprs = [{k: v for k, v in e.items() if not (k == "values" and not v)} for e in selector.get("matchExpressions") or ()]
    return {**selector, "matchExpressions": exprs}


def _rollout_relevant() -> str:
    return (f"request.operation == 'CREATE' || ({_IS_SCALE} ? {_REPLICAS_DIFFER} : "
            f"(object.spec.template != oldObject.spec.template || {_REPLICAS_DIFFER} || {_RECONFIGURED}))")


def _selected(spec: ReadinessPolicySpec, shared_override: bool) -> list[str]:
    """CEL terms that all hold when the policy selects (and does not skip) the request's Deployment."""
    m, terms = spec.match, []
    if m.namespaces:
        terms.append(f"request.namespace in {_lit(sorted(set(m.namespaces)))}")
    if m.exclude_namespaces:
        terms.append(f"!(request.namespace in {_lit(sorted(set(m.exclude_namespaces)))})")
    if m.namespace_selector is not None:
        selector = _strip_empty_values(m.namespace_selector.as_dict())
        terms.append(f"({_selector_cel(selector, 'variables.namespaceLabels')})")
    if m.selector is not None:
        selector = _strip_empty_values(m.selector.as_dict())
        new, old = _selector_cel(selector, "variables.labels"), _selector_cel(selector, "variables.oldLabels")
        terms.append(f"(({new}) || ({old}))")
    if not shared_override:
        terms.append(f"({_override_condition(spec)})")
    return terms


#: The API server replaces a message over 5 KiB (celconfig.MaxEvaluatedMessageExpressionSizeBytes) by
#: "failed expression: ...": past that, the failed checks without their fixes, and past that again a
#: cut at 1,240 characters (at most 4 bytes each).
_MESSAGE_BYTES = 5000
_MESSAGE = (f"size(bytes(variables.denialText)) <= {_MESSAGE_BYTES} ? variables.denialText : "
            f"size(bytes(variables.denialBrief)) <= {_MESSAGE_BYTES - 40} ? "
            "variables.denialBrief + ' (fixes left out: message too long)' : "
            f"variables.denialBrief.substring(0, {_MESSAGE_BYTES // 4 - 10}) + ' [...]'")


def _denial_prefix(policy_name: str) -> str:
    return f'ReadinessPolicy "{policy_name}" (Enforce, fail-safe) denies this Deployment: '


def _vap_object(
    name: str, covered: Mapping[str, tuple[ReadinessPolicySpec, _Covered]], next_expiry: datetime | None
) -> dict[str, Any]:
    """The ValidatingAdmissionPolicy: a failures variable per policy, one validation over all of them."""
    specs = [spec for spec, _ in covered.values()]
    overrides = {_override_condition(spec) for spec in specs}
    shared_override = len(overrides) == 1
    conditions = [{"name": "no-override", "expression": next(iter(overrides))}] if shared_override else []
    if not any(spec.admission.judge_unchanged_updates for spec in specs):
        conditions.append({"name": "rollout-relevant", "expression": _rollout_relevant()})
    variables = [*_VARIABLES, _NAMESPACE_LABELS, _OLD_LABELS]
    denials = []
    for index, (policy_name, (spec, checks)) in enumerate(covered.items()):
        failures = " + ".join(["[]", *checks.failures])
        selected = _selected(spec, shared_override)
        if selected:
            failures = f"!({' && '.join(selected)}) ? [] : ({failures})"
        variables.append({"name": f"policy{index}", "expression": failures})
        prefix, failed = _lit(_denial_prefix(policy_name)), f"variables.policy{index}"
        denials.append(f"(size({failed}) == 0 ? [] : [[{prefix} + {failed}.map(f, f[0] + f[1]).join('; '), "
                       f"{prefix} + {failed}.map(f, f[0]).join('; ')]])")
    variables += [
        # Per denying policy: its message with every fix, and without them.
        {"name": "denials", "expression": " + ".join(["[]", *denials])},
        {"name": "denialText", "expression": "variables.denials.map(d, d[0]).join(' ')"},
        {"name": "denialBrief", "expression": "variables.denials.map(d, d[1]).join(' ')"},
    ]
    annotations = {
        "readiness.dev/policies": ",".join(covered),
        "readiness.dev/checks": "; ".join(f"{p}: {','.join(c.ids)}" for p, (_, c) in covered.items()),
    }
    if next_expiry is not None:
        annotations["readiness.dev/next-exemption-expiry"] = next_expiry.isoformat()
    validation = {
        "expression": "size(variables.denials) == 0",
        # (Kubernetes rejects line breaks in admission messages, hence spaces and "; ".)
        "messageExpression": _MESSAGE,
        "reason": "Forbidden",
    }
    return {
        "apiVersion": VAP_API_VERSION,
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name, "labels": {MANAGED_BY_LABEL: MANAGED_BY}, "annotations": annotations},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": _RULES},
            "matchConditions": conditions,
            "variables": variables,
            "validations": [validation],
            "auditAnnotations": [dict(PLACEHOLDER_AUDIT)],
        },
    }


def _binding_object(name: str, excluded_namespaces: Collection[str]) -> dict[str, Any]:
    """The binding: Deny, everywhere but the operator-wide excluded namespaces and opted-out ones."""
    exprs: list[dict[str, Any]] = []
    if excluded_namespaces:
        exprs.append({"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": sorted(set(excluded_namespaces))})
    exprs.append({"key": IGNORE_LABEL, "operator": "NotIn", "values": ["true"]})  # the webhook honours it too
    return {
        "apiVersion": VAP_API_VERSION,
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name, "labels": {MANAGED_BY_LABEL: MANAGED_BY}},
        "spec": {"policyName": name, "validationActions": ["Deny"],
                 "matchResources": {"resourceRules": copy.deepcopy(_RULES), "namespaceSelector": {"matchExpressions": exprs}}},
    }


def generate_vap(
    policies: Mapping[str, ReadinessPolicySpec],
    *,
    name: str,
    now: datetime,
    excluded_namespaces: Collection[str],
) -> GeneratedVap:
    """The one ValidatingAdmissionPolicy + binding (both called ``name``) for all Enforce policies.

    Only Enforce policies with ``spec.admission.failSafe`` and at least one covered check take part;
    with none, no objects are returned and the caller writes :func:`placeholder_objects` back (the
    chart creates both objects; the operator may only read and replace them).
    """
    covered: dict[str, tuple[ReadinessPolicySpec, _Covered]] = {}
    expiries: list[datetime] = []
    for policy_name in sorted(policies):
        spec = policies[policy_name]
        if spec.mode != Mode.ENFORCE or not spec.admission.fail_safe:
            continue
        active, next_expiry = _active_exemptions(spec.exemptions, now)
        checks = _covered_checks(spec, active)
        if not checks.ids:
            continue
        covered[policy_name] = (spec, checks)
        if next_expiry is not None:
            expiries.append(next_expiry)
    if not covered:
        return GeneratedVap([], None)
    next_expiry = min(expiries, default=None)
    objects = [_vap_object(name, covered, next_expiry), _binding_object(name, excluded_namespaces)]
    return GeneratedVap(objects, next_expiry, {p: PolicyCel(tuple(c.ids), tuple(c.per_check))
                                               for p, (_, c) in covered.items()})


#: The chart's placeholder policy holds only this (and matchConstraints): an audit annotation whose
#: value is null, so never written. The merged policy keeps it too, so that `helm upgrade` (a
#: three-way merge that resets every field the chart sets to the chart's value) finds nothing to change.
PLACEHOLDER_AUDIT: Final[Mapping[str, str]] = MappingProxyType({"key": "placeholder", "valueExpression": "null"})


def placeholder_objects(name: str, excluded_namespaces: Collection[str]) -> list[dict[str, Any]]:
    """The policy and binding the chart installs and the operator writes back when no Enforce policy
    is left (charts/readiness-operator/templates/admission.yaml renders the same;
    tests/unit/test_chart.py compares them), the policy first.

    The policy has no validation, so it denies nothing whatever binds it; the binding is the merged
    one's (it depends on the operator-wide exclusions only). Neither sets a field the merged objects
    set differently: Helm's upgrade patch then leaves what the operator wrote.
    """
    policy = {
        "apiVersion": VAP_API_VERSION, "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name, "labels": {MANAGED_BY_LABEL: MANAGED_BY}},
        "spec": {"matchConstraints": {"resourceRules": copy.deepcopy(_RULES)}, "auditAnnotations": [dict(PLACEHOLDER_AUDIT)]},
    }
    return [policy, _binding_object(name, excluded_namespaces)]
