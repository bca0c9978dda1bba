"""The ``spec.rules`` groups. A group that is absent means its checks are not evaluated."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, model_validator

from readiness_operator.model.common import KubeModel, Quantity, Severity
from readiness_operator.pss import BASELINE_CAPABILITIES, RESTRICTED_VOLUME_TYPES, SAFE_SYSCTLS, SELINUX_TYPES
from readiness_operator.quantity import parse_quantity

__all__ = [
    "AntiAffinityRule",
    "CapabilitiesRule",
    "EnvRule",
    "GracefulShutdownRule",
    "HorizontalPodAutoscalerRule",
    "HostPathRule",
    "HostPortsRule",
    "ImagesRule",
    "IntOrPercent",
    "LiveStateRule",
    "NetworkPolicyRule",
    "PodDisruptionBudgetRule",
    "PodSecurityRule",
    "PortRange",
    "ProbesRule",
    "ReplicasRule",
    "ResourceBounds",
    "ResourcePair",
    "ResourcesRule",
    "RollingUpdateRule",
    "Rules",
    "SchedulingRule",
    "SeLinuxRule",
    "SecurityContextRule",
    "SysctlsRule",
    "TargetUtilization",
    "VolumeTypesRule",
]

_PERCENT = re.compile(r"^[0-9]+%$")


def _int_or_percent(value: int | str) -> int | str:
    if isinstance(value, str):
        if not _PERCENT.match(value):
            raise ValueError(f"{value!r} must be a non-negative integer or a percentage like '25%'")
        return value
    if value < 0:
        raise ValueError(f"{value} must not be negative")
    return value


#: A non-negative integer or a percentage string (``25%``), like Kubernetes' IntOrString.
IntOrPercent = Annotated[
    int | str,
    AfterValidator(_int_or_percent),
    Field(
        json_schema_extra={
            "x-kubernetes-int-or-string": True,
            "x-kubernetes-validations": [
                {
                    "rule": "type(self) == int ? self >= 0 : self.matches('^[0-9]+%$')",
                    "message": "must be a non-negative integer or a percentage like '25%'",
                }
            ],
        }
    ),
]

_SEVERITY_DOC = "Severity of this group's failed checks; overrides each check's default severity."


class _Group(KubeModel):
    severity: Severity | None = Field(default=None, description=_SEVERITY_DOC)


class ProbesRule(_Group):
    """Require health probes on every (non-init) container."""

    liveness: bool = Field(default=True, description="Require a livenessProbe (check `probe-liveness`).")
    readiness: bool = Field(default=True, description="Require a readinessProbe (check `probe-readiness`).")
    startup: bool = Field(default=False, description="Require a startupProbe (check `probe-startup`).")
    distinct: bool = Field(
        default=False,
        description="The livenessProbe must not probe what the readinessProbe probes (check `probes-distinct`).",
    )


def _bounds_rule() -> dict[str, Any]:
    return {
        "x-kubernetes-validations": [
            {
                "rule": "!has(self.min) || !has(self.max) || "
                "quantity(self.min).compareTo(quantity(self.max)) <= 0",
                "message": "min must be less than or equal to max",
                "fieldPath": ".min",
            }
        ]
    }


class ResourceBounds(KubeModel):
    """Whether one resource must be set on every container, and optional bounds for its value.

    For requests the bounds apply to the pod's effective request (what the scheduler reserves: the
    larger of the sum of app and sidecar containers and the largest init container plus the sidecars
    started before it), so a small init container never fails a minimum. For limits they apply to
    every container.
    """

    model_config = ConfigDict(json_schema_extra=_bounds_rule())

    required: bool = Field(default=True, description="The value must be set on every container.")
    min: Quantity | None = Field(default=None, description="Smallest allowed value, e.g. `512Mi`.")
    max: Quantity | None = Field(default=None, description="Largest allowed value, e.g. `2Gi`.")

    @model_validator(mode="after")
    def _min_le_max(self) -> ResourceBounds:
        if (
            self.min is not None
            and self.max is not None
            and parse_quantity(self.min) > parse_quantity(self.max)
        ):
            raise ValueError(f"min ({self.min}) must be less than or equal to max ({self.max})")
        return self

    @property
    def active(self) -> bool:
        """A check with nothing to enforce is not evaluated (so it does not inflate the score)."""
        return self.required or self.min is not None or self.max is not None


class ResourcePair(KubeModel):
    """Bounds for cpu and memory; a resource that is not listed is not checked."""

    cpu: ResourceBounds | None = Field(default=None, description="CPU bounds (omit to skip the cpu check).")
    memory: ResourceBounds | None = Field(
        default=None, description="Memory bounds (omit to skip the memory check)."
    )
    ephemeral_storage: ResourceBounds | None = Field(
        default=None,
        description="Ephemeral-storage bounds (omit to skip the check; checks `requests-ephemeral-storage`, "
        "`limits-ephemeral-storage`).",
    )


_BOTH: dict[str, Any] = {"cpu": {}, "memory": {}}
_MEMORY_ONLY: dict[str, Any] = {"memory": {}}


class ResourcesRule(_Group):
    """Require resource requests and limits on every container and init container.

    Defaults: cpu and memory requests required, memory limit required, cpu limit not checked (CPU
    limits cause throttling; add `limits.cpu: {}` to demand them).
    """

    requests: ResourcePair = Field(
        default_factory=lambda: ResourcePair.model_validate(_BOTH),
        description="Requests (checks `requests-cpu`, `requests-memory`). Default: both required.",
        json_schema_extra={"default": _BOTH},
    )
    limits: ResourcePair = Field(
        default_factory=lambda: ResourcePair.model_validate(_MEMORY_ONLY),
        description="Limits (checks `limits-cpu`, `limits-memory`). Default: memory required, cpu "
        "not checked.",
        json_schema_extra={"default": _MEMORY_ONLY},
    )


class ReplicasRule(_Group):
    """Require enough replicas (the HPA's minReplicas counts when an HPA targets the Deployment)."""

    min: int = Field(default=2, ge=1, le=10000, description="Minimum replicas (check `replicas-min`).")


class PodDisruptionBudgetRule(_Group):
    """Require a PodDisruptionBudget selecting the pods."""

    required: bool = Field(
        default=True, description="A PDB must select the pod template (check `pdb-present`)."
    )
    min_available: int | None = Field(
        default=None,
        ge=1,
        le=10000,
        description="The PDB must keep at least this many pods available, with its minAvailable or "
        "maxUnavailable resolved against the replicas (check `pdb-min-available`).",
    )
    allows_disruption: bool = Field(
        default=False,
        description="Every selecting PDB must permit at least one voluntary disruption at spec.replicas "
        "(not maxUnavailable 0, not minAvailable 100% or >= the replicas) and, in the cluster, its "
        "status.disruptionsAllowed must be above 0 (check `pdb-allows-disruption`).",
    )
    below_hpa_min_replicas: bool = Field(
        default=False,
        description="With an HPA, every selecting PDB must permit a disruption at the HPA's minReplicas "
        "(check `pdb-hpa-min-replicas`).",
    )


class TargetUtilization(KubeModel):
    """Highest allowed averageUtilization targets (percent), so the HPA scales out early enough."""

    cpu: int | None = Field(default=None, ge=1, le=1000, description="Max CPU averageUtilization target.")
    memory: int | None = Field(
        default=None, ge=1, le=1000, description="Max memory averageUtilization target."
    )


class HorizontalPodAutoscalerRule(_Group):
    """Require a HorizontalPodAutoscaler targeting the Deployment, with sane bounds and metrics."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.minReplicas) || !has(self.maxReplicas) || "
                    "self.minReplicas <= self.maxReplicas",
                    "message": "minReplicas must be less than or equal to maxReplicas",
                    "fieldPath": ".minReplicas",
                }
            ]
        }
    )

    required: bool = Field(
        default=True, description="An HPA must target the Deployment (check `hpa-present`)."
    )
    min_replicas: int | None = Field(
        default=None,
        ge=1,
        le=10000,
        description="The HPA's minReplicas must be at least this (check `hpa-min-replicas`).",
    )
    max_replicas: int | None = Field(
        default=None,
        ge=1,
        le=10000,
        description="The HPA's maxReplicas must be at least this, leaving room to scale out "
        "(check `hpa-max-replicas`).",
    )
    metrics: list[Literal["cpu", "memory"]] = Field(
        default_factory=list,
        max_length=2,
        description="Resource metrics the HPA must scale on (check `hpa-metrics`).",
    )
    target_utilization: TargetUtilization | None = Field(
        default=None,
        description="Highest allowed averageUtilization per resource metric (part of `hpa-metrics`).",
    )
    requests_for_metrics: bool = Field(
        default=False,
        description="Every container the HPA measures sets a request for each resource it scales on by "
        "utilization (check `hpa-cpu-requests`).",
    )
    replicas_unset: bool = Field(
        default=False,
        description="A Deployment an HPA scales must not set spec.replicas in what is applied "
        "(check `replicas-unset-with-hpa`).",
    )

    @model_validator(mode="after")
    def _min_le_max(self) -> HorizontalPodAutoscalerRule:
        if (
            self.min_replicas is not None
            and self.max_replicas is not None
            and self.min_replicas > self.max_replicas
        ):
            raise ValueError(
                f"minReplicas ({self.min_replicas}) must be less than or equal to maxReplicas "
                f"({self.max_replicas})"
            )
        if len(set(self.metrics)) != len(self.metrics):
            raise ValueError("metrics must not repeat a resource")
        return self


class SecurityContextRule(_Group):
    """Require a hardened securityContext on every container and init container.

    Container-level settings override pod-level ones. The booleans default to true: adding the group
    asks for a hardened pod; set a field to false to skip that check.
    """

    run_as_non_root: bool = Field(
        default=True,
        description="Effective runAsNonRoot true or runAsUser > 0 (check `run-as-non-root`).",
    )
    run_as_user_min: int | None = Field(
        default=None,
        ge=1,
        description="Effective runAsUser must be at least this UID (check `run-as-user-min`).",
    )
    read_only_root_filesystem: bool = Field(
        default=True, description="readOnlyRootFilesystem true (check `read-only-root-fs`)."
    )
    drop_all_capabilities: bool = Field(
        default=True, description="capabilities.drop contains ALL (check `drop-all-capabilities`)."
    )
    seccomp_runtime_default: bool = Field(
        default=True,
        description="Effective seccompProfile RuntimeDefault or Localhost (check `seccomp-runtime-default`).",
    )
    no_privilege_escalation: bool = Field(
        default=True, description="allowPrivilegeEscalation false (check `no-privilege-escalation`)."
    )
    no_privileged: bool = Field(default=True, description="privileged not true (check `no-privileged`).")
    run_as_group_min: int | None = Field(
        default=None,
        ge=1,
        description="Effective runAsGroup must be at least this GID (check `run-as-group-min`).",
    )
    strict: bool = Field(
        default=False,
        description="Judge like the Pod Security Standards 'restricted' level: `run-as-non-root` needs "
        "runAsNonRoot true itself (pod level, or every container) and no level may set runAsUser 0 or "
        "runAsNonRoot false; `seccomp-runtime-default` fails a bad pod-level profile even where "
        "containers override it; `drop-all-capabilities` wants exactly `ALL`; pods with "
        "`spec.os.name: windows` skip the seccomp, capability and privilege-escalation checks.",
    )


_CAPABILITY = re.compile(r"^[A-Z][A-Z0-9_]*$")
_SYSCTL = re.compile(r"^[a-z0-9]([-_a-z0-9]*[a-z0-9])?([./][a-z0-9]([-_a-z0-9]*[a-z0-9])?)*$")


def _no_repeats(values: list[str], what: str) -> list[str]:
    if len(set(values)) != len(values):
        raise ValueError(f"{what} must not repeat an entry")
    return values


def _capabilities(values: list[str]) -> list[str]:
    for cap in values:
        if cap == "ALL" or not _CAPABILITY.match(cap):
            raise ValueError(
                f"{cap!r} is not a capability name like NET_BIND_SERVICE (upper case, no CAP_ prefix; ALL "
                "cannot be allowed)"
            )
        if cap.startswith("CAP_"):
            raise ValueError(f"{cap!r}: write capabilities without the CAP_ prefix, as Kubernetes does")
    return _no_repeats(values, "allowed")


class PortRange(KubeModel):
    """An inclusive range of host ports."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self.min <= self.max", "message": "min must be less than or equal to max",
                 "fieldPath": ".min"}
            ]
        }
    )

    min: int = Field(ge=1, le=65535, description="Lowest allowed host port.")
    max: int = Field(ge=1, le=65535, description="Highest allowed host port.")

    @model_validator(mode="after")
    def _min_le_max(self) -> PortRange:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must be less than or equal to max ({self.max})")
        return self


