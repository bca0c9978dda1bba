#!/usr/bin/env python3
"""What an idle replica pays per watch event: parsing alone (the floor), the reader now, and the
reader sharing before comparing (session 6), side by side.

    .venv/bin/python hack/bench/watch_events.py [--deployments 2000] [--namespaces 10] [--repeat 5] [--json]

In process, no API server. The objects are kept_memory.py's: operator_scale.py's Deployments, PDBs and
HPAs and the pods kwok runs for them, kept by `watched.cluster_reader` as after its first LIST. Then
every object arrives once more as a watch event line, two ways:

- heartbeat: what a status write that changes nothing we keep looks like (a new resourceVersion and a
  new managedFields time: an HPA sync, a kubelet status report, a controller's observedGeneration
  write);
- change: a change to what we keep (a pod's restartCount, a Deployment's image, a PDB's minAvailable,
  an HPA's maxReplicas).

Each is applied as `ClusterReader._watch` applies it (json.loads of the line, then `_event`), by the
reader now (trim, compare with what is kept, share only what changed) and by the reader as it was
(trim, share, compare). The floor is json.loads of the same lines: nothing can handle an event
without reading it. CPU seconds (process time), best of `--repeat`, each round on fresh readers.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "operator"))
sys.path.insert(0, str(ROOT / "hack" / "bench"))

from kept_memory import wire  # noqa: E402
from operator_scale import machine  # noqa: E402

from readiness_operator.kube.objects import SharedTrees  # noqa: E402
from readiness_operator.kube.reader import ClusterReader, Kind  # noqa: E402
from readiness_operator.kube.state import Registry  # noqa: E402
from readiness_operator.kube.watched import cluster_reader  # noqa: E402

KINDS = {"Deployment": "deployments", "Pod": "pods", "PodDisruptionBudget": "poddisruptionbudgets",
         "HorizontalPodAutoscaler": "horizontalpodautoscalers"}


def managed(obj: Mapping[str, Any], manager: str, stamp: str) -> list[dict[str, Any]]:
    """managedFields as the API server writes them: who owns the spec, who last wrote the status."""
    return [{"manager": "kubectl", "operation": "Apply", "apiVersion": obj["apiVersion"],
             "time": "2026-12-01T10:00:00Z", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:metadata": {"f:labels": {".": {}}}, "f:spec": {".": {}}}},
            {"manager": manager, "operation": "Update", "apiVersion": obj["apiVersion"], "time": stamp,
             "fieldsType": "FieldsV1", "subresource": "status", "fieldsV1": {"f:status": {".": {}}}}]


def heartbeat(obj: dict[str, Any], version: int) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    out["metadata"]["resourceVersion"] = str(version)
    out["metadata"]["managedFields"] = managed(obj, "kwok" if obj["kind"] == "Pod" else "kube-controller-manager",
                                               f"2026-12-01T11:{version % 60:02d}:00Z")
    return out


def changed(obj: dict[str, Any], version: int) -> dict[str, Any]:
    out = heartbeat(obj, version)
    kind = out["kind"]
    if kind == "Pod":
        for status in out["status"]["containerStatuses"]:
            status["restartCount"] += 1
    elif kind == "Deployment":
        container = out["spec"]["template"]["spec"]["containers"][0]
        container["image"] = container["image"] + "-next"
    elif kind == "PodDisruptionBudget":
        out["spec"].pop("maxUnavailable", None)
        out["spec"]["minAvailable"] = 7
    else:
        out["spec"]["maxReplicas"] += 1
    return out


def share_first(reader: ClusterReader) -> ClusterReader:
    """The same reader as it was in session 6: each object shared as it is trimmed, then compared."""
    shared = SharedTrees()
    kinds = []
    for kind in reader.kinds.values():
        extract: Callable[[Mapping[str, Any]], dict[Any, Any]] = kind.extract
        if kind.share is not None:
            def extract(obj: Mapping[str, Any], trim: Callable[..., Any] = kind.extract) -> dict[Any, Any]:
                return {key: shared.share(kept) for key, kept in trim(obj).items()}
        kinds.append(Kind(kind.name, kind.group_version, extract, kind.on_change))
    return ClusterReader(kinds)


def fresh(before: bool, texts: list[tuple[str, str]]) -> ClusterReader:
    reader = cluster_reader(Registry())
    if before:
        reader = share_first(reader)
    for kind, text in texts:  # as the first LIST keeps them
        reader._apply(reader.kinds[KINDS[kind]], json.loads(text), deleted=False)
    for name in reader.kinds:
        reader._listed(name, None)
    return reader


def apply_lines(reader: ClusterReader, lines: list[tuple[str, bytes]]) -> float:
    start = time.process_time()
    for kind, line in lines:
        reader._event(reader.kinds[kind], json.loads(line), "1")
    return time.process_time() - start


def parse_only(lines: list[tuple[str, bytes]]) -> float:
    start = time.process_time()
    for _, line in lines:
        json.loads(line)
    return time.process_time() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--deployments", type=int, default=2000)
    ap.add_argument("--namespaces", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    texts = wire(args.deployments, args.namespaces)
    objects = [json.loads(text) for _, text in texts]
    events = {
        "heartbeat": [(KINDS[o["kind"]], json.dumps({"type": "MODIFIED", "object": heartbeat(o, 10**6 + i)}).encode())
                      for i, o in enumerate(objects)],
        "change": [(KINDS[o["kind"]], json.dumps({"type": "MODIFIED", "object": changed(o, 2 * 10**6 + i)}).encode())
                   for i, o in enumerate(objects)],
    }
    out: dict[str, Any] = {"machine": machine(), "objects": len(objects),
                           "by_kind": {k: sum(1 for o in objects if o["kind"] == k) for k in KINDS}, "events": {}}
    for scenario, lines in events.items():
        best = {"floor": float("inf"), "now": float("inf"), "before": float("inf")}
        for _ in range(args.repeat):
            best["floor"] = min(best["floor"], parse_only(lines))
            for which in ("now", "before"):
                reader = fresh(which == "before", texts)
                best[which] = min(best[which], apply_lines(reader, lines))
                kinds = reader.kinds.values()
                changes = sum(k.changes for k in kinds) if which == "now" else None
                if changes is not None:
                    want = 0 if scenario == "heartbeat" else len(lines)
                    if changes != want:  # the figures would be of the wrong work
                        raise SystemExit(f"{scenario}: {changes} changes seen, {want} expected")
        n = len(lines)
        out["events"][scenario] = {
            "lines": n, "mean_line_bytes": round(sum(len(line) for _, line in lines) / n),
            **{f"{k}_seconds": round(v, 3) for k, v in best.items()},
            **{f"{k}_us_per_event": round(1e6 * v / n, 1) for k, v in best.items()},
            "now_vs_floor": round(best["now"] / best["floor"], 2),
            "before_vs_floor": round(best["before"] / best["floor"], 2),
            "before_vs_now": round(best["before"] / best["now"], 2),
        }
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"{out['objects']:,} objects ({out['by_kind']}), {out['machine']}")
    print(f"{'events':<10} {'bytes':>6} {'floor us':>9} {'now us':>8} {'before us':>10} {'now/floor':>10} "
          f"{'before/now':>11}")
    for scenario, r in out["events"].items():
        print(f"{scenario:<10} {r['mean_line_bytes']:>6} {r['floor_us_per_event']:>9} {r['now_us_per_event']:>8} "
              f"{r['before_us_per_event']:>10} {r['now_vs_floor']:>9}x {r['before_vs_now']:>10}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
