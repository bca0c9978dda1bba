"""The webhook's serving certificate: loaded, renewed and swapped while the server keeps running.

Where it comes from (a `MaterialSource`):

- `cert-manager`: files mounted from the Secret cert-manager renews (kubelet replaces them in place);
- `self-signed` with a Secret (the chart's default): a CA and certificate in a Secret of the
  operator's namespace, shared by every replica; the leader renews it at `renew_fraction` of its
  lifetime (default two thirds, so months before a one-year certificate expires);
- `self-signed` without a Secret: made in memory, renewed the same way.

Every replica polls its source (`Settings.cert_check_interval`). A new certificate is served only
once the ValidatingWebhookConfiguration's `caBundle` trusts its CA: the leader publishes a bundle
holding the new CA next to the old ones (a CA leaves the bundle only when it expires), every
replica reads the published bundle and switches after `SETTLE_SECONDS`, so the API server never
meets a certificate it does not trust, whichever replica it calls. Switching swaps the SSL context
new handshakes use (an SNI callback); the listening socket and open connections are untouched.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import logging
import os
import ssl
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import kubernetes
from kubernetes.client.exceptions import ApiException

from readiness_operator.admission.certs import (
    expired,
    generate,
    issued_by,
    not_after,
    renewal_due,
    trust_bundle,
    trusts,
)
from readiness_operator.names import MANAGED_BY_LABELS
from readiness_operator.settings import Settings

from .metrics import OperatorMetrics

log = logging.getLogger(__name__)

#: Seconds between the published caBundle trusting a new CA and a replica serving the new
#: certificate: the API server learns webhook configurations through a watch (well under a second).
SETTLE_SECONDS: Final = 2.0
SECRET_KEYS: Final = ("ca.crt", "tls.crt", "tls.key")


@dataclass(frozen=True)
class ServingMaterial:
    ca_bundle: bytes  # the CA(s) a client must trust for cert_pem
    cert_pem: bytes
    key_pem: bytes


class MaterialSource(Protocol):
    def load(self) -> ServingMaterial:
        """The current certificate (blocking; raises when it cannot be read)."""

    def renew(self) -> None:
        """Replace the certificate when it is due (called on the leader only; blocking)."""


def hosts(settings: Settings) -> list[str]:
    svc = f"{settings.webhook_service}.{settings.namespace}"
    return [f"{svc}.svc", f"{svc}.svc.cluster.local", svc, settings.webhook_service, "127.0.0.1", "localhost"]


def _lifetime(settings: Settings) -> datetime.timedelta:
    return datetime.timedelta(seconds=settings.webhook_cert_lifetime_seconds)


def _due(material: ServingMaterial, settings: Settings) -> bool:
    return datetime.datetime.now(datetime.UTC) >= renewal_due(material.cert_pem, settings.webhook_cert_renew_fraction)


class FileSource:
    """tls.crt, tls.key and ca.crt in a directory (cert-manager's Secret, mounted); without ca.crt
    the certificate chain is its own trust anchor."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def load(self) -> ServingMaterial:
        cert, key = (self.directory / "tls.crt").read_bytes(), (self.directory / "tls.key").read_bytes()
        ca_file = self.directory / "ca.crt"
        ca = ca_file.read_bytes() if ca_file.exists() else b""
        return ServingMaterial(ca if ca.strip() else cert, cert, key)

    def renew(self) -> None:
        """cert-manager renews; nothing to do here."""


class MemorySource:
    """A self-signed certificate of this process only (no Secret configured)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.material = _fresh(settings)

    def load(self) -> ServingMaterial:
        return self.material

    def renew(self) -> None:
        if _due(self.material, self.settings):
            self.material = _fresh(self.settings)
            log.info("renewed the in-memory webhook certificate")


def _fresh(settings: Settings) -> ServingMaterial:
    cert = generate(hosts(settings), lifetime=_lifetime(settings))
    return ServingMaterial(cert.ca_pem, cert.cert_pem, cert.key_pem)


class SecretSource:
    """The self-signed CA and certificate in a Secret every replica reads; the leader renews it."""

    def __init__(self, settings: Settings, client: kubernetes.client.ApiClient) -> None:
        assert settings.cert_secret is not None
        self.settings, self.name = settings, settings.cert_secret
        self.api = kubernetes.client.CoreV1Api(client)

    def _read(self) -> Any | None:
        try:
            return self.api.read_namespaced_secret(self.name, self.settings.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def load(self) -> ServingMaterial:
        """The Secret's certificate; created when absent, replaced when unusable or expired."""
        for _ in range(3):
            secret = self._read()
            if secret is None:
                fresh = _fresh(self.settings)
                if self._create(fresh):
                    return fresh
                continue  # another replica created it first: use theirs
            material = _material_of(secret)
            if material is not None and not expired(material.cert_pem):
                return material
            fresh = _fresh(self.settings)
            if self._replace(secret, fresh):
                return fresh
        raise RuntimeError(f"could not settle the webhook certificate Secret {self.name} (concurrent writers)")

    def renew(self) -> None:
        secret = self._read()
        material = _material_of(secret) if secret is not None else None
        if material is not None and not _due(material, self.settings):
            return
        if secret is None:
            return  # load() creates it
        fresh = _fresh(self.settings)
        if self._replace(secret, fresh):
            log.info("renewed the webhook certificate in Secret %s/%s (valid until %s)", self.settings.namespace,
                     self.name, not_after(fresh.cert_pem).isoformat())

    def _create(self, fresh: ServingMaterial) -> bool:
        body = kubernetes.client.V1Secret(
            metadata=kubernetes.client.V1ObjectMeta(name=self.name, namespace=self.settings.namespace,
                                                    labels=dict(MANAGED_BY_LABELS)),
            type="kubernetes.io/tls", data=_secret_data(fresh),
        )
        try:
            self.api.create_namespaced_secret(self.settings.namespace, body)
            return True
        except ApiException as exc:
            if exc.status != 409:
                raise
            return False

    def _replace(self, secret: Any, fresh: ServingMaterial) -> bool:
        """Replace at the read resourceVersion: of two replicas renewing at once, one wins."""
        secret.data = _secret_data(fresh)
        try:
            self.api.replace_namespaced_secret(self.name, self.settings.namespace, secret)
            return True
        except ApiException as exc:
            if exc.status != 409:
                raise
            return False


def _material_of(secret: Any) -> ServingMaterial | None:
    data = secret.data or {}
    if not all(k in data for k in SECRET_KEYS):
        return None
    try:
        ca, cert, key = (base64.b64decode(data[k]) for k in SECRET_KEYS)
        not_after(cert)
    except ValueError:
        return None
    return ServingMaterial(ca, cert, key)


def _secret_data(material: ServingMaterial) -> dict[str, bytes | str]:
    values = (("ca.crt", material.ca_bundle), ("tls.crt", material.cert_pem), ("tls.key", material.key_pem))
    return {k: base64.b64encode(v).decode() for k, v in values}


def source_for(settings: Settings, client: kubernetes.client.ApiClient) -> MaterialSource:
    if settings.tls == "cert-manager":
        if not settings.cert_dir:
            raise ValueError("READINESS_WEBHOOK_TLS=cert-manager needs READINESS_WEBHOOK_CERT_DIR")
        return FileSource(Path(settings.cert_dir))
    return SecretSource(settings, client) if settings.cert_secret else MemorySource(settings)


def ssl_context(material: ServingMaterial) -> ssl.SSLContext:
    """A server context for `material` (raises ssl.SSLError when key and certificate do not match).

    `load_cert_chain` reads files only: they live in a private directory for the moment it takes."""
    context = ssl.create_default_context(purpose=ssl.Purpose.CLIENT_AUTH)
    with tempfile.TemporaryDirectory(prefix="readiness-webhook-") as tmp:
        certfile, keyfile = Path(tmp, "tls.crt"), Path(tmp, "tls.key")
        certfile.write_bytes(material.cert_pem)
        fd = os.open(keyfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(material.key_pem)
        context.load_cert_chain(certfile, keyfile)
    return context


PublishedReader = Callable[[], Awaitable[bytes]]
Publisher = Callable[[bytes], Awaitable[None]]


class ServingCertificates:
    """The certificate this replica serves, and the rotation to the next one (see the module doc)."""

    def __init__(self, source: MaterialSource, settings: Settings, metrics: OperatorMetrics) -> None:
        self.source, self.settings, self.metrics = source, settings, metrics
        self.serving: ServingMaterial | None = None
        self.candidate: ServingMaterial | None = None
        self._trusted_since: float | None = None
        self._current: ssl.SSLContext | None = None
        self.listening: ssl.SSLContext | None = None

    def start(self) -> ssl.SSLContext:
        """Load the first certificate (blocking); the returned context is the server's for good."""
        material = self.source.load()
        self.listening = ssl_context(material)
        self.listening.sni_callback = self._select
        self._serve(material, self.listening)
        return self.listening

    def _select(self, connection: ssl.SSLObject | ssl.SSLSocket, _name: str | None, _ctx: ssl.SSLContext) -> None:
        """Called in every handshake (with or without SNI): hand it the current certificate."""
        if self._current is not None and self._current is not self.listening:
            connection.context = self._current
        return None

    def retired(self, connection: ssl.SSLObject | None) -> bool:
        """Whether a connection's handshake used a certificate this replica no longer serves."""
        if connection is None or self._current is None:
            return False
        return connection.context is not self._current

    def _serve(self, material: ServingMaterial, context: ssl.SSLContext) -> None:
        self.serving, self._current = material, context
        self.metrics.webhook_certificate_expiry.set(not_after(material.cert_pem).timestamp())

    def bundle(self, published: bytes) -> bytes:
        """The caBundle to publish: the candidate's CA, the served one's, and every unexpired CA
        already published (another replica may still serve its certificate)."""
        assert self.serving is not None
        candidate = self.candidate.ca_bundle if self.candidate else b""
        return trust_bundle([candidate, self.serving.ca_bundle, published])

    async def tick(self, leading: bool, read_published: PublishedReader, publish: Publisher) -> bool:
        """One poll: renew (leader), load, publish the bundle (leader), switch once trusted.
        Returns whether this replica switched to a new certificate."""
        assert self.serving is not None
        if leading:
            await asyncio.to_thread(self.source.renew)
        material = await asyncio.to_thread(self.source.load)
        self._consider(material)
        published = await read_published()
        wanted = self.bundle(published)
        if leading and wanted != trust_bundle([published]):
            await publish(wanted)
            published = wanted
        if self.candidate is None:
            return False
        if not (trusts(published, self.candidate.ca_bundle) or expired(self.serving.cert_pem)):
            self._trusted_since = None
            return False
        now = time.monotonic()
        if self._trusted_since is None:
            self._trusted_since = now
        if now - self._trusted_since < SETTLE_SECONDS:
            return False
        try:
            context = ssl_context(self.candidate)
        except ssl.SSLError as exc:
            log.warning("the new webhook certificate cannot be served (%s); keeping the current one", exc)
            self.candidate = None
            return False
        context.sni_callback = None
        self._serve(self.candidate, context)
        self.metrics.webhook_certificate_rotations.inc()
        log.info("serving a new webhook certificate (valid until %s)", not_after(self.candidate.cert_pem).isoformat())
        self.candidate, self._trusted_since = None, None
        return True

    def _consider(self, material: ServingMaterial) -> None:
        """Make `material` the candidate when it is new and whole (a half-replaced set of files,
        certificate and CA not matching, waits for the next poll)."""
        assert self.serving is not None
        if material.cert_pem == self.serving.cert_pem:
            self.candidate, self._trusted_since = None, None
            return
        if material == self.candidate:
            return
        self._trusted_since = None
        if not issued_by(material.cert_pem, material.ca_bundle):
            log.info("the webhook certificate's files are being replaced (certificate and CA do not match yet)")
            self.candidate = None
            return
        self.candidate = material
        log.info("found a new webhook certificate (valid until %s); switching once the caBundle trusts it",
                 not_after(material.cert_pem).isoformat())

    async def run(self, leading: Callable[[], bool], read_published: PublishedReader, publish: Publisher) -> None:
        """Poll forever; a failed poll (API or files unreadable) is logged and retried."""
        while True:
            await asyncio.sleep(self.settings.cert_check_interval)
            try:
                await self.tick(leading(), read_published, publish)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("webhook certificate check failed (retrying in %.0fs): %s",
                            self.settings.cert_check_interval, exc)