class HostPathRule(KubeModel):
    """hostPath volumes (check `no-host-path`): none, unless under an allowed prefix."""

    allowed_prefixes: list[Annotated[str, Field(min_length=1, max_length=4096, pattern=r"^/")]] = Field(
        default_factory=list,
        max_length=64,
        description="Absolute host paths a hostPath volume may use (the path itself or below it, by "
        "whole path segments). Empty: no hostPath volume at all (Pod Security baseline).",
    )
    read_only: bool = Field(
        default=True,
        description="Every mount of an allowed hostPath volume must be `readOnly: true`.",
    )


class HostPortsRule(KubeModel):
    """Host ports (check `no-host-ports`): none, unless in an allowed range."""

    allowed: list[PortRange] = Field(
        default_factory=list,
        max_length=64,
        description="Ranges a container's hostPort may use. Empty: no host port at all (Pod Security "
        "baseline). With hostNetwork, an unset hostPort counts as the containerPort, as Kubernetes "
        "defaults it.",
    )


class CapabilitiesRule(KubeModel):
    """Added capabilities (check `capabilities-allowed`): only from the allow-list."""

    allowed: Annotated[list[str], AfterValidator(_capabilities)] = Field(
        default_factory=lambda: list(BASELINE_CAPABILITIES),
        max_length=64,
        description="Capabilities a container may add in `securityContext.capabilities.add`, compared "
        "case-sensitively like Pod Security admission. Default: the Pod Security baseline list. `ALL` "
        "can never be added.",
        json_schema_extra={"default": list(BASELINE_CAPABILITIES)},
    )


