"""The Kubernetes Pod Security Standards (v1.34) as data: the allowed sets and each control's check ids.

Read from ``k8s.io/pod-security-admission`` v0.34 (``policy/check_*.go``), which is what the API
server's ``pod-security.kubernetes.io/enforce`` label runs. The rule defaults in ``model/rules.py``,
the presets ``pod-security-baseline``/``-restricted`` and the control table of docs/checks.md use
these, so one place says what "equal to the Pod Security Standards" means.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BASELINE_CAPABILITIES",
    "CONTROLS",
    "PSS_VERSION",
    "RESTRICTED_CAPABILITIES",
    "RESTRICTED_VOLUME_TYPES",
    "SAFE_SYSCTLS",
    "SELINUX_TYPES",
    "Control",
]

PSS_VERSION = "v1.34"

#: Capabilities the baseline level lets a container add (compared case-sensitively, like PSA).
BASELINE_CAPABILITIES: tuple[str, ...] = (
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
)

#: The only capability the restricted level lets a container add (after dropping ALL).
RESTRICTED_CAPABILITIES: tuple[str, ...] = ("NET_BIND_SERVICE",)

#: The "safe" sysctls (namespaced, isolated from other pods) of the baseline level, as of v1.32+.
SAFE_SYSCTLS: tuple[str, ...] = (
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
)

#: SELinux types the baseline level allows (an empty type is allowed too), as of v1.31+.
SELINUX_TYPES: tuple[str, ...] = ("container_t", "container_init_t", "container_kvm_t", "container_engine_t")

#: Volume sources the restricted level allows.
RESTRICTED_VOLUME_TYPES: tuple[str, ...] = (
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "image",
    "persistentVolumeClaim",
    "projected",
    "secret",
)


@dataclass(frozen=True, slots=True)
class Control:
    """One control of the Pod Security Standards and the catalogue checks that implement it."""

    level: str  # "baseline" or "restricted"
    name: str
    fields: str
    checks: tuple[str, ...]
    note: str = ""


CONTROLS: tuple[Control, ...] = (
    Control("baseline", "HostProcess", "windowsOptions.hostProcess (pod, containers)", ("no-host-process",)),
    Control(
        "baseline",
        "Host Namespaces",
        "hostNetwork, hostPID, hostIPC",
        ("no-host-network", "no-host-pid", "no-host-ipc"),
    ),
    Control("baseline", "Privileged Containers", "securityContext.privileged", ("no-privileged",)),
    Control(
        "baseline",
        "Capabilities",
        "securityContext.capabilities.add",
        ("capabilities-allowed",),
        "`podSecurity.capabilities.allowed` = the baseline list",
    ),
    Control(
        "baseline",
        "HostPath Volumes",
        "volumes[].hostPath",
        ("no-host-path",),
        "`podSecurity.hostPath: {}` (no allowed prefix)",
    ),
    Control("baseline", "Host Ports", "ports[].hostPort", ("no-host-ports",), "`podSecurity.hostPorts: {}` (no range)"),
    Control(
        "baseline",
        "Host Probes / Lifecycle Hooks",
        "probes' and lifecycle handlers' httpGet.host, tcpSocket.host",
        ("no-probe-host",),
    ),
    Control(
        "baseline",
        "AppArmor",
        "appArmorProfile.type, container.apparmor.security.beta.kubernetes.io/* annotations",
        ("apparmor-allowed",),
    ),
    Control("baseline", "SELinux", "seLinuxOptions.type, .user, .role", ("selinux-allowed",)),
    Control("baseline", "/proc Mount Type", "securityContext.procMount", ("proc-mount-default",)),
    Control("baseline", "Seccomp", "seccompProfile.type (not Unconfined)", ("seccomp-not-unconfined",)),
    Control("baseline", "Sysctls", "securityContext.sysctls[].name", ("sysctls-safe",)),
    Control(
        "restricted",
        "Volume Types",
        "volumes[] sources",
        ("volume-types-allowed",),
        "replaces HostPath Volumes",
    ),
    Control(
        "restricted",
        "Privilege Escalation",
        "securityContext.allowPrivilegeEscalation",
        ("no-privilege-escalation",),
        "`securityContext.strict: true` (Windows pods exempt)",
    ),
    Control(
        "restricted",
        "Running as Non-root",
        "runAsNonRoot (pod, containers)",
        ("run-as-non-root",),
        "`securityContext.strict: true`",
    ),
    Control(
        "restricted",
        "Running as Non-root user",
        "runAsUser (pod, containers) not 0",
        ("run-as-non-root",),
        "`securityContext.strict: true`",
    ),
    Control(
        "restricted",
        "Seccomp",
        "seccompProfile.type RuntimeDefault or Localhost",
        ("seccomp-runtime-default",),
        "`securityContext.strict: true` (Windows pods exempt)",
    ),
    Control(
        "restricted",
        "Capabilities",
        "capabilities.drop contains ALL; capabilities.add only NET_BIND_SERVICE",
        ("drop-all-capabilities", "capabilities-allowed"),
        "`securityContext.strict: true`, `podSecurity.capabilities.allowed: [NET_BIND_SERVICE]`",
    ),
)
