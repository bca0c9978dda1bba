"""The catalogue declares each check once: texts, CEL or why none, and the fields it reads.

Also: the operator's trimmed index objects (derived from the declared fields) judge every fixture
exactly like the full objects, so a field a check reads but does not declare is caught here.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from readiness_operator.checks import CATALOGUE, Cel
from readiness_operator.checks.base import register
from readiness_operator.checks.fields import field_tree, fields_read, trim
from readiness_operator.engine import compile_policy, evaluate
from readiness_operator.kube.objects import trim_deployment, trim_hpa, trim_network_policy, trim_pdb, trim_pod
from readiness_operator.model import CATEGORIES, CHECK_IDS, ReadinessPolicySpec
from tests.unit.test_admission_vap import ALL_RULES
from tests.unit.test_check_fixtures import FILES, load_fixture

_PATH = re.compile(r"^[A-Za-z][A-Za-z0-9]*(\[\])?(\.[A-Za-z][A-Za-z0-9]*(\[\])?)*$")
_KINDS = {"Deployment", "PodDisruptionBudget", "HorizontalPodAutoscaler", "Pod", "NetworkPolicy", "Prometheus"}


@pytest.mark.parametrize("check_id", list(CATALOGUE))
def test_every_entry_is_complete(check_id: str) -> None:
    check = CATALOGUE[check_id]
    for text in (check.title, check.why, check.remediation):
        assert text.strip(), f"{check_id}: title, why and remediation must be set"
    assert check.category in CATEGORIES
    assert check.reads, f"{check_id}: declare the fields the check reads (reads=)"
    for kind, paths in check.reads.items():
        assert kind in _KINDS, f"{check_id}: unknown kind {kind!r} in reads"
        for path in paths:
            assert _PATH.match(path), f"{check_id}: {path!r} is not a field path like a.b[].c"


@pytest.mark.parametrize("check_id", list(CATALOGUE))
def test_static_checks_have_cel_or_say_why_not(check_id: str) -> None:
    """A check judged from the Deployment alone belongs in the fail-safe VAP, unless it says why not."""
    check = CATALOGUE[check_id]
    assert (check.cel is None) != (check.cel_unavailable is None)
    if check.cel is not None:
        return
    reason = check.cel_unavailable or ""
    if check.live:
        assert reason.startswith("live: "), f"{check_id}: a live check says 'live: <what it reads>'"
    else:
        assert reason.startswith("webhook-only: ") and len(reason) > len("webhook-only: ") + 10, (
            f"{check_id} reads only the Deployment but declares no CEL: add cel= or "
            "cel_unavailable='webhook-only: <reason>'"
        )


def test_a_static_check_without_cel_is_flagged() -> None:
    with pytest.raises(ValueError, match="exactly one of cel= and cel_unavailable="):
        register("x-no-cel", category="security", severity=CATALOGUE["no-privileged"].default_severity,
                 title="x", why="x", remediation="x", group="security_context", reads={"Deployment": ("spec",)})
    fake = dataclasses.replace(CATALOGUE["no-privileged"], cel=None, cel_unavailable="because")
    assert not fake.live  # the test above then demands "webhook-only: <reason>" for it


def test_every_declared_cel_builds_for_every_enabled_rule() -> None:
    plan = compile_policy(ReadinessPolicySpec.model_validate({"mode": "Enforce", "rules": ALL_RULES}))
    built = {p.check.id: p.check.cel(p.check.id, p.rule) for p in plan.checks if p.check.cel is not None}
    assert built and all(isinstance(c, Cel) and c.expression and c.message.startswith(cid + ": ")
                         for cid, c in built.items())


def test_model_vocabulary_comes_from_the_catalogue() -> None:
    assert tuple(cid for cid, c in CATALOGUE.items() if c.category != "slo") == CHECK_IDS
    assert set(CATEGORIES) == {c.category for c in CATALOGUE.values()}


def test_the_catalogue_imports_without_the_model() -> None:
    """The model imports the catalogue, so the catalogue must not import the model at import time."""
    code = (
        "import sys, readiness_operator.checks, readiness_operator.checks.fields\n"
        "bad = sorted(m for m in sys.modules if m.startswith('readiness_operator.model'))\n"
        "assert not bad, bad\n"
        "import readiness_operator.model\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


def test_field_tree_keeps_whole_values_and_lists() -> None:
    tree = field_tree(["spec.a", "spec.a.b", "spec.c[].d", "spec.c[].e.f"])
    obj = {"spec": {"a": {"b": 1, "x": 2}, "c": [{"d": 1, "e": {"f": 2, "g": 3}, "h": 4}, "odd"], "z": 5}, "k": 1}
    assert trim(obj, tree) == {"spec": {"a": {"b": 1, "x": 2}, "c": [{"d": 1, "e": {"f": 2}}, "odd"]}}


def test_trimming_keeps_every_declared_field() -> None:
    for kind in ("Deployment", "PodDisruptionBudget", "HorizontalPodAutoscaler", "Pod"):
        declared = {p for c in CATALOGUE.values() for p in c.reads.get(kind, ())}
        assert declared <= set(fields_read(kind))


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.stem}" for p in FILES])
def test_trimming_never_changes_a_verdict(path: Path) -> None:
    """The operator judges trimmed index objects; the CLI and webhook judge full ones: same verdict."""
    policy, deployment, world = load_fixture(path)
    padded = _with_unread_fields(deployment)
    trimmed_world = dataclasses.replace(
        world,
        pdbs=[trim_pdb(p) for p in world.pdbs],
        hpas=[trim_hpa(h) for h in world.hpas],
        pods=[trim_pod(p) for p in world.pods],
        network_policies=[trim_network_policy(n) for n in world.network_policies],
    )
    full = evaluate(policy.spec, padded, world)
    trimmed = evaluate(policy.spec, trim_deployment(padded), trimmed_world)
    assert [(f.check, f.status, f.message) for f in trimmed.findings] == [
        (f.check, f.status, f.message) for f in full.findings
    ]
    assert (trimmed.score, trimmed.compliant) == (full.score, full.compliant)
    kept = str(trim_deployment(padded)["spec"])
    assert "terminationMessagePolicy" not in kept and "dnsConfig" not in kept  # trimming did drop something


def _with_unread_fields(deployment: dict) -> dict:
    """The fixture plus fields no check reads (dnsConfig, terminationMessagePolicy), as real Deployments carry them."""
    spec = dict(deployment.get("spec") or {})
    template = dict(spec.get("template") or {})
    pod = dict(template.get("spec") or {})
    pod["dnsConfig"] = {"options": [{"name": "ndots", "value": "2"}]}
    pod["containers"] = [{**c, "terminationMessagePolicy": "FallbackToLogsOnError"} for c in pod.get("containers") or ()]
    status = {**(deployment.get("status") or {"replicas": 1}), "collisionCount": 3}
    return {**deployment, "spec": {**spec, "template": {**template, "spec": pod}}, "status": status}


def test_trimmed_objects_share_their_short_strings_and_keys() -> None:
    """Each watched object is parsed on its own; trimming makes equal keys and short values one object."""
    import json

    text = json.dumps({"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "x:1", "imagePullPolicy": "IfNotPresent", "env": [{"name": "A", "value": "v" * 40}],
         "resources": {"requests": {"cpu": "100m"}}}]}}}})
    first, second = (trim_deployment(json.loads(text)) for _ in range(2))
    assert first == second == trim_deployment(json.loads(text))
    a = first["spec"]["template"]["spec"]["containers"][0]
    b = second["spec"]["template"]["spec"]["containers"][0]
    assert a["imagePullPolicy"] is b["imagePullPolicy"]
    assert a["resources"]["requests"]["cpu"] is b["resources"]["requests"]["cpu"]
    key_a = next(k for k in a["resources"]["requests"])
    key_b = next(k for k in b["resources"]["requests"])
    assert key_a is key_b
    assert a["env"][0]["value"] == b["env"][0]["value"] and a["env"][0]["value"] is not b["env"][0]["value"]  # long
