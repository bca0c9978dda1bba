"""``-o json`` is written by report.document.write_json without building the document: its text must be
exactly what ``json.dumps(document(audit), indent=2)`` gives, for any audit."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from readiness_operator.cli import load_policy
from readiness_operator.engine import evaluate
from readiness_operator.manifests import Skipped, load_inventory
from readiness_operator.report import Audit, Audited
from readiness_operator.report.document import _value, document, write_json
from readiness_operator.world import InMemoryView, Worlds

ROOT = Path(__file__).resolve().parents[2]


def reference(audit: Audit) -> str:
    return json.dumps(document(audit), indent=2) + "\n"


def written(audit: Audit) -> str:
    out = io.StringIO()
    write_json(audit, out)
    return out.getvalue()


def audit_of(text: str, policy: str, tmp: Path, skipped: tuple[Skipped, ...] = ()) -> Audit:
    path = tmp / "manifests.yaml"
    path.write_text(text)
    loaded = load_policy(policy)
    inv = load_inventory([str(path)])
    worlds = Worlds(InMemoryView(pdbs=inv.pdbs, hpas=inv.hpas, namespace_labels=inv.namespace_labels))
    results = [Audited(evaluate(loaded.spec, d.obj, worlds.of(d.obj)), d.file, d.line, d.containers)
               for d in inv.deployments]
    return Audit(policy=loaded, policy_source=policy, results=results, skipped=skipped)


MANIFESTS = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: ünïcødé-☃, namespace: team-a}
spec:
  replicas: 1
  template:
    metadata: {labels: {app: a}}
    spec:
      initContainers:
      - {name: setup, image: "busybox", restartPolicy: Always}
      containers:
      - name: "api \\"quoted\\""
        image: nginx:latest
      - name: side
        image: r.io/x@sha256:0000000000000000000000000000000000000000000000000000000000000000
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: b, namespace: team-a}
spec:
  replicas: 3
  template:
    metadata: {labels: {app: b}}
    spec:
      containers:
      - name: app
        image: nginx:1.27
        readinessProbe: {httpGet: {port: 80}}
        livenessProbe: {httpGet: {port: 80}}
"""


def test_the_json_is_the_indented_document_byte_for_byte(tmp_path: Path) -> None:
    for policy in ("examples/policies/production.yaml", "hack/bench/policies/full-catalogue.yaml",
                   "examples/policies/baseline.yaml"):
        audit = audit_of(MANIFESTS, str(ROOT / policy), tmp_path, skipped=(Skipped("x.yaml", "not a manifest: ☃"),))
        assert any(r.verdict.failures for r in audit.results)
        assert written(audit) == reference(audit)


def test_no_results_and_a_result_without_failures(tmp_path: Path) -> None:
    empty = audit_of("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n", str(ROOT / "examples/policies/baseline.yaml"),
                     tmp_path)
    assert not empty.results and written(empty) == reference(empty)
    lenient = tmp_path / "lenient.yaml"
    lenient.write_text("apiVersion: readiness.dev/v1alpha1\nkind: ReadinessPolicy\nmetadata: {name: none}\n"
                       "spec: {rules: {replicas: {min: 1}}}\n")
    audit = audit_of(MANIFESTS, str(lenient), tmp_path)
    assert any(not r.verdict.failures for r in audit.results)
    assert written(audit) == reference(audit)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
              st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(st.text(max_size=4), st.integers(-3, 3), st.booleans(), st.none(),
                                  st.floats(allow_nan=False, allow_infinity=True)), inner, max_size=3),
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values, st.integers(0, 6))
def test_any_value_is_written_as_json_dumps_indents_it(value: Any, depth: int) -> None:
    out: list[str] = []
    _value(value, 2 * depth, out)
    expected = json.dumps(value, indent=2).replace("\n", "\n" + " " * (2 * depth))
    assert "".join(out) == expected
