"""Reports of an offline audit: one pure writer per format (JSON/YAML, SARIF, JUnit, table).

The CLI judges files with the engine and hands the verdicts, with where each Deployment was read
from, to these writers as an :class:`Audit`. Keeping them pure (values in, text out) keeps the CLI
thin and each format testable on its own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from readiness_operator import __version__
from readiness_operator.engine import DeploymentVerdict, Finding
from readiness_operator.manifests import Skipped
from readiness_operator.model import ReadinessPolicy

__all__ = ["INFORMATION_URI", "TOOL_NAME", "Audit", "Audited", "Summary", "container_named"]

TOOL_NAME = "readiness-operator"
INFORMATION_URI = "https://github.com/readiness-operator/readiness-operator"

# Check messages name the container they are about first: "container 'api' has no readinessProbe".
_CONTAINER = re.compile(r"\b(init container|container) '([^']*)'")


@dataclass(frozen=True, slots=True)
class Audited:
    """One Deployment's verdict with the file and line its document starts on."""

    verdict: DeploymentVerdict
    file: str
    line: int
    containers: Mapping[tuple[bool, str], int] = field(default_factory=dict)

    def line_of(self, finding: Finding) -> int:
        """The line of the container a finding's message names first, else the Deployment's line."""
        return self.line_of_container(container_named(finding.message))

    def line_of_container(self, container: tuple[bool, str] | None) -> int:
        """The line of a container (`container_named`'s key), else the Deployment's line."""
        found = self.containers.get(container) if container is not None else None
        return found if found is not None else self.line


def container_named(message: str) -> tuple[bool, str] | None:
    """(init?, name) of the container a check message names first (None: it names none)."""
    match = _CONTAINER.search(message)
    return None if match is None else (match.group(1) == "init container", match.group(2))


@dataclass(frozen=True, slots=True)
class Summary:
    """Counts for the summary line and the reports' headers."""

    deployments: int
    compliant: int
    noncompliant: int
    mean_score: float | None

    def line(self) -> str:
        """``N Deployments: X compliant, Y noncompliant, mean score S``."""
        noun = "Deployment" if self.deployments == 1 else "Deployments"
        mean = "-" if self.mean_score is None else f"{self.mean_score:.1f}"
        return f"{self.deployments} {noun}: {self.compliant} compliant, {self.noncompliant} noncompliant, mean score {mean}"


@dataclass(frozen=True, slots=True)
class Audit:
    """Everything a report shows: the policy, the judged Deployments (sorted), the skipped files."""

    policy: ReadinessPolicy
    policy_source: str
    results: Sequence[Audited]
    skipped: Sequence[Skipped] = ()
    version: str = __version__

    def summary(self) -> Summary:
        """Counts and the mean score over the judged Deployments."""
        n = len(self.results)
        compliant = sum(1 for r in self.results if r.verdict.compliant)
        mean = sum(r.verdict.score for r in self.results) / n if n else None
        return Summary(n, compliant, n - compliant, mean)
