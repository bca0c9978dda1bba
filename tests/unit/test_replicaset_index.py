"""One ReplicaSet index serves both lookups: rollbacks (admission) and pod owners (SLI series)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from readiness_operator.kube.handlers import replicaset_index
from readiness_operator.kube.view import IndexView
from readiness_operator.kube.webhook import _is_rollback

TEMPLATE_V1 = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "a", "image": "web:1"}]}}
TEMPLATE_V2 = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "a", "image": "web:2"}]}}


def _index(*replicasets: tuple[str, str | None, dict[str, Any]]) -> dict[Any, list[Any]]:
    """What kopf's Index holds after indexing these (name, owning Deployment, template) ReplicaSets."""
    index: dict[Any, list[Any]] = defaultdict(list)
    for name, owner, template in replicasets:
        refs = [{"kind": "Deployment", "name": owner}] if owner else []
        entries = asyncio.run(replicaset_index(namespace="shop", name=name, meta={"ownerReferences": refs},
                                               spec={"template": template}))
        for key, value in entries.items():
            index[key].append(value)
    return dict(index)


def _deployment(template: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"namespace": "shop", "name": "web"}, "spec": {"template": template}}


def test_an_earlier_revision_is_a_rollback_and_a_new_template_is_not() -> None:
    index = _index(("web-5d8f7c9b4", "web", TEMPLATE_V1))
    assert _is_rollback(index, _deployment(TEMPLATE_V1))
    assert not _is_rollback(index, _deployment(TEMPLATE_V2))
    assert not _is_rollback(index, {**_deployment(TEMPLATE_V1), "metadata": {"namespace": "shop", "name": "api"}})


def test_a_pod_maps_to_the_deployment_of_its_replicaset() -> None:
    view = IndexView({}, {}, {}, {}, replicaset_owners=_index(("web-5d8f7c9b4", "web", TEMPLATE_V1)))
    assert view.owner_of_pod("shop", "web-5d8f7c9b4-x2k9p") == "web"
    assert view.owner_of_pod("shop", "api-7f6d5c4b3-x2k9p") is None
    assert view.owner_of_pod("other", "web-5d8f7c9b4-x2k9p") is None


def test_a_replicaset_without_a_deployment_is_not_indexed() -> None:
    assert _index(("orphan-rs", None, TEMPLATE_V1)) == {}


def test_every_index_the_policy_daemon_reads_is_registered_without_the_webhook() -> None:
    """The webhook module is imported only with a webhook port: the daemon must not need its indexes."""
    import inspect

    from readiness_operator.kube import handlers

    wanted = [p for p in inspect.signature(handlers.policy_daemon).parameters if p.endswith("_index")]
    assert "replicaset_index" in wanted
    assert [p for p in wanted if not callable(getattr(handlers, p, None))] == []
