"""The reader's pure parts: what an Index keeps, and how watch events are applied (no server here;
tests/e2e/test_reader.py runs the reader against the real API server)."""

from __future__ import annotations

from typing import Any

import pytest

from readiness_operator.kube.reader import ClusterReader, Gone, Index, Kind


def _by_namespace(obj: Any) -> dict[Any, Any]:
    meta = obj["metadata"]
    return {meta["namespace"]: {"name": meta["name"], "image": obj.get("image")}}


def test_an_index_keeps_each_object_once_under_its_keys_and_reports_real_changes_only() -> None:
    index = Index()
    assert index.put(("a", "x"), {"a": 1}) is True
    assert index.put(("a", "x"), {"a": 1}) is False  # equal: nothing changed for us
    assert index.put(("a", "y"), {"a": 2}) is True
    assert sorted(index["a"]) == [1, 2] and list(index) == ["a"] and index.objects == 2
    assert index.put(("a", "x"), {"b": 3}) is True  # moved to another key
    assert list(index["a"]) == [2] and list(index["b"]) == [3]
    assert index.discard(("a", "y")) is True and "a" not in index and index.discard(("a", "y")) is False
    assert index.put(("c", "z"), {}) is False and index.objects == 1  # nothing to keep (e.g. an orphan ReplicaSet)


def test_the_view_looks_one_deployment_up_in_the_index_as_it_lists_them() -> None:
    from readiness_operator.kube.view import IndexView

    index = Index()
    index.put(("a", "x"), {"a": {"metadata": {"name": "x"}}})
    index.put(("a", "y"), {"a": {"metadata": {"name": "y"}}})
    view = IndexView(index, Index(), Index(), {})
    listed = {d["metadata"]["name"]: d for d in view.deployments("a")}
    assert view.deployment("a", "y") is listed["y"] and index.value("a", ("a", "x")) is listed["x"]
    assert view.deployment("a", "z") is None and view.deployment("b", "x") is None
    index.discard(("a", "y"))
    assert view.deployment("a", "y") is None
    plain = IndexView({"a": list(listed.values())}, {}, {}, {})  # an index without lookups: found by walking
    assert plain.deployment("a", "x") is listed["x"] and plain.deployment("a", "z") is None


def _reader(changes: list[tuple[str, str]]) -> tuple[ClusterReader, Kind]:
    kind = Kind("things", "v1", _by_namespace, lambda ns, name, _kept: changes.append((ns, name)))
    return ClusterReader([kind]), kind


def _event(kind: str, name: str, image: str = "a:1", version: str = "7") -> dict[str, Any]:
    return {"type": kind, "object": {"metadata": {"namespace": "ns", "name": name, "resourceVersion": version},
                                     "image": image}}


def test_events_before_the_first_listing_ends_mark_nothing_and_after_it_mark_real_changes() -> None:
    changes: list[tuple[str, str]] = []
    reader, kind = _reader(changes)
    assert reader._event(kind, _event("ADDED", "x"), "1") == "7"
    assert changes == [] and not reader.synced.is_set()
    reader._listed("things", None)
    assert reader.synced.is_set()
    reader._event(kind, _event("MODIFIED", "x", version="8"), "7")  # only the version moved
    assert changes == []
    reader._event(kind, _event("MODIFIED", "x", image="a:2", version="9"), "8")  # heard with the new, then the old
    reader._event(kind, _event("DELETED", "x", image="a:2", version="10"), "9")  # with what was kept
    assert changes == [("ns", "x")] * 3 and "ns" not in kind.index


def test_a_bookmark_moves_the_version_and_a_410_error_event_means_list_again() -> None:
    reader, kind = _reader([])
    bookmark = {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "42"}}}
    assert reader._event(kind, bookmark, "7") == "42" and kind.index.objects == 0
    with pytest.raises(Gone):
        reader._event(kind, {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}}, "42")
    with pytest.raises(RuntimeError, match="watch error 500"):
        reader._event(kind, {"type": "ERROR", "object": {"kind": "Status", "code": 500, "message": "boom"}}, "42")


def test_synced_waits_for_every_kind_in_every_watched_namespace() -> None:
    kinds = [Kind("a", "v1", _by_namespace), Kind("b", "v1", _by_namespace)]
    reader = ClusterReader(kinds, namespaces=["n1", "n2"])
    for kind, namespace in [("a", "n1"), ("a", "n2"), ("b", "n1")]:
        reader._listed(kind, namespace)
        assert not reader.synced.is_set()
    reader._listed("b", "n2")
    assert reader.synced.is_set()
    assert kinds[0].path("n1") == "/api/v1/namespaces/n1/a" and kinds[0].path(None) == "/api/v1/a"
    assert Kind("deployments", "apps/v1", _by_namespace).path(None) == "/apis/apps/v1/deployments"


