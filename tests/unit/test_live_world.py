"""Live Worlds: pods mapped to their Deployment by ReplicaSet owner and pod-template-hash, handed out
only by live Worlds (the operator's passes), trimmed to what pods-stable reads."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from readiness_operator.kube.objects import trim_pod
from readiness_operator.world import InMemoryView, Worlds, deployment_of_pod


def pod(name: str, owner: str | None, hash_: str | None, kind: str = "ReplicaSet") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "demo", "labels": {"app": "x"}}
    if hash_ is not None:
        meta["labels"]["pod-template-hash"] = hash_
    if owner is not None:
        meta["ownerReferences"] = [{"kind": kind, "name": owner, "uid": "u"}]
    return {"metadata": meta, "spec": {"containers": [{"name": "app", "image": "a:1", "env": [{"name": "S", "value": "x"}]}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1", "containerStatuses": [
                {"name": "app", "restartCount": 2, "image": "a:1", "state": {"waiting": {"reason": "CrashLoopBackOff",
                                                                                    "message": "back-off 10s"}}}]}}


@pytest.mark.parametrize(("obj", "expected"), [
    (pod("web-6d9f-abcde", "web-6d9f", "6d9f"), "web"),
    (pod("my-api-v2-77c-x", "my-api-v2-77c", "77c"), "my-api-v2"),  # dashes in the Deployment's name
    (pod("job-x", "job", None, kind="Job"), None),  # another controller
    (pod("rs-x", "standalone-rs", "9zz"), None),  # a ReplicaSet not named <deployment>-<hash>
    (pod("bare", None, None), None),
    ({"metadata": "odd"}, None),
])
def test_deployment_of_pod(obj: Mapping[str, Any], expected: str | None) -> None:
    assert deployment_of_pod(obj) == expected


class PodView(InMemoryView):
    def __init__(self, deployments: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]]) -> None:
        super().__init__(deployments)
        self._pods = list(pods)
        self.reads = 0

    def pods(self, namespace: str) -> Iterable[Mapping[str, Any]]:
        self.reads += 1
        return [p for p in self._pods if p["metadata"]["namespace"] == namespace]


def test_only_live_worlds_get_their_own_pods_and_a_namespace_is_read_once() -> None:
    web = {"metadata": {"name": "web", "namespace": "demo"}, "spec": {}}
    api = {"metadata": {"name": "api", "namespace": "demo"}, "spec": {}}
    pods = [pod("web-1a-x", "web-1a", "1a"), pod("web-1a-y", "web-1a", "1a"), pod("api-2b-z", "api-2b", "2b")]
    view = PodView([web, api], pods)
    live = Worlds(view, live=True)
    assert [p["metadata"]["name"] for p in live.of(web).pods] == ["web-1a-x", "web-1a-y"]
    assert [p["metadata"]["name"] for p in live.of(api).pods] == ["api-2b-z"]
    assert live.of(web).live and view.reads == 1
    offline = Worlds(view).of(web)
    assert not offline.live and offline.pods == ()


def test_trimmed_pod_keeps_what_pods_stable_and_the_mapping_read() -> None:
    trimmed = trim_pod(pod("web-1a-x", "web-1a", "1a"))
    assert deployment_of_pod(trimmed) == "web"
    assert trimmed["status"] == {"containerStatuses": [
        {"name": "app", "restartCount": 2, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}
    assert "spec" not in trimmed and "podIP" not in str(trimmed)
