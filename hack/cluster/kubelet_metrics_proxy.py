#!/usr/bin/env python3
"""The kubelet resource-metrics endpoint of kwok's fake Nodes, one HTTPS port per Node.

metrics-server scrapes `https://<node InternalIP>:<node kubelet port>/metrics/resource`; kwok serves
every Node's emulated metrics from one server under `/metrics/nodes/<node>/metrics/resource`. This
proxy gives each Node its own loopback port (written into the Node's
`status.daemonEndpoints.kubeletEndpoint.port` by hack/cluster.sh) and maps the kubelet path to
kwok's path for that Node. Standard library only: hack/cluster.sh runs it with the system python3.

    kubelet_metrics_proxy.py --kwok http://127.0.0.1:PORT --cert C --key K NODE=PORT [NODE=PORT ...]
"""

from __future__ import annotations

import argparse
import ssl
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def handler_for(node: str, kwok_url: str) -> type[BaseHTTPRequestHandler]:
    upstream = f"{kwok_url.rstrip('/')}/metrics/nodes/{node}/metrics/resource"

    class KubeletMetrics(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] == "/healthz":
                self._reply(200, b"ok", "text/plain")
                return
            if self.path.split("?", 1)[0] != "/metrics/resource":
                self._reply(404, b"only /metrics/resource and /healthz are served\n", "text/plain")
                return
            try:
                with urllib.request.urlopen(upstream, timeout=10) as response:
                    body = response.read()
                    content_type = response.headers.get("Content-Type", "text/plain; version=0.0.4")
            except (urllib.error.URLError, OSError) as exc:
                self._reply(502, f"kwok did not answer {upstream}: {exc}\n".encode(), "text/plain")
                return
            self._reply(200, body, content_type)

        def _reply(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # quiet: one scrape per node per 10 s
            pass

    return KubeletMetrics


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--kwok", required=True, help="kwok's server URL (its --server-address)")
    parser.add_argument("--cert", required=True, help="serving certificate (PEM)")
    parser.add_argument("--key", required=True, help="serving key (PEM)")
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("nodes", nargs="+", metavar="NODE=PORT")
    args = parser.parse_args()

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    servers = []
    for item in args.nodes:
        node, _, port = item.partition("=")
        server = ThreadingHTTPServer((args.address, int(port)), handler_for(node, args.kwok))
        server.daemon_threads = True
        server.socket = context.wrap_socket(server.socket, server_side=True)
        servers.append(server)
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"serving /metrics/resource for {len(servers)} nodes", file=sys.stderr, flush=True)
    servers[0].serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