def test_only_events_that_change_what_is_kept_are_shared_and_each_event_is_counted() -> None:
    """Sharing walks the whole trimmed object; an event equal to what is kept (most of a quiet
    cluster's events) is dropped after one comparison instead (issue 16, idle CPU)."""
    shared: list[str] = []

    def share(entries: dict[Any, Any]) -> dict[Any, Any]:
        shared.extend(value["name"] for value in entries.values())
        return entries  # as SharedTrees.share: equal entries, made of shared subtrees

    changes: list[tuple[str, str]] = []
    kind = Kind("things", "v1", _by_namespace, lambda ns, name, _kept: changes.append((ns, name)), share=share)
    reader = ClusterReader([kind])
    reader._listed("things", None)
    reader._event(kind, _event("ADDED", "x"), "1")
    reader._event(kind, _event("MODIFIED", "x", version="8"), "7")  # a heartbeat: equal once trimmed
    reader._event(kind, _event("MODIFIED", "x", version="9"), "8")
    reader._event(kind, _event("MODIFIED", "x", image="a:2", version="10"), "9")
    assert shared == ["x", "x"] and changes == [("ns", "x")] * 3  # added; changed: the new and the old
    assert next(iter(kind.index["ns"]))["image"] == "a:2"
    reader._event(kind, _event("DELETED", "x", image="a:2", version="11"), "10")
    counts = reader.counts()["things"]
    assert (counts.kept, counts.relists, counts.events, counts.changes) == (0, 0, 5, 3)


def _hpa(name: str, target: Any, ready: str = "True", version: str = "1") -> dict[str, Any]:
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"namespace": "ns", "name": name, "resourceVersion": version},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                     "minReplicas": 2, "maxReplicas": 5},
            "status": {"conditions": [{"type": "ScalingActive", "status": ready, "reason": "ValidMetricFound"}]}}


def test_an_hpa_change_marks_the_deployment_it_targets_not_its_namespace() -> None:
    """An HPA relates to the Deployment its scaleTargetRef names (world.RelatedIndex); its status moves
    with every sync, so marking its whole namespace re-judged hundreds of Deployments for each move
    (issue 16). Retargeted, both Deployments are marked; a target without a usable name targets no
    Deployment (checks.relations.hpa_targets compares names), so only the one it left is marked."""
    from readiness_operator.kube.state import Dirty, PolicyCache, Registry
    from readiness_operator.kube.watched import HPAS, cluster_reader

    registry = Registry(PolicyCache())
    runtime = registry.ensure("p", "uid-p")
    reader = cluster_reader(registry)
    kind = reader.kinds[HPAS]
    reader._event(kind, {"type": "ADDED", "object": _hpa("h", "web")}, "1")
    for name in reader.kinds:
        reader._listed(name, None)

    def marks(event: dict[str, Any]) -> tuple[set[tuple[str, str]], set[str]]:
        runtime.dirty = Dirty(everything=False)
        reader._event(kind, event, "1")
        return runtime.dirty.keys, runtime.dirty.namespaces

    assert marks({"type": "MODIFIED", "object": _hpa("h", "web", ready="False", version="2")}) == ({("ns", "web")}, set())
    assert marks({"type": "MODIFIED", "object": _hpa("h", "web", ready="False", version="3")}) == (set(), set())
    assert marks({"type": "MODIFIED", "object": _hpa("h", "api", ready="False", version="4")}) == (
        {("ns", "web"), ("ns", "api")}, set())
    assert marks({"type": "MODIFIED", "object": _hpa("h", 7, version="5")}) == ({("ns", "api")}, set())
    assert marks({"type": "DELETED", "object": _hpa("h", 7, version="6")}) == (set(), set())
    reader._event(kind, {"type": "ADDED", "object": _hpa("g", "db")}, "1")
    assert marks({"type": "DELETED", "object": _hpa("g", "db", version="7")}) == ({("ns", "db")}, set())


def _pod(name: str, owner: str | None, ready: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"namespace": "ns", "name": name, "labels": {"app": "x"}}
    if owner is not None:
        meta["labels"]["pod-template-hash"] = "abc12"
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": f"{owner}-abc12",
                                    "controller": True}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "status": {"containerStatuses": [{"name": "c", "ready": ready, "restartCount": 0}]}}


