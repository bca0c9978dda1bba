"""Fail-safe enforcement: a ValidatingAdmissionPolicy (CEL) generated from an ``Enforce`` policy.

The API server evaluates it itself, so the static checks stay enforced while the operator (and its
webhook) is down. It mirrors :mod:`readiness_operator.admission.decide` for what CEL can see:

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
* ``matchConditions`` skip objects with a non-blank ``readiness.dev/override`` annotation (from a user
  allowed by ``spec.admission.overrideUsers/overrideGroups``) and, on UPDATE, objects whose spec did
  not change (unless ``judgeUnchangedUpdates``). A replicas-only change, through the Deployment or
  its ``scale`` subresource (an ``autoscaling/v1`` Scale: ``spec.replicas`` only, no labels, no
  annotations), is judged by ``replicas-min`` only, and only when it scales down; a change of another
  spec field (``strategy``...) judges every check, like decide.py's ``reconfigure``.
* Exemptions become part of each covered check's expression (namespace, name globs, label selector);
  ``expires`` is applied at generation time: an expired exemption is left out, and
  :attr:`GeneratedVap.next_expiry` tells the caller when to regenerate.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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
    POLICY_LABEL,
)

__all__ = [
    "MANAGED_BY",
    "POLICY_LABEL",
    "VAP_API_VERSION",
    "GeneratedVap",
    "generate_vap",
    "vap_name",
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


def vap_name(policy_name: str) -> str:
    """Name of the generated ValidatingAdmissionPolicy and its binding."""
    return f"readiness-{policy_name}"


@dataclass(frozen=True, slots=True)
class GeneratedVap:
    """The objects to apply (empty: delete any previously generated ones) and when to regenerate."""

    objects: list[dict[str, Any]]
    next_expiry: datetime | None
    checks: tuple[str, ...] = ()
    #: Per check: the CEL that must hold and its message (folded into the VAP's `failures` variable).
    per_check: tuple[dict[str, Any], ...] = ()


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


def _namespace_selector(spec: ReadinessPolicySpec, excluded: Sequence[str]) -> dict[str, Any]:
    m = spec.match
    labels: dict[str, str] = {}
    exprs: list[dict[str, Any]] = []
    if m.namespace_selector is not None:
        sel = m.namespace_selector.as_dict()
        labels.update(sel.get("matchLabels") or {})
        exprs += [{k: v for k, v in e.items() if not (k == "values" and not v)} for e in sel.get("matchExpressions") or ()]
    if m.namespaces:
        exprs.append({"key": "kubernetes.io/metadata.name", "operator": "In", "values": sorted(set(m.namespaces))})
    if excluded:
        exprs.append({"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": list(excluded)})
    # The same opt-out label the webhook honours.
    exprs.append({"key": IGNORE_LABEL, "operator": "NotIn", "values": ["true"]})
    out: dict[str, Any] = {}
    if labels:
        out["matchLabels"] = labels
    if exprs:
        out["matchExpressions"] = exprs
    return out


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
    """One check's validation (expression and message) and its entry in the ``failures`` variable."""
    exempt = [_exemption_cel(e) for e in active if "*" in e.checks or check_id in e.checks]
    expression = " || ".join([f"!({_judged_when(check_id, spec)})", *exempt, f"({cel.expression})"])
    validation: dict[str, Any] = {"expression": expression, "message": cel.message}
    if cel.message_expression is not None:
        validation["messageExpression"] = cel.message_expression
    message = cel.message_expression if cel.message_expression is not None else _lit(cel.message)
    fix = _lit(f" Fix: {remediation}")
    return validation, f"(({expression}) ? [] : [{message} + {fix}])"


@dataclass(frozen=True, slots=True)
class _Covered:
    """The checks CEL enforces for one policy: ids, per-check validations, ``failures`` entries."""

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


