#!/usr/bin/env python3
"""Profile one policy pass in process (no API server): the CPU side of operator_scale.py.

    .venv/bin/python hack/bench/pass_profile.py [--deployments 10000] [--profile] [--top 30]

Builds the same objects as operator_scale.py, trims them like the kopf indexes do, and runs
`run_pass` for the three example policies (first pass, then an idle pass, then a pass after
100 changed Deployments) against a writer that only serialises what it would send.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "operator"))
sys.path.insert(0, str(ROOT / "hack" / "bench"))

from operator_scale import make_objects, policies, with_probe  # noqa: E402

from readiness_operator.kube.objects import trim_deployment, trim_hpa, trim_pdb  # noqa: E402
from readiness_operator.kube.reconcile import PassInput, run_pass  # noqa: E402
from readiness_operator.kube.reports import EncodedReport  # noqa: E402
from readiness_operator.kube.state import PolicyRuntime  # noqa: E402


class View:
    def __init__(self, objects: dict[str, list[dict[str, Any]]]) -> None:
        self.d: dict[str, list[dict[str, Any]]] = {}
        self.p: dict[str, list[dict[str, Any]]] = {}
        self.h: dict[str, list[dict[str, Any]]] = {}
        self.n: dict[str, dict[str, str]] = {}
        for ns, items in objects.items():
            for o in items:
                kind = o["kind"]
                if kind == "Namespace":
                    self.n[ns] = dict(o["metadata"].get("labels") or {})
                elif kind == "Deployment":
                    self.d.setdefault(ns, []).append(trim_deployment(o))
                elif kind == "PodDisruptionBudget":
                    self.p.setdefault(ns, []).append(trim_pdb(o))
                else:
                    self.h.setdefault(ns, []).append(trim_hpa(o))

        self.by_name = {(ns, str(d["metadata"]["name"])): d for ns, items in self.d.items() for d in items}

    def namespaces(self) -> Iterable[str]:
        return list(self.d)

    def deployment(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self.by_name.get((namespace, name))  # as the operator's IndexView: one lookup

    def deployments(self, namespace: str) -> Iterable[Mapping[str, Any]]:
        return self.d.get(namespace, ())

    def pdbs(self, namespace: str) -> Iterable[Mapping[str, Any]]:
        return self.p.get(namespace, ())

    def hpas(self, namespace: str) -> Iterable[Mapping[str, Any]]:
        return self.h.get(namespace, ())

    def network_policies(self, namespace: str) -> Iterable[Mapping[str, Any]]:
        return []

    def namespace_labels(self, namespace: str) -> Mapping[str, str]:
        return self.n.get(namespace, {})


class Writer:
    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.bytes = 0

    def _count(self, what: str, body: Any = None) -> None:
        self.calls[what] = self.calls.get(what, 0) + 1
        if body is not None:
            self.bytes += len(json.dumps(body))

    async def patch_policy_status(self, name: str, status: Mapping[str, Any]) -> None:
        self._count("status", status)

    async def policy_reports_available(self) -> bool:
        return True

    async def list_policy_reports(self, policy: str) -> list[dict[str, Any]]:
        return []

    async def put_policy_report(self, report: Mapping[str, Any]) -> None:
        self._count("report")
        self.bytes += len(EncodedReport.of(report).body)  # what KubeApi sends

    async def delete_policy_report(self, namespace: str, name: str) -> None:
        self._count("delete")

    async def post_event(self, involved: Mapping[str, Any], *, reason: str, message: str, warning: bool = False,
                         labels: Mapping[str, str] | None = None) -> None:
        self._count("event")


def rss(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) // 1024
    return 0


async def scenario(n: int) -> None:
    objects = make_objects(n, 50)
    view = View(objects)
    del objects
    print(f"objects indexed: RSS {rss('VmRSS')} MB", flush=True)
    pols = policies()
    runtimes = {p["metadata"]["name"]: PolicyRuntime(p["metadata"]["name"], "uid-" + p["metadata"]["name"]) for p in pols}
    writer = Writer()

    async def all_passes(label: str) -> None:
        t = time.perf_counter()
        for p in pols:
            name = p["metadata"]["name"]
            await run_pass(runtimes[name], PassInput(name, "uid-" + name, 1, p["spec"], {}), view, writer)
        print(f"{label}: {time.perf_counter() - t:.2f} s, writer {writer.calls}, {writer.bytes / 1e6:.1f} MB, "
              f"RSS {rss('VmRSS')} MB (peak {rss('VmHWM')} MB)", flush=True)
        writer.calls.clear()
        writer.bytes = 0

    await all_passes("first pass (3 policies)")
    for r in runtimes.values():
        r.mark(everything=True)
    await all_passes("full re-judge, nothing changed")
    changed = 0
    for ns, items in view.d.items():
        for i, d in enumerate(items):
            if changed < 100 and i % 20 == 0 and "readinessProbe" not in d["spec"]["template"]["spec"]["containers"][0]:
                items[i] = trim_deployment(with_probe(d))
                for r in runtimes.values():
                    r.mark(key=(ns, d["metadata"]["name"]))
                changed += 1
    await all_passes(f"{changed} Deployments changed")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", type=int, default=10_000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=35)
    args = parser.parse_args()
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        asyncio.run(scenario(args.deployments))
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(args.top)
        pstats.Stats(prof).sort_stats("tottime").print_stats(args.top)
    else:
        asyncio.run(scenario(args.deployments))
    return 0


if __name__ == "__main__":
    sys.exit(main())
