"""A tiny HTTPS admission webhook for proving the API server really calls webhooks."""

from __future__ import annotations

import base64
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from readiness_operator.admission.certs import generate

Decide = Callable[[dict[str, Any]], tuple[bool, str]]


class RecordingWebhook:
    def __init__(self, port: int, ca_pem: bytes) -> None:
        self.port = port
        self.ca_bundle = base64.b64encode(ca_pem).decode()
        self.requests: list[dict[str, Any]] = []


@contextmanager
def serve_webhook(directory: Path, decide: Decide) -> Iterator[RecordingWebhook]:
    """Serve AdmissionReview on https://127.0.0.1:<port>/validate, answering with `decide`."""
    bundle = generate(["127.0.0.1", "localhost"])
    certfile, keyfile = directory / "tls.crt", directory / "tls.key"
    certfile.write_bytes(bundle.cert_pem)
    keyfile.write_bytes(bundle.key_pem)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    hook = RecordingWebhook(port, bundle.ca_pem)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            hook.requests.append(review)
            allowed, message = decide(review["request"])
            body = json.dumps({
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "response": {"uid": review["request"]["uid"], "allowed": allowed,
                             "status": {"code": 200 if allowed else 403, "message": message}},
            }).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()
