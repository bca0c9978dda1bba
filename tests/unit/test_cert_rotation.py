"""Certificate rotation logic (issue 15 item 5): when to renew, which CAs to publish, when to switch."""

from __future__ import annotations

import asyncio
import datetime
import ssl

import pytest

from readiness_operator.admission.certs import (
    expired,
    generate,
    issued_by,
    not_after,
    renewal_due,
    split_pem,
    trust_bundle,
    trusts,
)
from readiness_operator.kube.metrics import OperatorMetrics
from readiness_operator.kube.tls import MemorySource, ServingCertificates, ServingMaterial
from readiness_operator.settings import Settings

HOSTS = ["127.0.0.1", "localhost"]
NOW = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)


def material(lifetime: datetime.timedelta = datetime.timedelta(hours=1),
             now: datetime.datetime | None = None) -> ServingMaterial:
    cert = generate(HOSTS, lifetime=lifetime, now=now)
    return ServingMaterial(cert.ca_pem, cert.cert_pem, cert.key_pem)


def test_renewal_is_due_at_the_fraction_of_the_lifetime() -> None:
    cert = generate(HOSTS, lifetime=datetime.timedelta(days=365), now=NOW).cert_pem
    assert not_after(cert) == NOW + datetime.timedelta(days=365)
    due = renewal_due(cert, 2 / 3)
    # backdated 5 minutes for clock skew: two thirds of (365 days + 5 minutes) after that
    assert abs(due - (NOW + datetime.timedelta(days=365 * 2 / 3))) < datetime.timedelta(minutes=5)
    assert not_after(cert) - due > datetime.timedelta(days=120), "renewed months before expiry"


def test_a_short_lifetime_is_backdated_by_a_tenth_at_most() -> None:
    cert = generate(HOSTS, lifetime=datetime.timedelta(seconds=60), now=NOW).cert_pem
    assert renewal_due(cert, 0.5) == NOW - datetime.timedelta(seconds=6) + datetime.timedelta(seconds=33)
    assert not expired(cert, NOW + datetime.timedelta(seconds=59))
    assert expired(cert, NOW + datetime.timedelta(seconds=60))


def test_the_trust_bundle_keeps_unexpired_cas_once_each() -> None:
    old = generate(HOSTS, lifetime=datetime.timedelta(seconds=60), now=NOW)
    new = generate(HOSTS, lifetime=datetime.timedelta(seconds=600), now=NOW)
    bundle = trust_bundle([new.ca_pem, old.ca_pem, new.ca_pem + old.ca_pem], now=NOW + datetime.timedelta(seconds=1))
    assert [c.subject for c in split_pem(bundle)] == [c.subject for c in split_pem(new.ca_pem + old.ca_pem)]
    assert len(split_pem(bundle)) == 2
    later = trust_bundle([new.ca_pem, old.ca_pem], now=NOW + datetime.timedelta(seconds=61))
    assert split_pem(later) == split_pem(new.ca_pem), "an expired CA leaves the bundle"
    assert trusts(bundle, new.ca_pem) and trusts(bundle, old.ca_pem) and not trusts(new.ca_pem, old.ca_pem)
    assert not trusts(bundle, b""), "nothing to trust is not trusted"
    assert issued_by(new.cert_pem, bundle) and not issued_by(new.cert_pem, old.ca_pem)


class FakeWebhookConfiguration:
    """What the leader publishes and every replica reads (the ValidatingWebhookConfiguration's caBundle)."""

    def __init__(self) -> None:
        self.bundle = b""
        self.writes = 0

    async def read(self) -> bytes:
        return self.bundle

    async def publish(self, bundle: bytes) -> None:
        self.bundle, self.writes = bundle, self.writes + 1


class FixedSource:
    def __init__(self, current: ServingMaterial) -> None:
        self.current = current

    def load(self) -> ServingMaterial:
        return self.current

    def renew(self) -> None:
        return None


def served_by(certificates: ServingCertificates) -> bytes:
    assert certificates.serving is not None
    return certificates.serving.cert_pem


