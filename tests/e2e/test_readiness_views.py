"""What users look at, against a real operator on the living cluster (issue #15.2, #15.3).

- The chart's Grafana dashboard: every panel query is read from the dashboard JSON and run against
  the real Prometheus scraping the real operator's /metrics; each must return the right figures for
  a known set of Deployments (a panel without an expectation here fails the test).
- The readiness page: loaded in a real headless Chromium; the DOM shows the scores, an offender
  and its fix; a screenshot is written under $READINESS_ARTIFACTS (default: the test's tmp dir).
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml

from readiness_operator.checks import CATALOGUE
from tests.support.admission import deployment_review, post_review
from tests.support.browser import dump_dom, read_png, screenshot
from tests.support.cluster import REPO_ROOT, Cluster, eventually
from tests.support.operator import OperatorProcess, free_port
from tests.support.prometheus import Prometheus, scraping_prometheus

pytestmark = [pytest.mark.e2e, pytest.mark.prometheus]

POLICY, SLO, A, B = "views-e2e", "error-ratio", "views-a", "views-b"
DASHBOARD = REPO_ROOT / "charts" / "readiness-operator" / "dashboards" / "readiness-operator.json"
ERROR_RATIO = {(A, "web"): 0.001, (A, "api"): 0.005, (B, "worker"): 0.02}  # budget left: 0.9, 0.5, -1.0
PROBES = {"livenessProbe": {"tcpSocket": {"port": 80}}, "readinessProbe": {"tcpSocket": {"port": 80}}}


def deployment(namespace: str, name: str, probes: bool) -> dict[str, Any]:
    container = {"name": "app", "image": "registry.example/app:1.0.0", **(PROBES if probes else {})}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}}}}


def series(now: int) -> str:
    """Ten minutes of history up to now (none ahead: live scrapes before the newest sample are refused)."""
    lines = ["# TYPE views_error_ratio gauge"]
    for (ns, name), value in ERROR_RATIO.items():
        lines += [f'views_error_ratio{{namespace="{ns}",deployment="{name}"}} {value} {t}'
                  for t in range(now - 600, now + 1, 15)]
    return "\n".join(lines)


@dataclass
class Views:
    cluster: Cluster
    prometheus: Prometheus
    operator: OperatorProcess
    metrics: int
    page: int
    webhook: int

    def status(self) -> dict[str, Any]:
        return dict(self.cluster.get_json("rp", POLICY).get("status") or {})

    def scores(self) -> dict[str, int]:
        """Each noncompliant Deployment's score as the policy status reports it (web complies: 100)."""
        return {o["name"]: int(o["score"]) for o in self.status().get("worstOffenders", [])}


@pytest.fixture(scope="module")
def views(crds: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Views]:
    metrics, page, webhook = free_port(), free_port(), free_port()
    with scraping_prometheus(tmp_path_factory.mktemp("views-prometheus"), [f"127.0.0.1:{metrics}"],
                             series(int(time.time()))) as prometheus:
        yield from _views(crds, prometheus, tmp_path_factory, metrics, page, webhook)


def _views(crds: Cluster, prometheus: Prometheus, tmp_path_factory: pytest.TempPathFactory,
           metrics: int, page: int, webhook: int) -> Iterator[Views]:
    # The panels sum over every policy in the cluster: start from none (an earlier module's leftovers,
    # if any, would be counted; they are named in the log).
    left = crds.kubectl("get", "rp", "-o", "name", check=False).stdout.split()
    if left:  # their finalizers wait for an operator: the one started below removes them
        print(f"deleting ReadinessPolicies left by earlier tests: {left}")
        crds.kubectl("delete", "rp", "--all", "--wait=false", check=False)
    for ns in (A, B):
        crds.kubectl("create", "namespace", ns)
    for (ns, name) in ERROR_RATIO:
        crds.apply(yaml.safe_dump(deployment(ns, name, probes=name == "web")))
    op = OperatorProcess(
        crds.kubeconfig, tmp_path_factory.mktemp("views") / "operator.log", "--metrics-port", str(metrics),
        "--webhook-port", str(webhook),
        env={"READINESS_PROMETHEUS_URL": prometheus.url, "READINESS_PAGE_PORT": str(page),
             "READINESS_WEBHOOK_URL": f"https://127.0.0.1:{webhook}", "READINESS_WEBHOOK_ADDR": "127.0.0.1",
             "READINESS_WEBHOOK_CONFIGURATION": "readiness-views-e2e"},
    ).start()
    crds.apply(yaml.safe_dump({
        "apiVersion": "readiness.dev/v1alpha1", "kind": "ReadinessPolicy", "metadata": {"name": POLICY},
        "spec": {"mode": "Audit", "match": {"namespaces": [A, B]},
                 "rules": {"probes": {"liveness": True, "readiness": True}},
                 "slos": [{"name": SLO, "comparison": "<", "threshold": 0.01, "interval": "2s",
                           "query": 'max(last_over_time(views_error_ratio{namespace="{{namespace}}", '
                                    'deployment="{{name}}"}[1h]))'}]},
    }))
    views = Views(crds, prometheus, op, metrics, page, webhook)
    try:
        eventually(lambda: crds.kubectl("get", "rp", "-o", "name").stdout.split() == [f"readinesspolicy.readiness.dev/{POLICY}"],
                   timeout=90, what="only this module's policy left")
        eventually(lambda: (views.status().get("targets"), len(views.scores())) == (3, 2), timeout=60,
                   what="the policy judged the three Deployments")
        yield views
    finally:
        crds.kubectl("delete", "rp", POLICY, "--ignore-not-found", "--timeout=30s", check=False)
        op.stop()
        crds.kubectl("delete", "validatingwebhookconfiguration", "readiness-views-e2e", "--ignore-not-found", check=False)
        for ns in (A, B):
            crds.kubectl("delete", "namespace", ns, "--wait=false", check=False)
    assert "Traceback" not in op.logs(), op.logs()[-5000:]


