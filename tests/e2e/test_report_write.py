"""PolicyReports written by `KubeApi` as their one encoding (raw bytes through the client's pool), against
the real API server and etcd (issue 16): read back equal, rewritten with create-or-merge-patch, refused
ones raised as ReportRejected."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import kubernetes
import pytest

from readiness_operator.kube.api import KubeApi
from readiness_operator.kube.reports import EncodedReport, ReportRejected, as_written, digest, encode_reports
from tests.support.cluster import Cluster, KubectlError
from tests.unit.test_report_size import SPEC, judged_runtime

pytestmark = pytest.mark.e2e

NS, POLICY = "report-write", "report-write"


def test_reports_sent_as_encoded_read_back_equal_rewrite_and_refuse(crds: Cluster) -> None:
    crds.kubectl("create", "namespace", NS)
    # A real owner: the garbage collector deletes reports whose owner does not exist.
    crds.apply(json.dumps({"apiVersion": "readiness.dev/v1alpha1", "kind": "ReadinessPolicy",
                           "metadata": {"name": POLICY}, "spec": {**SPEC, "match": {"namespaces": [NS]}}}))
    client = kubernetes.config.new_client_from_config(config_file=str(crds.kubeconfig))
    try:
        uid = crds.get_json("rp", POLICY)["metadata"]["uid"]
        rt, _ = judged_runtime(20)  # 20 wide Deployments: ~400 results, ~0.6 MB
        judged = list(rt.judged.values())
        (full,) = encode_reports(POLICY, uid, NS, judged, per_report=len(judged))  # one report of all 20
        (fewer,) = encode_reports(POLICY, uid, NS, judged[:2])
        assert len(full.body) > 500_000 and len(fewer["results"]) < len(full["results"]) / 5

        def read_back() -> dict[str, Any]:
            return as_written(crds.get_json("-n", NS, "policyreport", full.key[1]))

        api = KubeApi(client)
        asyncio.run(api.put_policy_report(full))  # created
        assert read_back() == dict(full) and digest(read_back()) == full.digest  # a restart rewrites nothing
        asyncio.run(api.put_policy_report(fewer))  # merge-patched: the lists are replaced, not merged
        assert read_back() == dict(fewer)
        asyncio.run(KubeApi(client).put_policy_report(full))  # a writer that never saw it: 409, then patched
        assert read_back() == dict(full)
        crds.kubectl("delete", "-n", NS, "policyreport", full.key[1])
        asyncio.run(api.put_policy_report(fewer))  # deleted meanwhile: 404, then created
        assert read_back() == dict(fewer)

        # Over etcd's 1.5 MiB request limit, under the API server's 3 MiB body limit (a 413 there is a unit test:
        # the API server may close the connection on the unread rest of such a body before the answer is read).
        oversize = EncodedReport.of({**dict(full), "metadata": {**full["metadata"], "name": "readiness-oversize"},
                                     "results": list(full["results"]) * 3})
        assert 1.5 * 2 ** 20 < len(oversize.body) < 3 * 2 ** 20, len(oversize.body)
        with pytest.raises(ReportRejected) as refused:
            asyncio.run(api.put_policy_report(oversize))
        # etcd's "request is too large", or its gRPC client's "larger than max" past 2 MiB: passed on as 500s.
        assert refused.value.status == 500 and "large" in str(refused.value), refused.value
        assert len(str(refused.value)) <= len("HTTP 500: ") + 512
        with pytest.raises(KubectlError, match="NotFound"):
            crds.get_json("-n", NS, "policyreport", "readiness-oversize")
    finally:
        client.close()
        crds.kubectl("delete", "rp", POLICY, "--ignore-not-found")
        crds.kubectl("delete", "namespace", NS, "--wait=false")
