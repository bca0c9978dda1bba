#!/usr/bin/env python3
"""CPU per PolicyReport write, main's path before issue 16 vs the one encoding, on the real API server.

    hack/bench/report_write.py [--results 2000] [--reports 20] [--json]

Uses $KUBECONFIG when set, else starts a private control plane (hack/cluster.sh) and stops it after.
The reports are those of one namespace of `--results` results: operator_scale.py's Deployments judged by
the `baseline` example policy (10,000 Deployments in 50 namespaces give ~1,400-4,800 results per
namespace and policy, in reports of ~1,000 results and ~0.5 MB each). Each path writes `--reports`
reports (into namespaces of their own), created then rewritten with other results, alternating
between the paths, and the bench process's CPU time (all threads) is taken around each step:

- old: main at 63e3d32: results sized by one `json.dumps` each, the stable digest of the report
  twice and its full digest once (sorted `json.dumps` + SHA-256 each), the write through the
  `kubernetes` client's CustomObjectsApi with the report as a dict (sanitize_for_serialization,
  json.dumps, the 0.5 MB echo parsed);
- new: `encode_reports` (one encoding per Deployment sizes the results and is the body), the stable
  digest once, SHA-256 of the body, `KubeApi.put_policy_report` sending the body as-is, echo unread.

The API server's own CPU is not counted (it is the same for both: the same bytes arrive).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Iterable, Mapping
from pathlib import Path
from typing import Any

import kubernetes
import yaml
from kubernetes.client.exceptions import ApiException

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "operator"))
sys.path.insert(0, str(ROOT / "hack" / "bench"))
sys.path.insert(0, str(ROOT))

from operator_scale import machine, make_objects  # noqa: E402
from pass_profile import View  # noqa: E402
from tests.support.cluster import Cluster, kubeconfig_or_local_cluster  # noqa: E402
from tests.unit.test_reconcile import Writer  # noqa: E402

from readiness_operator.kube.api import KubeApi  # noqa: E402
from readiness_operator.kube.reconcile import PassInput, run_pass  # noqa: E402
from readiness_operator.kube.reports import (  # noqa: E402
    LIVE_PROPERTIES,
    MAX_REPORT_BYTES,
    MAX_RESULTS_PER_REPORT,
    REPORT_GROUP,
    REPORT_PLURAL,
    REPORT_VERSION,
    encode_reports,
    report_name,
    results_for,
)
from readiness_operator.kube.state import Judged, PolicyRuntime  # noqa: E402
from readiness_operator.model import API_VERSION, KIND  # noqa: E402
from readiness_operator.names import MANAGED_BY_LABELS, POLICY_LABEL  # noqa: E402

PREFIX = f"report-write-{os.getpid()}"
POLICY_FILE = ROOT / "examples" / "policies" / "baseline.yaml"


# ---------------------------------------------------------------- main's path (63e3d32), for comparison


def old_encoded_size(obj: Mapping[str, Any]) -> int:
    return len(json.dumps(obj, default=str).encode())


def old_build_reports(policy: str, policy_uid: str, namespace: str, judged: Iterable[Judged]) -> list[dict[str, Any]]:
    """main's build_reports: each result sized by its own json.dumps, reports as dicts."""
    budget = MAX_REPORT_BYTES - 4096
    chunks: list[list[dict[str, Any]]] = [[]]
    used = 0
    for item in sorted(judged, key=lambda j: j.verdict.name):
        results = results_for(policy, item)
        sizes = [old_encoded_size(r) + 2 for r in results]
        if chunks[-1] and (used + sum(sizes) > budget or len(chunks[-1]) + len(results) > MAX_RESULTS_PER_REPORT):
            chunks.append([])
            used = 0
        for result, size in zip(results, sizes, strict=True):
            if chunks[-1] and (used + size > budget or len(chunks[-1]) >= MAX_RESULTS_PER_REPORT):
                chunks.append([])
                used = 0
            chunks[-1].append(result)
            used += size
    reports = []
    labels: dict[str, str] = {**MANAGED_BY_LABELS, POLICY_LABEL: policy}
    for index, results in enumerate(chunks):
        summary = {"pass": 0, "fail": 0, "warn": 0, "error": 0, "skip": 0}
        for r in results:
            summary[r["result"]] += 1
        reports.append({
            "apiVersion": f"{REPORT_GROUP}/{REPORT_VERSION}", "kind": "PolicyReport",
            "metadata": {"name": report_name(policy, index), "namespace": namespace,
                         "labels": dict(labels),
                         "ownerReferences": [{"apiVersion": API_VERSION, "kind": KIND, "name": policy, "uid": policy_uid,
                                              "blockOwnerDeletion": False, "controller": True}]},
            "summary": summary, "results": results,
        })
    return reports


def old_digest(report: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(report, sort_keys=True, default=str).encode()).hexdigest()


