"""The catalogue's building blocks: Check, Outcome, the Deployment view and the evaluation context.

How to declare a check (id, texts, predicate, CEL, fields read): see :mod:`readiness_operator.checks`.
This package never imports :mod:`readiness_operator.model` at import time (the model imports the
catalogue for its ids and categories); rule types are imported under ``TYPE_CHECKING`` only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any, Literal

from readiness_operator.checks.relations import (
    hpa_targets,
    pdb_selects,
)
from readiness_operator.severity import Severity
from readiness_operator.world import World, namespace_of

__all__ = [
    "CATALOGUE",
    "CONTEXT_READS",
    "Cel",
    "CelBuilder",
    "Check",
    "CheckFunc",
    "Container",
    "Context",
    "Outcome",
    "OutcomeStatus",
    "Target",
    "failed",
    "passed",
    "register",
    "unknown",
]

OutcomeStatus = Literal["pass", "fail", "unknown"]
_EMPTY: Mapping[str, Any] = {}


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one check on one Deployment; ``message`` says what is wrong and what to set."""

    status: OutcomeStatus
    message: str
    value: float | None = None
    threshold: float | None = None
    measured_at: datetime | None = None
    state: str | None = None
    detail: tuple[tuple[str, str], ...] = ()  # extra facts for reports (SLO budgets: remaining, burn rates)


def passed(message: str) -> Outcome:
    """A passing outcome."""
    return Outcome("pass", message)


def failed(problems: Sequence[str]) -> Outcome:
    """A failing outcome listing every problem (one per container), so one fix round is enough."""
    return Outcome("fail", "; ".join(problems))


def judge_each_container(ctx: Context, problem: Callable[[Container], str | None], ok: str) -> Outcome:
    """Fails with every container's problem (``problem`` returns None for a good one), else passes with ``ok``."""
    problems = [p for c in ctx.target.all_containers() if (p := problem(c)) is not None]
    return failed(problems) if problems else passed(ok)


def unknown(message: str) -> Outcome:
    """Not enough data to decide (SLO without a measurement): neither pass nor fail."""
    return Outcome("unknown", message)


@dataclass(frozen=True, slots=True)
class Container:
    """A container or init container with the words a message needs to point at it."""

    spec: Mapping[str, Any]
    init: bool

    @property
    def name(self) -> str:
        """The container's name."""
        return str(self.spec.get("name", "?"))

    @property
    def label(self) -> str:
        """``container 'api'`` or ``init container 'migrate'``."""
        return f"{'init container' if self.init else 'container'} '{self.name}'"

    @property
    def path(self) -> str:
        """Where to edit it: ``spec.template.spec.containers[name=api]``."""
        return f"spec.template.spec.{'initContainers' if self.init else 'containers'}[name={self.name}]"

    def get(self, key: str) -> Any:
        """A field of the container spec."""
        return self.spec.get(key)

    @property
    def sidecar(self) -> bool:
        """A restartable init container (KEP-753): it starts before the app and runs beside it."""
        return self.init and self.spec.get("restartPolicy") == "Always"


@dataclass(frozen=True, slots=True)
class Target:
    """A read-only view of a Deployment dict, with the paths every check needs dug out once."""

    obj: Mapping[str, Any]
    namespace: str
    name: str
    labels: Mapping[str, str]
    spec: Mapping[str, Any]
    pod_labels: Mapping[str, str]
    pod_spec: Mapping[str, Any]
    containers: tuple[Container, ...]
    init_containers: tuple[Container, ...]

    @classmethod
    def from_deployment(cls, obj: Mapping[str, Any]) -> Target:
        """Build the view; missing sections become empty so checks never need None guards."""
        meta = obj.get("metadata") or _EMPTY
        spec = obj.get("spec") or _EMPTY
        template = spec.get("template") or _EMPTY
        pod_spec = template.get("spec") or _EMPTY
        return cls(
            obj=obj,
            namespace=namespace_of(obj),
            name=str(meta.get("name", "")),
            labels=meta.get("labels") or _EMPTY,
            spec=spec,
            pod_labels=(template.get("metadata") or _EMPTY).get("labels") or _EMPTY,
            pod_spec=pod_spec,
            containers=tuple(Container(c, False) for c in pod_spec.get("containers") or ()),
            init_containers=tuple(Container(c, True) for c in pod_spec.get("initContainers") or ()),
        )

    def all_containers(self) -> Iterator[Container]:
        """Init containers first (they run first), then app containers.

        Ephemeral containers never appear here: the API server forbids them in pod templates.
        """
        yield from self.init_containers
        yield from self.containers

    def long_running(self) -> Iterator[Container]:
        """App containers, then sidecars (restartable init containers): what runs while the pod serves,
        so what probes and lifecycle checks apply to."""
        yield from self.containers
        yield from (c for c in self.init_containers if c.sidecar)


