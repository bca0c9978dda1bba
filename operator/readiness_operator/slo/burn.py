"""Error budgets and burn rates from event counts (pure maths, no I/O).

The SLI over a window is the ratio of *increases*: good events / all events counted in the window
(traffic-weighted). Sloth instead averages the 5-minute ratios over the period; the two part on
uneven traffic (a quiet hour with one failed request of two weighs as much as a busy one there),
and an error budget is a number of requests, so we count requests (docs/slo.md, "The period SLI").

    error ratio  = bad / total                      (over a window)
    budget       = 1 - objective                    (the error ratio the objective allows)
    burn rate    = error ratio / budget             (1: the budget lasts exactly the period)
    remaining    = 1 - error ratio(period) / budget (<= 0: the budget over the period is spent)

An alert fires when the burn rate exceeds its factor over both its long and its short window (the
short one makes it stop soon after the burning stops). A window without requests burns nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "AlertRule",
    "BudgetState",
    "Counts",
    "FiredAlert",
    "budget_state",
    "histogram_quantile",
    "mean_of_ratios",
]

AlertSeverity = Literal["page", "ticket"]


@dataclass(frozen=True, slots=True)
class Counts:
    """Events counted over one window: all of them, and the bad ones."""

    total: float
    bad: float

    @property
    def error_ratio(self) -> float | None:
        """bad / total, clamped to [0, 1] (counter resets can make increase() estimates overshoot);
        None without traffic."""
        if self.total <= 0:
            return None
        return min(1.0, max(0.0, self.bad / self.total))


@dataclass(frozen=True, slots=True)
class AlertRule:
    """A multi-window burn-rate alert: fires when both windows burn faster than `factor`."""

    severity: AlertSeverity
    long_window: str
    short_window: str
    factor: float


@dataclass(frozen=True, slots=True)
class FiredAlert:
    rule: AlertRule
    long_burn: float
    short_burn: float

    def describe(self) -> str:
        r = self.rule
        return (f"{r.severity} burn {self.long_burn:.3g}x over {r.long_window} and {self.short_burn:.3g}x over "
                f"{r.short_window} (> {r.factor:g}x)")


@dataclass(frozen=True, slots=True)
class BudgetState:
    """One Deployment's error budget under one SLO, from the counts of every window."""

    objective: float  # a ratio, e.g. 0.9995
    period: str
    sli: float | None  # good share over the period (None: no traffic in the period)
    budget_remaining: float | None  # share of the period's budget left (<= 0: exhausted)
    burn_rates: Mapping[str, float | None] = field(default_factory=dict)  # window -> burn rate (None: no traffic)
    fired: tuple[FiredAlert, ...] = ()

    @property
    def exhausted(self) -> bool:
        return self.budget_remaining is not None and self.budget_remaining <= 0

    @property
    def paging(self) -> tuple[FiredAlert, ...]:
        return tuple(a for a in self.fired if a.rule.severity == "page")

    @property
    def ticketing(self) -> tuple[FiredAlert, ...]:
        return tuple(a for a in self.fired if a.rule.severity == "ticket")

    @property
    def level(self) -> Literal["ok", "ticket", "page"]:
        """page: budget exhausted or a page alert firing; ticket: a ticket alert firing; else ok."""
        if self.exhausted or self.paging:
            return "page"
        return "ticket" if self.ticketing else "ok"

    def firing(self) -> str:
        """What fires, compactly and without live numbers: `budget-exhausted, page 1h/5m` or `none`."""
        parts = (["budget-exhausted"] if self.exhausted else []) + [
            f"{a.rule.severity} {a.rule.long_window}/{a.rule.short_window}" for a in self.fired]
        return ", ".join(parts) or "none"

    def why(self) -> str:
        """What fired, for messages: the exhausted budget and/or the alerts with their windows."""
        parts = []
        if self.exhausted:
            parts.append(f"error budget over {self.period} exhausted")
        parts += [a.describe() for a in (self.paging or self.ticketing)]
        return "; ".join(parts) or "within budget"


def budget_state(
    objective: float, period: str, counts: Mapping[str, Counts], rules: Sequence[AlertRule]
) -> BudgetState:
    """The budget of one Deployment: `counts` holds the period's window and every rule's two windows
    (a missing window counts as no traffic)."""
    allowed = 1.0 - objective

    def burn(window: str) -> float | None:
        c = counts.get(window)
        ratio = c.error_ratio if c is not None else None
        return None if ratio is None else ratio / allowed

    windows = sorted({w for r in rules for w in (r.long_window, r.short_window)} | {period})
    burn_rates = {w: burn(w) for w in windows}
    fired = []
    for rule in rules:
        long_burn, short_burn = burn_rates[rule.long_window], burn_rates[rule.short_window]
        if long_burn is not None and short_burn is not None and long_burn > rule.factor and short_burn > rule.factor:
            fired.append(FiredAlert(rule, long_burn, short_burn))
    period_ratio = counts[period].error_ratio if period in counts else None
    return BudgetState(
        objective=objective, period=period,
        sli=None if period_ratio is None else 1.0 - period_ratio,
        budget_remaining=None if period_ratio is None else 1.0 - period_ratio / allowed,
        burn_rates=burn_rates, fired=tuple(fired),
    )


def mean_of_ratios(windows: Iterable[Counts]) -> float | None:
    """Sloth's period SLI for comparison: the mean of each short window's good share (windows
    without traffic skipped). Not used for verdicts; see the module docstring."""
    ratios = [1.0 - r for c in windows if (r := c.error_ratio) is not None]
    return sum(ratios) / len(ratios) if ratios else None


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """Prometheus's histogram_quantile over cumulative bucket counts (upper bound -> count): linear
    interpolation inside the bucket holding the rank; the highest finite bound when the rank falls
    in the +Inf bucket. None without observations or without a +Inf bucket."""
    if not buckets or math.inf not in buckets:
        return None
    bounds = sorted(buckets)
    counts = [buckets[b] for b in bounds]
    for i in range(1, len(counts)):  # as Prometheus does: force monotonic counts
        counts[i] = max(counts[i], counts[i - 1])
    total = counts[-1]
    if total <= 0 or len(bounds) < 2:
        return None
    rank = q * total
    i = next(i for i, c in enumerate(counts) if c >= rank)
    if i == len(bounds) - 1:
        return bounds[-2]
    low, low_count = (0.0, 0.0) if i == 0 else (bounds[i - 1], counts[i - 1])
    if i == 0 and bounds[0] <= 0:
        return bounds[0]
    high, high_count = bounds[i], counts[i]
    if high_count == low_count:
        return high
    return low + (high - low) * (rank - low_count) / (high_count - low_count)