def old_stable_digest(report: Mapping[str, Any]) -> str:
    def stable(result: Mapping[str, Any]) -> dict[str, Any]:
        props = {k: v for k, v in (result.get("properties") or {}).items() if k not in LIVE_PROPERTIES}
        out = {k: v for k, v in result.items() if k not in ("timestamp", "properties")}
        if result.get("category") == "slo":
            out.pop("message", None)
        return {**out, "properties": props}

    return old_digest({**report, "results": [stable(r) for r in report.get("results") or ()]})


class OldApi:
    """main's KubeApi.put_policy_report: CustomObjectsApi with the report as a dict."""

    def __init__(self, client: kubernetes.client.ApiClient) -> None:
        self.api = kubernetes.client.CustomObjectsApi(client)
        self.known: set[tuple[str, str]] = set()

    async def put_policy_report(self, report: Mapping[str, Any]) -> None:
        ns, name = str(report["metadata"]["namespace"]), str(report["metadata"]["name"])

        def patch() -> None:
            self.api.patch_namespaced_custom_object(REPORT_GROUP, REPORT_VERSION, ns, REPORT_PLURAL, name, dict(report),
                                                    _content_type="application/merge-patch+json")

        def create() -> None:
            self.api.create_namespaced_custom_object(REPORT_GROUP, REPORT_VERSION, ns, REPORT_PLURAL, dict(report))

        def write() -> None:
            first, fallback, missing = (patch, create, 404) if (ns, name) in self.known else (create, patch, 409)
            try:
                first()
            except ApiException as exc:
                if exc.status != missing:
                    raise
                fallback()
            self.known.add((ns, name))

        await asyncio.to_thread(write)


# ---------------------------------------------------------------- the bench


def judged_deployments(results: int) -> tuple[dict[str, Any], list[Judged]]:
    """The baseline policy and Deployments it judges, in name order, until they give `results` results."""
    policy = yaml.safe_load(POLICY_FILE.read_text())
    policy["spec"]["match"] = {"namespaces": ["scale-00"]}
    count = 2 * results // 5 + 10  # the baseline policy gives ~7 results per Deployment
    while True:
        runtime = PolicyRuntime(policy["metadata"]["name"], "uid")
        asyncio.run(run_pass(runtime, PassInput(runtime.name, "uid", 1, policy["spec"], {}),
                             View(make_objects(count, 1)), Writer(reports=False)))
        ordered = sorted(runtime.judged.values(), key=lambda j: j.verdict.name)
        total, taken = 0, list[Judged]()
        for item in ordered:
            if total >= results:
                return policy, taken
            taken.append(item)
            total += len(item.verdict.findings)
        count *= 2


def cpu() -> float:
    return time.process_time()


