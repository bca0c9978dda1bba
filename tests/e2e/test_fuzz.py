"""Differential fuzzing (issue #13): Deployments generated from the real API server's OpenAPI v3
schema are judged by the engine/webhook decision and, through server-side dry-run, by the generated
ValidatingAdmissionPolicy; on every example the API server accepts, both deny or allow alike and name
the same failed checks, and no example crashes the decision. `hack/bench/fuzz.py` runs thousands."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.cluster import Cluster, eventually
from tests.support.fuzz import ApiConnection, Differential, deployments, fix_up

pytestmark = pytest.mark.e2e

NS, STAGING = "fuzz", "fuzz-staging"
EXAMPLES = 200


@pytest.fixture(scope="module")
def differential(crds: Cluster) -> Iterator[Differential]:
    for ns in (NS, STAGING):
        crds.kubectl("create", "namespace", ns)
    api = ApiConnection(crds.kubeconfig)
    diff = Differential.generated(api, "fuzz", NS, STAGING, lambda obj: crds.apply(json.dumps(obj)), now=datetime.now(UTC))
    bad = fix_up({"spec": {"replicas": 1}}, NS, "probe-less", None)

    def vap_in_force() -> bool:
        status, answer = api.dry_run_create(bad)
        return status == 403 and "readiness-fuzz" in str(answer.get("message"))

    eventually(vap_in_force, what="the generated VAP denying")
    yield diff
    api.close()
    crds.kubectl("delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", "readiness-fuzz",
                 "--ignore-not-found")
    crds.kubectl("delete", "namespace", NS, STAGING, "--wait=false")


def test_engine_and_vap_agree_on_generated_deployments(differential: Differential) -> None:
    strategy = deployments(differential.api.deployment_schema_components(), NS)
    tally = {"judged": 0, "rejected": 0, "denied": 0}

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def agree(data: st.DataObject) -> None:
        obj: dict[str, Any] = data.draw(strategy)
        outcome = differential.judge(obj)
        assert outcome.crash is None, outcome.crash
        assert outcome.agrees, (outcome, json.dumps(obj))
        tally["rejected" if outcome.rejected else "judged"] += 1
        tally["denied"] += outcome.vap_denied

    agree()
    # The harness itself must reach admission: mostly valid objects, both answers represented.
    assert tally["judged"] >= EXAMPLES * 0.6, tally
    assert 0 < tally["denied"] < tally["judged"], tally