def _sysctl_names(values: list[str]) -> list[str]:
    for name in values:
        if not _SYSCTL.match(name):
            raise ValueError(f"{name!r} is not a sysctl name like net.ipv4.tcp_syncookies")
    return _no_repeats(values, "allowed")


class SysctlsRule(KubeModel):
    """Pod sysctls (check `sysctls-safe`): only names from the allow-list."""

    allowed: Annotated[list[str], AfterValidator(_sysctl_names)] = Field(
        default_factory=lambda: list(SAFE_SYSCTLS),
        max_length=256,
        description="Sysctl names `spec.securityContext.sysctls` may set. Default: the Pod Security "
        "baseline's safe set.",
        json_schema_extra={"default": list(SAFE_SYSCTLS)},
    )


class SeLinuxRule(KubeModel):
    """SELinux options (check `selinux-allowed`): an allowed type, no user, no role."""

    allowed_types: Annotated[list[Annotated[str, Field(min_length=1, max_length=253)]], AfterValidator(
        lambda v: _no_repeats(v, "allowedTypes"))] = Field(
        default_factory=lambda: list(SELINUX_TYPES),
        max_length=64,
        description="seLinuxOptions.type values allowed besides an empty type. Default: the Pod Security "
        "baseline's types.",
        json_schema_extra={"default": list(SELINUX_TYPES)},
    )


