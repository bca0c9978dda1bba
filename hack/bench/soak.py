#!/usr/bin/env python3
"""Soak under faults (issue #13): keep changing Deployments and policies for a bounded time while the
API server restarts, the leader replica is SIGKILLed, Prometheus flaps and answers garbage; then
check that every policy status and PolicyReport equals what the offline `audit` computes from the
same objects, that no verdict Event is duplicated, and that no admission request failed while a
replica was up.

    hack/bench/soak.py [--minutes 20] [--fault-every 40] [--json]

Runs on a private control plane (hack/cluster.sh, so its API server can be restarted), a real
Prometheus (hack/prometheus.sh) behind a small proxy that can refuse connections or answer garbage,
and two operator replicas (`readiness-operator run --leader-election-lease`) behind a TCP balancer
that the webhook configuration points at (failurePolicy Fail, so a failed review fails the change).
Exits 1 when anything mismatched, was duplicated or failed.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.server
import itertools
import json
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "operator"))
sys.path.insert(0, str(ROOT))

from tests.support.admission import deployment_review, post_review  # noqa: E402
from tests.support.cluster import REPO_ROOT, Cluster, KubectlError, local_cluster  # noqa: E402
from tests.support.faults import audit, start_apiserver, stop_apiserver  # noqa: E402
from tests.support.operator import OperatorProcess, free_port  # noqa: E402
from tests.support.prometheus import local_prometheus  # noqa: E402

OPERATOR_NS, LEASE, CONFIG, SECRET = "readiness-system", "soak-leader", "soak-webhook", "soak-webhook-tls"
NAMESPACES = ("soak-a", "soak-b")
NAMES = [f"app-{i}" for i in range(10)]
NONCOMPLIANT, COMPLIANT = "ReadinessNoncompliant", "ReadinessCompliant"
SLO_QUERY = ('sum(rate(http_requests_total{namespace="{{namespace}}", deployment="{{name}}", code!~"5.."}[5m])) / '
             'sum(rate(http_requests_total{namespace="{{namespace}}", deployment="{{name}}"}[5m]))')


def policies(variant: int) -> list[dict[str, Any]]:
    """The soak's three policies; `variant` flips a rule in two of them (a policy change)."""
    def rp(name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {"apiVersion": "readiness.dev/v1alpha1", "kind": "ReadinessPolicy", "metadata": {"name": name},
                "spec": spec}

    return [
        rp("soak-audit", {"mode": "Audit", "match": {"namespaces": list(NAMESPACES)}, "rules": {
            "probes": {"liveness": False, "readiness": True}, "replicas": {"min": 1 + variant % 2},
            "images": {"forbidLatest": True}, "resources": {"requests": {"cpu": {}}}}}),
        rp("soak-warn", {"mode": "Warn", "match": {"namespaces": ["soak-a"]}, "rules": {
            "probes": {"liveness": variant % 2 == 1, "readiness": True}},
            "slos": [{"name": "availability", "query": SLO_QUERY, "comparison": ">=", "threshold": 0.99,
                      "window": "1h", "interval": "10s", "onBreach": "Warn"}]}),
        rp("soak-enforce", {"mode": "Enforce", "match": {"namespaces": ["soak-b"]}, "rules": {
            "probes": {"liveness": False, "readiness": True}}}),
    ]


def deployment(ns: str, name: str, rng: random.Random) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": rng.choice(["app:1.0", "app:latest", "app:2.1"])}
    if rng.random() < 0.6:
        container["readinessProbe"] = {"tcpSocket": {"port": 8080}}
    if rng.random() < 0.5:
        container["resources"] = {"requests": {"cpu": "100m"}}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": rng.choice([0, 1, 2]), "paused": True, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}}}}


# --- the fake/flaky Prometheus in front of the real one -------------------------------------------------

GARBAGE = [
    (200, "text/html", b"<html><body>502 Bad Gateway</body></html>"),
    (200, "application/json", b'{"status":"success","data":{"resultType":"vector","result":[{"metric":'),
    (200, "application/json", b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{"namespace":'
                              b'"soak-a","deployment":"app-1"},"value":[1,"not-a-number"]}]}}'),
    (200, "application/json", b'{"status":"success","data":{"resultType":"matrix","result":"oops"}}'),
    (200, "application/json", b'[1, 2, 3]'),
    (500, "text/plain", b"internal error"),
    (200, "application/octet-stream", bytes(range(256)) * 64),
]


class PrometheusProxy:
    """Forwards to the real Prometheus; `down()` refuses connections, `garbage()` answers junk."""

    def __init__(self, upstream: str) -> None:
        self.upstream, self.port, self.mode = upstream, free_port(), "forward"
        self.served: Counter[str] = Counter()
        self._server: http.server.ThreadingHTTPServer | None = None
        self.up()

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                proxy.served[proxy.mode] += 1
                if proxy.mode == "garbage":
                    status, kind, payload = random.choice(GARBAGE)
                else:
                    import urllib.request
                    request = urllib.request.Request(proxy.upstream + self.path, data=body or None,
                                                     headers={"Content-Type": self.headers.get("Content-Type") or
                                                              "application/x-www-form-urlencoded"},
                                                     method=self.command)
                    try:
                        with urllib.request.urlopen(request, timeout=10) as answer:
                            status, kind, payload = answer.status, answer.headers.get("Content-Type"), answer.read()
                    except Exception:
                        status, kind, payload = 502, "text/plain", b"upstream failed"
                self.send_response(status)
                self.send_header("Content-Type", kind or "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer

        return Handler

    def up(self, mode: str = "forward") -> None:
        self.mode = mode
        if self._server is None:
            http.server.ThreadingHTTPServer.allow_reuse_address = True
            self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
            threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


# --- a TCP balancer over the replicas' webhook ports ----------------------------------------------------

class Balancer:
    """The one URL the webhook configuration has: each connection goes to the next replica that accepts."""

    def __init__(self, backends: Callable[[], list[int]]) -> None:
        self.backends, self.port = backends, free_port()
        self.no_backend = 0
        self._next = 0
        self._listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            client, _ = self._listener.accept()
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        upstream = None
        backends = self.backends()  # the Ready replicas (a Service's endpoints)
        for i in range(len(backends)):
            port = backends[(self._next + i) % len(backends)]
            try:
                upstream = socket.create_connection(("127.0.0.1", port), timeout=2)
                self._next = (self._next + i + 1) % max(1, len(backends))
                break
            except OSError:
                continue
        if upstream is None:
            self.no_backend += 1
            client.close()
            return
        upstream.settimeout(None)

        def pipe(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                with contextlib.suppress(OSError):
                    dst.shutdown(socket.SHUT_WR)

        t = threading.Thread(target=pipe, args=(upstream, client), daemon=True)
        t.start()
        pipe(client, upstream)
        t.join(30)
        client.close()
        upstream.close()


def _reason(stderr: str) -> str:
    """kubectl's error without the echoed patch (the part after the last `": `)."""
    text = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    return text[-400:]


def _connection_lost(exc: BaseException) -> bool:
    text = repr(exc)
    return any(s in text for s in ("EOF", "reset", "Connection aborted", "RemoteDisconnected", "BrokenPipe"))


def tracebacks(log: str) -> Counter[str]:
    """Each Traceback's last line (the exception), counted."""
    out: Counter[str] = Counter()
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Traceback"):
            j = i + 1
            while j < len(lines) and (lines[j].startswith(" ") or lines[j].startswith("Traceback")
                                      or lines[j].startswith("During handling") or not lines[j].strip()):
                j += 1
            out[(lines[j] if j < len(lines) else "?")[:200]] += 1
    return out


def ready(metrics_port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/readyz", timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


# --- the soak ------------------------------------------------------------------------------------------

@dataclass
class Soak:
    cluster: Cluster
    state: Path
    tmp: Path
    prometheus: PrometheusProxy
    rng: random.Random
    replicas: dict[str, OperatorProcess] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)  # webhook port per replica name
    metrics: dict[str, int] = field(default_factory=dict)
    ready_ports: list[int] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)  # admission failures while a replica was up
    excused: list[str] = field(default_factory=list)  # failures while the API server or every replica was down
    apiserver_down: bool = False
    none_up_since: float | None = None
    none_up_windows: list[tuple[float, float]] = field(default_factory=list)
    halt: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    balancer: Balancer | None = None
    ca_pem: bytes = b""
    variant: int = 0

    # replicas
    def start_replica(self, name: str) -> None:
        port = self.ports.setdefault(name, free_port())
        assert self.balancer is not None
        env = {"READINESS_POD_NAME": name, "READINESS_NAMESPACE": OPERATOR_NS, "READINESS_WEBHOOK_ADDR": "127.0.0.1",
               "READINESS_WEBHOOK_URL": f"https://127.0.0.1:{self.balancer.port}",
               "READINESS_WEBHOOK_CONFIGURATION": CONFIG, "READINESS_WEBHOOK_CERT_SECRET": SECRET,
               "READINESS_WEBHOOK_FAILURE_POLICY": "Fail", "READINESS_WEBHOOK_TIMEOUT_SECONDS": "5",
               "READINESS_PROMETHEUS_URL": self.prometheus.url}
        metrics = self.metrics.setdefault(name, free_port())
        op = OperatorProcess(self.cluster.kubeconfig, self.tmp / f"{name}.log", "--webhook-port", str(port),
                             "--metrics-port", str(metrics), "--leader-election-lease", LEASE, env=env)
        self.replicas[name] = op.start(wait=False)

    def holder(self) -> str:
        result = self.cluster.kubectl("-n", OPERATOR_NS, "get", "lease", LEASE, "-o", "json", check=False, timeout=10)
        return str(json.loads(result.stdout)["spec"].get("holderIdentity") or "") if result.returncode == 0 else ""

    def leader(self) -> str | None:
        holder = self.holder()
        return next((n for n in self.replicas if holder.startswith(n + "_")), None)

    # monitors
    def watch_replicas(self) -> None:
        """Track the Ready replicas (the balancer's backends) and when none is (failures then are excused).

        Like a kubelet's readiness probe (periodSeconds 1, timeoutSeconds 1, failureThreshold 3): a
        replica leaves the endpoints after three failed probes in a row, or at once when its process
        died (the kubelet reports a dead container at once)."""
        failed: Counter[str] = Counter()
        while not self.halt.is_set():
            for name in list(self.ports):
                op = self.replicas.get(name)
                alive = op is not None and op.process is not None and op.process.poll() is None
                if not alive:
                    failed[name] = 3
                elif name in self.metrics and ready(self.metrics[name]):
                    failed[name] = 0
                else:
                    failed[name] += 1
            self.ready_ports = [self.ports[n] for n in self.ports if failed[n] < 3]
            up = bool(self.ready_ports)
            now = time.monotonic()
            with self.lock:
                if not up and self.none_up_since is None:
                    self.none_up_since = now
                elif up and self.none_up_since is not None:
                    self.none_up_windows.append((self.none_up_since, now))
                    self.none_up_since = None
            time.sleep(1.0)

    def excusable(self, at: float) -> bool:
        with self.lock:
            if self.apiserver_down or self.none_up_since is not None:
                return True
            return any(a - 1 <= at <= b + 1 for a, b in self.none_up_windows)

    def admission_loop(self) -> None:
        """AdmissionReviews straight to the balancer (the API server's path to the webhook)."""
        assert self.balancer is not None
        while not self.halt.is_set():
            obj = deployment("soak-b", f"direct-{self.counts['admission requests']}", self.rng)
            obj["spec"]["template"]["spec"]["containers"][0].pop("readinessProbe", None)
            self.counts["admission requests"] += 1
            for attempt in (1, 2):
                try:
                    answer = post_review(self.balancer.port, deployment_review(obj), self.ca_pem, timeout=6)
                    if answer["allowed"] or "probe-readiness" not in answer["status"]["message"]:
                        self.failures.append(f"wrong answer: {str(answer)[:300]}")
                    break
                except Exception as exc:
                    # The API server retries a webhook call once the connection was reset or hit EOF
                    # (k8s.io/apiserver webhook.DefaultShouldRetry): a request in flight to a replica
                    # that was just SIGKILLed is resent, so this loop does the same, and counts it.
                    if attempt == 1 and _connection_lost(exc):
                        self.counts["admission requests resent after a lost connection"] += 1
                        continue
                    at = time.monotonic()
                    (self.excused if self.excusable(at) else self.failures).append(f"{time.strftime('%X')} {exc!r}")
            time.sleep(0.05)

    # changes
    def change(self) -> None:
        ns, name = self.rng.choice(NAMESPACES), self.rng.choice(NAMES)
        action = self.rng.choices(["apply", "delete", "annotate", "scale", "policy"], [6, 1, 2, 2, 1])[0]
        if action == "policy":
            self.variant += 1
            args, data = ["apply", "-f", "-"], json.dumps({"apiVersion": "v1", "kind": "List",
                                                           "items": policies(self.variant)})
        elif action == "apply":
            args, data = ["apply", "-f", "-"], json.dumps(deployment(ns, name, self.rng))
        elif action == "delete":
            args, data = ["-n", ns, "delete", "deployment", name, "--ignore-not-found", "--wait=false"], None
        elif action == "annotate":
            args, data = ["-n", ns, "annotate", "--overwrite", "deployment", name,
                          f"soak/touch={self.rng.randrange(10**6)}"], None
        else:
            args, data = ["-n", ns, "scale", "deployment", name, f"--replicas={self.rng.choice([0, 1, 2, 3])}"], None
        started = time.monotonic()
        self.counts["changes"] += 1
        try:
            result = self.cluster.kubectl(*args, input=data, check=False, timeout=60)
        except subprocess.TimeoutExpired:
            self.counts["changes timed out (60 s)"] += 1
            if not (self.excusable(started) or self.excusable(time.monotonic())):
                self.failures.append(f"{time.strftime('%X')} kubectl {' '.join(args[:4])}: no answer in 60 s")
            return
        if result.returncode == 0:
            self.counts["changes ok"] += 1
        elif "NotFound" in result.stderr or "not found" in result.stderr:
            self.counts["changes on a missing object"] += 1
        elif "denies" in result.stderr or "denied request" in result.stderr:
            self.counts["changes denied (Enforce)"] += 1
        elif "failed calling webhook" in result.stderr or "webhook" in result.stderr.lower():
            self.counts["changes failed by the webhook"] += 1
            at = time.monotonic()
            (self.excused if self.excusable(started) or self.excusable(at) else self.failures).append(
                f"{time.strftime('%X')} (sent {time.strftime('%X', time.localtime(time.time() - (time.monotonic() - started)))}) "
                f"kubectl {' '.join(args[:4])}: {_reason(result.stderr)}")
        else:
            self.counts["changes failed (API server down or other)"] += 1
            if not self.apiserver_down and not self.excusable(started):
                self.counts["changes failed with the API server up"] += 1

    def change_loop(self) -> None:
        while not self.halt.is_set():
            self.change()
            time.sleep(self.rng.uniform(0.2, 0.8))

    # faults
    def fault(self, kind: str) -> None:
        self.faults[kind] += 1
        print(f"{time.strftime('%X')} fault: {kind}", flush=True)
        if kind == "restart the API server":
            with self.lock:
                self.apiserver_down = True
            stop_apiserver(self.state)
            time.sleep(self.rng.uniform(3, 10))
            start_apiserver(self.state)
            time.sleep(2)
            with self.lock:
                self.apiserver_down = False
        elif kind == "SIGKILL the leader":
            leader = self.leader()
            if leader is None:
                self.faults[kind] -= 1
                self.faults["SIGKILL skipped (no leader yet)"] += 1
                return
            self.replicas[leader].stop(signal.SIGKILL)
            time.sleep(self.rng.uniform(5, 20))
            self.start_replica(leader)
        elif kind == "Prometheus down":
            self.prometheus.down()
            time.sleep(self.rng.uniform(10, 30))
            self.prometheus.up()
        elif kind == "Prometheus garbage":
            self.prometheus.up("garbage")
            time.sleep(self.rng.uniform(10, 30))
            self.prometheus.up()

    # the end: compare with audit
    def compare(self) -> dict[str, Any]:
        """Mismatches between each policy's status/reports and `audit` over the same objects."""
        mismatches: dict[str, Any] = {}
        objects = self.tmp / "objects.yaml"
        objects.write_text(self.cluster.kubectl("get", "deployments", "-A", "-o", "yaml", timeout=120).stdout)
        for doc in policies(self.variant):
            name = doc["metadata"]["name"]
            live = self.cluster.get_json("rp", name)
            policy_file = self.tmp / f"{name}.yaml"
            policy_file.write_text(yaml.safe_dump({k: live[k] for k in ("apiVersion", "kind", "metadata", "spec")}))
            expected = {(r["namespace"], r["name"]): (r["compliant"], r["score"]) for r in audit(policy_file, objects)}
            reported: dict[tuple[str, str], tuple[bool, int]] = {}
            for report in self.cluster.get_json("policyreports", "-A", f"-l=readiness.dev/policy={name}")["items"]:
                for r in report["results"]:
                    ref = r["resources"][0]
                    reported[(ref["namespace"], ref["name"])] = (r["properties"]["compliant"] == "true",
                                                                 int(r["properties"]["score"]))
            status = live.get("status") or {}
            counts = (status.get("targets"), status.get("compliant"), status.get("noncompliant"))
            want = (len(expected), sum(c for c, _ in expected.values()), sum(not c for c, _ in expected.values()))
            problems = {}
            if reported != expected:
                problems["reports"] = {f"{k[0]}/{k[1]}": {"report": reported.get(k), "audit": expected.get(k)}
                                       for k in set(reported) | set(expected) if reported.get(k) != expected.get(k)}
            if counts != want:
                problems["status"] = {"status": counts, "audit": want}
            if status.get("observedGeneration") != live["metadata"].get("generation"):
                problems["observedGeneration"] = [status.get("observedGeneration"), live["metadata"].get("generation")]
            if problems:
                mismatches[name] = problems
        return mismatches

    def duplicated_events(self) -> list[str]:
        """Two verdict Events in a row with the same reason for one Deployment object and policy."""
        seq: dict[tuple[str, str], list[tuple[str, str, str]]] = defaultdict(list)
        for ns in NAMESPACES:
            for e in self.cluster.get_json("-n", ns, "events")["items"]:
                if e["reason"] not in (NONCOMPLIANT, COMPLIANT):
                    continue
                policy = re.search(r"ReadinessPolicy '([^']+)'", e.get("message") or "")
                key = (str(e["involvedObject"].get("uid")), policy.group(1) if policy else "?")
                when = str(e.get("firstTimestamp") or e.get("eventTime") or e["metadata"]["creationTimestamp"])
                seq[key].append((when, e["reason"], f"{ns}/{e['involvedObject']['name']} {key[1]}"))
        dupes = []
        for items in seq.values():
            items.sort()
            dupes += [f"{b[2]}: {b[1]} twice ({a[0]}, {b[0]})" for a, b in itertools.pairwise(items) if a[1] == b[1]]
        return dupes


def wait_settled(soak: Soak, timeout: float) -> dict[str, Any]:
    """Compare until everything matches or `timeout` passes (the last passes after the faults)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            mismatches = soak.compare()
        except (KubectlError, RuntimeError, KeyError) as exc:
            mismatches = {"error": repr(exc)[:300]}
        if not mismatches or time.monotonic() > deadline:
            return mismatches
        time.sleep(5)


def run(minutes: float, fault_every: float, seed: int, keep: Path | None = None) -> dict[str, Any]:
    rng = random.Random(seed)
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="soak-")))
        cluster = stack.enter_context(local_cluster(tmp / "cluster"))
        prom = stack.enter_context(local_prometheus(tmp / "prometheus"))
        cluster.kubectl("apply", "-f", str(REPO_ROOT / "crds"))
        cluster.kubectl("wait", "--for=condition=established", "--timeout=60s", "crd",
                        "readinesspolicies.readiness.dev", "policyreports.wgpolicyk8s.io")
        for ns in (OPERATOR_NS, *NAMESPACES):
            cluster.kubectl("create", "namespace", ns)
        soak = Soak(cluster, tmp / "cluster", tmp, PrometheusProxy(prom.url), rng)
        ports = [soak.ports.setdefault(n, free_port()) for n in ("replica-a", "replica-b")]
        soak.balancer = Balancer(lambda: soak.ready_ports)
        watcher = threading.Thread(target=soak.watch_replicas, daemon=True)
        watcher.start()
        soak.start_replica("replica-a")
        soak.start_replica("replica-b")
        stack.callback(lambda: [op.stop() for op in soak.replicas.values()])
        deadline = time.monotonic() + 120
        while not (soak.leader() and len(soak.ready_ports) == len(ports)):
            if time.monotonic() > deadline:
                raise RuntimeError("the replicas did not come up")
            time.sleep(1)
        secret = cluster.get_json("-n", OPERATOR_NS, "secret", SECRET)
        soak.ca_pem = base64.b64decode(secret["data"]["ca.crt"])
        cluster.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": policies(0)}))
        while cluster.kubectl("get", "validatingwebhookconfiguration", CONFIG, check=False).returncode != 0:
            time.sleep(1)
        started = time.monotonic()
        threads = [watcher, *(threading.Thread(target=t, daemon=True)
                              for t in (soak.admission_loop, soak.change_loop, soak.change_loop))]
        probe = deployment("soak-b", "probe", rng)
        probe["spec"]["template"]["spec"]["containers"][0].pop("readinessProbe", None)
        while True:  # both replicas know the Enforce policy
            try:
                if all(not post_review(p, deployment_review(probe), soak.ca_pem)["allowed"] for p in ports):
                    break
            except OSError:
                pass
            time.sleep(1)
        for t in threads[1:]:
            t.start()
        kinds = ["SIGKILL the leader", "Prometheus garbage", "restart the API server", "Prometheus down"]
        i = 0
        while time.monotonic() - started < minutes * 60 - fault_every:
            time.sleep(fault_every * rng.uniform(0.5, 1.0))
            soak.fault(kinds[i % len(kinds)])
            i += 1
        while time.monotonic() - started < minutes * 60:
            time.sleep(1)
        soak.halt.set()
        for t in threads:
            t.join(40)
        for name, op in soak.replicas.items():
            if op.process is None or op.process.poll() is not None:
                soak.start_replica(name)
        soak.prometheus.up()
        elapsed = time.monotonic() - started
        mismatches = wait_settled(soak, 240)
        dupes = soak.duplicated_events()
        errors: Counter[str] = Counter()
        for log_file in tmp.glob("replica-*.log"):
            errors.update(tracebacks(log_file.read_text(errors="replace")))
            if keep is not None:
                keep.mkdir(parents=True, exist_ok=True)
                (keep / log_file.name).write_bytes(log_file.read_bytes())
        assert soak.balancer is not None
        return {
            "minutes": round(elapsed / 60, 1), "seed": seed,
            "counts": {**dict(soak.counts), "admission failures": len(soak.failures),
                       "admission failures excused (API server or every replica down)": len(soak.excused),
                       "balancer connections without a replica": soak.balancer.no_backend,
                       "Prometheus answers": dict(soak.prometheus.served),
                       "mismatched policies": len(mismatches), "duplicated Events": len(dupes),
                       "operator log tracebacks": sum(errors.values())},
            "tracebacks": dict(errors.most_common(10)),
            "faults": dict(soak.faults), "mismatches": mismatches, "duplicates": dupes[:20],
            "failures": soak.failures[:20], "excused": soak.excused[:10],
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--fault-every", type=float, default=40.0, help="seconds between faults (randomised)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--keep-logs", type=Path, help="copy the replicas' logs here")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.minutes, args.fault_every, args.seed, args.keep_logs)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(f"soak: {result['minutes']} min, seed {result['seed']}")
        for key, value in {**result["counts"], **{f"fault: {k}": v for k, v in result["faults"].items()}}.items():
            print(f"  {key}: {value}")
        for key in ("mismatches", "duplicates", "failures", "tracebacks"):
            if result[key]:
                print(f"{key}: {json.dumps(result[key], indent=1, default=str)[:3000]}")
    bad = result["mismatches"] or result["duplicates"] or result["failures"] or \
        result["counts"].get("changes failed with the API server up")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
