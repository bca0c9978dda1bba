"""Every check fixture, judged by the engine and by its generated ValidatingAdmissionPolicy on the real
API server (server-side dry-run), gets the same verdict for every static check the VAP covers.

Batched: one namespace, every fixture's VAP and binding applied at once (each bound to its own
Deployment by a label), one dry-run of all Deployments per attempt. Fixtures with PDBs or HPAs are
left out: the VAP cannot see those objects by design (admission/vap.py), the webhook judges them.
"""

from __future__ import annotations

import copy
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
from readiness_operator.names import MANAGED_BY, MANAGED_BY_LABEL
from tests.support.cluster import Cluster, eventually
from tests.unit.test_check_fixtures import FILES, load_fixture

pytestmark = pytest.mark.e2e

NS = "catalogue-vap"
LABEL = "readiness.dev/fixture"
NOW = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass
class Case:
    path: Path
    name: str
    deployment: dict[str, Any]
    covered: tuple[str, ...]  # the checks the fixture's VAP enforces
    engine_failed: frozenset[str]  # of those, the ones the engine fails
    vap: list[dict[str, Any]]


def _static(path: Path) -> bool:
    check = CATALOGUE.get(path.parent.name)
    kinds = {doc.get("kind") for _, doc in iter_documents(str(path))}
    return check is not None and check.cel is not None and not kinds & {"PodDisruptionBudget", "HorizontalPodAutoscaler"}


STATIC = [p for p in FILES if _static(p)]


def _case(index: int, path: Path) -> Case:
    """The fixture as an Enforce policy bound to its own Deployment, its own check made blocking."""
    policy, deployment, world = load_fixture(path)
    name = f"fx-{index}"
    raw = copy.deepcopy(next(doc for _, doc in iter_documents(str(path)))["spec"])
    raw["mode"] = "Enforce"
    raw["match"] = {"namespaces": [NS], "selector": {"matchLabels": {LABEL: name}}}
    check = CATALOGUE[path.parent.name]
    own = next(p for p in compile_policy(policy.spec).checks if p.check.id == check.id)
    if own.severity not in BLOCKING:
        raw.setdefault("rules", {}).setdefault(to_camel(check.group), {})["severity"] = "warning"
    spec = ReadinessPolicySpec.model_validate(raw)
    obj = copy.deepcopy(deployment)
    obj["metadata"] = {**obj["metadata"], "name": name, "namespace": NS,
                       "labels": {**(obj["metadata"].get("labels") or {}), LABEL: name}}
    generated = generate_vap(name, spec, now=NOW, excluded_namespaces=[])
    assert check.id in generated.checks, f"{path}: the VAP does not cover {check.id}"
    verdict = evaluate(spec, obj, world)
    failed = frozenset(f.check for f in verdict.findings if f.status == "fail" and f.check in generated.checks)
    return Case(path, name, obj, generated.checks, failed, generated.objects)


def _vap_failures(stderr: str) -> dict[str, frozenset[str]]:
    """Deployment name -> the checks its VAP names in the denial (from one batched dry-run)."""
    out: dict[str, frozenset[str]] = {}
    for line in stderr.splitlines():
        m = re.search(r"ValidatingAdmissionPolicy 'readiness-(fx-\d+)'.*denied request: (.*)$", line)
        if m:
            named = re.findall(r"(?:: |; )([a-z0-9-]+): ", m.group(2))
            out[m.group(1)] = frozenset(n for n in named if n in CATALOGUE)
    return out


@pytest.fixture(scope="module")
def cases(crds: Cluster) -> Iterator[list[Case]]:
    built = [_case(i, p) for i, p in enumerate(STATIC)]
    # A copy of a failing case, applied last: once the API server enforces it, it has loaded the rest.
    built.append(_case(len(built), next(c.path for c in built if c.engine_failed)))
    crds.kubectl("create", "namespace", NS)
    crds.apply(yaml.safe_dump_all([o for c in built for o in c.vap]))
    yield built
    selector = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
    crds.kubectl("delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", "-l",
                 f"{selector},readiness.dev/policy in ({','.join(c.name for c in built)})", "--wait=false")
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
    other_errors = [line for line in stderr.splitlines() if line.strip() and "ValidatingAdmissionPolicy" not in line]
    assert not other_errors, other_errors  # every fixture Deployment is valid for the API server
    disagreements = [
        f"{c.path.parent.name}/{c.path.name}: engine fails {sorted(c.engine_failed)}, VAP fails {sorted(vap.get(c.name, ()))}"
        for c in cases
        if c.engine_failed != vap.get(c.name, frozenset())
    ]
    assert not disagreements, "\n".join(disagreements)
    return True