def _volume_types(values: list[str]) -> list[str]:
    if "name" in values:
        raise ValueError("'name' is not a volume type")
    return _no_repeats(values, "allowed")


class VolumeTypesRule(KubeModel):
    """Volume sources (check `volume-types-allowed`): only from the allow-list."""

    allowed: Annotated[
        list[Annotated[str, Field(pattern=r"^[a-z][A-Za-z0-9]*$", max_length=63)]], AfterValidator(_volume_types)
    ] = Field(
        default_factory=lambda: list(RESTRICTED_VOLUME_TYPES),
        max_length=64,
        description="Volume source fields (`configMap`, `emptyDir`, `hostPath`...) a pod volume may use. "
        "Default: the Pod Security restricted list.",
        json_schema_extra={"default": list(RESTRICTED_VOLUME_TYPES)},
    )


class PodSecurityRule(_Group):
    """Pod-level isolation: host namespaces, host paths and ports, capabilities, kernel settings.

    Every setting is off unless given (so adding the group changes nothing by itself); the presets
    `pod-security-baseline` and `pod-security-restricted` switch on what the Pod Security Standards
    demand. Containers of every kind count (init, sidecar and ephemeral containers).
    """

    no_host_network: bool = Field(default=False, description="hostNetwork not true (check `no-host-network`).")
    no_host_pid: bool = Field(default=False, description="hostPID not true (check `no-host-pid`).")
    no_host_ipc: bool = Field(default=False, description="hostIPC not true (check `no-host-ipc`).")
    no_host_process: bool = Field(
        default=False,
        description="windowsOptions.hostProcess not true, pod or container level (check `no-host-process`).",
    )
    host_path: HostPathRule | None = Field(
        default=None, description="Restrict hostPath volumes (check `no-host-path`); `{}` forbids them."
    )
    host_ports: HostPortsRule | None = Field(
        default=None, description="Restrict host ports (check `no-host-ports`); `{}` forbids them."
    )
    capabilities: CapabilitiesRule | None = Field(
        default=None, description="Restrict added capabilities (check `capabilities-allowed`)."
    )
    proc_mount_default: bool = Field(
        default=False, description="securityContext.procMount unset or Default (check `proc-mount-default`)."
    )
    sysctls: SysctlsRule | None = Field(default=None, description="Restrict pod sysctls (check `sysctls-safe`).")
    no_unconfined_app_armor: bool = Field(
        default=False,
        description="AppArmor profile (field or legacy annotation) not Unconfined (check `apparmor-allowed`).",
    )
    se_linux: SeLinuxRule | None = Field(
        default=None, description="Restrict seLinuxOptions (check `selinux-allowed`)."
    )
    no_unconfined_seccomp: bool = Field(
        default=False,
        description="No pod or container sets seccompProfile.type Unconfined (check `seccomp-not-unconfined`).",
    )
    no_probe_host: bool = Field(
        default=False,
        description="Probes and lifecycle hooks do not set httpGet.host or tcpSocket.host (check "
        "`no-probe-host`).",
    )
    volume_types: VolumeTypesRule | None = Field(
        default=None, description="Restrict volume sources (check `volume-types-allowed`)."
    )
    no_automount_service_account_token: bool = Field(
        default=False,
        description="spec.template.spec.automountServiceAccountToken false (check "
        "`automount-service-account-token`).",
    )
    no_plain_secret_env: bool = Field(
        default=False,
        description="No literal env value under a secret-looking name (check `no-plain-secret-env`).",
    )