def _match_conditions(spec: ReadinessPolicySpec) -> list[dict[str, str]]:
    """Skip overridden objects and, unless judgeUnchangedUpdates, updates that change nothing judged."""
    conditions = [{"name": "no-override", "expression": _override_condition(spec)}]
    if not spec.admission.judge_unchanged_updates:
        conditions.append(
            {
                "name": "rollout-relevant",
                "expression": f"request.operation == 'CREATE' || ({_IS_SCALE} ? {_REPLICAS_DIFFER} : "
                f"(object.spec.template != oldObject.spec.template || {_REPLICAS_DIFFER} || {_RECONFIGURED}))",
            }
        )
    return conditions


def _labels(policy_name: str) -> dict[str, str]:
    """The labels the caller finds (and deletes) its generated objects by."""
    return {MANAGED_BY_LABEL: MANAGED_BY, POLICY_LABEL: policy_name}


def _vap_object(
    policy_name: str, spec: ReadinessPolicySpec, covered: _Covered, next_expiry: datetime | None
) -> dict[str, Any]:
    """The ValidatingAdmissionPolicy: one validation over the list of every failed check.

    A VAP reports only its first failing validation, and users must see all failures (and their
    fixes) at once, as the webhook shows them.
    """
    annotations = {"readiness.dev/checks": ",".join(covered.ids)}
    if next_expiry is not None:
        annotations["readiness.dev/next-exemption-expiry"] = next_expiry.isoformat()
    validation = {
        "expression": "size(variables.failures) == 0",
        # (Kubernetes rejects line breaks in admission messages, hence "; ".)
        "messageExpression": _lit(f'ReadinessPolicy "{policy_name}" (Enforce, fail-safe) denies this Deployment: ')
        + " + variables.failures.join('; ')",
        "reason": "Forbidden",
    }
    return {
        "apiVersion": VAP_API_VERSION,
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": vap_name(policy_name), "labels": _labels(policy_name), "annotations": annotations},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": _RULES},
            "matchConditions": _match_conditions(spec),
            "variables": [*_VARIABLES, {"name": "failures", "expression": " + ".join(["[]", *covered.failures])}],
            "validations": [validation],
        },
    }


def _binding_object(policy_name: str, spec: ReadinessPolicySpec, excluded_namespaces: Collection[str]) -> dict[str, Any]:
    """The binding: Deny, for the namespaces and Deployment labels the policy selects."""
    excluded = sorted(set(spec.match.exclude_namespaces) | set(excluded_namespaces))
    resources: dict[str, Any] = {"resourceRules": _RULES}
    ns_sel = _namespace_selector(spec, excluded)
    if ns_sel:
        resources["namespaceSelector"] = ns_sel
    if spec.match.selector is not None:
        obj_sel = spec.match.selector.as_dict()
        obj_sel["matchExpressions"] = [
            {k: v for k, v in e.items() if not (k == "values" and not v)} for e in obj_sel.get("matchExpressions") or ()
        ]
        resources["objectSelector"] = {k: v for k, v in obj_sel.items() if v}
    name = vap_name(policy_name)
    return {
        "apiVersion": VAP_API_VERSION,
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name, "labels": _labels(policy_name)},
        "spec": {"policyName": name, "validationActions": ["Deny"], "matchResources": resources},
    }


def generate_vap(
    policy_name: str,
    spec: ReadinessPolicySpec,
    *,
    now: datetime,
    excluded_namespaces: Collection[str],
) -> GeneratedVap:
    """The ValidatingAdmissionPolicy + binding for an Enforce policy's static checks.

    Returns no objects for Warn/Audit policies, with ``spec.admission.failSafe: false``, or when no
    covered check is enabled; the caller then deletes any objects it generated before (they carry the
    labels ``app.kubernetes.io/managed-by: readiness-operator`` and ``readiness.dev/policy: <name>``).
    """
    if spec.mode != Mode.ENFORCE or not spec.admission.fail_safe:
        return GeneratedVap([], None)
    active, next_expiry = _active_exemptions(spec.exemptions, now)
    covered = _covered_checks(spec, active)
    if not covered.ids:
        return GeneratedVap([], None)
    objects = [_vap_object(policy_name, spec, covered, next_expiry), _binding_object(policy_name, spec, excluded_namespaces)]
    return GeneratedVap(objects, next_expiry, tuple(covered.ids), tuple(covered.per_check))

