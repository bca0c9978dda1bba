"""Our own LIST+WATCH (kube/reader.py) against the real API server of the living cluster.

It keeps only trimmed objects, pages through a LIST, follows a WATCH, marks the policy loops' keys
only when what it keeps changed, and a fresh LIST after a pause (what a 410 or a lost connection
leads to) finds every change made meanwhile, deletions included. Pods come from kwok. (A 410 itself
needs a compacted etcd; tests/unit/test_reader.py covers how one is handled.)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import kubernetes
import pytest

from readiness_operator.kube.reader import Connection, Index
from readiness_operator.kube.state import Dirty, PolicyRuntime, Registry
from readiness_operator.kube.watched import DEPLOYMENTS, PDBS, PODS, REPLICASETS, cluster_reader
from readiness_operator.policies import PolicyCache
from tests.e2e.test_living_cluster import available, deployment
from tests.support.cluster import Cluster, eventually

pytestmark = pytest.mark.e2e

NS = "reader-e2e"


async def _until(check: Callable[[], Any], timeout: float = 60, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or check}")


def _names(index: Index) -> set[str]:
    return {d["metadata"]["name"] for d in index.get(NS, ())}


def _fresh(runtime: PolicyRuntime) -> None:
    runtime.dirty = Dirty(everything=False)


def test_the_reader_keeps_trimmed_objects_and_sees_every_change(cluster: Cluster) -> None:
    cluster.kubectl("create", "namespace", NS, check=False)
    try:
        manifests = "\n---\n".join(deployment(NS, f"web-{i}", replicas=1) for i in range(5))
        cluster.apply(manifests)
        cluster.apply("\n---\n".join(f"""apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {{name: web-{i}, namespace: {NS}}}
spec: {{minAvailable: 1, selector: {{matchLabels: {{app: web-{i}}}}}}}
""" for i in range(2)))
        for i in range(5):  # settled: no status update of the controller-manager is still to come
            eventually(lambda i=i: available(cluster, NS, f"web-{i}", 1), timeout=90, what=f"web-{i} available")
        asyncio.run(_scenario(cluster))
    finally:
        cluster.kubectl("delete", "namespace", NS, "--wait=false", check=False)


async def _scenario(cluster: Cluster) -> None:
    client = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
    registry = Registry(PolicyCache())
    runtime = registry.ensure("p", "uid-p")
    reader = cluster_reader(registry, [NS])
    reader._page_size = 2  # five Deployments: three pages
    connection = Connection.from_client(client)
    task = asyncio.create_task(reader.run(connection))
    try:
        await asyncio.wait_for(reader.synced.wait(), 60)
        deployments = reader.index(DEPLOYMENTS)
        assert _names(deployments) == {f"web-{i}" for i in range(5)}
        kept = next(iter(deployments[NS]))
        assert "managedFields" not in kept["metadata"] and "resourceVersion" not in kept["metadata"]
        assert kept["spec"]["template"]["spec"]["containers"][0]["image"]
        assert {p["metadata"]["name"] for p in reader.index(PDBS)[NS]} == {"web-0", "web-1"}
        # kwok runs the pods; each ReplicaSet maps back to its Deployment
        await _until(lambda: sum(len(list(reader.index(PODS)[key])) for key in reader.index(PODS) if key[1] == NS) >= 5,
                     what="five kwok pods")
        assert {key[2] for key in reader.index(PODS) if key[1] == NS} <= {f"web-{i}" for i in range(5)}  # by Deployment
        assert await _until(lambda: {k[2] for k in reader.index(REPLICASETS) if k[0] == "owner" and k[1] == NS})

        # A change to what we keep calls on_change (the Deployment is marked); a change to what we
        # do not keep calls nothing. (A Deployment's annotations bump its generation, which we keep,
        # so the second is shown on PDBs.) One kind's events arrive in order over its watch: once
        # the later one is seen, the earlier one was handled.
        pdb_kind = reader.kinds[PDBS]
        pdb_changes: list[str] = []
        marks = pdb_kind.on_change
        assert marks is not None

        def record(namespace: str, name: str, kept: Any) -> None:
            pdb_changes.append(name)
            marks(namespace, name, kept)

        pdb_kind.on_change = record
        _fresh(runtime)
        before = reader.counts()[PDBS]
        cluster.kubectl("set", "image", "-n", NS, "deployment/web-2", "app=registry.example/web:2.0")
        cluster.kubectl("annotate", "pdb", "-n", NS, "web-0", "example.com/note=unread")
        cluster.kubectl("patch", "pdb", "-n", NS, "web-1", "--type=merge", "-p", '{"spec":{"minAvailable":0}}')
        await _until(lambda: (NS, "web-2") in runtime.dirty.keys, what="web-2 marked")
        await _until(lambda: "web-1" in pdb_changes, what="the PDB change")
        assert "web-0" not in pdb_changes and not {(NS, "web-0"), (NS, "web-3")} & runtime.dirty.keys
        # Both PDB events were counted (readiness_watch_events_total); the annotation as changing nothing.
        after = reader.counts()[PDBS]
        assert after.events - before.events >= 2 and after.changes - before.changes >= 1
        assert (after.events - after.changes) - (before.events - before.changes) >= 1
        image = next(d for d in deployments[NS] if d["metadata"]["name"] == "web-2")
        assert image["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/web:2.0"

        # A new pod (scale up) marks its Deployment for the live checks; a PDB change its namespace.
        _fresh(runtime)
        cluster.kubectl("scale", "-n", NS, "deployment/web-3", "--replicas=2")
        cluster.kubectl("delete", "pdb", "-n", NS, "web-0")
        await _until(lambda: NS in runtime.dirty.namespaces, what="the PDB's namespace marked")
        await _until(lambda: (NS, "web-3") in runtime.dirty.keys, what="web-3 marked by its pods")
        assert {p["metadata"]["name"] for p in reader.index(PDBS)[NS]} == {"web-1"}

        await asyncio.to_thread(eventually, lambda: available(cluster, NS, "web-2", 1) and available(cluster, NS, "web-3", 2),
                                timeout=90, what="web-2 and web-3 settled")

        # Deleted while watched: gone and marked.
        _fresh(runtime)
        cluster.kubectl("delete", "deployment", "-n", NS, "web-4", "--wait=false")
        await _until(lambda: "web-4" not in _names(deployments) and (NS, "web-4") in runtime.dirty.keys,
                     what="web-4 deleted")
        await asyncio.sleep(1.0)  # the settled statuses have arrived
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    # Not watching: a Deployment is deleted, one added, one changed. The next LIST (what follows a
    # 410 or a lost connection) finds all three and marks them.
    cluster.kubectl("delete", "deployment", "-n", NS, "web-0", "--wait=false")
    cluster.apply(deployment(NS, "web-5", replicas=1))
    cluster.kubectl("set", "image", "-n", NS, "deployment/web-1", "app=registry.example/web:3.0")
    _fresh(runtime)
    task = asyncio.create_task(reader.run(connection))
    try:
        await _until(lambda: _names(deployments) == {"web-1", "web-2", "web-3", "web-5"}, what="the relist")
        await _until(lambda: {(NS, "web-0"), (NS, "web-1"), (NS, "web-5")} <= runtime.dirty.keys, what="relist marks")
        assert (NS, "web-2") not in runtime.dirty.keys  # unchanged: no pass for it

    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
