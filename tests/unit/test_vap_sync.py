"""The one writer of the merged VAP + binding: writes only differences, puts the chart's placeholders
back when no Enforce policy is left (never deletes), leaves a foreign object of its name alone, and
reports a missing object it may not create once, retrying quietly."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from readiness_operator.admission.vap import placeholder_objects
from readiness_operator.kube.api import AdmissionObjectMissing, ForeignObject, ours, replacement
from readiness_operator.kube.vap_sync import FOREIGN_RETRY, REWRITE_AFTER, AdmissionPolicySync, EnforcedPolicy
from readiness_operator.model import ReadinessPolicySpec

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ENFORCE = ReadinessPolicySpec.model_validate({"mode": "Enforce", "rules": {"probes": {}}})
WARN = ReadinessPolicySpec.model_validate({"mode": "Warn", "rules": {"probes": {}}})
NAME = "readiness-operator"


class Writer:
    """A fake cluster holding the chart's placeholders; `absent` kinds do not exist, and creating
    them is forbidden (the chart's ServiceAccount) unless `may_create`."""

    def __init__(self, foreign: set[str] | None = None, absent: set[str] | None = None, may_create: bool = False) -> None:
        self.put: list[dict[str, Any]] = []
        self.refused: list[tuple[str, bool]] = []  # (kind, create) of each put that changed nothing
        self.foreign, self.absent, self.may_create = foreign or set(), absent or set(), may_create

    async def put_admission_object(self, obj: Mapping[str, Any], *, create: bool = True) -> bool:
        kind = str(obj["kind"])
        if kind in self.foreign:
            self.refused.append((kind, create))
            raise ForeignObject(f"{kind} is not ours")
        if kind in self.absent:
            self.refused.append((kind, create))
            if not create:
                return False
            if not self.may_create:
                raise AdmissionObjectMissing(kind, NAME)
            self.absent.discard(kind)
        self.put.append(dict(obj))
        return True


def sync(s: AdmissionPolicySync, policies: Mapping[str, EnforcedPolicy], now: datetime = NOW) -> None:
    asyncio.run(s.sync(policies, now))


def kinds(objects: list[dict[str, Any]]) -> list[str]:
    return [o["kind"] for o in objects]


def test_one_pair_for_every_enforce_policy_rewritten_only_on_change_and_never_deleted() -> None:
    writer = Writer()
    s = AdmissionPolicySync(NAME, writer, [])
    both = {"a": EnforcedPolicy("uid-a", ENFORCE), "b": EnforcedPolicy("uid-b", ENFORCE), "w": EnforcedPolicy("uid-w", WARN)}
    sync(s, both)
    assert [(o["kind"], o["metadata"]["name"]) for o in writer.put] == [
        ("ValidatingAdmissionPolicy", NAME), ("ValidatingAdmissionPolicyBinding", NAME)]  # the policy first
    assert all("ownerReferences" not in o["metadata"] for o in writer.put)  # the release owns them, not the GC
    assert s.policies == ("a", "b")  # not the Warn policy
    sync(s, both, NOW + timedelta(minutes=1))
    assert len(writer.put) == 2  # unchanged: not rewritten
    sync(s, {"a": both["a"]}, NOW + timedelta(minutes=2))
    assert len(writer.put) == 4 and s.policies == ("a",)  # b's rules left
    sync(s, {"a": both["a"]}, NOW + timedelta(minutes=2) + REWRITE_AFTER + timedelta(seconds=1))
    assert len(writer.put) == 6  # re-put now and then, in case it was changed
    sync(s, {"w": both["w"]}, NOW + timedelta(minutes=10))
    # No Enforce policy left: the placeholders, the policy first, and the binding the same as before.
    assert writer.put[6:] == placeholder_objects(NAME, [])
    assert kinds(writer.put[6:]) == ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"]
    assert writer.put[7] == writer.put[5]
    assert "validations" not in writer.put[6]["spec"]  # nothing to deny with
    sync(s, {"w": both["w"]}, NOW + timedelta(minutes=11))
    assert len(writer.put) == 8  # the placeholders are not rewritten either


def test_first_sync_without_enforce_policy_neutralises_leftovers_but_creates_nothing() -> None:
    writer = Writer()
    sync(AdmissionPolicySync(NAME, writer, []), {})
    assert writer.put == placeholder_objects(NAME, [])
    absent = Writer(absent={"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}, may_create=True)
    s = AdmissionPolicySync(NAME, absent, [])
    sync(s, {})
    assert absent.put == [] and s.missing == set()  # nothing absent enforces anything: nothing to create
    assert absent.refused == [("ValidatingAdmissionPolicy", False), ("ValidatingAdmissionPolicyBinding", False)]


def test_a_foreign_object_of_our_name_is_skipped_not_fatal() -> None:
    writer = Writer(foreign={"ValidatingAdmissionPolicy"})
    s = AdmissionPolicySync(NAME, writer, [])
    sync(s, {"victim": EnforcedPolicy("u", ENFORCE)})
    assert writer.put == []  # nor our binding: it would bind the foreign policy to Deployments
    assert s.foreign == {"ValidatingAdmissionPolicy"}
    sync(s, {})  # no placeholder binding either
    assert writer.put == []


def test_a_missing_object_is_created_where_allowed_and_otherwise_reported_once(caplog: pytest.LogCaptureFixture) -> None:
    admin = Writer(absent={"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}, may_create=True)
    sync(AdmissionPolicySync(NAME, admin, []), {"a": EnforcedPolicy("u", ENFORCE)})  # outside the chart: created
    assert kinds(admin.put) == ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"]

    chart = Writer(absent={"ValidatingAdmissionPolicy"})  # someone deleted the chart's policy
    s = AdmissionPolicySync(NAME, chart, [])
    with caplog.at_level(logging.INFO, logger="readiness_operator.kube.vap_sync"):
        for minute in range(3):
            sync(s, {"a": EnforcedPolicy("u", ENFORCE)}, NOW + timedelta(minutes=minute))
            assert s.requeue_after(NOW + timedelta(minutes=minute)) == FOREIGN_RETRY.total_seconds()
    assert chart.put == []  # no binding for an absent policy
    assert chart.refused == [("ValidatingAdmissionPolicy", True)] * 3  # tried again on every pass...
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1  # ...reported once, naming the object and the chart value
    assert f"ValidatingAdmissionPolicy {NAME} does not exist" in errors[0] and "vap.name" in errors[0]
    chart.absent.clear()  # `helm upgrade` restored it
    sync(s, {"a": EnforcedPolicy("u", ENFORCE)}, NOW + timedelta(minutes=4))
    assert kinds(chart.put) == ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"] and s.missing == set()


def test_the_replacement_keeps_others_metadata_and_drops_ours_and_owner_references() -> None:
    current = {"metadata": {"name": NAME, "resourceVersion": "42", "uid": "u",
                            "labels": {"app.kubernetes.io/managed-by": "readiness-operator", "helm.sh/chart": "c-1"},
                            "annotations": {"meta.helm.sh/release-name": "r", "readiness.dev/policies": "a,b"},
                            "ownerReferences": [{"kind": "ReadinessPolicy", "name": "a"}]}}
    _, binding = placeholder_objects(NAME, [])
    body = replacement(current, binding)
    assert body["spec"] == binding["spec"]
    assert body["metadata"] == {
        "name": NAME, "resourceVersion": "42",
        "labels": {"app.kubernetes.io/managed-by": "readiness-operator", "helm.sh/chart": "c-1"},
        "annotations": {"meta.helm.sh/release-name": "r"},
    }  # Helm's release annotations and labels stay; the stale list of policies and the owner reference go
    current["metadata"]["labels"] = {"app.kubernetes.io/managed-by": "Helm", "app.kubernetes.io/part-of": "readiness-operator"}
    assert ours(current)  # the chart's
    assert replacement(current, binding)["metadata"]["labels"] == current["metadata"]["labels"]  # still Helm's


def test_ours_is_the_operators_label_or_our_charts() -> None:
    def labelled(**labels: str) -> dict[str, Any]:
        return {"metadata": {"labels": {f"app.kubernetes.io/{k.replace('_', '-')}": v for k, v in labels.items()}}}

    assert ours(labelled(managed_by="readiness-operator"))
    assert ours(labelled(managed_by="Helm", part_of="readiness-operator"))
    assert not ours(labelled(managed_by="Helm", part_of="kyverno"))  # another chart's
    assert not ours(labelled(part_of="readiness-operator"))
    assert not ours({"metadata": {"labels": {"team": "security"}}})


def test_requeue_for_the_rewrite_and_the_next_exemption_expiry() -> None:
    expiring = ReadinessPolicySpec.model_validate({
        "mode": "Enforce", "rules": {"probes": {}},
        "exemptions": [{"checks": ["probe-liveness"], "names": ["x"], "reason": "r", "expires": "2026-01-01T00:01:00Z"}]})
    s = AdmissionPolicySync(NAME, Writer(), [])
    sync(s, {"a": EnforcedPolicy("u", ENFORCE)})
    assert s.requeue_after(NOW) == REWRITE_AFTER.total_seconds()
    sync(s, {"a": EnforcedPolicy("u", expiring)})
    assert s.requeue_after(NOW) == 60.0
