"""Admission decisions for Deployments: pure logic over the rule engine (no API calls).

The webhook glue hands in the AdmissionReview ``request`` dict, the current policies and a function
that builds the :class:`~readiness_operator.world.World` of a Deployment from the operator's indexes;
:func:`review_deployment` answers allow / warn / deny. Rules (see docs and issue 4/5):

* CREATE and UPDATE of ``apps/v1`` ``deployments`` are judged, and UPDATEs of their ``scale``
  subresource (``kubectl scale``, HPAs): the glue turns a Scale request into the replicas-only UPDATE
  of the indexed Deployment it is (:func:`scale_as_deployment_update`). The ``status`` subresource,
  DELETE and CONNECT are always allowed. A Scale object carries no annotations, so a scale request
  cannot be overridden (patch ``spec.replicas`` with the override annotation instead).
* Namespaces in ``excluded_namespaces`` are allowed untouched; policies whose ``match`` does not select
  the Deployment are ignored.
* What changed decides what is judged:

  - ``create`` and ``rollout`` (an UPDATE changing ``spec.template``): every check and every SLO gate.
  - ``scale-down`` (an UPDATE changing only ``spec.replicas``, downwards): only the checks whose outcome
    depends on ``spec.replicas`` (:data:`SCALE_CHECKS`, declared ``judges_scale_down=True``); SLO gates
    never deny it (an error-budget freeze allows scale-downs). HPA checks and ``pdb-present`` do not
    depend on ``spec.replicas``, so a scale cannot newly break them.
  - ``scale-up`` (only ``spec.replicas``, upwards): allowed; more replicas never make a replica check worse.
  - ``reconfigure`` (an UPDATE changing a spec field other than ``template`` and ``replicas``:
    ``strategy``, ``minReadySeconds``, ``progressDeadlineSeconds``, ``paused``...): every static check
    (``rolling-update`` reads ``strategy``; a changed rollout contract is a new promise to check), SLO
    gates only warn (no new pods roll out).
  - ``unchanged`` (nothing but metadata changed: labels, annotations): allowed, so pre-existing
    violations never block unrelated edits, unless a matching policy sets
    ``spec.admission.judgeUnchangedUpdates``; then that policy judges every static check (SLO gates
    only warn: no rollout happens).

* Per policy mode: ``Enforce`` denies on failed critical/warning checks and warns on info ones; ``Warn``
  turns every failure into an admission warning; ``Audit`` says nothing (reported by the operator only).
* SLO findings (``slo:<name>``) follow the SLO's ``onBreach`` regardless of mode: ``Block`` denies a
  ``create``/``rollout`` of a breaching Deployment (unless it is a rollback, see ``is_rollback``),
  ``Warn`` warns, ``Report`` says nothing. For an SLO with an ``objective``, "breaching" for ``Block``
  means the budget over the period is exhausted or a page-level burn fires (state ``critical``); a
  ticket-level burn (state ``warning``) only warns. ``unknown`` only denies with ``blockOnUnknown: true``.
* Live checks (category ``live``: ``rollout-healthy``, ``hpa-active``, ``pods-stable``) never deny
  or warn at admission, whatever the mode: they judge the cluster's state, not the request, and a
  crash-looping Deployment must stay fixable in Enforce. (The webhook's World is not live, so they
  are Unknown there anyway; this holds even for a caller that passes a live World.)
* The strictest answer wins across policies; the message names every denying policy and check.
* Break-glass: a non-blank ``readiness.dev/override: "<reason>"`` annotation on the new object turns
  denials into a warning and sets ``override_reason`` (the glue records an Event). When a denying policy
  restricts overrides (``spec.admission.overrideUsers``/``overrideGroups``) the request's user must be
  listed, otherwise that policy still denies and a warning says the user may not override.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from readiness_operator.checks import CATALOGUE
from readiness_operator.checks.live import LIVE_CATEGORY
from readiness_operator.engine import CompiledPolicy, DeploymentVerdict, Finding, compile_policy, evaluate, matches
from readiness_operator.model.check_ids import SLO_PREFIX
from readiness_operator.model.common import BLOCKING
from readiness_operator.model.slo import OnBreach, Slo
from readiness_operator.model.spec import Mode, ReadinessPolicySpec
from readiness_operator.names import OVERRIDE_ANNOTATION, is_blank
from readiness_operator.world import World, namespace_of

__all__ = [
    "MAX_MESSAGE_CHARS",
    "MAX_WARNINGS",
    "MAX_WARNING_CHARS",
    "SCALE_CHECKS",
    "SPEC_FIELDS",
    "AdmissionDecision",
    "Change",
    "classify_change",
    "pod_template_digest",
    "review_deployment",
    "scale_as_deployment_update",
]

#: Checks whose outcome depends on ``spec.replicas``: the only ones judging a replicas-only change.
SCALE_CHECKS = frozenset(cid for cid, check in CATALOGUE.items() if check.judges_scale_down)
#: Upper bound of the deny message (the API server caps status messages; kubectl prints it whole).
MAX_MESSAGE_CHARS = 4000
#: The API server may truncate a warning over 256 characters and drops warnings beyond 4 KiB in total.
MAX_WARNING_CHARS = 256
MAX_WARNINGS = 20
_MAX_WARNINGS_TOTAL = 4000
_MAX_LINE_CHARS = 1000

#: ``apps/v1`` DeploymentSpec fields besides ``template`` and ``replicas`` (the API server drops any
#: other): a change of one of them is a ``reconfigure``. The fail-safe CEL compares exactly these.
SPEC_FIELDS = ("selector", "strategy", "minReadySeconds", "revisionHistoryLimit", "paused", "progressDeadlineSeconds")

Change = Literal["create", "rollout", "reconfigure", "scale-up", "scale-down", "unchanged"]
_ROLLOUT: frozenset[Change] = frozenset({"create", "rollout"})
_EMPTY: Mapping[str, Any] = {}


@dataclass(frozen=True, slots=True)
class AdmissionDecision:
    """The answer to one AdmissionReview request, plus what the glue needs to report it.

    ``verdicts`` holds the full engine verdict of every judged policy (name, verdict); the glue can
    use them for Events. ``overridden`` lists, per policy, the check ids a valid override bypassed.
    ``dry_run`` mirrors ``request.dryRun``: judge the same, but record no Events.
    """

    allowed: bool
    message: str = ""
    warnings: list[str] = field(default_factory=list)
    override_reason: str | None = None
    verdicts: list[tuple[str, DeploymentVerdict]] = field(default_factory=list)
    skipped_reason: str | None = None
    dry_run: bool = False
    change: Change | None = None
    denied_by: list[str] = field(default_factory=list)
    overridden: dict[str, list[str]] = field(default_factory=dict)
    user: str = ""

    def response(self, uid: str) -> dict[str, Any]:
        """An ``admission.k8s.io/v1`` AdmissionReview response (for a hand-rolled server and tests)."""
        resp: dict[str, Any] = {"uid": uid, "allowed": self.allowed}
        if not self.allowed:
            resp["status"] = {"code": 403, "reason": "Forbidden", "message": self.message}
        if self.warnings:
            resp["warnings"] = list(self.warnings)
        return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": resp}


def _strip_template(t: Mapping[str, Any] | None) -> Any:
    """A pod template without what the ReplicaSet controller adds (pod-template-hash, timestamps)."""
    t = dict(t or {})
    meta = dict(t.get("metadata") or {})
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k != "pod-template-hash"}
    if labels:
        meta["labels"] = labels
    else:
        meta.pop("labels", None)
    meta.pop("creationTimestamp", None)
    if meta:
        t["metadata"] = meta
    else:
        t.pop("metadata", None)
    return t


def pod_template_digest(t: Mapping[str, Any] | None) -> str:
    """A digest of a normalised pod template: ReplicaSets index these (small at 10,000 Deployments)
    so ``kubectl rollout undo`` to an earlier template is recognised as a rollback."""
    return hashlib.sha256(json.dumps(_strip_template(t), sort_keys=True, default=str).encode()).hexdigest()[:32]


def _spec(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return (obj or _EMPTY).get("spec") or _EMPTY


def _replicas(obj: Mapping[str, Any] | None) -> int:
    raw = _spec(obj).get("replicas")
    try:
        return 1 if raw is None else int(raw)
    except (TypeError, ValueError):
        return 1


def classify_change(operation: str, obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> Change:
    """What a CREATE/UPDATE does to the Deployment (see the module docstring)."""
    if operation == "CREATE" or old is None:
        return "create"
    new_spec, old_spec = _spec(obj), _spec(old)
    if new_spec.get("template") != old_spec.get("template"):
        return "rollout"
    others = (set(new_spec) | set(old_spec)) - {"template", "replicas"}
    if any(new_spec.get(k) != old_spec.get(k) for k in others):
        return "reconfigure"
    new_r, old_r = _replicas(obj), _replicas(old)
    if new_r < old_r:
        return "scale-down"
    if new_r > old_r:
        return "scale-up"
    return "unchanged"


def scale_as_deployment_update(request: Mapping[str, Any], deployment: Mapping[str, Any]) -> dict[str, Any]:
    """A ``deployments/scale`` UPDATE as the replicas-only Deployment UPDATE it amounts to.

    ``deployment`` is the current Deployment (from the index); the Scale objects give only the old and
    new ``spec.replicas``. The override annotation is dropped: the Scale request does not carry it.
    """
    def with_replicas(scale: Any) -> dict[str, Any]:
        replicas = _replicas(scale if isinstance(scale, Mapping) else None)
        meta = dict(deployment.get("metadata") or _EMPTY)
        annotations = {k: v for k, v in (meta.get("annotations") or _EMPTY).items() if k != OVERRIDE_ANNOTATION}
        meta["annotations"] = annotations
        return {**deployment, "metadata": meta, "spec": {**_spec(deployment), "replicas": replicas}}

    return {**request, "subResource": None, "object": with_replicas(request.get("object")),
            "oldObject": with_replicas(request.get("oldObject")),
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"}}


def _is_deployment(request: Mapping[str, Any]) -> bool:
    res = request.get("resource") or _EMPTY
    if res:
        return res.get("group") == "apps" and res.get("version") == "v1" and res.get("resource") == "deployments"
    kind = request.get("kind") or _EMPTY
    if kind:
        return kind.get("group") == "apps" and kind.get("version") == "v1" and kind.get("kind") == "Deployment"
    # A request rebuilt from kopf kwargs may carry neither: fall back to the object itself.
    obj = request.get("object") or request.get("oldObject") or _EMPTY
    return bool(obj.get("apiVersion") == "apps/v1" and obj.get("kind") == "Deployment")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _user(request: Mapping[str, Any]) -> tuple[str, frozenset[str]]:
    info = request.get("userInfo") or _EMPTY
    return str(info.get("username") or ""), frozenset(str(g) for g in info.get("groups") or ())


def _may_override(spec: ReadinessPolicySpec, user: str, groups: frozenset[str]) -> bool:
    adm = spec.admission
    if not adm.restricts_override:
        return True
    return user in adm.override_users or bool(groups.intersection(adm.override_groups))


@dataclass(slots=True)
class _PolicyJudgement:
    name: str
    spec: ReadinessPolicySpec
    deny: list[Finding] = field(default_factory=list)
    warn: list[Finding] = field(default_factory=list)
    slo_gate: bool = False  # some denial comes from an SLO Block gate (not the mode)
    notes: list[str] = field(default_factory=list)


def _slo_of(spec: ReadinessPolicySpec, check_id: str) -> Slo | None:
    name = check_id.removeprefix(SLO_PREFIX)
    return next((s for s in spec.slos if s.name == name), None)


def _judge(
    name: str,
    spec: ReadinessPolicySpec,
    verdict: DeploymentVerdict,
    change: Change,
    rollback: bool,
) -> _PolicyJudgement:
    j = _PolicyJudgement(name, spec)
    rollout = change in _ROLLOUT
    for f in verdict.findings:
        if f.check.startswith(SLO_PREFIX):
            slo = _slo_of(spec, f.check)
            if slo is None or change in ("scale-down", "scale-up"):
                continue
            if f.status == "fail":
                # An objective freezes only at page level (budget exhausted or a page burn): a ticket
                # burn warns, whether the SLO blocks or warns.
                freezes = not slo.has_budget or f.state == "critical"
                if slo.on_breach == OnBreach.BLOCK and freezes and rollout and not rollback:
                    j.deny.append(f)
                    j.slo_gate = True
                elif slo.on_breach in (OnBreach.BLOCK, OnBreach.WARN):
                    j.warn.append(f)
            elif f.status == "unknown" and slo.on_breach == OnBreach.BLOCK and slo.block_on_unknown:
                if rollout and not rollback:
                    j.deny.append(f)
                    j.slo_gate = True
                else:
                    j.warn.append(f)
            continue
        if f.status != "fail" or f.category == LIVE_CATEGORY:
            continue
        if change == "scale-down" and f.check not in SCALE_CHECKS:
            continue
        if spec.mode == Mode.ENFORCE:
            (j.deny if f.severity in BLOCKING else j.warn).append(f)
        elif spec.mode == Mode.WARN:
            j.warn.append(f)
    return j


def _finding_line(f: Finding) -> str:
    line = f"- {f.check}: {f.message}"
    if f.status == "unknown":
        line += " (onBreach: Block with blockOnUnknown)"
    elif f.check.startswith(SLO_PREFIX):
        line += " (onBreach: Block: error-budget freeze; scale-downs and rollbacks stay allowed)"
    if f.remediation:
        line += f"{'' if line.endswith(('.', '!', '?')) else '.'} Fix: {f.remediation}"
    return _clip(line, _MAX_LINE_CHARS)


def _header(j: _PolicyJudgement, target: str) -> str:
    mode = str(j.spec.mode)
    if j.slo_gate and j.spec.mode != Mode.ENFORCE:
        mode += ", SLO gate"
    return f'ReadinessPolicy "{j.name}" ({mode}) denies Deployment {target}:'


def _deny_message(denying: list[_PolicyJudgement], target: str, tail: list[str]) -> str:
    lines: list[str] = []
    for j in denying:
        lines.append(_header(j, target))
        lines += [_finding_line(f) for f in j.deny]
    lines += tail
    out: list[str] = []
    used = 0
    budget = MAX_MESSAGE_CHARS - 40  # room for "... and N more"
    for i, line in enumerate(lines):
        if used + len(line) + 1 > budget:
            out.append(f"... and {len(lines) - i} more")
            break
        out.append(line)
        used += len(line) + 1
    return "\n".join(out)


def _warning_text(j: _PolicyJudgement, f: Finding) -> str:
    what = "SLO" if f.check.startswith(SLO_PREFIX) else str(j.spec.mode)
    return _clip(f'ReadinessPolicy "{j.name}" ({what}): {f.check}: {f.message}', MAX_WARNING_CHARS)


def _bounded_warnings(items: list[str]) -> list[str]:
    out: list[str] = []
    total = 0
    unique = list(dict.fromkeys(items))
    for i, w in enumerate(unique):
        w = _clip(w, MAX_WARNING_CHARS)
        if (len(out) == MAX_WARNINGS - 1 and len(unique) > MAX_WARNINGS) or total + len(w) > _MAX_WARNINGS_TOTAL:
            out.append(f"... and {len(unique) - i} more readiness warnings")
            break
        out.append(w)
        total += len(w)
    return out


@dataclass(frozen=True, slots=True)
class _Review:
    """A parsed AdmissionReview request for a Deployment, ready to judge."""

    obj: Mapping[str, Any]
    old: Mapping[str, Any] | None
    target: str
    change: Change
    user: str
    groups: frozenset[str]
    dry_run: bool


def _parse(request: Mapping[str, Any], excluded_namespaces: Collection[str]) -> _Review | str:
    """The request to judge, or why it is never judged (the reason is reported as skipped)."""
    if not _is_deployment(request):
        return "not an apps/v1 Deployment"
    if request.get("subResource"):
        return f"the {request['subResource']} subresource is never judged"
    operation = str(request.get("operation") or "")
    if operation not in ("CREATE", "UPDATE"):
        return f"{operation or 'unknown'} operations are never judged"
    raw = request.get("object")
    if not isinstance(raw, Mapping):
        return "the request carries no object"
    obj: Mapping[str, Any] = raw
    meta = obj.get("metadata") or _EMPTY
    if request.get("namespace") and not meta.get("namespace"):
        meta = {**meta, "namespace": str(request["namespace"])}
        obj = {**obj, "metadata": meta}
    ns = namespace_of(obj)
    if ns in excluded_namespaces:
        return f"namespace {ns} is excluded from admission"
    name = str(meta.get("name") or request.get("name") or meta.get("generateName") or "")
    old_raw = request.get("oldObject")
    old = old_raw if isinstance(old_raw, Mapping) else None
    user, groups = _user(request)
    return _Review(obj, old, f"{ns}/{name}", classify_change(operation, obj, old), user, groups,
                   bool(request.get("dryRun")))


def _policies_to_judge(
    review: _Review, policies: Sequence[tuple[str, CompiledPolicy]], world: World
) -> list[tuple[str, CompiledPolicy]] | str:
    """The policies that judge this change, or why none does."""
    selected = [(n, p) for n, p in policies if matches(p, review.obj, world.namespace_labels)]
    if not selected:
        return "no ReadinessPolicy selects this Deployment"
    if review.change == "scale-up":
        return "a scale-up (only spec.replicas, upwards) is never denied"
    if review.change == "unchanged":
        selected = [(n, p) for n, p in selected if p.spec.admission.judge_unchanged_updates]
        if not selected:
            return "neither spec.template nor spec.replicas changed"
    return selected


PolicyWorld = Callable[[Mapping[str, Any], str], World]


def _judge_policies(
    review: _Review, selected: list[tuple[str, CompiledPolicy]], world: World, rollback: bool,
    policy_world: PolicyWorld | None,
) -> tuple[list[tuple[str, DeploymentVerdict]], list[_PolicyJudgement], list[str]]:
    """Evaluate each policy (with its own SLO measurements when `policy_world` gives them); one that
    cannot evaluate the object warns and is skipped (fail open)."""
    verdicts: list[tuple[str, DeploymentVerdict]] = []
    judgements: list[_PolicyJudgement] = []
    warnings: list[str] = []
    for name, plan in selected:
        try:
            own = policy_world(review.obj, name) if policy_world is not None and plan.slos else world
            verdict = evaluate(plan, review.obj, own)
        except Exception as exc:  # a malformed object must not crash the webhook
            warnings.append(f'ReadinessPolicy "{name}": could not evaluate {review.target} ({exc}); not judged')
            continue
        verdicts.append((name, verdict))
        judgements.append(_judge(name, plan.spec, verdict, review.change, rollback))
    return verdicts, judgements, warnings


@dataclass(slots=True)
class _Override:
    """What the break-glass annotation did to the denying policies."""

    present: bool
    reason: str
    still_denying: list[_PolicyJudgement] = field(default_factory=list)
    overridden: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _apply_override(review: _Review, judgements: list[_PolicyJudgement]) -> _Override:
    annotations = (review.obj.get("metadata") or _EMPTY).get("annotations") or _EMPTY
    raw = annotations.get(OVERRIDE_ANNOTATION) if isinstance(annotations, Mapping) else None
    text = str(raw or "")
    o = _Override(present=raw is not None, reason="" if is_blank(text) else text.strip())
    for j in (j for j in judgements if j.deny):
        if not o.reason:
            o.still_denying.append(j)
        elif not _may_override(j.spec, review.user, review.groups):
            o.still_denying.append(j)
            o.warnings.append(
                f'{OVERRIDE_ANNOTATION}: user "{review.user}" may not override ReadinessPolicy "{j.name}" '
                "(see its spec.admission.overrideUsers/overrideGroups)"
            )
        else:
            o.overridden[j.name] = [f.check for f in j.deny]
    if o.present and not o.reason:
        o.warnings.append(
            f"{OVERRIDE_ANNOTATION} is set but empty: a reason is required to override, e.g. "
            f'{OVERRIDE_ANNOTATION}: "INC-123 hotfix approved by on-call"'
        )
    if o.overridden:
        what = "; ".join(f'ReadinessPolicy "{p}" ({", ".join(checks)})' for p, checks in o.overridden.items())
        o.warnings.insert(0, f"{OVERRIDE_ANNOTATION}: admitted despite {what}: {o.reason}")
    return o


def _answer(
    review: _Review, judgements: list[_PolicyJudgement], verdicts: list[tuple[str, DeploymentVerdict]],
    warnings: list[str], override: _Override,
) -> AdmissionDecision:
    """Allow (with warnings) or deny with one message naming every denying policy, check and fix."""
    all_warnings = override.warnings + warnings
    # Findings of an overridden policy are still shown as warnings, so the user sees what was bypassed.
    for j in judgements:
        items = j.warn + (j.deny if j.name in override.overridden else [])
        all_warnings += [_warning_text(j, f) for f in items]
    common: dict[str, Any] = {
        "warnings": _bounded_warnings(all_warnings), "verdicts": verdicts, "dry_run": review.dry_run,
        "change": review.change, "overridden": override.overridden, "user": review.user,
    }
    if not override.still_denying:
        return AdmissionDecision(True, override_reason=override.reason if override.overridden else None, **common)
    if override.present and not override.reason:
        tail = [f"{OVERRIDE_ANNOTATION} is set but empty: a reason is required to override."]
    elif not override.present:
        tail = [f'Break-glass: annotate the Deployment with {OVERRIDE_ANNOTATION}: "<reason>" (recorded).']
    else:
        tail = []
    return AdmissionDecision(  # denied anyway: nothing was bypassed, so no override_reason
        False, message=_deny_message(override.still_denying, review.target, tail),
        denied_by=[j.name for j in override.still_denying], **common,
    )


def review_deployment(
    request: Mapping[str, Any],
    policies: Sequence[tuple[str, ReadinessPolicySpec | CompiledPolicy]],
    world_of: Callable[[Mapping[str, Any]], World],
    *,
    excluded_namespaces: Collection[str] = (),
    is_rollback: Callable[[Mapping[str, Any], Mapping[str, Any] | None], bool] | None = None,
    policy_world: PolicyWorld | None = None,
) -> AdmissionDecision:
    """Judge one AdmissionReview ``request`` for a Deployment against every matching policy.

    ``world_of`` must build the Deployment's World (PDBs, HPAs, namespace labels, cached SLO
    measurements) from indexes without API calls; ``policy_world(obj, policy)``, when given, builds
    the World a policy with SLOs judges with, holding that policy's own measurements (SLO names are
    only unique within a policy). ``is_rollback(new, old)`` (optional) tells whether the
    new pod template is one of the Deployment's previous ones (compare :func:`pod_template_digest` over
    its ReplicaSets): SLO Block gates do not deny rollbacks. Never raises for a malformed object: a
    policy that cannot be evaluated yields a warning and is skipped (fail open, like the webhook's
    ``failurePolicy: Ignore``).
    """
    review = _parse(request, excluded_namespaces)
    if isinstance(review, str):
        user, _ = _user(request)
        return AdmissionDecision(True, skipped_reason=review, dry_run=bool(request.get("dryRun")), user=user)

    def skip(reason: str, warnings: list[str] | None = None) -> AdmissionDecision:
        return AdmissionDecision(True, warnings=warnings or [], skipped_reason=reason, dry_run=review.dry_run,
                                 change=review.change, user=review.user)

    try:
        world = world_of(review.obj)
    except Exception as exc:  # the glue's index lookup failed: fail open, say so
        return skip("world lookup failed",
                    [_clip(f"readiness: could not look up related objects ({exc}); not judged", MAX_WARNING_CHARS)])
    selected = _policies_to_judge(review, [(n, compile_policy(p)) for n, p in policies], world)
    if isinstance(selected, str):
        return skip(selected)
    rollback = False
    if review.change == "rollout" and is_rollback is not None and any(p.spec.slos for _, p in selected):
        try:
            rollback = bool(is_rollback(review.obj, review.old))
        except Exception:
            rollback = False
    verdicts, judgements, warnings = _judge_policies(review, selected, world, rollback, policy_world)
    return _answer(review, judgements, verdicts, warnings, _apply_override(review, judgements))
