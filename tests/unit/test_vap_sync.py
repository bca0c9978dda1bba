"""VapSync (issue #13 item 4): owner references on what it writes, foreign objects left alone."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from readiness_operator.kube.api import ForeignObject
from readiness_operator.kube.vap_sync import REWRITE_AFTER, VapSync
from readiness_operator.model import ReadinessPolicySpec

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SPEC = ReadinessPolicySpec.model_validate({"mode": "Enforce", "rules": {"probes": {}}})


class Writer:
    def __init__(self, foreign: set[str] | None = None) -> None:
        self.put: list[dict[str, Any]] = []
        self.deleted: list[tuple[str, str]] = []
        self.foreign = foreign or set()

    async def put_admission_object(self, obj: Mapping[str, Any]) -> None:
        if obj["kind"] in self.foreign:
            raise ForeignObject(f"{obj['kind']} is not ours")
        self.put.append(dict(obj))

    async def delete_admission_object(self, kind: str, name: str) -> None:
        self.deleted.append((kind, name))


def test_generated_objects_are_owned_by_their_policy_and_rewritten_periodically() -> None:
    writer = Writer()
    sync = VapSync("p", writer, [], uid="uid-p")
    asyncio.run(sync.sync(SPEC, NOW))
    assert [o["kind"] for o in writer.put] == ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"]
    for obj in writer.put:
        [owner] = obj["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"]) == ("ReadinessPolicy", "p", "uid-p")
        assert "blockOwnerDeletion" not in owner  # would need RBAC on the policy's finalizers
    asyncio.run(sync.sync(SPEC, NOW + timedelta(minutes=1)))
    assert len(writer.put) == 2  # unchanged: not rewritten
    asyncio.run(sync.sync(SPEC, NOW + REWRITE_AFTER + timedelta(seconds=1)))
    assert len(writer.put) == 4  # but re-put now and then, in case it was removed


def test_a_foreign_object_of_our_name_is_skipped_not_fatal() -> None:
    writer = Writer(foreign={"ValidatingAdmissionPolicy"})
    sync = VapSync("victim", writer, [], uid="u")
    asyncio.run(sync.sync(SPEC, NOW))
    assert writer.put == []  # nor our binding: it would bind the foreign policy to Deployments
    assert sync.foreign == {("ValidatingAdmissionPolicy", "readiness-victim")}