def test_pods_are_kept_by_deployment_and_a_world_gets_its_own_without_a_namespace_scan() -> None:
    """The live checks' pods come straight from the index (issue 16: grouping a namespace's pods in
    every pass was most of a living cluster's idle leader); the result is what grouping gave."""
    from readiness_operator.kube.state import PolicyCache, Registry
    from readiness_operator.kube.view import RelatedCache
    from readiness_operator.kube.watched import PODS, cluster_reader, reader_view
    from readiness_operator.world import Worlds

    reader = cluster_reader(Registry(PolicyCache()))
    pods = [_pod("web-abc12-1", "web"), _pod("api-abc12-1", "api"), _pod("web-abc12-2", "web", ready=False),
            _pod("lonely", None)]
    for pod in pods:
        reader._apply(reader.kinds[PODS], pod, deleted=False)
    assert reader.kinds[PODS].index.objects == 3  # the pod no Deployment owns is not kept

    class Grouping:  # a view without pods_of: Worlds groups the namespace's pods itself
        def __init__(self, view: Any) -> None:
            self.view = view

        def pods(self, namespace: str) -> list[Any]:
            return [p for key in reader.index(PODS) if key[1] == namespace for p in reader.index(PODS)[key]]

        def __getattr__(self, name: str) -> Any:
            if name == "pods_of":
                raise AttributeError(name)
            return getattr(self.view, name)

    view = reader_view(reader, {}, RelatedCache())
    web = {"metadata": {"namespace": "ns", "name": "web"}}
    direct, grouped = Worlds(view, live=True).of(web), Worlds(Grouping(view), live=True).of(web)
    assert [p["metadata"]["name"] for p in direct.pods] == ["web-abc12-1", "web-abc12-2"]
    assert list(direct.pods) == list(grouped.pods)
    assert not Worlds(view, live=True).of({"metadata": {"namespace": "ns", "name": "db"}}).pods


def _pdb(name: str, labels: dict[str, str], version: str = "1") -> dict[str, Any]:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"namespace": "ns", "name": name, "resourceVersion": version},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": labels}}}


def test_the_reader_view_keeps_each_namespaces_pdb_index_until_its_pdbs_change() -> None:
    """Candidates come from a PDB index kept across passes and HPAs looked up by target (issue 16:
    rebuilding a `RelatedIndex` per namespace per pass was a fifth of an idle leader); they are the
    same as a fresh `RelatedIndex` gives, and a PDB added, changed or deleted is seen at once."""
    from readiness_operator.kube.state import PolicyCache, Registry
    from readiness_operator.kube.view import RelatedCache
    from readiness_operator.kube.watched import HPAS, PDBS, cluster_reader, reader_view
    from readiness_operator.world import RelatedIndex, Worlds

    reader = cluster_reader(Registry(PolicyCache()))
    pdbs, hpas = reader.kinds[PDBS], reader.kinds[HPAS]
    for obj in (_pdb("web", {"app": "web"}), _pdb("all", {})):
        reader._apply(pdbs, obj, deleted=False)
    for obj in (_hpa("h-web", "web"), _hpa("h-api", "api"), _hpa("h-odd", 7)):
        reader._apply(hpas, obj, deleted=False)
    cache = RelatedCache()
    view = reader_view(reader, {}, cache)
    web = {"metadata": {"namespace": "ns", "name": "web"},
           "spec": {"template": {"metadata": {"labels": {"app": "web"}}}}}

    def names(objs: Any) -> list[str]:
        return sorted(o["metadata"]["name"] for o in objs)

    def fresh() -> tuple[list[str], list[str]]:
        world = Worlds(view.__class__(reader.index("deployments"), {"ns": list(reader.index(PDBS)["ns"])},
                                      {"ns": list(reader.index(HPAS)["ns"])}, {})).of(web)
        return names(world.pdbs), [h["metadata"]["name"] for h in world.hpas if h["spec"]["scaleTargetRef"]["name"] == "web"]

    first = view.related("ns")
    assert not isinstance(first, RelatedIndex)  # the kept index, not one built for this pass
    pdb_candidates, hpa_candidates = first.for_deployment(web)
    assert names(pdb_candidates) == ["all", "web"] == fresh()[0]
    assert names(hpa_candidates) == ["h-web"] == fresh()[1]
    kept = cache.pdbs(reader.index(PDBS), "ns")
    assert cache.pdbs(reader.index(PDBS), "ns") is kept  # nothing changed: the same index
    reader._apply(hpas, _hpa("h-web", "web", ready="False", version="2"), deleted=False)
    assert cache.pdbs(reader.index(PDBS), "ns") is kept  # an HPA moving does not rebuild the PDB index
    assert Worlds(view).of(web).hpas[0]["status"]["conditions"][0]["status"] == "False"  # but is seen
    reader._apply(pdbs, _pdb("web", {"app": "other"}, version="2"), deleted=False)
    assert cache.pdbs(reader.index(PDBS), "ns") is not kept
    assert names(Worlds(view).of(web).pdbs) == ["all"]
    reader._apply(pdbs, _pdb("all", {}), deleted=True)
    reader._apply(pdbs, _pdb("web", {"app": "other"}), deleted=True)
    assert names(Worlds(view).of(web).pdbs) == []
    reader._apply(pdbs, _pdb("web", {"app": "web"}, version="3"), deleted=False)  # back under the same key
    assert names(Worlds(view).of(web).pdbs) == ["web"]
