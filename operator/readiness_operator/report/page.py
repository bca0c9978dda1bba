"""The readiness page: one self-contained HTML document from the operator's overview (no I/O).

No script and nothing fetched (the page must work in clusters without internet): CSS inline, burn
charts as inline SVG. Every name, message and fix is user input (Deployment and namespace names,
policy and SLO names, check messages quoting the object), so every text and attribute is escaped;
the server adds a Content-Security-Policy that allows no script at all on top.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape

from readiness_operator.slo.budget import SloBudget

from .overview import ClusterOverview, Offender, PolicyOverview

__all__ = ["CONTENT_SECURITY_POLICY", "MAX_PAGE_OFFENDERS", "burn_chart", "render_page", "render_standby"]

CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
MAX_PAGE_OFFENDERS = 25  # over all policies, lowest score first
_CODE = re.compile(r"`([^`]+)`")
_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1b1f24;background:#f6f8fa}
header{background:#1b1f24;color:#fff;padding:16px 24px;display:flex;gap:32px;align-items:baseline}
header h1{font-size:20px;margin:0}.big{font-size:32px;font-weight:600}
main{padding:16px 24px;display:grid;grid-template-columns:1fr 1fr;gap:16px}
section{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:12px 16px}
section.wide{grid-column:1/3}h2{font-size:16px;margin:0 0 8px}
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:4px 8px;border-bottom:1px solid #eaeef2}
.bar{background:#eaeef2;height:8px;width:120px;display:inline-block;border-radius:4px;overflow:hidden}
.bar i{display:block;height:8px;background:#1f883d}.low i{background:#cf222e}.mid i{background:#bf8700}
.offender{margin:0 0 12px}.offender h3{font-size:14px;margin:0}.failure{margin:4px 0 0 16px}
.fix{color:#0550ae;margin:2px 0 0}.muted{color:#57606a}code{background:#eaeef2;padding:0 3px;border-radius:3px}
svg.burn{background:#fff;border:1px solid #eaeef2}
"""


def _text(value: object) -> str:
    return escape(str(value), quote=True)


def _prose(value: str) -> str:
    """Escaped text, with `backticked` spans (as check fixes write them) shown as code."""
    return _CODE.sub(r"<code>\1</code>", _text(value))


def _bar(score: int) -> str:
    grade = "low" if score < 50 else "mid" if score < 90 else "ok"
    return f'<span class="bar {grade}"><i style="width:{max(0, min(100, score))}%"></i></span>'


def _time(at: datetime | None) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if at is not None else "never"


def burn_chart(points: Sequence[tuple[float, float]], label: str, width: int = 240, height: int = 64) -> str:
    """An inline SVG line of the remaining budget over time; the dashed line is the objective (0)."""
    title = f"<title>{_text(label)}</title>"
    if not points:
        return (f'<svg class="burn" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
                f'{title}<text x="8" y="{height // 2}" font-size="11" fill="#57606a">no measurement yet</text></svg>')
    low = min(0.0, *(r for _, r in points)) - 0.05
    high = max(1.0, *(r for _, r in points)) + 0.05
    start, end = points[0][0], points[-1][0]
    span = (end - start) or 1.0

    def x(t: float) -> float:
        return 4 + (width - 8) * ((t - start) / span if len(points) > 1 else 1.0)

    def y(r: float) -> float:
        return 4 + (height - 8) * (high - r) / (high - low)

    line = " ".join(f"{x(t):.1f},{y(r):.1f}" for t, r in points)
    colour = "#cf222e" if points[-1][1] < 0 else "#1f883d"
    return (
        f'<svg class="burn" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'data-points="{len(points)}">{title}'
        f'<line x1="4" x2="{width - 4}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#bf8700" stroke-dasharray="4 3"/>'
        f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{line}"/>'
        f'<circle cx="{x(points[-1][0]):.1f}" cy="{y(points[-1][1]):.1f}" r="3" fill="{colour}"/></svg>'
    )


def _offenders(policies: Sequence[PolicyOverview]) -> list[tuple[str, Offender]]:
    every = [(p.policy, o) for p in policies for o in p.offenders]
    return sorted(every, key=lambda po: (po[1].score, po[1].namespace, po[1].name, po[0]))[:MAX_PAGE_OFFENDERS]