# --- the Grafana dashboard against the real Prometheus ------------------------------------------------

Result = dict[tuple[str, ...], float]
Check = Callable[[Result], bool]


def panel_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query of every panel in the chart's dashboard."""
    board = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in board["panels"] for t in p.get("targets", [])]


def instant(prometheus: Prometheus, promql: str) -> Result:
    """An instant query's answer as {label values of the grouping labels: value}."""
    answer = prometheus.query(promql)
    assert answer["status"] == "success", answer
    out = {}
    for sample in answer["data"]["result"]:
        labels = {k: v for k, v in sample["metric"].items() if k not in ("job", "instance")}
        out[tuple(v for _, v in sorted(labels.items()))] = float(sample["value"][1])
    return out


def near(expected: Result) -> Check:
    return lambda got: got.keys() == expected.keys() and all(math.isclose(got[k], v, abs_tol=1e-6)
                                                             for k, v in expected.items())


def expectations(views: Views) -> dict[str, Check]:
    """What each panel must show for the known Deployments (scores as the policy status has them)."""
    scores = {"web": 100, **views.scores()}
    score_a, score_b = (scores["web"] + scores["api"]) // 2, scores["worker"]
    positive: Check = lambda got: bool(got) and all(v > 0 for v in got.values())  # noqa: E731
    return {
        "Cluster readiness score": near({(): (score_a * 2 + score_b) / 3}),
        "Compliant Deployments": near({(): 1 / 3}),
        "Readiness score by namespace and policy": near({(A, POLICY): score_a, (B, POLICY): score_b}),
        "Noncompliant Deployments by namespace": near({(A,): 1, (B,): 1}),
        "Top failing checks": near({("probe-liveness",): 2, ("probe-readiness",): 2, (f"slo:{SLO}",): 1}),
        "SLO error budget remaining (worst Deployment)": near({(POLICY, SLO): -1.0}),
        "SLO error budget remaining over time": near({(POLICY, SLO): -1.0}),
        "Deployments breaching SLOs": near({(POLICY, SLO): 1}),
        "Targets by verdict": near({("compliant",): 1, ("noncompliant",): 2}),
        "Noncompliant targets by policy": near({(POLICY,): 2}),
        "Evaluations / s": positive,
        "Admission requests / s by result": lambda got: bool(got) and sum(got.values()) > 0,
        "Admission latency": lambda got: len(got) == 1 and 0 < next(iter(got.values())) < 1,
        "Errors / s": near({(): 0.0}),
    }


def test_every_dashboard_query_returns_the_right_figures(views: Views) -> None:
    # Admission traffic for the webhook panels, straight to the operator's webhook port.
    config = views.cluster.get_json("validatingwebhookconfiguration", "readiness-views-e2e")
    ca_pem = base64.b64decode(config["webhooks"][0]["clientConfig"]["caBundle"])

    def review(i: int) -> None:
        post_review(views.webhook, deployment_review(deployment(A, f"new-{i}", probes=i % 2 == 0)), ca_pem)

    # A rate needs two scrapes that differ: one review, a scrape that sees the counter, then more.
    review(0)
    eventually(lambda: instant(views.prometheus, "readiness_admission_requests_total"), timeout=30, interval=0.5,
               what="a scrape of the operator's admission counter")
    for i in range(1, 6):
        review(i)
    # A change that flips no verdict re-judges one Deployment: evaluations counted while scraped.
    views.cluster.kubectl("-n", A, "annotate", "deployment", "web", f"touched={time.time()}", "--overwrite")
    expected = expectations(views)
    queries = panel_queries()
    assert {title for title, _ in queries} == set(expected), "a dashboard panel without an expectation here"
    variables = {"$policy": POLICY, "$namespace": "views-.*"}
    for title, expr in queries:
        promql = re.sub(r"\$\w+", lambda m: variables[m.group(0)], expr)
        last: list[Result] = []

        def answered(promql: str = promql, title: str = title, last: list[Result] = last) -> bool:
            last[:] = [instant(views.prometheus, promql)]
            return expected[title](last[0])

        try:
            eventually(answered, timeout=45, interval=1)
        except AssertionError:
            raise AssertionError(f"panel {title!r}: {promql} answered {last}") from None


