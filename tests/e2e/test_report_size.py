"""PolicyReports of wide Deployments against the real API server and etcd (issue #13 item 2): 60
Deployments with 253-character names and 10 containers used to make one 1.78 MB report etcd refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.support.cluster import Cluster, eventually
from tests.support.operator import running_operator
from tests.unit.test_report_size import SPEC, wide_deployment

pytestmark = pytest.mark.e2e


def test_wide_namespace_gets_its_reports_each_under_the_limit(crds: Cluster, tmp_path: Any) -> None:
    crds.kubectl("create", "namespace", "big")
    items = [wide_deployment(i) for i in range(60)]
    for d in items:
        d["spec"]["selector"] = {"matchLabels": {"app": "a"}}
        d["metadata"].pop("uid")
    crds.kubectl("create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}),
                 timeout=120)
    crds.apply(yaml.safe_dump({"apiVersion": "readiness.dev/v1alpha1", "kind": "ReadinessPolicy",
                               "metadata": {"name": "wide"}, "spec": SPEC}))
    with running_operator(crds, tmp_path / "operator.log") as op:
        try:
            def complete() -> list[dict[str, Any]]:
                found = crds.get_json("-n", "big", "policyreports", "-l", "readiness.dev/policy=wide")["items"]
                deployments = {r["resources"][0]["name"] for rep in found for r in rep["results"]}
                return found if len(deployments) == 60 else []

            found = eventually(complete, timeout=120, what="every wide Deployment in the PolicyReports")
            sizes = [len(json.dumps(r)) for r in found]
            assert len(found) >= 2 and sum(sizes) > 1_500_000, sizes
            assert max(sizes) < 1_300_000, sizes  # as read back (etcd also stores managedFields)
            status = eventually(lambda: crds.get_json("rp", "wide")["status"], what="status")
            assert status["targets"] == 60 and status["reportErrors"] == 0, status
            assert "Traceback" not in op.logs()
        finally:
            crds.kubectl("delete", "rp", "wide", "--ignore-not-found")  # while the operator removes its finalizer
            crds.kubectl("delete", "namespace", "big", "--wait=false")
