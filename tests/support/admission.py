"""AdmissionReview requests sent straight to one operator replica's webhook port (no API server)."""

from __future__ import annotations

import json
import ssl
import urllib.request
import uuid
from collections.abc import Mapping
from typing import Any


def deployment_review(obj: Mapping[str, Any], operation: str = "CREATE", dry_run: bool = True) -> dict[str, Any]:
    """An AdmissionReview v1 request for a Deployment, as the API server sends it."""
    meta = obj.get("metadata") or {}
    gvk = {"group": "apps", "version": "v1", "kind": "Deployment"}
    gvr = {"group": "apps", "version": "v1", "resource": "deployments"}
    return {
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()), "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
            "name": meta.get("name"), "namespace": meta.get("namespace"), "operation": operation,
            "userInfo": {"username": "e2e", "groups": ["system:authenticated"]},
            "object": dict(obj), "oldObject": None, "dryRun": dry_run,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


def post_review(port: int, review: Mapping[str, Any], ca_pem: bytes, path: str = "/validate-deployment",
                timeout: float = 5.0) -> dict[str, Any]:
    """POST it over TLS, verifying the webhook's certificate against `ca_pem`; returns the response."""
    context = ssl.create_default_context(cadata=ca_pem.decode())
    request = urllib.request.Request(f"https://127.0.0.1:{port}{path}", data=json.dumps(review).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=timeout, context=context) as answer:
        response: dict[str, Any] = json.loads(answer.read())["response"]
    assert response["uid"] == review["request"]["uid"]
    return response
