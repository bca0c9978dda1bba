#!/usr/bin/env python3
"""CEL cost headroom of the merged ValidatingAdmissionPolicy (issue #13 item 7), on the real API server.

    hack/bench/vap_cost.py [--max-containers 4096] [--json]

Uses $KUBECONFIG when set, else starts a private control plane (hack/cluster.sh) and stops it after.
Two policies side by side, each in its own namespace: the Pod Security restricted preset alone (the
floor) and every example policy plus that preset merged into one object, all Enforce and all
selecting the same Deployment. For each it prints the object's size and, by bisection with
server-side dry-runs, the widest Deployment (containers that fail every check) it still judges
before the API server's CEL cost limits (1,000,000 per expression, 10,000,000 per request) stop it;
past that the policy fails closed (failurePolicy Fail: denied without the checks listed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "operator"))
sys.path.insert(0, str(ROOT))

from tests.support.cluster import eventually, kubeconfig_or_local_cluster  # noqa: E402
from tests.support.fuzz import ApiConnection  # noqa: E402

from readiness_operator import presets  # noqa: E402
from readiness_operator.admission.vap import generate_vap  # noqa: E402
from readiness_operator.model import ReadinessPolicy, ReadinessPolicySpec  # noqa: E402

PREFIX = f"vap-cost-{os.getpid()}"


def policies(namespace: str, merged: bool) -> dict[str, ReadinessPolicySpec]:
    preset = yaml.safe_load(presets.read("pod-security-restricted") or "")
    preset["metadata"]["name"] = "builtin-pod-security-restricted"
    raws = [preset]
    if merged:
        raws += [yaml.safe_load(p.read_text()) for p in sorted((ROOT / "examples" / "policies").glob("*.yaml"))]
    out = {}
    for raw in raws:
        raw["spec"]["mode"] = "Enforce"
        raw["spec"]["match"] = {"namespaces": [namespace]}
        policy = ReadinessPolicy.model_validate(raw)
        out[policy.name] = policy.spec
    return out


def deployment(namespace: str, containers: int) -> dict[str, Any]:
    labels = {"app": "wide"}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "wide", "namespace": namespace},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                         {"name": f"c{i}", "image": "app:latest"} for i in range(containers)]}}}}


def judged(api: ApiConnection, namespace: str, containers: int) -> bool:
    """True when the VAP judged it (its denial lists checks), False when CEL's cost limits stopped it."""
    status, answer = api.dry_run_create(deployment(namespace, containers))
    message = str((answer or {}).get("message") or "")
    if status == 403 and "denies this Deployment" in message:
        return True
    if "cost" in message.lower() or "budget" in message.lower():
        return False
    raise RuntimeError(f"unexpected answer for {containers} containers: HTTP {status} {message[:300]}")


def in_force(api: ApiConnection, namespace: str) -> bool:
    status, answer = api.dry_run_create(deployment(namespace, 1))
    return status == 403 and "denies this Deployment" in str((answer or {}).get("message") or "")


def widest_judged(api: ApiConnection, namespace: str, limit: int) -> int:
    low, high = 1, limit  # judged(low) holds; find the largest judged count up to limit
    if judged(api, namespace, high):
        return high
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if judged(api, namespace, mid) else (low, mid)
    return low


def run(limit: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with kubeconfig_or_local_cluster("vap-cost-") as cluster:
        api = ApiConnection(cluster.kubeconfig)
        try:
            for label, merged in (("restricted preset alone", False), ("examples + restricted preset merged", True)):
                namespace = f"{PREFIX}-{'merged' if merged else 'single'}"
                cluster.kubectl("create", "namespace", namespace)
                name = f"{namespace}-vap"
                chosen = policies(namespace, merged)
                generated = generate_vap(chosen, name=name, now=datetime.now(UTC), excluded_namespaces=[])
                for obj in generated.objects:
                    cluster.apply(json.dumps(obj))
                try:
                    eventually(partial(in_force, api, namespace), timeout=60, what="the VAP in force")
                    widest = widest_judged(api, namespace, limit)
                finally:
                    cluster.kubectl("delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", name,
                                    "--ignore-not-found")
                    cluster.kubectl("delete", "namespace", namespace, "--wait=false")
                results[label] = {
                    "policies": len(generated.policies),
                    "checks": sum(len(p.checks) for p in generated.policies.values()),
                    "vap_bytes": len(json.dumps(generated.objects[0], separators=(",", ":"))),
                    "widest_judged_containers": widest,
                    "limit_reached": widest < limit,
                }
        finally:
            api.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-containers", type=int, default=4096)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = run(args.max_containers)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for label, r in results.items():
        widest = str(r["widest_judged_containers"])
        if not r["limit_reached"]:
            widest += " (the --max-containers bound)"
        print(f"{label}: {r['policies']} policies, {r['checks']} checks, {r['vap_bytes']:,} bytes; "
              f"judges Deployments of up to {widest} failing containers")
    single, merged = results.values()
    print(f"merged / alone: {merged['vap_bytes'] / single['vap_bytes']:.1f}x the size, "
          f"{merged['widest_judged_containers'] / single['widest_judged_containers']:.2f}x the widest Deployment judged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
