#!/usr/bin/env python3
"""CPU of the passes an idle leader runs (SLO ticks, resyncs), with the verdict fold kept vs redone.

    .venv/bin/python hack/bench/idle_pass.py [--deployments 10000] [--passes 10] [--marked 500] [--json]

In process, no API server (pass_profile.py's view and writer): operator_scale.py's Deployments, its four
policies judged once, then passes in which no verdict changes, alternating two ways in the same run:

- kept: the operator since issue 16 (session 5): the verdicts' fold (status counts and offenders, the
  overview without SLOs) and the override-approval scan are reused while no verdict changed;
- redone: `runtime.folded` and `runtime.approvals_scanned` cleared before each pass, i.e. the work every
  pass did before: three walks over all verdicts.

Each is measured with nothing marked, and with `--marked` Deployments marked dirty but unchanged (a
watch event that changed nothing the checks read: they are judged again, their verdicts kept).

Then what an SLO tick does to the Deployments whose measurement moved, two ways side by side (fold kept):

- SLO findings only: the operator since session 6: they are marked `measured`, and `engine.remeasure`
  judges only their SLO findings again, keeping the rest of the verdict;
- whole catalogue: the same Deployments marked as by a watch event, every check run again (before).

Figures: CPU milliseconds per pass per policy (process time), best of `--passes`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "operator"))
sys.path.insert(0, str(ROOT / "hack" / "bench"))

from operator_scale import machine, make_objects, policies  # noqa: E402
from pass_profile import View, Writer  # noqa: E402

from readiness_operator.kube.reconcile import PassInput, run_pass  # noqa: E402
from readiness_operator.kube.state import PolicyRuntime  # noqa: E402


async def measure(n: int, passes: int, marked: int) -> dict[str, Any]:
    view = View(make_objects(n, 50))
    pols = policies()
    runtimes = {p["metadata"]["name"]: PolicyRuntime(p["metadata"]["name"], "uid-" + p["metadata"]["name"]) for p in pols}
    writer = Writer()
    items = {name: PassInput(name, "uid-" + name, 1, p["spec"], {}) for p in pols for name in [p["metadata"]["name"]]}
    for name, runtime in runtimes.items():
        await run_pass(runtime, items[name], view, writer)
    every = [(ns, str(d["metadata"]["name"])) for ns in view.namespaces() for d in view.deployments(ns)]
    keys = every[::max(1, n // max(1, marked))][:marked]  # spread like the SLO subset (every 20th at 10,000)

    async def one(redo: bool, mark: bool, measured: bool = False) -> float:
        spent = 0.0
        for name, runtime in runtimes.items():
            if redo:
                runtime.folded, runtime.approvals_scanned = None, None
            if mark:
                for key in keys:
                    if measured:
                        runtime.mark(measured=key)
                    else:
                        runtime.mark(key=key)
            before = runtime.judged_changes
            t = time.process_time()
            await run_pass(runtime, items[name], view, writer)
            spent += time.process_time() - t
            assert runtime.judged_changes == before, "a verdict changed: not an idle pass"
        return 1000 * spent / len(runtimes)

    out: dict[str, Any] = {}
    for mark in (False, True):
        best = {"kept": float("inf"), "redone": float("inf")}
        for _ in range(passes):  # alternating, so both see the same machine
            for way in ("kept", "redone"):
                best[way] = min(best[way], await one(way == "redone", mark))
        label = f"{marked}_marked" if mark else "nothing_marked"
        out[label] = {"kept_ms": round(best["kept"], 1), "redone_ms": round(best["redone"], 1),
                      "ratio": round(best["redone"] / best["kept"], 1) if best["kept"] else None}
    best = {"slo_only": float("inf"), "whole": float("inf")}
    for _ in range(passes):
        best["slo_only"] = min(best["slo_only"], await one(False, True, measured=True))
        best["whole"] = min(best["whole"], await one(False, True, measured=False))
    out[f"{marked}_measured"] = {"slo_findings_only_ms": round(best["slo_only"], 1),
                                 "whole_catalogue_ms": round(best["whole"], 1),
                                 "ratio": round(best["whole"] / best["slo_only"], 1) if best["slo_only"] else None}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", type=int, default=10_000)
    parser.add_argument("--passes", type=int, default=10)
    parser.add_argument("--marked", type=int, default=500)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = {"deployments": args.deployments, "policies": 4, "machine": machine(),
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               **asyncio.run(measure(args.deployments, args.passes, args.marked))}
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"{args.deployments:,} Deployments, 4 policies; CPU per pass per policy (best of {args.passes}):")
        for label in ("nothing_marked", f"{args.marked}_marked"):
            r = results[label]
            print(f"  {label.replace('_', ' ')}: fold kept {r['kept_ms']} ms, redone {r['redone_ms']} ms ({r['ratio']}x)")
        r = results[f"{args.marked}_measured"]
        print(f"  {args.marked} measured (SLO tick): SLO findings only {r['slo_findings_only_ms']} ms, "
              f"whole catalogue {r['whole_catalogue_ms']} ms ({r['ratio']}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