class Steps:
    """One way of writing a namespace's reports, timed step by step."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.build_cpu = self.write_cpu = 0.0
        self.writes = 0
        self.bytes = 0
        self.write_wall: list[float] = []

    async def timed_write(self, write: Awaitable[None]) -> None:
        wall, start = time.perf_counter(), cpu()
        await write
        self.write_cpu += cpu() - start
        self.write_wall.append(time.perf_counter() - wall)
        self.writes += 1


async def write_old(path: Steps, api: OldApi, policy: str, uid: str, ns: str, judged: list[Judged]) -> None:
    start = cpu()
    reports = old_build_reports(policy, uid, ns, judged)
    path.build_cpu += cpu() - start
    for report in reports:
        start = cpu()
        old_stable_digest(report)  # compared with what was written
        old_stable_digest(report)  # again in _put_report
        path.build_cpu += cpu() - start
        await path.timed_write(api.put_policy_report(report))
        start = cpu()
        old_digest(report)  # recorded after the write
        path.build_cpu += cpu() - start
        path.bytes += len(json.dumps(report))


async def write_new(path: Steps, api: KubeApi, policy: str, uid: str, ns: str, judged: list[Judged]) -> None:
    start = cpu()
    reports = encode_reports(policy, uid, ns, judged)
    path.build_cpu += cpu() - start
    for report in reports:
        start = cpu()
        _ = report.stable_digest
        path.build_cpu += cpu() - start
        await path.timed_write(api.put_policy_report(report))
        start = cpu()
        _ = report.digest
        path.build_cpu += cpu() - start
        path.bytes += len(report.body)


def run(results: int, reports: int) -> dict[str, Any]:
    policy, judged = judged_deployments(results)
    per_ns = len(encode_reports("p", "uid", "n", judged))
    namespaces = max(1, math.ceil(reports / per_ns))
    rewritten = judged[1:]  # one Deployment fewer: every report's results change, the API server really writes
    name = f"{PREFIX}-owner"
    with kubeconfig_or_local_cluster("report-write-") as cluster:
        cluster.kubectl("apply", "-f", str(ROOT / "crds"))
        cluster.kubectl("wait", "--for=condition=established", "--timeout=60s", "crd", "policyreports.wgpolicyk8s.io",
                        "readinesspolicies.readiness.dev")
        owned = {**policy, "metadata": {"name": name},
                 "spec": {**policy["spec"], "match": {"namespaces": [f"{PREFIX}-none"]}}}
        cluster.apply(json.dumps(owned))  # a real owner, or the garbage collector deletes the reports
        uid = cluster.get_json("rp", name)["metadata"]["uid"]
        spaces = {p: [f"{PREFIX}-{p}-{i}" for i in range(namespaces)] for p in ("old", "new")}
        for ns in spaces["old"] + spaces["new"]:
            cluster.kubectl("create", "namespace", ns)
        client = new_client(cluster)
        old_api, new_api = OldApi(client), KubeApi(client)
        paths = {p: {"create": Steps(p), "rewrite": Steps(p)} for p in ("old", "new")}

        async def write_all() -> None:
            for phase, items in (("create", judged), ("rewrite", rewritten)):
                for i in range(namespaces):  # alternating, so load changes hit both alike
                    await write_old(paths["old"][phase], old_api, name, uid, spaces["old"][i], items)
                    await write_new(paths["new"][phase], new_api, name, uid, spaces["new"][i], items)

        try:
            asyncio.run(write_all())
            check_equal(cluster, spaces, name)
            server = server_version(cluster)
        finally:
            client.close()
            cluster.kubectl("delete", "rp", name, "--ignore-not-found", "--wait=false")
            for ns in spaces["old"] + spaces["new"]:
                cluster.kubectl("delete", "namespace", ns, "--wait=false")
    out: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
        "load": os.getloadavg(), "server": server,
        "results_per_namespace": sum(len(j.verdict.findings) for j in judged),
        "reports_per_namespace": per_ns, "namespaces_per_path": namespaces,
    }
    for phase in ("create", "rewrite"):
        for p in ("old", "new"):
            step = paths[p][phase]
            out[f"{phase}_{p}"] = {
                "reports": step.writes, "mb_per_report": round(step.bytes / step.writes / 1e6, 3),
                "build_and_digest_cpu_ms_per_report": round(1000 * step.build_cpu / step.writes, 2),
                "write_cpu_ms_per_report": round(1000 * step.write_cpu / step.writes, 2),
                "total_cpu_ms_per_report": round(1000 * (step.build_cpu + step.write_cpu) / step.writes, 2),
                "write_wall_ms_median": round(1000 * sorted(step.write_wall)[len(step.write_wall) // 2], 1),
            }
        old, new = out[f"{phase}_old"], out[f"{phase}_new"]
        out[f"{phase}_ratio_total_cpu"] = round(old["total_cpu_ms_per_report"] / new["total_cpu_ms_per_report"], 2)
        out[f"{phase}_ratio_write_cpu"] = round(old["write_cpu_ms_per_report"] / new["write_cpu_ms_per_report"], 2)
        out[f"{phase}_ratio_build_cpu"] = round(
            old["build_and_digest_cpu_ms_per_report"] / new["build_and_digest_cpu_ms_per_report"], 2)
    return out


def new_client(cluster: Cluster) -> kubernetes.client.ApiClient:
    return kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))


def check_equal(cluster: Cluster, spaces: Mapping[str, list[str]], policy: str) -> None:
    """Both paths left the same reports (but for their namespace): the comparison is like for like."""
    def read(ns: str) -> list[Any]:
        items = cluster.get_json("-n", ns, "policyreports", "-l", f"{POLICY_LABEL}={policy}")["items"]
        return [(r["metadata"]["name"], r["summary"], r["results"]) for r in items]

    for old_ns, new_ns in zip(spaces["old"], spaces["new"], strict=True):
        if read(old_ns) != read(new_ns):
            raise SystemExit(f"the paths wrote different reports: {old_ns} vs {new_ns}")


def server_version(cluster: Cluster) -> str:
    try:
        return str(json.loads(cluster.kubectl("version", "-o", "json").stdout)["serverVersion"]["gitVersion"])
    except (subprocess.SubprocessError, KeyError, ValueError, RuntimeError):
        return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=int, default=2000, help="results per namespace (default 2000)")
    parser.add_argument("--reports", type=int, default=20, help="reports written per path and phase (default 20)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    out = run(args.results, args.reports)
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"{out['date']}, {out['machine']}, load {' '.join(f'{x:.2f}' for x in out['load'])}, {out['server']}")
    print(f"{out['results_per_namespace']} results per namespace in {out['reports_per_namespace']} reports, "
          f"{out['namespaces_per_path']} namespaces per path")
    print(f"{'phase':8} {'path':4} {'reports':>7} {'MB/report':>9} {'build+digest':>12} {'write':>8} {'total':>8} "
          f"{'wall p50':>8}  (CPU ms per report)")
    for phase in ("create", "rewrite"):
        for p in ("old", "new"):
            s = out[f"{phase}_{p}"]
            print(f"{phase:8} {p:4} {s['reports']:7d} {s['mb_per_report']:9.3f} "
                  f"{s['build_and_digest_cpu_ms_per_report']:12.2f} {s['write_cpu_ms_per_report']:8.2f} "
                  f"{s['total_cpu_ms_per_report']:8.2f} {s['write_wall_ms_median']:8.1f}")
        print(f"{phase}: old/new CPU per report {out[f'{phase}_ratio_total_cpu']}x in all "
              f"(build+digest {out[f'{phase}_ratio_build_cpu']}x, write {out[f'{phase}_ratio_write_cpu']}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
