#!/usr/bin/env python3
"""Differential fuzzing at scale (issue #13): thousands of schema-generated Deployments judged by the
engine/webhook decision and, through server-side dry-run, by the generated ValidatingAdmissionPolicy.

    hack/bench/fuzz.py [--examples 3000] [--seed N] [--json]

Uses $KUBECONFIG when set, else starts a private control plane (hack/cluster.sh) and stops it after.
Prints how many examples were generated, rejected by the API server's validation, judged (allowed /
denied), and every disagreement (first few in full); exits 1 when any disagree or crash.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "operator"))
sys.path.insert(0, str(ROOT))

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from tests.support.cluster import kubeconfig_or_local_cluster  # noqa: E402
from tests.support.fuzz import ApiConnection, Differential, deployments, fix_up  # noqa: E402

NS = f"fuzz-bench-{os.getpid()}"
STAGING = f"{NS}-staging"


def run(examples: int, seed: int | None) -> dict[str, Any]:
    counts: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    disagreements: list[dict[str, Any]] = []
    with kubeconfig_or_local_cluster("fuzz-bench-") as cluster:
        for ns in (NS, STAGING):
            cluster.kubectl("create", "namespace", ns)
        api = ApiConnection(cluster.kubeconfig)
        diff = Differential.generated(api, "fuzz-bench", NS, STAGING, lambda o: cluster.apply(json.dumps(o)),
                                      now=datetime.now(UTC))
        bad = fix_up({"spec": {"replicas": 1}}, NS, "probe-less", None)
        deadline = time.monotonic() + 60
        while api.dry_run_create(bad)[0] != 403 and time.monotonic() < deadline:
            time.sleep(0.5)
        strategy = deployments(api.deployment_schema_components(), NS)
        started = time.monotonic()

        @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck),
                  phases=[p for p in settings.default.phases if p.name != "shrink"])
        @given(st.data())
        def one(data: st.DataObject) -> None:
            obj = data.draw(strategy)
            outcome = diff.judge(obj)
            counts["generated"] += 1
            if outcome.rejected:
                counts["rejected by validation"] += 1
                reasons[re.sub(r"[0-9]+", "N", outcome.reason.split(": ", 2)[-1])[:160]] += 1
                return
            counts["judged"] += 1
            counts["denied" if outcome.vap_denied else "allowed"] += 1
            if outcome.crash is not None:
                counts["crashes"] += 1
            if not outcome.agrees:
                counts["disagreements"] += 1
                if len(disagreements) < 20:
                    disagreements.append({"object": obj, "vap_denied": outcome.vap_denied,
                                          "engine_denied": outcome.engine_denied,
                                          "only_vap": sorted(outcome.vap_failed - outcome.engine_failed),
                                          "only_engine": sorted(outcome.engine_failed - outcome.vap_failed),
                                          "crash": outcome.crash})

        if seed is not None:
            one = __import__("hypothesis").seed(seed)(one)
        one()
        elapsed = time.monotonic() - started
        api.close()
        cluster.kubectl("delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", "readiness-fuzz-bench",
                        "--ignore-not-found", check=False)
        cluster.kubectl("delete", "namespace", NS, STAGING, "--wait=false", check=False)
    return {"examples": examples, "seconds": round(elapsed, 1),
            "counts": {k: counts.get(k, 0) for k in ("generated", "rejected by validation", "judged", "allowed",
                                                      "denied", "disagreements", "crashes")},
            "rejections": dict(reasons.most_common(10)), "disagreements": disagreements}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=3000)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    result = run(args.examples, args.seed)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        for key, value in result["counts"].items():
            print(f"{key:>24}: {value}")
        print(f"{'seconds':>24}: {result['seconds']}")
        for reason, n in result["rejections"].items():
            print(f"  rejected {n:>5}x: {reason}")
        for d in result["disagreements"][:5]:
            print(json.dumps(d, default=str))
    return 1 if result["counts"]["disagreements"] or result["counts"]["crashes"] else 0


if __name__ == "__main__":
    sys.exit(main())
