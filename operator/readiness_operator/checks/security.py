"""securityContext hardening, on containers and init containers.

Precedence follows Kubernetes: for fields that exist at both levels (runAsNonRoot, runAsUser,
seccompProfile) a value set on the container overrides the pod's ``spec.securityContext``; the other
fields exist only on containers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from readiness_operator.checks.base import Container, Context, Outcome, failed, passed, register
from readiness_operator.checks.cel import ALL_CONTAINERS, each_container
from readiness_operator.checks.cel import effective_security as _sc
from readiness_operator.severity import Severity

if TYPE_CHECKING:
    from readiness_operator.model.rules import SecurityContextRule


def effective(ctx: Context, c: Container, key: str) -> Any:
    """The container's value for ``key`` if set, else the pod-level value."""
    own = (c.get("securityContext") or {}).get(key)
    if own is not None:
        return own
    return (ctx.target.pod_spec.get("securityContext") or {}).get(key)


def _own(c: Container, key: str) -> Any:
    return (c.get("securityContext") or {}).get(key)


def _per_container(ctx: Context, problem: Callable[[Container], str | None], ok: str) -> Outcome:
    problems = [p for c in ctx.target.all_containers() if (p := problem(c)) is not None]
    return failed(problems) if problems else passed(ok)


@register(
    "run-as-non-root",
    category="security",
    severity=Severity.CRITICAL,
    title="Run as non-root",
    why="A process running as root inside the container is one kernel or runtime bug away from "
    "root on the node.",
    remediation="Set `securityContext.runAsNonRoot: true` (pod or container level) and a non-zero "
    "`runAsUser`.",
    group="security_context",
    enabled=lambda rule: rule.run_as_non_root,
    reads={"Deployment": (
        "spec.template.spec.containers[].securityContext",
        "spec.template.spec.initContainers[].securityContext",
        "spec.template.spec.securityContext",
    )},
    cel=each_container(
        ALL_CONTAINERS,
        f"{_sc('runAsUser')}.orValue(-1) != 0 && "
        f"({_sc('runAsNonRoot')}.orValue(false) == true || {_sc('runAsUser')}.orValue(0) > 0)",
        "run as non-root (runAsNonRoot: true or a non-zero runAsUser)",
    ),
)
def run_as_non_root(ctx: Context, rule: SecurityContextRule) -> Outcome:
    """Effective runAsNonRoot true, or effective runAsUser > 0; runAsUser 0 always fails."""

    def problem(c: Container) -> str | None:
        user = effective(ctx, c, "runAsUser")
        if user is not None and int(user) == 0:
            return f"{c.label} runs as UID 0 (root); set {c.path}.securityContext.runAsUser to a non-zero UID"
        if effective(ctx, c, "runAsNonRoot") is True or (user is not None and int(user) > 0):
            return None
        return (
            f"{c.label} may run as root; set spec.template.spec.securityContext.runAsNonRoot: true "
            f"(or {c.path}.securityContext.runAsNonRoot: true)"
        )

    return _per_container(ctx, problem, "every container runs as non-root")


@register(
    "run-as-user-min",
    category="security",
    severity=Severity.WARNING,
    title="Minimum UID",
    why="Low UIDs collide with system accounts on the node; a high, explicit UID keeps file "
    "ownership predictable.",
    remediation="Set `securityContext.runAsUser` (pod or container level) to at least the policy "
    "minimum, e.g. 10001.",
    group="security_context",
    enabled=lambda rule: rule.run_as_user_min is not None,
    reads={"Deployment": (
        "spec.template.spec.containers[].securityContext",
        "spec.template.spec.initContainers[].securityContext",
        "spec.template.spec.securityContext",
    )},
    cel=each_container(
        ALL_CONTAINERS,
        lambda rule: f"{_sc('runAsUser')}.orValue(-1) >= {int(rule.run_as_user_min)}",
        lambda rule: f"set runAsUser >= {int(rule.run_as_user_min)}",
    ),
)
def run_as_user_min(ctx: Context, rule: SecurityContextRule) -> Outcome:
    """Effective runAsUser >= rule.run_as_user_min (an unset UID fails: the image decides it)."""
    need = rule.run_as_user_min or 0

    def problem(c: Container) -> str | None:
        user = effective(ctx, c, "runAsUser")
        if user is None:
            return (
                f"{c.label} sets no runAsUser (the image decides); set "
                f"spec.template.spec.securityContext.runAsUser: {need} or higher"
            )
        if int(user) < need:
            return (
                f"{c.label} runs as UID {user}, below {need}; set "
                f"{c.path}.securityContext.runAsUser to at least {need}"
            )
        return None

    return _per_container(ctx, problem, f"every container runs as UID >= {need}")


@register(
    "read-only-root-fs",
    category="security",
    severity=Severity.WARNING,
    title="Read-only root filesystem",
    why="A writable root filesystem lets an attacker persist tools and lets the app write state it "
    "will lose.",
    remediation="Set `securityContext.readOnlyRootFilesystem: true` on every container; mount an "
    "emptyDir for "
    "scratch space such as /tmp.",
    group="security_context",
    enabled=lambda rule: rule.read_only_root_filesystem,
    reads={"Deployment": (
        "spec.template.spec.containers[].securityContext",
        "spec.template.spec.initContainers[].securityContext",
    )},
    cel=each_container(
        ALL_CONTAINERS,
        "c.?securityContext.?readOnlyRootFilesystem.orValue(false) == true",
        "set securityContext.readOnlyRootFilesystem: true",
    ),
)
def read_only_root_fs(ctx: Context, rule: SecurityContextRule) -> Outcome:
    """readOnlyRootFilesystem is true on every container (container-level field only)."""
    return _per_container(
        ctx,
        lambda c: (
            None
            if _own(c, "readOnlyRootFilesystem") is True
            else f"{c.label} has a writable root filesystem; set "
            f"{c.path}.securityContext.readOnlyRootFilesystem: true"
        ),
        "every container has a read-only root filesystem",
    )


