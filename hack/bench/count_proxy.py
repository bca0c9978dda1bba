"""A counting reverse proxy between one client and the kube-apiserver, on loopback (benchmark only).

The client talks plain HTTP to 127.0.0.1:PORT with no credentials; the proxy forwards every request
over TLS with the admin client certificate and counts it by verb and resource. `GET /__counts`
(answered by the proxy itself) returns the counts as JSON. Watches and other streamed responses
are passed through chunk by chunk, so the client sees the API server's behaviour unchanged.

    python hack/bench/count_proxy.py --kubeconfig admin.kubeconfig --port 0 --port-file P

Used by operator_scale.py to count exactly the operator's API requests (apiserver_request_total has
no client label, and the controller-manager shares the admin identity in the local control plane).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import re
import signal
import ssl
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "host", "content-length"}
_RESOURCE = re.compile(r"^/(?:api/v1|apis/([^/]+)/[^/]+)/([^/?]+)(?:/([^/?]+))?(?:/([^/?]+))?")
_NAMESPACED = re.compile(r"^(/(?:api/v1|apis/[^/]+/[^/]+))/namespaces/[^/]+/(?=[^/])")


def classify(method: str, path: str, query: dict[str, str]) -> str:
    """'LIST apps/deployments', 'WATCH policy/poddisruptionbudgets', 'PATCH readiness.dev/readinesspolicies/status'."""
    m = _RESOURCE.match(_NAMESPACED.sub(r"\1/", path))
    if not m:
        return f"{method} {path}"
    group, resource, name, sub = m.groups()
    verb = method
    if method == "GET":
        verb = "WATCH" if query.get("watch") in ("true", "1") else ("GET" if name else "LIST")
    return f"{verb} {group + '/' if group else ''}{resource}{'/' + sub if sub else ''}"


class Proxy:
    def __init__(self, upstream: str, ssl_context: ssl.SSLContext) -> None:
        self.upstream = upstream.rstrip("/")
        self.ssl = ssl_context
        self.counts: Counter[str] = Counter()
        # Per kind of request (not watches): seconds from sending it to the API server's answer
        # (its headers), and request body bytes, to tell the API server's time from the client's.
        self.seconds: Counter[str] = Counter()
        self.request_bytes: Counter[str] = Counter()
        self.bytes_in = 0  # request bodies sent by the client
        self.bytes_out = 0  # response bodies received by the client
        self.session: aiohttp.ClientSession | None = None

    async def start(self, _: web.Application) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self.ssl, limit=0), auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        )

    async def stop(self, _: web.Application) -> None:
        if self.session is not None:
            await self.session.close()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/__counts":
            return web.json_response({"requests": dict(self.counts), "total": sum(self.counts.values()),
                                      "bytes_in": self.bytes_in, "bytes_out": self.bytes_out,
                                      "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
                                      "request_bytes": dict(self.request_bytes)})
        body = await request.read()
        self.bytes_in += len(body)
        kind = classify(request.method, request.path, dict(request.query))
        self.counts[kind] += 1
        self.request_bytes[kind] += len(body)
        sent = time.monotonic()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        assert self.session is not None
        async with self.session.request(request.method, self.upstream + request.path_qs, headers=headers,
                                        data=body or None, allow_redirects=False,
                                        skip_auto_headers=("Content-Type",)) as upstream:  # content type as sent, or none
            if not kind.startswith("WATCH"):
                self.seconds[kind] += time.monotonic() - sent
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for k, v in upstream.headers.items():
                if k.lower() not in HOP_BY_HOP:
                    response.headers[k] = v
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    self.bytes_out += len(chunk)
                    await response.write(chunk)
            except (ConnectionResetError, aiohttp.ClientError):
                pass
            await response.write_eof()
            return response


def _tls_from_kubeconfig(path: Path, tmp: Path) -> tuple[str, ssl.SSLContext]:
    config = yaml.safe_load(path.read_text())
    context = next(c for c in config["contexts"] if c["name"] == config["current-context"])["context"]
    cluster = next(c for c in config["clusters"] if c["name"] == context["cluster"])["cluster"]
    user = next(u for u in config["users"] if u["name"] == context["user"])["user"]

    def materialise(data_key: str, file_key: str, source: dict[str, Any], name: str) -> str:
        if data_key in source:
            out = tmp / name
            out.write_bytes(base64.b64decode(source[data_key]))
            return str(out)
        return str(source[file_key])

    ctx = ssl.create_default_context(cafile=materialise("certificate-authority-data", "certificate-authority", cluster, "ca.crt"))
    ctx.load_cert_chain(materialise("client-certificate-data", "client-certificate", user, "client.crt"),
                        materialise("client-key-data", "client-key", user, "client.key"))
    return str(cluster["server"]), ctx


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="count-proxy-") as tmp:
        server, context = _tls_from_kubeconfig(Path(args.kubeconfig), Path(tmp))
        proxy = Proxy(server, context)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.on_startup.append(proxy.start)
        app.on_cleanup.append(proxy.stop)
        app.router.add_route("*", "/{tail:.*}", proxy.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", args.port)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        Path(args.port_file).write_text(str(port))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", required=True)
    asyncio.run(main(parser.parse_args()))
