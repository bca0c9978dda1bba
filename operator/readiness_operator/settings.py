"""Operator-wide settings from the environment (the chart sets these; see docs/operations.md).

Every variable is `READINESS_<FIELD>` except where an alias says otherwise; an empty variable counts as
unset. Invalid values stop start-up with a pydantic error naming the variable.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["ALWAYS_EXCLUDED", "Settings"]

ALWAYS_EXCLUDED = ("kube-system",)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="READINESS_", env_ignore_empty=True, frozen=True, extra="ignore", populate_by_name=True,
    )

    namespace: str = "readiness-system"
    webhook_port: int | None = None
    webhook_addr: str = "0.0.0.0"
    webhook_service: str = "readiness-operator-webhook"
    webhook_url: str | None = None  # e.g. https://127.0.0.1:9443 when the API server reaches us directly
    webhook_configuration: str = "readiness-operator"
    failure_policy: Literal["Ignore", "Fail"] = Field(default="Ignore", validation_alias=AliasChoices(
        "READINESS_WEBHOOK_FAILURE_POLICY", "failure_policy"))
    timeout_seconds: int = Field(default=5, ge=1, le=30, validation_alias=AliasChoices(
        "READINESS_WEBHOOK_TIMEOUT_SECONDS", "timeout_seconds"))
    exclude_namespaces: Annotated[tuple[str, ...], NoDecode] = Field(default=(), validation_alias=AliasChoices(
        "READINESS_WEBHOOK_EXCLUDE_NAMESPACES", "exclude_namespaces"))
    tls: Literal["self-signed", "cert-manager"] = Field(default="self-signed", validation_alias=AliasChoices(
        "READINESS_WEBHOOK_TLS", "tls"))
    cert_dir: str | None = Field(default=None, validation_alias=AliasChoices("READINESS_WEBHOOK_CERT_DIR", "cert_dir"))
    cert_secret: str | None = Field(default=None, validation_alias=AliasChoices("READINESS_WEBHOOK_CERT_SECRET", "cert_secret"))
    # The self-signed certificate's lifetime, and when (a fraction of it) the leader renews it; how
    # often every replica looks for a new certificate (Secret or files; default: a twentieth of the
    # lifetime, between 1 and 30 s).
    webhook_cert_lifetime_seconds: float = Field(default=365 * 86400, ge=10)
    webhook_cert_renew_fraction: float = Field(default=2 / 3, ge=0.1, le=0.9)
    webhook_cert_check_seconds: float | None = Field(default=None, gt=0, le=3600)
    vap: bool = True
    # The one ValidatingAdmissionPolicy and binding holding every Enforce policy (the chart: its fullname).
    vap_name: str = "readiness-operator"
    prometheus_url: str | None = None  # used by policies without spec.prometheus.url
    # Secrets ("namespace/name") policies may name for Prometheus credentials; the chart grants `get`
    # on exactly these. Any other Secret, and always the webhook's own TLS Secret, is refused.
    prometheus_secrets: Annotated[tuple[str, ...], NoDecode] = ()
    # This pod's name (the chart sets READINESS_POD_NAME from the downward API): the leader-election identity.
    pod_name: str | None = Field(default=None, validation_alias=AliasChoices(
        "READINESS_POD_NAME", "POD_NAME", "POD_ID", "pod_name"))
    log_level: Literal["debug", "info", "warning", "error"] | None = None
    # How often each policy re-judges every Deployment although no watch event asked for it. The
    # reader's fresh LIST after a lost watch already catches what a watch missed, exemption expiry
    # has its own timer and SLO ticks mark what they moved: this is a safety net, and at 10,000
    # Deployments each full pass costs seconds of CPU (docs/benchmarks.md).
    resync_seconds: float = Field(default=3600.0, ge=30, le=86400)
    # The read-only readiness page (kube/page_server.py) on its own port; unset or 0: not served.
    page_port: int | None = Field(default=None, ge=0, le=65535)
    page_addr: str = "0.0.0.0"
    # One readiness_deployment_slo_budget_remaining series per (policy, SLO, Deployment): opt-in,
    # since it grows with the Deployments (docs/operations.md, "Metrics").
    metrics_deployment_slo_budgets: bool = False

    @field_validator("webhook_port", "page_port")
    @classmethod
    def _port(cls, value: int | None) -> int | None:
        return value or None  # 0: not served

    @field_validator("exclude_namespaces", "prometheus_secrets", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(n.strip() for n in value.split(",") if n.strip())
        return value

    @field_validator("prometheus_secrets")
    @classmethod
    def _namespaced_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for ref in value:
            namespace, slash, name = ref.partition("/")
            if not slash or not namespace or not name or "/" in name:
                raise ValueError(f"{ref!r} is not namespace/name")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def allowed_prometheus_secrets(self) -> frozenset[tuple[str, str]]:
        """The Secrets a policy may name, minus the webhook's own TLS Secret (never sent anywhere)."""
        own = (self.namespace, self.cert_secret) if self.cert_secret else None
        pairs = {(ns, name) for ns, _, name in (ref.partition("/") for ref in self.prometheus_secrets)}
        return frozenset(pairs - {own} if own else pairs)

    @property
    def cert_check_interval(self) -> float:
        """Seconds between two looks for a renewed webhook certificate."""
        if self.webhook_cert_check_seconds is not None:
            return self.webhook_cert_check_seconds
        return min(30.0, max(1.0, self.webhook_cert_lifetime_seconds / 20))

    @property
    def excluded_namespaces(self) -> tuple[str, ...]:
        """Never judged: kube-system, the operator's own namespace and the configured ones."""
        return tuple(dict.fromkeys((*ALWAYS_EXCLUDED, self.namespace, *self.exclude_namespaces)))

    @classmethod
    def from_env(cls, webhook_port: int | None = None) -> Settings:
        """The environment's settings; a command-line webhook port wins over READINESS_WEBHOOK_PORT."""
        return cls(webhook_port=webhook_port) if webhook_port else cls()