def _offender(policy: str, o: Offender) -> str:
    failures = "".join(
        f'<li class="failure" data-check="{_text(f.check)}"><code>{_text(f.check)}</code> '
        f'<span class="muted">({_text(f.severity)})</span> {_text(f.message)}'
        f'<p class="fix">Fix: {_prose(f.remediation)}</p></li>'
        for f in o.failures
    )
    return (
        f'<div class="offender" data-policy="{_text(policy)}" data-namespace="{_text(o.namespace)}" '
        f'data-name="{_text(o.name)}"><h3>{_text(o.namespace)}/{_text(o.name)} '
        f'<span class="score">{o.score}</span> <span class="muted">{_text(o.level)}, policy {_text(policy)}</span></h3>'
        f"<ul>{failures}</ul></div>"
    )


def _budget(policy: str, b: SloBudget, history: Sequence[tuple[float, float]]) -> str:
    if b.error:
        remaining = f'<span class="muted">Unknown: {_text(b.error)}</span>'
    elif b.remaining is None:
        remaining = '<span class="muted">no value</span>'
    else:
        remaining = f'<span class="remaining">{b.remaining * 100:.1f}%</span>'
    label = f"{policy} / {b.slo}: error budget remaining over time"
    return (
        f'<tr data-policy="{_text(policy)}" data-slo="{_text(b.slo)}"><td>{_text(policy)}</td>'
        f"<td><code>{_text(b.slo)}</code> <span class=\"muted\">{_text(b.comparison)} {b.threshold:g}</span></td>"
        f"<td>{remaining}</td><td>{b.breaching} of {b.measured}</td><td>{burn_chart(history, label)}</td></tr>"
    )


def _top_checks(policy: PolicyOverview, top: int = 5) -> str:
    ranked = sorted(policy.failing_checks.items(), key=lambda cn: (-cn[1], cn[0]))[:top]
    return ", ".join(f'<code>{_text(check)}</code> ({n})' for check, n in ranked) or "-"


def render_page(overview: ClusterOverview, *, now: datetime, role: str = "leader") -> str:
    """The whole page for the leader's overview."""
    ns_rows = "".join(
        f'<tr data-namespace="{_text(n.namespace)}"><td>{_text(n.namespace)}</td>'
        f'<td class="score">{n.score}</td><td>{_bar(n.score)}</td><td>{n.compliant} of {n.targets}</td></tr>'
        for n in overview.namespaces
    )
    policy_rows = "".join(
        f'<tr data-policy="{_text(p.policy)}"><td>{_text(p.policy)}</td><td class="score">{p.score}</td>'
        f"<td>{_bar(p.score)}</td><td>{p.compliant} of {p.targets}</td><td>{_top_checks(p)}</td></tr>"
        for p in overview.policies
    )
    offenders = "".join(_offender(policy, o) for policy, o in _offenders(overview.policies))
    budgets = "".join(
        _budget(p.policy, b, overview.history.get((p.policy, b.slo), ())) for p in overview.policies for b in p.slos
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Readiness</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_STYLE}</style></head>
<body><header><h1>Readiness</h1>
<div>cluster score <span class="big" id="cluster-score">{overview.score}</span></div>
<div><span id="cluster-compliant">{overview.compliant}</span> of <span id="cluster-targets">{overview.targets}</span>
Deployments compliant</div><div class="muted">{_text(role)}, {_time(now)}</div></header>
<main>
<section id="namespaces"><h2>Namespaces</h2><table><tr><th>Namespace</th><th>Score</th><th></th><th>Compliant</th></tr>
{ns_rows or '<tr><td colspan="4" class="muted">no Deployment selected by any policy</td></tr>'}</table></section>
<section id="policies"><h2>Policies</h2><table><tr><th>Policy</th><th>Score</th><th></th><th>Compliant</th>
<th>Top failing checks</th></tr>{policy_rows or '<tr><td colspan="5" class="muted">no policy</td></tr>'}</table></section>
<section id="slos" class="wide"><h2>SLO error budgets</h2><table><tr><th>Policy</th><th>SLO</th><th>Remaining (worst)</th>
<th>Breaching</th><th>Burn</th></tr>{budgets or '<tr><td colspan="5" class="muted">no SLO</td></tr>'}</table></section>
<section id="offenders" class="wide"><h2>Worst offenders</h2>
{offenders or '<p class="muted">none: every Deployment complies</p>'}</section>
</main></body></html>
"""


def render_standby(leader: str | None, *, now: datetime) -> str:
    """What a standby replica shows: it judges nothing, the leader does."""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Readiness (standby)</title><style>{_STYLE}</style></head>
<body><header><h1>Readiness</h1><div class="muted">standby, {_time(now)}</div></header><main>
<section class="wide" id="standby"><h2>This replica stands by</h2><p>Only the leader judges Deployments; open the
page on the leader's pod: <code id="leader">{_text(leader or "none yet")}</code> (the holder of the Lease).</p></section>
</main></body></html>
"""
