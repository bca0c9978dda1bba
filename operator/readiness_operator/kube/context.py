"""The operator context: every piece of shared runtime state, carried in kopf's `memo`.

kopf hands each handler a shallow copy of the root memo, so these objects are shared by all handlers
of one operator process, and a second process (or a test) gets its own: nothing lives in module
globals.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import kopf

from readiness_operator.policies import PolicyCache
from readiness_operator.settings import Settings
from readiness_operator.slo.store import SloStore

from .api import KubeApi
from .leadership import Leadership
from .metrics import OperatorMetrics, WatchedObjects
from .prometheus import PrometheusClients
from .reader import ClusterReader
from .reports import REPORT_WRITERS
from .state import Registry
from .view import RelatedCache
from .watched import cluster_reader


@dataclass
class OperatorContext:
    settings: Settings
    api: KubeApi = field(default_factory=KubeApi)
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)
    policies: PolicyCache = field(default_factory=PolicyCache)  # compiled policies: passes and webhook
    registry: Registry = field(init=False)  # per-policy runtimes, for watch handlers to mark dirty
    slos: SloStore = field(default_factory=SloStore)  # SLO measurements shared by passes and the webhook
    leadership: Leadership = field(default_factory=Leadership)  # default: standalone, always the leader
    metrics_port: int | None = None
    namespaces: tuple[str, ...] = ()  # watched namespaces (`run --namespace`); empty: cluster-wide
    reader: ClusterReader = field(init=False)  # our LIST+WATCH of the numerous kinds (watched.py)
    indexed: bool = False  # kopf's indexes are filled (set by the first Namespace event)
    webhook_ca: bytes | None = None  # the webhook's CA, for the configuration the leader writes
    webhook_serving: bool = False  # the admission server accepted a connection (checked by /readyz)
    prometheus: PrometheusClients = field(init=False)
    background: set[asyncio.Task[Any]] = field(default_factory=set)
    # kopf's live index of ReadinessPolicies (handlers.readiness_policy_index; set by the first handler
    # call after indexing) and the wake-up of the one writer of the merged ValidatingAdmissionPolicy.
    policy_index: Any = None
    admission_policy_wake: asyncio.Event = field(default_factory=asyncio.Event)
    # Namespaces whose PolicyReports are being built and written, over every policy (reconcile.py).
    report_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(REPORT_WRITERS))
    # Each namespace's PDB index, kept until its PDBs change, for every policy loop and the webhook.
    related: RelatedCache = field(default_factory=RelatedCache)

    def __post_init__(self) -> None:
        self.metrics.deployment_slo_budgets = self.settings.metrics_deployment_slo_budgets
        self.registry = Registry(self.policies)
        self.reader = cluster_reader(self.registry, self.namespaces)
        self.metrics.registry.register(WatchedObjects(self.reader.counts))
        self.prometheus = PrometheusClients(self.settings.prometheus_url, self.api.read_secret_key,
                                            self.settings.allowed_prometheus_secrets)

    @property
    def ready(self) -> bool:
        """This replica knows the whole cluster: kopf's indexes and our reader's first listing."""
        return self.indexed and self.reader.synced.is_set()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run a background task, keeping a reference until it ends (asyncio holds only weak ones)."""
        task = asyncio.create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task


def context_of(memo: kopf.Memo) -> OperatorContext:
    ctx = memo.get("operator")
    if not isinstance(ctx, OperatorContext):
        raise RuntimeError("the operator context is missing from kopf's memo (start with `readiness-operator run`)")
    return ctx
