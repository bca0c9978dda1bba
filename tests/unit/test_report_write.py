"""Each PolicyReport is encoded once: the bytes that sized it are the bytes digested and the bytes sent
(issue 16, the report-writing hot spot)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import kubernetes
import pytest

from readiness_operator.kube.api import KubeApi
from readiness_operator.kube.reports import (
    EncodedReport,
    ReportRejected,
    as_written,
    digest,
    encode_reports,
    stable_digest,
)
from tests.unit.test_report_size import judged_runtime


def test_the_body_is_the_sorted_json_of_the_report_and_what_is_digested() -> None:
    rt, _ = judged_runtime(3)
    for max_bytes in (1024 * 1024, 8192):  # one report; many, a Deployment cut between its results
        reports = encode_reports("p", "uid-p", "big", rt.judged.values(), max_bytes=max_bytes)
        assert len(reports) == 1 if max_bytes > 8192 else len(reports) > 3
        for report in reports:
            assert report.body == json.dumps(dict(report), sort_keys=True).encode()
            assert json.loads(report.body) == dict(report)
            assert report.digest == hashlib.sha256(report.body).hexdigest() == digest(report) == digest(dict(report))
            # What a restarted operator reads back (keys in the API server's order) digests the same.
            echoed = json.loads(json.dumps(json.loads(report.body), sort_keys=True))
            assert digest(as_written(echoed)) == report.digest
            assert stable_digest(as_written(echoed)) == report.stable_digest
            assert len(report.body) <= max_bytes


def test_a_report_from_elsewhere_is_encoded_the_same_way() -> None:
    report = {"metadata": {"namespace": "n", "name": "r"}, "results": [{"message": "d\u00e9j\u00e0 vu", "b": 1}]}
    encoded = EncodedReport.of(report)
    assert EncodedReport.of(encoded) is encoded and encoded.key == ("n", "r")
    assert encoded.body.isascii() and json.loads(encoded.body) == report


class _Recorder(BaseHTTPRequestHandler):
    """A stand-in API server: records each request, answers with the next scripted status."""

    requests: ClassVar[list[tuple[str, str, str, str, bytes]]] = []
    script: ClassVar[list[tuple[int, bytes]]] = []

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.requests.append((self.command, self.path, str(self.headers.get("Content-Type")),
                              str(self.headers.get("Authorization")), body))
        status, reply = self.script.pop(0)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_POST = do_PATCH = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[KubeApi, type[_Recorder]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    config = kubernetes.client.Configuration(host=f"http://127.0.0.1:{server.server_address[1]}",
                                             api_key={"BearerToken": "s3cret-token"},
                                             api_key_prefix={"BearerToken": "Bearer"})
    _Recorder.requests, _Recorder.script = [], []
    try:
        yield KubeApi(kubernetes.client.ApiClient(config)), _Recorder
    finally:
        server.shutdown()
        server.server_close()


def test_the_bytes_sent_are_the_digested_bytes_with_create_or_merge_patch(
        recorder: tuple[KubeApi, type[_Recorder]]) -> None:
    api, server = recorder
    rt, _ = judged_runtime(3)
    (report,) = encode_reports("p", "uid-p", "big", rt.judged.values())
    echo = b"{" + b" " * 200_000 + b"}"  # the API server echoes the whole object: drained, never parsed
    server.script = [(409, b'{"kind":"Status","reason":"AlreadyExists"}'), (200, echo),  # exists after all
                     (200, echo),  # known now: patched directly
                     (404, b'{"kind":"Status","reason":"NotFound"}'), (201, echo)]  # gone meanwhile: created
    for _ in range(3):
        asyncio.run(api.put_policy_report(report))
    collection = "/apis/wgpolicyk8s.io/v1alpha2/namespaces/big/policyreports"
    assert [(m, p, t) for m, p, t, _, _ in server.requests] == [
        ("POST", collection, "application/json"),
        ("PATCH", f"{collection}/readiness-p", "application/merge-patch+json"),
        ("PATCH", f"{collection}/readiness-p", "application/merge-patch+json"),
        ("PATCH", f"{collection}/readiness-p", "application/merge-patch+json"),
        ("POST", collection, "application/json"),
    ]
    for _, _, _, auth, body in server.requests:
        assert auth == "Bearer s3cret-token"  # the client's own credentials
        assert body == report.body and hashlib.sha256(body).hexdigest() == report.digest
        assert json.loads(body) == dict(report)


def test_a_refusal_for_size_is_report_rejected_with_a_short_message(recorder: tuple[KubeApi, type[_Recorder]]) -> None:
    api, server = recorder
    report = EncodedReport.of({"metadata": {"namespace": "n", "name": "r"}, "results": []})
    refusal = json.dumps({"kind": "Status", "code": 500, "message": "etcdserver: request is too large" + "." * 2000})
    server.script = [(500, refusal.encode()), (413, b"request entity too large"),
                     (403, b'{"kind":"Status","reason":"Forbidden"}')]
    with pytest.raises(ReportRejected) as refused:
        asyncio.run(api.put_policy_report(report))
    assert refused.value.status == 500 and "request is too large" in str(refused.value)
    assert len(str(refused.value)) < 600 and "s3cret" not in str(refused.value)
    with pytest.raises(ReportRejected) as refused:
        asyncio.run(api.put_policy_report(report))
    assert refused.value.status == 413
    with pytest.raises(kubernetes.client.exceptions.ApiException) as failed:  # anything else is no refusal
        asyncio.run(api.put_policy_report(report))
    assert failed.value.status == 403 and not isinstance(failed.value, ReportRejected)
