"""Sloth (github.com/slok/sloth, built by hack/build.sh) as the SLO oracle: its generated recording
rules backfilled over history by promtool, in a Prometheus of their own that then evaluates them live.

`promtool tsdb create-blocks-from rules` answers each rule from the Prometheus it is pointed at, so a
rule that reads another recorded series (Sloth's 30-day SLI reads its 5-minute one, the budget
remaining reads the period burn rate...) sees nothing until the blocks of the rule it reads are loaded.
`rule_levels` orders Sloth's rules by dependency; each level is backfilled, then Prometheus restarts
to serve its blocks before the next level runs.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .cluster import HACK
from .operator import free_port

# promtool's hidden --max-block-duration: one block for 30 days instead of 360 of 2 hours (each block
# costs a few fsyncs: 360 of them take a minute on a busy machine).
BLOCK = "1000h"


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} failed ({result.returncode}):\n{result.stderr[-3000:]}")


def sloth_binary() -> str:
    """The cached Sloth binary (built from the Go module proxy on first use)."""
    result = subprocess.run([str(HACK / "build.sh"), "sloth-bin"], capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"hack/build.sh sloth-bin failed:\n{result.stderr[-3000:]}")
    return result.stdout.strip().splitlines()[-1]


def sloth_generate(spec: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """Sloth's rules (groups of recording rules, alerts disabled in the spec) for a prometheus/v1 spec."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "slo.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    out = workdir / "sloth-rules.yaml"
    _run([sloth_binary(), "generate", "--no-log", "-i", str(workdir / "slo.yaml"), "-o", str(out)])
    rules: dict[str, Any] = yaml.safe_load(out.read_text())
    return rules


def rule_levels(groups: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The recording rules by dependency level: level 0 reads raw series only, level n reads a series
    recorded at level n - 1 or lower."""
    rules = [r for g in groups for r in g["rules"] if "record" in r]
    recorded = {r["record"] for r in rules}
    level: dict[int, int] = {}

    def depth(i: int, seen: frozenset[int] = frozenset()) -> int:
        if i in level:
            return level[i]
        if i in seen:
            raise ValueError(f"recording rules read each other in a cycle: {rules[i]['record']}")
        reads = {name for name in recorded if re.search(rf"(?<![\w:]){re.escape(name)}(?![\w:])", rules[i]["expr"])}
        level[i] = 1 + max((depth(j, seen | {i}) for j, r in enumerate(rules) if r["record"] in reads), default=-1)
        return level[i]

    for i in range(len(rules)):
        depth(i)
    return [[r for i, r in enumerate(rules) if level[i] == n] for n in range(max(level.values(), default=-1) + 1)]


@dataclass
class OraclePrometheus:
    """A Prometheus (Debian's package) of the test's own: backfilled history and rules, then live
    scrapes and Sloth's rules evaluated every `eval_interval`."""

    state_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data(self) -> Path:
        return self.state_dir / "data"

    def start(self, *, targets: Sequence[str] = (), rule_files: Sequence[Path] = (), eval_interval: str = "2s",
              scrape_interval: str = "2s") -> None:
        self.stop()
        config = {
            "global": {"scrape_interval": scrape_interval, "evaluation_interval": eval_interval},
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": [{"job_name": f"loadgen-{i}", "honor_labels": True, "scrape_interval": scrape_interval,
                                "scrape_timeout": scrape_interval, "static_configs": [{"targets": [t]}]}
                               for i, t in enumerate(targets)],
        }
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "prometheus.yml").write_text(yaml.safe_dump(config))
        log = (self.state_dir / "prometheus.log").open("ab")
        self.process = subprocess.Popen(
            ["prometheus", "--config.file", str(self.state_dir / "prometheus.yml"), "--storage.tsdb.path",
             str(self.data), "--storage.tsdb.retention.time", "100y", "--web.listen-address", f"127.0.0.1:{self.port}",
             "--log.level", "warn"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"prometheus did not start:\n{(self.state_dir / 'prometheus.log').read_text()[-3000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def backfill_openmetrics(self, text: str, name: str) -> None:
        path = self.state_dir / f"{name}.om"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(text.rstrip() + "\n# EOF\n")
        _run(["promtool", "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration", BLOCK, str(path),
              str(self.data)])

    def backfill_rules(self, groups: Sequence[dict[str, Any]], start: float, end: float, interval: str,
                       name: str) -> None:
        """Evaluate recording rules over [start, end] against this (running) Prometheus, into blocks that
        the next start() serves."""
        path = self.state_dir / f"{name}.rules.yaml"
        path.write_text(yaml.safe_dump({"groups": list(groups)}, sort_keys=False))
        out = self.state_dir / f"{name}.blocks"
        shutil.rmtree(out, ignore_errors=True)
        _run(["promtool", "tsdb", "create-blocks-from", "rules", "--quiet", "--max-block-duration", BLOCK, "--url",
              self.url, "--start", str(int(start)), "--end", str(int(end)), "--eval-interval", interval,
              "--output-dir", str(out), str(path)])
        for block in out.iterdir():
            block.rename(self.data / block.name)

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": promql, **({"time": repr(at)} if at is not None else {})}
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{urllib.parse.urlencode(params)}", timeout=30) as r:
            answer = json.load(r)
        assert answer["status"] == "success", answer
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result


@contextmanager
def oracle_prometheus(state_dir: Path) -> Iterator[OraclePrometheus]:
    prom = OraclePrometheus(state_dir)
    try:
        yield prom
    finally:
        prom.stop()
