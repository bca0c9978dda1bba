"""Container environment: what a container's env list says must be what it gets."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from readiness_operator.checks.base import Context, Outcome, failed, passed, register
from readiness_operator.checks.cel import ALL_CONTAINERS, each_container
from readiness_operator.severity import Severity

if TYPE_CHECKING:
    from readiness_operator.model.rules import EnvRule


@register(
    "env-duplicate-keys",
    category="environment",
    severity=Severity.WARNING,
    title="No duplicate env names",
    why="When a container lists an env name twice the last entry silently wins, so a reviewer reading the "
    "first one (often after a merge or a Kustomize patch) is misled about the running config.",
    remediation="Keep one `env` entry per name in every container and init container; delete or merge the "
    "duplicates.",
    group="env",
    enabled=lambda rule: rule.no_duplicate_keys,
    reads={
        "Deployment": (
            "spec.template.spec.containers[].env[].name",
            "spec.template.spec.initContainers[].env[].name",
        )
    },
    cel=each_container(
        ALL_CONTAINERS,
        "c.?env.orValue([]).all(e, c.env.filter(x, x.name == e.name).size() == 1)",
        "list each env name once",
    ),
)
def env_duplicate_keys(ctx: Context, rule: EnvRule) -> Outcome:
    """No container lists an env name more than once."""
    problems = []
    for c in ctx.target.all_containers():
        counts = Counter(str(e.get("name")) for e in c.get("env") or () if isinstance(e, dict))
        dupes = sorted(name for name, n in counts.items() if n > 1)
        if dupes:
            problems.append(f"{c.label} lists env {', '.join(dupes)} more than once; remove the duplicate entries "
                            f"from {c.path}.env (the last one wins)")
    return failed(problems) if problems else passed("no container lists an env name twice")
