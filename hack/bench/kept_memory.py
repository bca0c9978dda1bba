#!/usr/bin/env python3
"""Memory of the objects the operator's reader keeps, with equal subtrees shared vs not, side by side.

    .venv/bin/python hack/bench/kept_memory.py [--deployments 10000] [--namespaces 50] [--json]

In process, no API server: operator_scale.py's Deployments, PDBs and HPAs, plus the pods kwok runs for
them (as kwok reports a Running pod: owner reference, pod-template-hash label, one Running status per
container). Each object is parsed from its own JSON text, as it arrives from a LIST page, then trimmed
as the reader trims it, two ways:

- shared: the operator since session 6 (`kube.objects.SharedTrees`, one per reader): equal subtrees
  are kept once across objects;
- trimmed only: each object keeps its own copy (before).

Figures: what the kept objects hold (tracemalloc: current after all are kept, and peak while keeping,
the table of seen subtrees included) and the CPU seconds to trim (and share) them all, untraced, best
of `--repeat`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tracemalloc
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "operator"))
sys.path.insert(0, str(ROOT / "hack" / "bench"))

from operator_scale import machine, make_objects  # noqa: E402

from readiness_operator.kube.objects import SharedTrees, trim_deployment, trim_hpa, trim_pdb, trim_pod  # noqa: E402

TRIM: Mapping[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "Deployment": trim_deployment, "PodDisruptionBudget": trim_pdb, "HorizontalPodAutoscaler": trim_hpa,
    "Pod": trim_pod,
}


def pods_of(deployment: Mapping[str, Any], index: int) -> list[dict[str, Any]]:
    """The Running pods of a Deployment, shaped as kwok reports them."""
    meta, template = deployment["metadata"], deployment["spec"]["template"]
    name, namespace = meta["name"], meta["namespace"]
    digest = f"{(index * 2654435761) % 16**9:09x}"
    containers = template["spec"]["containers"]
    return [{
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": f"{name}-{digest}-{replica:05x}", "namespace": namespace,
            "uid": f"{index:08x}-0000-4000-8000-{replica:012x}", "resourceVersion": str(index * 10 + replica),
            "creationTimestamp": "2026-12-01T10:00:00Z",
            "labels": {**template["metadata"]["labels"], "pod-template-hash": digest},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": f"{name}-{digest}",
                                 "uid": f"{index:08x}-0000-4000-8000-aaaaaaaaaaaa", "controller": True,
                                 "blockOwnerDeletion": True}],
        },
        "spec": {"nodeName": f"kwok-node-{index % 100}", "containers": [{"name": c["name"], "image": c["image"]}
                                                                       for c in containers]},
        "status": {
            "phase": "Running", "podIP": f"10.64.{index % 250}.{replica + 2}",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-01T10:00:05Z"}],
            "containerStatuses": [{"name": c["name"], "ready": True, "started": True, "restartCount": 0,
                                   "image": c["image"], "imageID": "",
                                   "state": {"running": {"startedAt": "2026-12-01T10:00:05Z"}}} for c in containers],
        },
    } for replica in range(int(deployment["spec"]["replicas"]))]


def wire(deployments: int, namespaces: int, with_pods: bool = True) -> list[tuple[str, str]]:
    """(kind, JSON text) of every object the reader keeps, in LIST order (kind, namespace, name)."""
    objects = [o for items in make_objects(deployments, namespaces).values() for o in items if o["kind"] in TRIM]
    pods = [p for i, d in enumerate(o for o in objects if o["kind"] == "Deployment") for p in pods_of(d, i)
            ] if with_pods else []
    ordered = sorted([*objects, *pods], key=lambda o: (list(TRIM).index(o["kind"]), o["metadata"]["namespace"],
                                                        o["metadata"]["name"]))
    return [(o["kind"], json.dumps(o)) for o in ordered]


def keep(texts: list[tuple[str, str]], shared: SharedTrees | None) -> list[dict[str, Any]]:
    kept = []
    for kind, text in texts:
        trimmed = TRIM[kind](json.loads(text))
        kept.append(shared.share(trimmed) if shared is not None else trimmed)
    return kept


def memory(texts: list[tuple[str, str]], share: bool) -> tuple[float, float, int]:
    """(MB held by the kept objects, peak MB while keeping them, objects)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    kept = keep(texts, SharedTrees() if share else None)
    now, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return (now - base) / 1e6, (peak - base) / 1e6, len(kept)


def cpu(texts: list[tuple[str, str]], share: bool, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        keep(texts, SharedTrees() if share else None)
        best = min(best, time.process_time() - t)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", type=int, default=10_000)
    parser.add_argument("--namespaces", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pods", action=argparse.BooleanOptionalAction, default=True,
                        help="the pods kwok runs for the Deployments (--no-pods: Deployments, PDBs, HPAs only)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    texts = wire(args.deployments, args.namespaces, args.pods)
    counts: dict[str, int] = {}
    for kind, _ in texts:
        counts[kind] = counts.get(kind, 0) + 1
    results: dict[str, Any] = {"deployments": args.deployments, "objects": counts, "machine": machine(),
                               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    for way, share in (("shared", True), ("trimmed_only", False)):
        held, peak, n = memory(texts, share)
        assert n == len(texts)
        results[way] = {"kept_mb": round(held, 1), "peak_mb": round(peak, 1),
                        "cpu_seconds": round(cpu(texts, share, args.repeat), 2)}
    s, t = results["shared"], results["trimmed_only"]
    results["kept_ratio"] = round(t["kept_mb"] / s["kept_mb"], 2)
    results["peak_ratio"] = round(t["peak_mb"] / s["peak_mb"], 2)
    results["cpu_ratio"] = round(s["cpu_seconds"] / t["cpu_seconds"], 2)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"{len(texts):,} kept objects ({counts}):")
        for way in ("shared", "trimmed_only"):
            r = results[way]
            print(f"  {way.replace('_', ' ')}: {r['kept_mb']} MB kept (peak {r['peak_mb']} MB), "
                  f"{r['cpu_seconds']} s CPU to trim")
        print(f"  sharing keeps {results['kept_ratio']}x less (peak {results['peak_ratio']}x less) "
              f"for {results['cpu_ratio']}x the trimming CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
