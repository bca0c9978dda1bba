"""The presets pod-security-baseline/-restricted give every fixture the API server's own Pod Security verdict.

Two namespaces on the living cluster carry ``pod-security.kubernetes.io/enforce=baseline`` and
``=restricted`` (version v1.34). Every check fixture's Deployment becomes a Pod built from its template;
one batched server-side dry-run per namespace tells which pods Pod Security admission rejects, and the
engine judging the Deployment under the matching preset must fail exactly those.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from readiness_operator.cli import load_policy
from readiness_operator.engine import evaluate
from readiness_operator.pss import PSS_VERSION
from readiness_operator.world import World
from tests.support.cluster import Cluster, eventually
from tests.unit.test_check_fixtures import FILES, load_fixture

pytestmark = pytest.mark.e2e

LEVELS = ("baseline", "restricted")


def _pod(index: int, deployment: dict[str, Any], namespace: str) -> dict[str, Any]:
    """A Pod as the ReplicaSet controller would create it from the Deployment's template."""
    template = copy.deepcopy(deployment["spec"]["template"])
    meta = template.get("metadata") or {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"pss-{index}",
            "namespace": namespace,
            "labels": meta.get("labels") or {},
            **({"annotations": meta["annotations"]} if meta.get("annotations") else {}),
        },
        # Pod Security does not judge the priority class; the Priority admission plugin would refuse a
        # pod naming one this cluster lacks (the priority-class fixtures name made-up classes).
        "spec": {k: v for k, v in template["spec"].items() if k != "priorityClassName"},
    }


@pytest.fixture(scope="module")
def namespaces(crds: Cluster) -> Iterator[dict[str, str]]:
    created = {}
    for level in LEVELS:
        ns = f"pss-{level}"
        crds.kubectl("create", "namespace", ns)
        crds.kubectl(
            "label", "namespace", ns,
            f"pod-security.kubernetes.io/enforce={level}",
            f"pod-security.kubernetes.io/enforce-version={PSS_VERSION}",
        )
        created[level] = ns
    for ns in created.values():  # the ServiceAccount admission plugin needs the default account
        eventually(lambda ns=ns: crds.kubectl("get", "serviceaccount", "default", "-n", ns, check=False).returncode == 0,
                   timeout=60, what=f"the default ServiceAccount in {ns}")
    yield created
    for ns in created.values():
        crds.kubectl("delete", "namespace", ns, "--wait=false")


def _rejected(cluster: Cluster, pods: list[dict[str, Any]]) -> set[str]:
    """Names of the pods Pod Security admission rejects; any other error fails the test."""
    result = cluster.kubectl("create", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(pods), check=False)
    rejected, other = set(), []
    for line in result.stderr.splitlines():
        m = re.search(r'pods "(pss-\d+)" is forbidden: violates PodSecurity', line)
        if m:
            rejected.add(m.group(1))
        elif line.strip() and not line.startswith("Warning: "):
            other.append(line)
    assert not other, "\n".join(other)  # every fixture's pod is a valid Pod
    return rejected


@pytest.mark.parametrize("level", LEVELS)
def test_preset_gives_the_api_servers_pod_security_verdict(crds: Cluster, namespaces: dict[str, str], level: str) -> None:
    preset = load_policy(f"builtin:pod-security-{level}").spec
    pods, engine_fails, where = [], set(), {}
    for i, path in enumerate(FILES):
        _, deployment, _ = load_fixture(path)
        pod = _pod(i, deployment, namespaces[level])
        pods.append(pod)
        where[pod["metadata"]["name"]] = f"{path.parent.name}/{path.name}"
        verdict = evaluate(preset, deployment, World())
        failed = [f"{f.check}: {f.message}" for f in verdict.findings if f.status == "fail"]
        if failed:
            engine_fails.add(pod["metadata"]["name"])
            where[pod["metadata"]["name"]] += f" (engine: {'; '.join(failed)})"
    assert len(pods) >= 150 and engine_fails and len(engine_fails) < len(pods)
    api_fails = _rejected(crds, pods)
    disagreements = sorted(
        f"{where[n]}: API server {'rejects' if n in api_fails else 'admits'}, preset "
        f"{'fails' if n in engine_fails else 'passes'}"
        for n in api_fails ^ engine_fails
    )
    assert not disagreements, "\n".join(disagreements)