# --- the readiness page in a real browser -------------------------------------------------------------


class Dom(HTMLParser):
    """Text by element id / class, and the offenders' failures, from the DOM Chromium built."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[dict[str, str]] = []
        self.by_id: dict[str, str] = {}
        self.offenders: dict[tuple[str, str], dict[str, str]] = {}  # (ns, name) -> check -> fix text
        self.namespace_scores: dict[str, str] = {}
        self.tags: list[str] = []
        self.svg_points: list[int] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append(tag)
        a["_tag"], a["_text"] = tag, ""
        if tag == "svg" and "data-points" in a:
            self.svg_points.append(int(a["data-points"]))
        if tag not in ("meta", "br", "img", "input", "line", "circle", "polyline"):
            self.stack.append(a)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack:
            return
        a = self.stack.pop()
        text = " ".join(a["_text"].split())
        if self.stack:
            self.stack[-1]["_text"] += a["_text"]
        if "id" in a:
            self.by_id[a["id"]] = text
        row = next((s for s in reversed(self.stack) if "data-namespace" in s and s["_tag"] == "tr"), None)
        if a.get("class") == "score" and row is not None:
            self.namespace_scores[row["data-namespace"]] = text
        if a.get("class") == "fix":
            failure = next((s for s in reversed(self.stack) if "data-check" in s), None)
            offender = next((s for s in reversed(self.stack) if s.get("class") == "offender"), None)
            if failure is not None and offender is not None:
                key = (offender["data-namespace"], offender["data-name"])
                self.offenders.setdefault(key, {})[failure["data-check"]] = text

    def handle_data(self, data: str) -> None:
        if self.stack:
            self.stack[-1]["_text"] += data


def artifacts(tmp_path: Path) -> Path:
    root = Path(os.environ.get("READINESS_ARTIFACTS") or tmp_path)
    return root / "readiness-page"


def fetch(url: str) -> tuple[int, dict[str, str], str]:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, dict(r.headers), r.read().decode()


def test_the_readiness_page_in_chromium(views: Views, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{views.page}/"
    # Wait for two SLO measurements (a burn chart is a line), over plain HTTP: cheaper than a browser.
    eventually(lambda: re.search(r'data-points="([2-9]|\d\d+)"', fetch(url)[2]), timeout=30,
               what="two SLO budget points on the page")
    status, headers, _ = fetch(url)
    assert status == 200 and "script-src" not in headers["Content-Security-Policy"]
    assert headers["Content-Security-Policy"].startswith("default-src 'none'")
    dom = Dom()
    dom.feed(dump_dom(url))
    scores = {"web": 100, **views.scores()}
    score_a, score_b = (scores["web"] + scores["api"]) // 2, scores["worker"]
    assert dom.by_id["cluster-score"] == str((scores["web"] + scores["api"] + scores["worker"]) // 3)
    assert (dom.by_id["cluster-compliant"], dom.by_id["cluster-targets"]) == ("1", "3")
    assert dom.namespace_scores == {A: str(score_a), B: str(score_b)}
    assert set(dom.offenders) == {(A, "api"), (B, "worker")}
    fix = CATALOGUE["probe-liveness"].remediation.replace("`", "")
    assert dom.offenders[(B, "worker")]["probe-liveness"] == f"Fix: {fix}"
    assert set(dom.offenders[(B, "worker")]) == {"probe-liveness", "probe-readiness", f"slo:{SLO}"}
    assert "script" not in dom.tags and "polyline" in dom.tags and max(dom.svg_points) >= 2
    shot = screenshot(url, artifacts(tmp_path) / "readiness-page.png")
    png = read_png(shot)
    print(f"screenshot: {shot} ({shot.stat().st_size} bytes)")
    assert (png.width, png.height) == (1280, 900)
    assert shot.stat().st_size > 20_000 and png.distinct_bytes > 64, "a blank or near-blank screenshot"
    # Read-only: nothing but GET is routed.
    request = urllib.request.Request(url, data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 405


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return str(r.read().decode())


def test_series_of_a_namespace_and_a_check_nobody_has_any_more_go(views: Views) -> None:
    """Runs last: it removes views-b's only Deployment (the only one breaching the SLO)."""
    views.cluster.kubectl("-n", B, "delete", "deployment", "worker", "--wait=false")

    def gone() -> bool:
        text = scrape(views.metrics)
        return (f'namespace="{B}"' not in text and f'check="slo:{SLO}"' not in text
                and f'readiness_namespace_targets{{namespace="{A}",policy="{POLICY}"}} 2.0' in text)

    eventually(gone, timeout=30, what="views-b's and slo:error-ratio's series removed")
    text = scrape(views.metrics)
    assert f'readiness_slo_budget_remaining{{policy="{POLICY}",slo="{SLO}"}} 0.5' in text  # api is the worst now
    assert f'readiness_check_failing_deployments{{check="probe-liveness",policy="{POLICY}"}} 1.0' in text
