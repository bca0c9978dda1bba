"""The one writer of the merged VAP + binding: owner references to every policy it holds, writes only
differences, deletes both when no Enforce policy is left, and leaves a foreign object of its name alone."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from readiness_operator.kube.api import ForeignObject
from readiness_operator.kube.vap_sync import REWRITE_AFTER, AdmissionPolicySync, EnforcedPolicy
from readiness_operator.model import ReadinessPolicySpec

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ENFORCE = ReadinessPolicySpec.model_validate({"mode": "Enforce", "rules": {"probes": {}}})
WARN = ReadinessPolicySpec.model_validate({"mode": "Warn", "rules": {"probes": {}}})
NAME = "readiness-operator"


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


def sync(s: AdmissionPolicySync, policies: Mapping[str, EnforcedPolicy], now: datetime = NOW) -> None:
    asyncio.run(s.sync(policies, now))


def test_one_pair_owned_by_every_enforce_policy_and_rewritten_only_on_change() -> None:
    writer = Writer()
    s = AdmissionPolicySync(NAME, writer, [])
    both = {"a": EnforcedPolicy("uid-a", ENFORCE), "b": EnforcedPolicy("uid-b", ENFORCE), "w": EnforcedPolicy("uid-w", WARN)}
    sync(s, both)
    assert [(o["kind"], o["metadata"]["name"]) for o in writer.put] == [
        ("ValidatingAdmissionPolicy", NAME), ("ValidatingAdmissionPolicyBinding", NAME)]
    for obj in writer.put:
        owners = obj["metadata"]["ownerReferences"]
        assert [(o["kind"], o["name"], o["uid"]) for o in owners] == [
            ("ReadinessPolicy", "a", "uid-a"), ("ReadinessPolicy", "b", "uid-b")]  # not the Warn policy
        assert all("controller" not in o and "blockOwnerDeletion" not in o for o in owners)  # GC: after all owners
    assert s.policies == ("a", "b")
    sync(s, both, NOW + timedelta(minutes=1))
    assert len(writer.put) == 2  # unchanged: not rewritten
    sync(s, {"a": both["a"]}, NOW + timedelta(minutes=2))
    assert len(writer.put) == 4 and s.policies == ("a",)  # b's rules (and its owner reference) left
    assert [o["name"] for o in writer.put[-1]["metadata"]["ownerReferences"]] == ["a"]
    sync(s, {"a": both["a"]}, NOW + timedelta(minutes=2) + REWRITE_AFTER + timedelta(seconds=1))
    assert len(writer.put) == 6  # re-put now and then, in case it was removed
    assert writer.deleted == []
    sync(s, {"w": both["w"]}, NOW + timedelta(minutes=10))
    assert writer.deleted == [("ValidatingAdmissionPolicyBinding", NAME), ("ValidatingAdmissionPolicy", NAME)]


def test_first_sync_without_enforce_policy_removes_leftovers() -> None:
    writer = Writer()
    sync(AdmissionPolicySync(NAME, writer, []), {})
    assert writer.put == [] and writer.deleted == [
        ("ValidatingAdmissionPolicyBinding", NAME), ("ValidatingAdmissionPolicy", NAME)]


def test_a_foreign_object_of_our_name_is_skipped_not_fatal() -> None:
    writer = Writer(foreign={"ValidatingAdmissionPolicy"})
    s = AdmissionPolicySync(NAME, writer, [])
    sync(s, {"victim": EnforcedPolicy("u", ENFORCE)})
    assert writer.put == []  # nor our binding: it would bind the foreign policy to Deployments
    assert s.foreign == {"ValidatingAdmissionPolicy"}


def test_requeue_for_the_rewrite_and_the_next_exemption_expiry() -> None:
    expiring = ReadinessPolicySpec.model_validate({
        "mode": "Enforce", "rules": {"probes": {}},
        "exemptions": [{"checks": ["probe-liveness"], "names": ["x"], "reason": "r", "expires": "2026-01-01T00:01:00Z"}]})
    s = AdmissionPolicySync(NAME, Writer(), [])
    sync(s, {"a": EnforcedPolicy("u", ENFORCE)})
    assert s.requeue_after(NOW) == REWRITE_AFTER.total_seconds()
    sync(s, {"a": EnforcedPolicy("u", expiring)})
    assert s.requeue_after(NOW) == 60.0