class NetworkPolicyRule(_Group):
    """Require a NetworkPolicy of the namespace selecting the pods (check `network-policy`)."""

    ingress: bool = Field(default=True, description="A selecting NetworkPolicy has policyType Ingress.")
    egress: bool = Field(default=True, description="A selecting NetworkPolicy has policyType Egress.")


class AntiAffinityRule(_Group):
    """Require spreading replicas across nodes with pod anti-affinity or a topology spread constraint."""

    required: bool = Field(default=True, description="Check `anti-affinity`.")
    topology_key: str = Field(
        default="kubernetes.io/hostname",
        max_length=317,
        description="Topology key the anti-affinity term or spread constraint must use.",
    )


#: A registry host, optionally with a port and a path prefix: ``registry.example.com:5000/team``.
_REGISTRY = r"^[^\s/@:]+(:[0-9]+)?(/[^\s@:]+)*$"


class ImagesRule(_Group):
    """Require pinned images on every container and init container (check `image-tag-pinned`)."""

    forbid_latest: bool = Field(default=True, description="Fail on `:latest` or a missing tag.")
    require_digest: bool = Field(default=False, description="Fail unless the image has an `@sha256:` digest.")
    pull_policies: list[Literal["Always", "IfNotPresent", "Never"]] = Field(
        default_factory=list,
        max_length=3,
        description="Allowed effective imagePullPolicy values (the default is Always for `:latest` or "
        "untagged images, else IfNotPresent); empty: not checked (check `image-pull-policy`).",
    )
    allowed_registries: list[Annotated[str, Field(min_length=1, max_length=253, pattern=_REGISTRY)]] = Field(
        default_factory=list,
        max_length=64,
        description="Registries (host, optionally with a port and a path prefix, e.g. "
        "`registry.example.com/team`) every image must come from (check `image-registry-allowed`). "
        "An image without a registry host is from docker.io. Empty: not checked.",
    )

    @property
    def active(self) -> bool:
        """Nothing to check when both switches are off."""
        return self.forbid_latest or self.require_digest


class RollingUpdateRule(_Group):
    """Require the RollingUpdate strategy (check `rolling-update`)."""

    required: bool = Field(default=True, description="strategy.type must be RollingUpdate (the default).")
    max_unavailable: IntOrPercent | None = Field(
        default=None,
        description="Highest allowed maxUnavailable; both sides are resolved against the replicas, "
        "rounding percentages down like the Deployment controller.",
    )