@register(
    "drop-all-capabilities",
    category="security",
    severity=Severity.WARNING,
    title="Drop all capabilities",
    why="Default capabilities (NET_RAW, CHOWN, ...) are rarely needed and widen what a compromised "
    "process can do.",
    remediation="Set `securityContext.capabilities.drop: [ALL]` on every container and add back "
    "only what is needed.",
    group="security_context",
    enabled=lambda rule: rule.drop_all_capabilities,
    reads={"Deployment": (
        "spec.template.spec.containers[].securityContext",
        "spec.template.spec.initContainers[].securityContext",
    )},
    cel=each_container(
        ALL_CONTAINERS,
        "c.?securityContext.?capabilities.?drop.orValue([]).exists(d, d.upperAscii() == 'ALL')",
        "set securityContext.capabilities.drop: [ALL]",
    ),
)
def drop_all_capabilities(ctx: Context, rule: SecurityContextRule) -> Outcome:
    """capabilities.drop contains ALL on every container."""

    def problem(c: Container) -> str | None:
        drop = (_own(c, "capabilities") or {}).get("drop") or ()
        if any(str(cap).upper() == "ALL" for cap in drop):
            return None
        return (
            f"{c.label} keeps the default capabilities; set {c.path}.securityContext.capabilities.drop: [ALL]"
        )

    return _per_container(ctx, problem, "every container drops ALL capabilities")


@register(
    "seccomp-runtime-default",
    category="security",
    severity=Severity.WARNING,
    title="seccomp profile",
    why="Without seccomp every syscall is reachable, including ones used by container escapes.",
    remediation="Set `spec.template.spec.securityContext.seccompProfile.type: RuntimeDefault` "
    "(Localhost profiles "
    "also pass).",
    group="security_context",
    enabled=lambda rule: rule.seccomp_runtime_default,
    reads={"Deployment": (
        "spec.template.spec.containers[].securityContext",
        "spec.template.spec.initContainers[].securityContext",
        "spec.template.spec.securityContext",
    )},
    cel=each_container(
        ALL_CONTAINERS,
        f"{_sc('seccompProfile')}.?type.orValue('') in ['RuntimeDefault', 'Localhost']",
        "run with seccompProfile RuntimeDefault or Localhost",
    ),
)
def seccomp_runtime_default(ctx: Context, rule: SecurityContextRule) -> Outcome:
    """Effective seccompProfile.type is RuntimeDefault or Localhost."""

    def problem(c: Container) -> str | None:
        profile = effective(ctx, c, "seccompProfile") or {}
        kind = profile.get("type")
        if kind in ("RuntimeDefault", "Localhost"):
            return None
        now = f"seccompProfile {kind}" if kind else "no seccompProfile"
        return (
            f"{c.label} has {now}; set spec.template.spec.securityContext.seccompProfile.type: RuntimeDefault"
        )

    return _per_container(ctx, problem, "every container runs with a seccomp profile")


@register(
    "no-privilege-escalation",
    category="security",
    severity=Severity.CRITICAL,
    title="No privilege escalation",
    why="allowPrivilegeEscalation defaults to true, so setuid binaries can gain more privileges "
    "than the process.",
    remediation="Set `securityContext.allowPrivilegeEscalation: false` on every container.",
    group="security_context",
    enabled=lambda rule: rule.no_privilege_escalation,
    reads={"Deployment": (
        "spec.template.spec.containers[].securityContext",
        "spec.template.spec.initContainers[].securityContext",
    )},
    cel=each_container(
        ALL_CONTAINERS,
        "c.?securityContext.?allowPrivilegeEscalation.orValue(true) == false",
        "set securityContext.allowPrivilegeEscalation: false",
    ),
)
def no_privilege_escalation(ctx: Context, rule: SecurityContextRule) -> Outcome:
    """allowPrivilegeEscalation explicitly false on every container (unset means true)."""
    return _per_container(
        ctx,
        lambda c: (
            None
            if _own(c, "allowPrivilegeEscalation") is False
            else f"{c.label} allows privilege escalation; set "
            f"{c.path}.securityContext.allowPrivilegeEscalation: false"
        ),
        "no container allows privilege escalation",
    )


@register(
    "no-privileged",
    category="security",
    severity=Severity.CRITICAL,
    title="Not privileged",
    why="A privileged container has every capability and the host's devices: it is root on the node.",
    remediation="Remove `securityContext.privileged: true`; grant specific capabilities instead.",
    group="security_context",
    enabled=lambda rule: rule.no_privileged,
    reads={"Deployment": (
        "spec.template.spec.containers[].securityContext",
        "spec.template.spec.initContainers[].securityContext",
    )},
    cel=each_container(
        ALL_CONTAINERS, "c.?securityContext.?privileged.orValue(false) == false", "not be privileged"
    ),
)
def no_privileged(ctx: Context, rule: SecurityContextRule) -> Outcome:
    """No container sets privileged: true."""
    return _per_container(
        ctx,
        lambda c: (
            f"{c.label} is privileged; remove {c.path}.securityContext.privileged or set it to false"
            if _own(c, "privileged") is True
            else None
        ),
        "no container is privileged",
    )
