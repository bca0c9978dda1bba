#!/usr/bin/env python3
"""Memory the leader holds while its first PolicyReports are written: report slots shared by every
policy (now) vs each policy's own (before), side by side.

    .venv/bin/python hack/bench/report_memory.py [--deployments 10000] [--write-ms 20] [--json]

In process, no API server (pass_profile.py's view): operator_scale.py's Deployments and its four
policies, judged once with reports off. Then every namespace's reports of all four policies are
written at once, as the four first passes do, to a writer that models a saturated API server: it
stores one report at a time, `--write-ms` each, however many are sent together (on the 2-core
machine the API server and kwok used the whole machine while the 640,000 results were stored:
docs/benchmarks.md, session 6). Two ways, each on fresh runtimes:

- shared: `OperatorContext.report_slots`, one semaphore of REPORT_WRITERS namespaces over every policy;
- per policy: REPORT_WRITERS namespaces per policy (before), four times as many at once.

Figures: the peak of what report writing allocated on top of the judged state (tracemalloc, reset
just before the writes) and the wall time of the writes (the model's throughput is the same both ways,
so the wall times should match; a real API server's is what operator_scale.py measures).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
import tracemalloc
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "operator"))
sys.path.insert(0, str(ROOT / "hack" / "bench"))

from operator_scale import machine, make_objects, policies  # noqa: E402
from pass_profile import View, Writer  # noqa: E402

from readiness_operator.kube.reconcile import REPORT_WRITERS, PassInput, _write_reports, run_pass  # noqa: E402
from readiness_operator.kube.state import PolicyRuntime  # noqa: E402


class SaturatedServer(Writer):
    """Stores one report at a time, `seconds` each; keeps nothing of what it was sent."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds, self.reports_on, self.most_in_flight, self._in_flight = seconds, False, 0, 0
        self._server = asyncio.Lock()

    async def policy_reports_available(self) -> bool:
        return self.reports_on

    async def put_policy_report(self, report: Mapping[str, Any]) -> None:
        self._in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self._in_flight)
        try:
            async with self._server:
                self.calls["report"] = self.calls.get("report", 0) + 1
                self.bytes += len(report.body) if hasattr(report, "body") else 0
                await asyncio.sleep(self.seconds)
        finally:
            self._in_flight -= 1


async def one_way(view: View, shared: bool, write_seconds: float) -> dict[str, Any]:
    pols = policies()
    writer = SaturatedServer(write_seconds)
    runtimes = [PolicyRuntime(p["metadata"]["name"], "uid-" + p["metadata"]["name"]) for p in pols]
    for p, runtime in zip(pols, runtimes, strict=True):
        name = p["metadata"]["name"]
        await run_pass(runtime, PassInput(name, "uid-" + name, 1, p["spec"], {}), view, writer)
    namespaces = set(view.namespaces())
    for runtime in runtimes:
        runtime.reports_pending |= namespaces
    slots = asyncio.Semaphore(REPORT_WRITERS) if shared else None
    writer.reports_on = True
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    start = time.monotonic()
    await asyncio.gather(*(_write_reports(writer, runtime, slots=slots) for runtime in runtimes))
    wall = time.monotonic() - start
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    if any(runtime.reports_pending for runtime in runtimes):
        raise SystemExit("some reports were not written: the figures would be of less work")
    return {"peak_mb": round(peak / 2**20, 1), "wall_seconds": round(wall, 1), "reports": writer.calls.get("report", 0),
            "report_mb": round(writer.bytes / 2**20, 1), "most_reports_in_flight": writer.most_in_flight}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--deployments", type=int, default=10_000)
    ap.add_argument("--write-ms", type=float, default=20.0, help="the modelled API server's time per report")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    view = View(make_objects(args.deployments, 50))
    out: dict[str, Any] = {"deployments": args.deployments, "policies": 4, "report_writers": REPORT_WRITERS,
                           "write_ms": args.write_ms, "machine": machine(),
                           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    for way in ("shared", "per_policy"):
        out[way] = asyncio.run(one_way(view, way == "shared", args.write_ms / 1000))
    out["peak_ratio"] = round(out["per_policy"]["peak_mb"] / max(0.1, out["shared"]["peak_mb"]), 2)
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"{args.deployments:,} Deployments, 4 policies, {out['shared']['reports']} reports "
          f"({out['shared']['report_mb']} MB), {args.write_ms:g} ms per report, one at a time")
    for way in ("shared", "per_policy"):
        r = out[way]
        print(f"  {way:<10} peak {r['peak_mb']:>6} MB  wall {r['wall_seconds']:>6} s  "
              f"at most {r['most_reports_in_flight']} reports sent at once")
    print(f"  per-policy slots hold {out['peak_ratio']}x the shared slots' peak")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
