"""The one compiled-policy cache: each (policy, generation) is parsed and compiled once.

The policy loops and the admission webhook both read ReadinessPolicies as raw specs from kopf; this
cache turns them into plans, keeps only the newest generation of each policy and forgets policies
that are gone, so it never grows past the number of live policies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from readiness_operator.engine import CompiledPolicy, compile_policy
from readiness_operator.model import ReadinessPolicySpec, format_validation_error

__all__ = ["CompiledEntry", "PolicyCache"]


@dataclass(frozen=True, slots=True)
class CompiledEntry:
    """One policy generation: its plan, or why its spec is invalid (never both)."""

    generation: int | None
    plan: CompiledPolicy | None
    invalid: str | None = None


class PolicyCache:
    def __init__(self) -> None:
        self._entries: dict[str, CompiledEntry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, name: str, generation: int | None, spec: Mapping[str, Any]) -> CompiledEntry:
        """The entry for this generation, compiling it when it is new (a stale one is replaced)."""
        entry = self._entries.get(name)
        if entry is None or entry.generation != generation:
            entry = self._entries[name] = self._compile(generation, spec)
        return entry

    @staticmethod
    def _compile(generation: int | None, spec: Mapping[str, Any]) -> CompiledEntry:
        try:
            return CompiledEntry(generation, compile_policy(ReadinessPolicySpec.model_validate(dict(spec))))
        except ValidationError as exc:
            return CompiledEntry(generation, None, format_validation_error(exc, prefix="spec."))

    def forget(self, name: str) -> None:
        self._entries.pop(name, None)

    def retain(self, names: Iterable[str]) -> None:
        """Evict every policy not in `names` (those that were deleted)."""
        keep = set(names)
        for gone in [n for n in self._entries if n not in keep]:
            del self._entries[gone]
