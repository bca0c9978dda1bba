"""``-o table`` (the default): a table for people, each failure with its file:line, and the summary
line; colour only when asked for (see :func:`use_colour`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TextIO

from readiness_operator.model.common import Severity
from readiness_operator.report import Audit

__all__ = ["Palette", "table", "use_colour"]

_RESET = "\033[0m"
_CODES = {"red": "\033[31m", "green": "\033[32m", "yellow": "\033[33m", "dim": "\033[2m", "bold": "\033[1m"}
_SEVERITY = {Severity.CRITICAL: "red", Severity.WARNING: "yellow", Severity.INFO: "dim"}


def use_colour(mode: str, stream: TextIO, env: Mapping[str, str]) -> bool:
    """``always``/``never``, or ``auto``: only on a terminal and when ``NO_COLOR`` is unset or empty
    (https://no-color.org), so logs and pipes never get escape codes."""
    if mode == "always":
        return True
    if mode == "never" or env.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class Palette:
    """Wraps text in ANSI colours, or leaves it alone."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, colour: str, text: str) -> str:
        """``text`` in ``colour`` when enabled."""
        return f"{_CODES[colour]}{text}{_RESET}" if self.enabled else text


def table(audit: Audit, out: TextIO, colour: Palette) -> None:
    """The verdict table, then each noncompliant Deployment's failures with where to fix them."""
    if not audit.results:
        out.write("No Deployments matched the policy.\n")
        return
    rows = [("NAMESPACE", "NAME", "COMPLIANT", "SCORE", "LEVEL", "FAILED")]
    rows += [
        (
            a.verdict.namespace,
            a.verdict.name,
            "yes" if a.verdict.compliant else "no",
            str(a.verdict.score),
            a.verdict.level,
            ",".join(a.verdict.failed_checks) or "-",
        )
        for a in audit.results
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for i, row in enumerate(rows):
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=False)]
        if i == 0:
            cells = [colour("bold", c) for c in cells]
        else:
            cells[2] = colour("green" if row[2] == "yes" else "red", cells[2])
        out.write("  ".join(cells) + "  " + row[-1] + "\n")
    for a in audit.results:
        if not a.verdict.failures:
            continue
        out.write(f"\n{colour('bold', f'{a.verdict.namespace}/{a.verdict.name}')} ({a.file}:{a.line}):\n")
        for f in a.verdict.failures:
            tag = colour(_SEVERITY[f.severity], f"[{f.severity}]")
            out.write(f"  {tag} {f.check}: {f.message}  {colour('dim', f'({a.file}:{a.line_of(f)})')}\n")
