"""Operator-wide settings from the environment (the chart sets these; see docs/operations.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

ALWAYS_EXCLUDED = ("kube-system",)
IGNORE_LABEL = "readiness.dev/ignore"


def _bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Settings:
    namespace: str = "readiness-system"
    webhook_port: int | None = None
    webhook_addr: str = "0.0.0.0"
    webhook_service: str = "readiness-operator-webhook"
    webhook_url: str | None = None  # e.g. https://127.0.0.1:9443 when the API server reaches us directly
    webhook_configuration: str = "readiness-operator"
    failure_policy: str = "Ignore"
    timeout_seconds: int = 5
    exclude_namespaces: tuple[str, ...] = field(default_factory=tuple)
    tls: str = "self-signed"
    cert_dir: str | None = None
    cert_secret: str | None = None
    vap: bool = True

    @property
    def excluded_namespaces(self) -> tuple[str, ...]:
        """Never judged: kube-system, the operator's own namespace and the configured ones."""
        return tuple(dict.fromkeys((*ALWAYS_EXCLUDED, self.namespace, *self.exclude_namespaces)))

    @classmethod
    def from_env(cls, webhook_port: int | None = None) -> Settings:
        env = os.environ.get
        port = webhook_port or (int(env("READINESS_WEBHOOK_PORT", "0")) or None)
        policy = env("READINESS_WEBHOOK_FAILURE_POLICY", "Ignore")
        if policy not in ("Ignore", "Fail"):
            raise ValueError(f"READINESS_WEBHOOK_FAILURE_POLICY must be Ignore or Fail, not {policy!r}")
        timeout = int(env("READINESS_WEBHOOK_TIMEOUT_SECONDS", "5"))
        if not 1 <= timeout <= 30:
            raise ValueError(f"READINESS_WEBHOOK_TIMEOUT_SECONDS must be 1-30, not {timeout}")
        tls = env("READINESS_WEBHOOK_TLS", "self-signed")
        if tls not in ("self-signed", "cert-manager"):
            raise ValueError(f"READINESS_WEBHOOK_TLS must be self-signed or cert-manager, not {tls!r}")
        excluded = tuple(n.strip() for n in env("READINESS_WEBHOOK_EXCLUDE_NAMESPACES", "").split(",") if n.strip())
        return cls(
            namespace=env("READINESS_NAMESPACE", "readiness-system"),
            webhook_port=port,
            webhook_addr=env("READINESS_WEBHOOK_ADDR", "0.0.0.0"),
            webhook_service=env("READINESS_WEBHOOK_SERVICE", "readiness-operator-webhook"),
            webhook_url=env("READINESS_WEBHOOK_URL") or None,
            webhook_configuration=env("READINESS_WEBHOOK_CONFIGURATION", "readiness-operator"),
            failure_policy=policy,
            timeout_seconds=timeout,
            exclude_namespaces=excluded,
            tls=tls,
            cert_dir=env("READINESS_WEBHOOK_CERT_DIR") or None,
            cert_secret=env("READINESS_WEBHOOK_CERT_SECRET") or None,
            vap=_bool("READINESS_VAP", True),
        )


#: The settings in force, set once by `readiness-operator run` before handlers start.
CURRENT = Settings()