def test_a_new_certificate_is_served_only_after_the_published_bundle_trusts_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("readiness_operator.kube.tls.SETTLE_SECONDS", 0.0)
    first, second = material(), material()
    source = FixedSource(first)
    leader = ServingCertificates(source, Settings(), OperatorMetrics())
    standby = ServingCertificates(source, Settings(), OperatorMetrics())
    leader.start(), standby.start()
    config = FakeWebhookConfiguration()

    async def tick(certs: ServingCertificates, leading: bool) -> bool:
        return await certs.tick(leading, config.read, config.publish)

    assert not asyncio.run(tick(leader, True)) and trusts(config.bundle, first.ca_bundle)
    source.current = second
    # the standby sees the new certificate first: the published bundle does not trust it yet
    assert not asyncio.run(tick(standby, False)) and served_by(standby) == first.cert_pem
    assert asyncio.run(tick(leader, True)), "the leader publishes the new CA, then switches"
    assert trusts(config.bundle, first.ca_bundle) and trusts(config.bundle, second.ca_bundle)
    assert asyncio.run(tick(standby, False)) and served_by(standby) == second.cert_pem
    writes = config.writes
    assert not asyncio.run(tick(leader, True)) and config.writes == writes, "the old CA stays until it expires"


def test_files_half_replaced_are_not_served(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("readiness_operator.kube.tls.SETTLE_SECONDS", 0.0)
    first, second = material(), material()
    source = FixedSource(first)
    certs = ServingCertificates(source, Settings(), OperatorMetrics())
    certs.start()
    config = FakeWebhookConfiguration()
    source.current = ServingMaterial(first.ca_bundle, second.cert_pem, second.key_pem)  # ca.crt not replaced yet
    assert not asyncio.run(certs.tick(True, config.read, config.publish)) and served_by(certs) == first.cert_pem
    source.current = ServingMaterial(second.ca_bundle, second.cert_pem, first.key_pem)  # key not replaced yet
    assert not asyncio.run(certs.tick(True, config.read, config.publish)) and served_by(certs) == first.cert_pem
    source.current = second
    assert asyncio.run(certs.tick(True, config.read, config.publish)) and served_by(certs) == second.cert_pem


def test_the_in_memory_certificate_renews_when_due_and_the_gauge_follows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("readiness_operator.kube.tls.SETTLE_SECONDS", 0.0)
    settings = Settings(webhook_cert_lifetime_seconds=10, webhook_cert_renew_fraction=0.1)
    metrics = OperatorMetrics()
    source = MemorySource(settings)
    certs = ServingCertificates(source, settings, metrics)
    context = certs.start()
    first = served_by(certs)
    gauge = "readiness_webhook_certificate_expiry_timestamp_seconds"
    assert metrics.registry.get_sample_value(gauge) == not_after(first).timestamp()
    config = FakeWebhookConfiguration()
    assert certs.retired(None) is False

    async def rotate() -> None:
        await asyncio.sleep(1.2)  # past 10 % of 11 s
        assert await certs.tick(True, config.read, config.publish) or await certs.tick(True, config.read, config.publish)

    asyncio.run(rotate())
    assert served_by(certs) != first and issued_by(served_by(certs), config.bundle)
    assert metrics.registry.get_sample_value(gauge) == not_after(served_by(certs)).timestamp()
    assert metrics.registry.get_sample_value("readiness_webhook_certificate_rotations_total") == 1
    assert isinstance(context, ssl.SSLContext) and context is certs.listening


def test_settings_bound_the_lifetime_and_derive_the_check_interval() -> None:
    assert Settings().cert_check_interval == 30
    assert Settings(webhook_cert_lifetime_seconds=60).cert_check_interval == 3
    assert Settings(webhook_cert_lifetime_seconds=10).cert_check_interval == 1
    assert Settings(webhook_cert_check_seconds=0.5).cert_check_interval == 0.5
    with pytest.raises(ValueError, match="webhook_cert_renew_fraction"):
        Settings(webhook_cert_renew_fraction=1.0)
    with pytest.raises(ValueError, match="webhook_cert_lifetime_seconds"):
        Settings(webhook_cert_lifetime_seconds=1)
