"""One ReplicaSet index serves both lookups: rollbacks (admission) and pod owners (SLI series)."""

from __future__ import annotations

from typing import Any

from readiness_operator.kube.reader import Index
from readiness_operator.kube.view import IndexView
from readiness_operator.kube.watched import replicaset_entries
from readiness_operator.kube.webhook import _is_rollback

TEMPLATE_V1 = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "a", "image": "web:1"}]}}
TEMPLATE_V2 = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "a", "image": "web:2"}]}}


def _index(*replicasets: tuple[str, str | None, dict[str, Any]]) -> Index:
    """What the reader keeps after reading these (name, owning Deployment, template) ReplicaSets."""
    index = Index()
    for name, owner, template in replicasets:
        refs = [{"kind": "Deployment", "name": owner}] if owner else []
        meta = {"namespace": "shop", "name": name, "ownerReferences": refs}
        index.put(("shop", name), replicaset_entries({"metadata": meta, "spec": {"template": template}}))
    return index


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
    index = _index(("orphan-rs", None, TEMPLATE_V1))
    assert len(index) == 0 and index.objects == 0


def test_two_revisions_of_one_deployment_are_both_kept_and_a_deleted_one_is_gone() -> None:
    index = _index(("web-1", "web", TEMPLATE_V1), ("web-2", "web", TEMPLATE_V2))
    assert _is_rollback(index, _deployment(TEMPLATE_V1)) and _is_rollback(index, _deployment(TEMPLATE_V2))
    index.discard(("shop", "web-1"))
    assert not _is_rollback(index, _deployment(TEMPLATE_V1)) and _is_rollback(index, _deployment(TEMPLATE_V2))


def test_every_index_the_policy_daemon_reads_is_registered_without_the_webhook() -> None:
    """The webhook module is imported only with a webhook port: the daemon must not need its indexes."""
    import inspect

    from readiness_operator.kube import handlers

    wanted = [p for p in inspect.signature(handlers.policy_daemon).parameters if p.endswith("_index")]
    assert wanted == ["namespace_index"]
    assert [p for p in wanted if not callable(getattr(handlers, p, None))] == []
