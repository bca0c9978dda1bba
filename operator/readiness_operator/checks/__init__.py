"""The check catalogue: every check is defined once, by one ``@register(...)`` in a topic module.

Importing this package registers every check in :data:`CATALOGUE` (id -> :class:`Check`). Everything
else is derived from the catalogue: the ids and categories the model accepts in ``exemptions`` and
``weights`` (:mod:`readiness_operator.model.check_ids`), the fail-safe ValidatingAdmissionPolicy
(:mod:`readiness_operator.admission.vap` iterates the catalogue and asks each check for its CEL), the
fields kept in the operator's trimmed indexes (:mod:`readiness_operator.checks.fields`, used by
``kube/objects.py``), and docs/checks.md.

Adding a check
--------------
1. Rule settings: if the check needs a switch or a bound, add the field to the rule group in
   ``model/rules.py`` (``spec.rules.<group>``); ``enabled=`` reads it.
2. Definition, in the topic module (``checks/security.py``, ...; ``Cel``/``register`` come from
   ``checks.base``, the CEL helpers from ``checks.cel``; a new module also goes into
   ``_MODULE_ORDER`` below, which fixes the catalogue and docs order)::

       @register(
           "no-host-network",                      # stable id, used in exemptions/weights/findings
           category="security",                    # a category: weights may name it
           severity=Severity.CRITICAL,             # default; spec.rules.<group>.severity overrides
           title="No host network",
           why="...one sentence: what breaks...",
           remediation="...what to set, with the field path...",
           group="security_context",               # the spec.rules group that switches it on
           enabled=lambda rule: rule.no_host_network,
           reads={"Deployment": ("spec.template.spec.hostNetwork",)},
           cel=lambda check_id, rule: Cel(
               "!variables.pod.?hostNetwork.orValue(false)",
               f"{check_id}: set spec.template.spec.hostNetwork: false",
           ),
       )
       def no_host_network(ctx: Context, rule: SecurityContextRule) -> Outcome:
           ...return passed("...") or failed([...one actionable message per problem...])

   * ``reads``: every field the predicate reads, per kind (``Deployment``, ``PodDisruptionBudget``,
     ``HorizontalPodAutoscaler``; ``Prometheus`` for measurements). Paths are dotted; ``[]`` marks
     a list of objects: ``spec.template.spec.containers[].securityContext``. A path keeps the whole
     value below it. List init containers (``initContainers[]``) too where the check judges them.
     The operator's indexes keep only these fields, so a field missing here is invisible to the
     check in the cluster (``tests/unit/test_catalogue.py`` judges every fixture trimmed and full).
   * ``cel``: ``(check_id, rule) -> Cel(expression, message, message_expression)`` for the fail-safe
     VAP, for every static check (a function of the Deployment alone). Per-container checks use
     ``each_container(ALL_CONTAINERS | APP_CONTAINERS, cond_on_c, "what every container must do")``
     from :mod:`readiness_operator.checks.cel` (``cond``/``what`` may be ``lambda rule: ...``);
     ``effective_security("runAsUser")`` gives the container-else-pod securityContext value.
     The expression must hold exactly when the predicate passes (the e2e test
     ``tests/e2e/test_catalogue_vap.py`` dry-runs every fixture against the real API server).
   * ``cel_unavailable="live: reads ..."`` instead of ``cel`` for checks that read PDBs, HPAs or
     measurements; a static check CEL cannot express says ``"webhook-only: <reason>"``.
   * ``judges_scale_down=True`` when a replicas-only scale-down can newly fail the check (admission
     then judges it on ``kubectl scale`` too; today ``replicas-min`` and ``pdb-min-available``).
   * Messages: CEL messages start with ``"<id>: "`` (the helpers do this); the predicate's
     ``failed([...])`` messages say what to set (``set``/``add``/``remove``... and the field path).
   * Imports: rule types (``model.rules``) only under ``if TYPE_CHECKING:``; ``Severity`` from
     ``readiness_operator.severity``. Nothing in ``checks/`` imports ``readiness_operator.model`` at
     import time (the model imports the catalogue; ``tests/unit/test_catalogue.py`` enforces it).
3. Fixtures: ``tests/fixtures/checks/<id>/pass-*.yaml`` and ``fail-*.yaml`` (``unknown-*`` for
   live checks without data): a ReadinessPolicy first (enabling the check; any mode, the e2e test
   makes it Enforce), exactly one Deployment, optional PDBs/HPAs and an optional ``kind: FixtureWorld``
   document (see tests/unit/test_check_fixtures.py). Deployments must be valid for the API server:
   the e2e test dry-runs every static check's fixture (those without PDBs/HPAs) under its generated
   VAP, renamed, relabelled and moved to its own namespace, so a verdict must not hang on those.
4. Regenerate: ``.venv/bin/python -m readiness_operator.generate`` (CRD, docs/checks.md,
   docs/policy-reference.md, chart); then run ``tests/unit`` and ``tests/e2e/test_catalogue_vap.py``.
"""

from readiness_operator.checks import (
    autoscaling,
    disruption,
    images,
    probes,
    replicas,
    resources,
    rollout,
    scheduling,
    security,
    slo,
)
from readiness_operator.checks.base import CATALOGUE, Cel, Check, Container, Context, Outcome, Target
from readiness_operator.checks.slo import SLO_CHECK_ID, slo_state

__all__ = [
    "CATALOGUE",
    "SLO_CHECK_ID",
    "Cel",
    "Check",
    "Container",
    "Context",
    "Outcome",
    "Target",
    "slo_state",
]

#: Catalogue (and docs/checks.md) order: by topic, then registration order within a module.
_MODULE_ORDER = tuple(
    m.__name__ for m in (probes, resources, replicas, disruption, autoscaling, security, scheduling, images, rollout, slo)
)
_SORTED = sorted(CATALOGUE.items(), key=lambda kv: _MODULE_ORDER.index(kv[1].func.__module__))
CATALOGUE.clear()
CATALOGUE.update(_SORTED)
