#!/usr/bin/env python3
"""Memory of what the operator keeps per Deployment, shared vs not: findings and trimmed objects.

The operator keeps every Deployment's verdict under every policy (``kube/state.py`` ``Judged``), so at
10,000 Deployments and four policies it holds ~40,000 verdicts and ~640,000 findings. The engine shares
one Finding per (check, status, text) of a policy (``engine._static_finding``); this script measures
what that saves, side by side in one run on the same generated Deployments (hack/bench/engine.py's
generator), each in a fresh process: the verdicts as the engine returns them, and the same judgement
with sharing switched off (``SHARED_FINDINGS_PER_CHECK = 0``: each finding its own object, texts
interned, as before; and trimmed Deployments keeping each parsed object's own keys and strings, as
before ``fields._shared``). It checks both give the same findings and trimmed objects, and reports the CPU time of judging
(both under tracemalloc: compare the two, not with other benches), so memory is not paid in time.

    .venv/bin/python hack/bench/verdict_memory.py [--deployments 10000] [--seed 7] [--json]
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import platform
import random
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "hack" / "bench"))

import yaml  # noqa: E402
from engine import deployment, hpa, pdb  # type: ignore[import-not-found]  # noqa: E402

from readiness_operator import engine as judging  # noqa: E402
from readiness_operator.checks import fields  # noqa: E402
from readiness_operator.engine import DeploymentVerdict, compile_policy, evaluate  # noqa: E402
from readiness_operator.kube.objects import trim_deployment  # noqa: E402
from readiness_operator.model import ReadinessPolicy  # noqa: E402
from readiness_operator.world import World  # noqa: E402

POLICIES = ("production", "hardened", "baseline", "pod-security-restricted")


def _objects(n: int, seed: int) -> tuple[list[dict[str, Any]], dict[str, list[Any]], dict[str, list[Any]]]:
    rng = random.Random(seed)
    namespaces = max(5, n // 200)
    deployments: list[dict[str, Any]] = []
    pdbs: dict[str, list[Any]] = {}
    hpas: dict[str, list[Any]] = {}
    for i in range(n):
        ns = f"team-{i % namespaces:03d}"
        name = f"svc-{i:05d}"
        deployments.append(deployment(rng, ns, name))
        if rng.random() < 0.55:
            pdbs.setdefault(ns, []).append(pdb(rng, ns, name))
        if rng.random() < 0.45:
            hpas.setdefault(ns, []).append(hpa(rng, ns, name))
    return deployments, pdbs, hpas


def _judge(plans: list[Any], deployments: list[dict[str, Any]], worlds: dict[str, World]) -> list[DeploymentVerdict]:
    return [evaluate(plan, d, worlds[d["metadata"]["namespace"]]) for plan in plans for d in deployments]


def _measure(n: int, seed: int, share: bool) -> dict[str, Any]:
    """Judge n Deployments under POLICIES in this process: the bytes the verdicts keep, CPU time."""
    if not share:
        judging.SHARED_FINDINGS_PER_CHECK = 0  # what the engine did before: one Finding per finding
        fields._shared = lambda value: value  # and trimming kept each object's own strings
    deployments, pdbs, hpas = _objects(n, seed)
    texts = [json.dumps(d) for d in deployments]  # as the watch delivers them: each parsed on its own
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    start = time.process_time()
    trimmed = [trim_deployment(json.loads(t)) for t in texts]
    trim_cpu = time.process_time() - start
    gc.collect()
    trimmed_bytes = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    if trimmed != [trim_deployment(d) for d in deployments]:
        raise SystemExit("trimming a parsed copy gave another object")
    del trimmed, texts
    worlds = {ns: World(pdbs=pdbs.get(ns, ()), hpas=hpas.get(ns, ()))
              for ns in {d["metadata"]["namespace"] for d in deployments}}
    specs = [ReadinessPolicy.model_validate(yaml.safe_load((ROOT / "examples/policies" / f"{p}.yaml").read_text())).spec
             for p in POLICIES]
    _judge([compile_policy(s) for s in specs], deployments[:50], worlds)  # imports and caches; dropped
    plans = [compile_policy(s) for s in specs]
    gc.collect()
    gc.disable()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    start = time.process_time()
    verdicts = _judge(plans, deployments, worlds)
    cpu = time.process_time() - start
    gc.collect()
    kept = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    digest = hashlib.sha256()
    for v in verdicts:
        for f in v.findings:
            digest.update(f"{v.namespace}/{v.name}\0{f.check}\0{f.status}\0{f.message}\n".encode())
    return {
        "verdicts": len(verdicts),
        "findings": sum(len(v.findings) for v in verdicts),
        "finding_objects": len({id(f) for v in verdicts for f in v.findings}),
        "kept_mb": round(kept / 1e6, 1),
        "trimmed_mb": round(trimmed_bytes / 1e6, 1),
        "parse_and_trim_cpu_s": round(trim_cpu, 2),
        "judge_cpu_s": round(cpu, 2),
        "digest": digest.hexdigest(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--deployments", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout (table to stderr)")
    parser.add_argument("--one", choices=("shared", "unshared"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(_measure(args.deployments, args.seed, args.one == "shared")))
        return 0
    runs = {}
    for mode in ("unshared", "shared"):  # each in a fresh process: nothing interned by the other
        out = subprocess.run([sys.executable, __file__, "--one", mode, "--deployments", str(args.deployments),
                              "--seed", str(args.seed)], check=True, capture_output=True, text=True).stdout
        runs[mode] = json.loads(out)
    if runs["shared"]["digest"] != runs["unshared"]["digest"]:
        raise SystemExit("sharing changed a finding: the two runs disagree")
    shared, unshared = runs["shared"], runs["unshared"]
    figures = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_1m": os.getloadavg()[0],
        "deployments": args.deployments,
        "policies": list(POLICIES),
        "verdicts": shared["verdicts"],
        "findings": shared["findings"],
        "finding_objects_unshared": unshared["finding_objects"],
        "finding_objects_shared": shared["finding_objects"],
        "verdicts_mb_unshared": unshared["kept_mb"],
        "verdicts_mb_shared": shared["kept_mb"],
        "memory_unshared_vs_shared": round(unshared["kept_mb"] / shared["kept_mb"], 2),
        "trimmed_deployments_mb_unshared": unshared["trimmed_mb"],
        "trimmed_deployments_mb_shared": shared["trimmed_mb"],
        "trimmed_unshared_vs_shared": round(unshared["trimmed_mb"] / shared["trimmed_mb"], 2),
        "parse_and_trim_cpu_s_unshared": unshared["parse_and_trim_cpu_s"],
        "parse_and_trim_cpu_s_shared": shared["parse_and_trim_cpu_s"],
        "judge_cpu_s_unshared": unshared["judge_cpu_s"],
        "judge_cpu_s_shared": shared["judge_cpu_s"],
        "cpu_shared_vs_unshared": round(shared["judge_cpu_s"] / unshared["judge_cpu_s"], 2),
    }
    print("\n".join(f"{k:>32}: {v}" for k, v in figures.items()), file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
