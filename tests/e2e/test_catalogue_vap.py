"""Every check fixture, judged by the engine and by its generated ValidatingAdmissionPolicy on the real
API server (server-side dry-run), gets the same verdict for every static check the VAP covers.

Batched: one namespace, one policy per distinct fixture policy (selecting its fixtures' Deployments by
a label), all merged into ONE VAP as the operator merges its Enforce policies, one dry-run of all
Deployments per attempt. Fixtures with PDBs or HPAs are
left out: the VAP cannot see those objects by design (admission/vap.py), the webhook judges them.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic.alias_generators import to_camel

from readiness_operator.admission.vap import generate_vap
from readiness_operator.checks import CATALOGUE
from readiness_operator.engine import compile_policy, evaluate
from readiness_operator.manifests import iter_documents
from readiness_operator.model import ReadinessPolicySpec
from readiness_operator.model.common import BLOCKING
from tests.support.cluster import Cluster, eventually
from tests.unit.test_check_fixtures import FILES, load_fixture

pytestmark = pytest.mark.e2e

NS = "catalogue-vap"
VAP = "readiness-fx-catalogue"
LABEL = "readiness.dev/fixture"
NOW = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass
class Case:
    path: Path
    name: str
    deployment: dict[str, Any]
    spec: dict[str, Any]  # the fixture's policy spec, Enforce, its own check made blocking (no match)
    engine_failed: frozenset[str] = frozenset()  # the VAP-covered checks the engine fails


def _static(path: Path) -> bool:
    check = CATALOGUE.get(path.parent.name)
    kinds = {doc.get("kind") for _, doc in iter_documents(str(path))}
    related = {"PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy"}
    return check is not None and check.cel is not None and not kinds & related


STATIC = [p for p in FILES if _static(p)]


def _case(index: int, path: Path) -> Case:
    """The fixture's Deployment, labelled and moved to NS, and its policy spec in Enforce mode."""
    policy, deployment, _ = load_fixture(path)
    name = f"fx-{index}"
    raw = copy.deepcopy(next(doc for _, doc in iter_documents(str(path)))["spec"])
    raw["mode"] = "Enforce"
    check = CATALOGUE[path.parent.name]
    own = next(p for p in compile_policy(policy.spec).checks if p.check.id == check.id)
    if own.severity not in BLOCKING:
        raw.setdefault("rules", {}).setdefault(to_camel(check.group), {})["severity"] = "warning"
    obj = copy.deepcopy(deployment)
    obj["metadata"] = {**obj["metadata"], "name": name, "namespace": NS,
                       "labels": {**(obj["metadata"].get("labels") or {}), LABEL: name}}
    return Case(path, name, obj, raw)


def _policy(cases: list[Case]) -> ReadinessPolicySpec:
    """One policy for cases sharing a spec, selecting their Deployments."""
    raw = {**cases[0].spec, "match": {"namespaces": [NS], "selector": {
        "matchExpressions": [{"key": LABEL, "operator": "In", "values": [c.name for c in cases]}]}}}
    return ReadinessPolicySpec.model_validate(raw)


def _merged(groups: list[list[Case]]) -> list[dict[str, Any]]:
    """ONE merged VAP + binding for every group's policy (as the operator writes them: each policy
    told apart by its selector in CEL); records the engine's verdicts."""
    policies = {f"fx-group-{i}": _policy(cases) for i, cases in enumerate(groups)}
    generated = generate_vap(policies, name=VAP, now=NOW, excluded_namespaces=[])
    for i, cases in enumerate(groups):
        checks = generated.policies[f"fx-group-{i}"].checks
        for c in cases:
            assert c.path.parent.name in checks, f"{c.path}: the VAP does not cover its check"
            _, _, world = load_fixture(c.path)
            verdict = evaluate(policies[f"fx-group-{i}"], c.deployment, world)
            c.engine_failed = frozenset(f.check for f in verdict.findings if f.status == "fail" and f.check in checks)
    return generated.objects


def _vap_failures(stderr: str) -> dict[str, frozenset[str]]:
    """Deployment name -> the checks its VAP names in the denial (from one batched dry-run)."""
    out: dict[str, frozenset[str]] = {}
    for line in stderr.splitlines():
        m = re.search(r'"(fx-\d+)" is forbidden: ValidatingAdmissionPolicy .*denied request: (.*)$', line)
        if m:
            named = re.findall(r"(?:: |; )([a-z0-9-]+): ", m.group(2))
            out[m.group(1)] = frozenset(n for n in named if n in CATALOGUE)
    return out


@pytest.fixture(scope="module")
def cases(crds: Cluster) -> Iterator[list[Case]]:
    built = [_case(i, p) for i, p in enumerate(STATIC)]
    groups: dict[str, list[Case]] = {}
    for c in built:
        groups.setdefault(json.dumps(c.spec, sort_keys=True), []).append(c)
    # First a copy of a failing case under a policy of its own: once the API server denies it, it
    # enforces the merged object.
    _merged(list(groups.values()))  # the engine's verdicts, to pick a failing case
    canary = _case(len(built), next(c.path for c in built if c.engine_failed))
    objects = _merged([[canary], *groups.values()])
    built.append(canary)
    crds.kubectl("create", "namespace", NS)
    crds.apply(yaml.safe_dump_all(objects))
    yield built
    crds.kubectl("delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", VAP, "--wait=false")
    crds.kubectl("delete", "namespace", NS, "--wait=false")


def _dry_run(cluster: Cluster, built: list[Case]) -> tuple[dict[str, frozenset[str]], str]:
    manifest = yaml.safe_dump_all([c.deployment for c in built])
    result = cluster.kubectl("create", "--dry-run=server", "-f", "-", input=manifest, check=False)
    return _vap_failures(result.stderr), result.stderr


def test_every_static_fixture_gets_the_engines_verdict_from_the_vap(crds: Cluster, cases: list[Case]) -> None:
    assert len(cases) >= 40, "most fixtures judge a static check"
    denied_by_engine = {c.name for c in cases if c.engine_failed}
    assert denied_by_engine and len(denied_by_engine) < len(cases)
    # The API server loads new VAPs asynchronously; the last one applied (a failing case) comes last.
    eventually(lambda: cases[-1].name in _dry_run(crds, cases)[0], timeout=60, what="the VAPs in effect")
    eventually(lambda: _agree(crds, cases), timeout=20, what="the engine's verdicts from the VAPs")


def _agree(cluster: Cluster, cases: list[Case]) -> bool:
    vap, stderr = _dry_run(cluster, cases)
    other_errors = [line for line in stderr.splitlines()  # API server warnings (duplicate env names) are not errors
                    if line.strip() and "ValidatingAdmissionPolicy" not in line and not line.startswith("Warning: ")]
    assert not other_errors, other_errors  # every fixture Deployment is valid for the API server
    disagreements = [
        f"{c.path.parent.name}/{c.path.name}: engine fails {sorted(c.engine_failed)}, VAP fails {sorted(vap.get(c.name, ()))}"
        for c in cases
        if c.engine_failed != vap.get(c.name, frozenset())
    ]
    assert not disagreements, "\n".join(disagreements)
    return True