class Context:
    """One Deployment plus its World, with related objects matched once and shared by all checks."""

    def __init__(self, target: Target, world: World) -> None:
        self.target = target
        self.world = world

    @property
    def deployment(self) -> Mapping[str, Any]:
        """The Deployment dict as given."""
        return self.target.obj

    @cached_property
    def pdbs(self) -> tuple[Mapping[str, Any], ...]:
        """PDBs in the Deployment's namespace whose selector selects the pod template."""
        return tuple(
            p for p in self.world.pdbs if pdb_selects(p, self.target.namespace, self.target.pod_labels)
        )

    @cached_property
    def hpa(self) -> Mapping[str, Any] | None:
        """The HPA targeting the Deployment (first by name when several do)."""
        matches = [h for h in self.world.hpas if hpa_targets(h, self.target.namespace, self.target.name)]
        matches.sort(key=lambda h: str((h.get("metadata") or _EMPTY).get("name", "")))
        return matches[0] if matches else None

    @cached_property
    def replicas(self) -> tuple[int, str]:
        """Effective replicas and where the number came from (for messages)."""
        if self.hpa is not None:
            hpa_name = (self.hpa.get("metadata") or _EMPTY).get("name", "")
            return int(
                (self.hpa.get("spec") or _EMPTY).get("minReplicas") or 1
            ), f"HPA '{hpa_name}' minReplicas"
        raw = self.target.spec.get("replicas")
        return (1 if raw is None else int(raw)), "spec.replicas"


CheckFunc = Callable[[Context, Any], Outcome]


@dataclass(frozen=True, slots=True)
class Cel:
    """A check in CEL for the fail-safe ValidatingAdmissionPolicy: what must hold, and what to say.

    ``expression`` may use the VAP's variables (``variables.pod``, ``variables.containers``,
    ``variables.allContainers``, ``variables.podLabels``, ``variables.labels``, ``variables.replicas``);
    ``message`` is the static fallback of ``message_expression`` (a CEL string expression).
    """

    expression: str
    message: str
    message_expression: str | None = None


#: Builds a check's CEL from its id and rule settings; None when these settings cannot be expressed.
CelBuilder = Callable[[str, Any], Cel | None]

#: Object fields read by :class:`Context` itself (matching PDBs and HPAs, effective replicas) and by
#: every message (container names), whatever checks run. Paths as in :attr:`Check.reads`.
CONTEXT_READS: Mapping[str, tuple[str, ...]] = {
    "Deployment": (
        "metadata.name",
        "metadata.namespace",
        "metadata.labels",
        "spec.replicas",
        "spec.template.metadata.labels",
        "spec.template.spec.containers[].name",
        "spec.template.spec.initContainers[].name",
        "spec.template.spec.initContainers[].restartPolicy",
    ),
    "PodDisruptionBudget": ("metadata.name", "metadata.namespace", "spec.selector"),
    "HorizontalPodAutoscaler": (
        "apiVersion",
        "metadata.name",
        "metadata.namespace",
        "spec.scaleTargetRef",
        "spec.minReplicas",
    ),
    # World.pods holds the Deployment's pods already (world.deployment_of_pod); messages name them.
    "Pod": ("metadata.name", "metadata.namespace"),
}


@dataclass(frozen=True)
class Check:
    """A catalogue entry: stable id, why it matters, how to fix it, the pure function, its CEL.

    ``group`` names the ``spec.rules`` group that switches the check on; ``enabled`` decides from that
    group's settings whether there is anything to check (e.g. ``probes.startup: false``). ``cel``
    builds the fail-safe VAP's CEL; when it is None, ``cel_unavailable`` says why (a live check, or
    ``webhook-only: <reason>``). ``reads`` lists the object fields the function reads, per kind.
    ``judges_scale_down``: admission judges it on a replicas-only scale-down too.
    """

    id: str
    category: str
    default_severity: Severity
    title: str
    why: str
    remediation: str
    func: CheckFunc
    group: str
    enabled: Callable[[Any], bool]
    reads: Mapping[str, tuple[str, ...]]
    cel: CelBuilder | None = None
    cel_unavailable: str | None = None
    judges_scale_down: bool = False

    @property
    def live(self) -> bool:
        """Judged from more than the Deployment's spec (its status, PDBs, HPAs, pods, measurements):
        not for CEL."""
        return any(kind != "Deployment" for kind in self.reads) or any(
            p.startswith("status.") for p in self.reads.get("Deployment", ())
        )


#: Every check, by id, in registration order.
CATALOGUE: dict[str, Check] = {}


def register(
    id: str,
    *,
    category: str,
    severity: Severity,
    title: str,
    why: str,
    remediation: str,
    group: str,
    reads: Mapping[str, Sequence[str]],
    cel: CelBuilder | None = None,
    cel_unavailable: str | None = None,
    judges_scale_down: bool = False,
    enabled: Callable[[Any], bool] = lambda rule: True,
) -> Callable[[CheckFunc], CheckFunc]:
    """Decorator adding a check function to :data:`CATALOGUE` (ids must be unique).

    Exactly one of ``cel`` (the fail-safe VAP's CEL) and ``cel_unavailable`` (why there is none) is
    given; ``reads`` names every object field the function reads (``{"Deployment": (path, ...)}``).
    ``judges_scale_down``: a replicas-only scale-down can newly fail the check, so admission judges
    it on such changes too (every other check is judged on creates, rollouts and reconfigurations).
    """
    if (cel is None) == (cel_unavailable is None):
        raise ValueError(f"check {id!r}: give exactly one of cel= and cel_unavailable=")

    def add(func: CheckFunc) -> CheckFunc:
        if id in CATALOGUE:
            raise ValueError(f"check id {id!r} registered twice")
        CATALOGUE[id] = Check(
            id,
            category,
            severity,
            title,
            why,
            remediation,
            func,
            group,
            enabled,
            {kind: tuple(paths) for kind, paths in reads.items()},
            cel,
            cel_unavailable,
            judges_scale_down,
        )
        return func

    return add
