"""The webhook's serving certificate: cert-manager files, a shared Secret, or freshly made.

With `self-signed` TLS the CA and certificate live in a Secret of the operator's namespace, so
every replica serves the same certificate and a restart keeps the `caBundle` valid; they are
renewed 30 days before expiry.
"""

from __future__ import annotations

import base64
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import kubernetes
from kubernetes.client.exceptions import ApiException

from readiness_operator.admission.certs import ServingCertificate, expires_within, generate
from readiness_operator.names import MANAGED_BY_LABELS
from readiness_operator.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServingFiles:
    certfile: Path
    keyfile: Path
    ca_pem: bytes


def _hosts(settings: Settings) -> list[str]:
    svc = f"{settings.webhook_service}.{settings.namespace}"
    return [f"{svc}.svc", f"{svc}.svc.cluster.local", svc, settings.webhook_service, "127.0.0.1", "localhost"]


def _write(cert: ServingCertificate, directory: Path) -> tuple[Path, Path]:
    """Write cert and key (0600) for an SSL context; returns (certfile, keyfile)."""
    directory.mkdir(parents=True, exist_ok=True)
    certfile, keyfile = directory / "tls.crt", directory / "tls.key"
    certfile.write_bytes(cert.cert_pem)
    keyfile.touch(mode=0o600)
    keyfile.write_bytes(cert.key_pem)
    return certfile, keyfile


def _from_secret(settings: Settings, client: kubernetes.client.ApiClient) -> ServingCertificate:
    api = kubernetes.client.CoreV1Api(client)
    name = settings.cert_secret
    assert name is not None
    try:
        secret = api.read_namespaced_secret(name, settings.namespace)
        data = secret.data or {}
        if all(k in data for k in ("ca.crt", "tls.crt", "tls.key")):
            current = ServingCertificate(*(base64.b64decode(data[k]) for k in ("ca.crt", "tls.crt", "tls.key")))
            if not expires_within(current.cert_pem, 30):
                return current
        fresh = generate(_hosts(settings))
        secret.data = _secret_data(fresh)
        api.replace_namespaced_secret(name, settings.namespace, secret)
        return fresh
    except ApiException as exc:
        if exc.status != 404:
            raise
    fresh = generate(_hosts(settings))
    body = kubernetes.client.V1Secret(
        metadata=kubernetes.client.V1ObjectMeta(name=name, namespace=settings.namespace,
                                                labels=dict(MANAGED_BY_LABELS)),
        type="kubernetes.io/tls", data=_secret_data(fresh),
    )
    try:
        api.create_namespaced_secret(settings.namespace, body)
        return fresh
    except ApiException as exc:  # another replica created it first: use theirs
        if exc.status != 409:
            raise
        return _from_secret(settings, client)


def _secret_data(cert: ServingCertificate) -> dict[str, bytes | str]:
    return {k: base64.b64encode(v).decode() for k, v in
            (("ca.crt", cert.ca_pem), ("tls.crt", cert.cert_pem), ("tls.key", cert.key_pem))}


def serving_files(settings: Settings, client: kubernetes.client.ApiClient) -> ServingFiles:
    if settings.tls == "cert-manager":
        if not settings.cert_dir:
            raise ValueError("READINESS_WEBHOOK_TLS=cert-manager needs READINESS_WEBHOOK_CERT_DIR")
        directory = Path(settings.cert_dir)
        return ServingFiles(directory / "tls.crt", directory / "tls.key", (directory / "ca.crt").read_bytes())
    cert = _from_secret(settings, client) if settings.cert_secret else generate(_hosts(settings))
    certfile, keyfile = _write(cert, Path(tempfile.mkdtemp(prefix="readiness-webhook-")))
    return ServingFiles(certfile, keyfile, cert.ca_pem)