class GracefulShutdownRule(_Group):
    """Require time and a hook for a clean shutdown."""

    min_termination_grace_period_seconds: int | None = Field(
        default=None,
        ge=0,
        le=86400,
        description="terminationGracePeriodSeconds (default 30) must be at least this "
        "(check `termination-grace-period`).",
    )
    require_pre_stop_hook: bool = Field(
        default=False, description="Every container needs lifecycle.preStop (check `pre-stop-hook`)."
    )


class SchedulingRule(_Group):
    """Scheduling: a priority class and spreading across zones."""

    require_priority_class: bool = Field(
        default=False, description="priorityClassName must be set (check `priority-class`)."
    )
    allowed_priority_classes: list[Annotated[str, Field(min_length=1, max_length=253)]] = Field(
        default_factory=list,
        max_length=64,
        description="When not empty, priorityClassName must be one of these (check `priority-class`).",
    )
    zone_spread: bool = Field(
        default=False,
        description="A topologySpreadConstraints entry over the zone key must select the pods "
        "(check `topology-spread`).",
    )
    zone_topology_key: str = Field(
        default="topology.kubernetes.io/zone",
        min_length=1,
        max_length=317,
        description="The zone topology key for `topology-spread`.",
    )
    max_skew: int | None = Field(
        default=None, ge=1, le=1000, description="Highest allowed maxSkew of that constraint."
    )

    @property
    def priority_class_active(self) -> bool:
        """priority-class has something to check."""
        return self.require_priority_class or bool(self.allowed_priority_classes)


class EnvRule(_Group):
    """Container environment hygiene."""

    no_duplicate_keys: bool = Field(
        default=True,
        description="No container lists an env name twice: the last one silently wins "
        "(check `env-duplicate-keys`).",
    )


class LiveStateRule(_Group):
    """Checks of the living cluster's state (status of the Deployment, its HPA and its pods).

    Judged by the operator only: Unknown in the CLI and never a reason to deny at admission (a
    crash-looping Deployment must stay fixable in Enforce). Their failures show in status, Events
    and PolicyReports.
    """

    rollout_healthy: bool = Field(
        default=True,
        description="Available, no ProgressDeadlineExceeded, updated replicas caught up (check `rollout-healthy`).",
    )
    hpa_active: bool = Field(
        default=True,
        description="The HPA's ScalingActive and AbleToScale conditions are True (check `hpa-active`).",
    )
    pods_stable: bool = Field(
        default=True,
        description="No container in CrashLoopBackOff or last OOMKilled, restarts within maxRestarts "
        "(check `pods-stable`).",
    )
    max_restarts: int = Field(
        default=5, ge=0, le=1000000, description="Highest restartCount allowed per container (`pods-stable`)."
    )


class Rules(KubeModel):
    """Rule groups. A group that is absent is not evaluated; a group that is present evaluates its checks."""

    probes: ProbesRule | None = Field(default=None, description="Liveness, readiness and startup probes.")
    resources: ResourcesRule | None = Field(default=None, description="Resource requests and limits.")
    replicas: ReplicasRule | None = Field(default=None, description="Minimum replicas.")
    pod_disruption_budget: PodDisruptionBudgetRule | None = Field(
        default=None, description="A PodDisruptionBudget protects the pods."
    )
    horizontal_pod_autoscaler: HorizontalPodAutoscalerRule | None = Field(
        default=None, description="A HorizontalPodAutoscaler scales the Deployment."
    )
    security_context: SecurityContextRule | None = Field(
        default=None, description="Hardened securityContext."
    )
    anti_affinity: AntiAffinityRule | None = Field(default=None, description="Replicas spread across nodes.")
    images: ImagesRule | None = Field(default=None, description="Pinned container images.")
    rolling_update: RollingUpdateRule | None = Field(default=None, description="RollingUpdate strategy.")
    graceful_shutdown: GracefulShutdownRule | None = Field(default=None, description="Graceful shutdown.")
    scheduling: SchedulingRule | None = Field(default=None, description="Priority class and zone spread.")
    env: EnvRule | None = Field(default=None, description="Container environment hygiene.")
    live_state: LiveStateRule | None = Field(
        default=None, description="The living cluster's state (operator only; never denies at admission)."
    )
    pod_security: PodSecurityRule | None = Field(
        default=None, description="Host namespaces, host paths and ports, capabilities, kernel settings."
    )
    network_policy: NetworkPolicyRule | None = Field(
        default=None, description="A NetworkPolicy isolates the pods."
    )
