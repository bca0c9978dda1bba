"""Self-signed CA and serving certificate for the webhook, made with `cryptography`.

kopf's own self-signed certificates need `oscrypto`, which fails on OpenSSL >= 3.0.10, so the
operator makes its own: a CA whose PEM goes into the webhook configuration's `caBundle`, and a
serving certificate for the Service DNS names and any IPs (the API server checks IP SANs).

Rotation is decided here too, as pure functions of PEM bytes and a clock: when a certificate is due
for renewal (a fraction of its lifetime), which CAs the webhook configuration's `caBundle` must
trust while an old and a new certificate are both in use, and whether a served bundle already
trusts a new certificate (only then may a replica switch to it without failing a request).
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class ServingCertificate:
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


DEFAULT_LIFETIME = datetime.timedelta(days=365)
#: Certificates start a little in the past, for clocks slightly behind ours (at most a tenth of the lifetime).
MAX_BACKDATE = datetime.timedelta(minutes=5)


def generate(hosts: list[str], lifetime: datetime.timedelta = DEFAULT_LIFETIME,
             common_name: str = "readiness-operator", now: datetime.datetime | None = None) -> ServingCertificate:
    """Make a CA and a serving certificate for `hosts` (DNS names or IP addresses), both valid for `lifetime`."""
    now = now or datetime.datetime.now(datetime.UTC)
    not_before = now - min(MAX_BACKDATE, lifetime / 10)
    not_after = now + lifetime

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"{common_name}-ca")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )

    alt_names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0] if hosts else common_name))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    return ServingCertificate(
        ca_pem=ca_cert.public_bytes(serialization.Encoding.PEM),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )


def _now(now: datetime.datetime | None) -> datetime.datetime:
    return now or datetime.datetime.now(datetime.UTC)


def split_pem(bundle: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle (empty for no or unreadable input)."""
    try:
        return x509.load_pem_x509_certificates(bundle) if bundle.strip() else []
    except ValueError:
        return []


def not_after(cert_pem: bytes) -> datetime.datetime:
    """When the (first) certificate in `cert_pem` expires."""
    return x509.load_pem_x509_certificate(cert_pem).not_valid_after_utc


def renewal_due(cert_pem: bytes, renew_fraction: float) -> datetime.datetime:
    """When a certificate should be replaced: `renew_fraction` of the way through its validity."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return start + (end - start) * renew_fraction


def expired(cert_pem: bytes, now: datetime.datetime | None = None) -> bool:
    return not_after(cert_pem) <= _now(now)


def issued_by(cert_pem: bytes, bundle: bytes) -> bool:
    """Whether a CA in `bundle` signed the serving certificate (a cert and key half-replaced on disk
    with an old ca.crt would not be, and must not be served yet)."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    for ca in split_pem(bundle):
        try:
            cert.verify_directly_issued_by(ca)
            return True
        except (ValueError, TypeError, InvalidSignature):
            continue
    return False


def trust_bundle(bundles: Iterable[bytes], now: datetime.datetime | None = None) -> bytes:
    """One PEM bundle with every unexpired CA of `bundles`, first seen first, without duplicates.

    Published while a replica may still serve the old certificate and another the new one, so the
    API server trusts both."""
    seen: set[bytes] = set()
    out: list[bytes] = []
    for bundle in bundles:
        for cert in split_pem(bundle):
            der = cert.public_bytes(serialization.Encoding.DER)
            if der in seen or cert.not_valid_after_utc <= _now(now):
                continue
            seen.add(der)
            out.append(cert.public_bytes(serialization.Encoding.PEM))
    return b"".join(out)


def trusts(published: bytes, ca_bundle: bytes) -> bool:
    """Whether every CA of `ca_bundle` is in the `published` bundle (the webhook configuration's)."""
    have = {c.public_bytes(serialization.Encoding.DER) for c in split_pem(published)}
    wanted = [c.public_bytes(serialization.Encoding.DER) for c in split_pem(ca_bundle)]
    return bool(wanted) and all(der in have for der in wanted)
