"""A real Prometheus (hack/prometheus.sh) that tests load deterministic series into."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .cluster import HACK


@dataclass
class Prometheus:
    state_dir: Path
    url: str

    def _script(self, *args: str) -> str:
        env = {**os.environ, "PROM_DIR": str(self.state_dir)}
        result = subprocess.run(
            [str(HACK / "prometheus.sh"), *args], env=env, capture_output=True, text=True, timeout=300
        )
        if result.returncode != 0:
            raise RuntimeError(f"hack/prometheus.sh {' '.join(args)} failed:\n{result.stderr}")
        lines = result.stdout.strip().splitlines()
        return lines[-1] if lines else ""

    def load(self, openmetrics: str, name: str = "series") -> None:
        """Backfill OpenMetrics text (samples need timestamps in seconds; `# EOF` is appended)."""
        path = self.state_dir / f"{name}.om"
        text = openmetrics if openmetrics.rstrip().endswith("# EOF") else openmetrics.rstrip() + "\n# EOF\n"
        path.write_text(text)
        self.url = self._script("load", str(path))

    def delete_series(self, match: str, start: float) -> None:
        """Tombstone a series' samples from `start` on (TSDB admin API), e.g. before loading a recovery."""
        params = urllib.parse.urlencode({"match[]": match, "start": str(start)})
        request = urllib.request.Request(f"{self.url}/api/v1/admin/tsdb/delete_series?{params}", method="POST")
        with urllib.request.urlopen(request, timeout=10) as r:
            assert r.status == 204, r.status

    def stop(self) -> None:
        pid_file = self.state_dir / "prometheus.pid"
        if pid_file.exists():
            subprocess.run(["kill", pid_file.read_text().strip()], check=False)
            pid_file.unlink()

    def scrape(self, target: str) -> None:
        """Scrape a live target (HOST:PORT, e.g. the load generator) every 2 s from now on."""
        self._script("scrape", target)

    def start(self) -> None:
        self.url = self._script("up")

    def query(self, promql: str, at: float | None = None) -> Any:
        params = {"query": promql}
        if at is not None:
            params["time"] = str(at)
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{urllib.parse.urlencode(params)}", timeout=10) as r:
            return json.load(r)


@contextmanager
def local_prometheus(state_dir: Path) -> Iterator[Prometheus]:
    state_dir.mkdir(parents=True, exist_ok=True)
    prom = Prometheus(state_dir, "")
    prom.start()
    try:
        yield prom
    finally:
        prom._script("down")


@contextmanager
def scraping_prometheus(
    state_dir: Path, targets: list[str], openmetrics: str = "", rules: list[Path] | None = None
) -> Iterator[Prometheus]:
    """A Prometheus of its own that scrapes `targets` (HOST:PORT) every 2 s, holds `openmetrics` (if
    any) and evaluates the rules files `rules`.

    Its own, not the session's: live scrapes are refused ("out of bounds") for times before the
    newest backfilled sample, and other tests backfill samples into the future.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    files = []
    if openmetrics.strip():
        history = state_dir / "history.om"
        history.write_text(openmetrics.rstrip() + "\n# EOF\n")
        files.append(str(history))
    prom = Prometheus(state_dir, "")
    scrape = [arg for target in targets for arg in ("--scrape", target)]
    prom.url = prom._script("up", *scrape, *(arg for r in rules or () for arg in ("--rules", str(r))), *files)
    try:
        yield prom
    finally:
        prom._script("down")
