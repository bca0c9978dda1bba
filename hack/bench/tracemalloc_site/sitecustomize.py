"""Memory profile of a benchmark's operator process (operator_scale.py --tracemalloc): with
BENCH_TRACEMALLOC_OUT set, traces every allocation from start and, on SIGUSR1, writes what is held,
by file and by line, to that path. Only the benchmark puts this directory on PYTHONPATH; tracing
makes the process slower and larger, so a profiling run's times and RSS are not the run's figures."""

from __future__ import annotations

import os
import signal
import tracemalloc
from types import FrameType

_OUT = os.environ.get("BENCH_TRACEMALLOC_OUT")


def _dump(signum: int, frame: FrameType | None) -> None:
    assert _OUT is not None
    snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    by_file = snapshot.statistics("filename")
    lines = [f"traced {sum(s.size for s in by_file) / 1e6:.1f} MB in {sum(s.count for s in by_file):,} blocks", "",
             "by file:"]
    lines += [f"{s.size / 1e6:8.1f} MB {s.count:10,d}  {s.traceback[0].filename}" for s in by_file[:25]]
    lines += ["", "by line:"]
    for s in snapshot.statistics("lineno")[:40]:
        where = s.traceback[0]
        lines.append(f"{s.size / 1e6:8.1f} MB {s.count:10,d}  {where.filename}:{where.lineno}")
    tmp = f"{_OUT}.tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, _OUT)  # whole or absent: the benchmark waits for the file


if _OUT:
    tracemalloc.start(int(os.environ.get("BENCH_TRACEMALLOC_FRAMES", "1")))
    signal.signal(signal.SIGUSR1, _dump)
