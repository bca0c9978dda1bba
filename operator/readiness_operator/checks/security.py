"""securityContext hardening, on containers and init containers.

Precedence follows Kubernetes: for fields that exist at both levels (runAsNonRoot, runAsUser,
seccompProfile) a value set on the container overrides the pod's ``spec.securityContext``; the other
fields exist only on containers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from readiness_operator.checks.base import (
    Cel,
    CelBuilder,
    Container,
    Context,
    Outcome,
    failed,
    judge_each_container,
    passed,
    register,
)
from readiness_operator.checks.cel import ALL_CONTAINERS, each_container, per_container
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


_POD_SC = "spec.template.spec.securityContext"
#: What the non-root and minimum-ID checks read: the pod's and every container's securityContext.
_SECURITY_CONTEXTS = {"Deployment": (
    "spec.template.spec.containers[].securityContext",
    "spec.template.spec.initContainers[].securityContext",
    "spec.template.spec.securityContext",
)}
_GOOD_SECCOMP = "['RuntimeDefault', 'Localhost']"
#: CEL: the pod is a Windows pod (Pod Security's restricted level skips some checks for those).
_WINDOWS = "variables.pod.?os.?name.orValue('') == 'windows'"


def _windows_exempt(ctx: Context, rule: SecurityContextRule) -> bool:
    """Strict (Pod Security) mode skips seccomp, capabilities and privilege escalation on Windows pods."""
    return rule.strict and (ctx.target.pod_spec.get("os") or {}).get("name") == "windows"


def _strict_or(build: CelBuilder, strict: CelBuilder) -> CelBuilder:
    """The CEL builder for the rule's mode: ``strict`` under ``securityContext.strict``."""
    return lambda check_id, rule: strict(check_id, rule) if rule.strict else build(check_id, rule)


def _windows_or(cel: Cel) -> Cel:
    return Cel(f"{_WINDOWS} || ({cel.expression})", cel.message, cel.message_expression)


def _run_as_non_root_strict(check_id: str, rule: Any) -> Cel:
    pod_nonroot = "variables.pod.?securityContext.?runAsNonRoot"
    pod = f"{pod_nonroot}.orValue(true) == true && variables.pod.?securityContext.?runAsUser.orValue(1) != 0"
    cond = (
        f"c.?securityContext.?runAsUser.orValue(1) != 0 && "
        f"c.?securityContext.?runAsNonRoot.orValue({pod_nonroot}.orValue(false)) == true"
    )
    inner = per_container(check_id, ALL_CONTAINERS, cond, "set runAsNonRoot: true and no runAsUser 0")
    return Cel(
        f"{pod} && {inner.expression}",
        f"{check_id}: set {_POD_SC}.runAsNonRoot: true (no pod or container may set runAsNonRoot: false or runAsUser: 0)",
    )


def _strict_non_root_problems(ctx: Context) -> list[str]:
    """Pod Security 'restricted': runAsNonRoot true itself, and no level sets false or UID 0."""
    pod = ctx.target.pod_spec.get("securityContext") or {}
    problems = []
    if pod.get("runAsNonRoot") is False:
        problems.append(f"the pod sets runAsNonRoot: false; set {_POD_SC}.runAsNonRoot: true")
    if pod.get("runAsUser") is not None and int(pod["runAsUser"]) == 0:
        problems.append(f"the pod sets runAsUser: 0; set {_POD_SC}.runAsUser to a non-zero UID")
    for c in ctx.target.all_containers():
        own = _own(c, "runAsNonRoot")
        user = _own(c, "runAsUser")
        if user is not None and int(user) == 0:
            problems.append(f"{c.label} runs as UID 0 (root); set {c.path}.securityContext.runAsUser to a non-zero UID")
        if own is False:
            problems.append(f"{c.label} sets runAsNonRoot: false; set {c.path}.securityContext.runAsNonRoot: true")
        elif own is None and pod.get("runAsNonRoot") is not True:
            problems.append(
                f"{c.label} does not require a non-root user; set {_POD_SC}.runAsNonRoot: true "
                f"(or {c.path}.securityContext.runAsNonRoot: true)"
            )
    return problems


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
    reads=_SECURITY_CONTEXTS,
    cel=_strict_or(
        each_container(
            ALL_CONTAINERS,
            f"{_sc('runAsUser')}.orValue(-1) != 0 && "
            f"({_sc('runAsNonRoot')}.orValue(false) == true || {_sc('runAsUser')}.orValue(0) > 0)",
            "run as non-root (runAsNonRoot: true or a non-zero runAsUser)",
        ),
        _run_as_non_root_strict,
    ),
)
def run_as_non_root(ctx: Context, rule: SecurityContextRule) -> Outcome:
    """Effective runAsNonRoot true, or effective runAsUser > 0; runAsUser 0 always fails.

    Strict (Pod Security 'restricted'): runAsNonRoot must be true itself, and neither the pod nor a
    container may set runAsNonRoot false or runAsUser 0, whatever the other level says.
    """
    if rule.strict:
        problems = _strict_non_root_problems(ctx)
        return failed(problems) if problems else passed("every container must run as non-root")

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

    return judge_each_container(ctx, problem, "every container runs as non-root")


def _id_at_least_cel(field: str, minimum: str) -> CelBuilder:
    """CEL: every container's effective ``field`` is set and at least the rule's ``minimum`` attribute."""
    return each_container(
        ALL_CONTAINERS,
        lambda rule: f"{_sc(field)}.orValue(-1) >= {int(getattr(rule, minimum))}",
        lambda rule: f"set {field} >= {int(getattr(rule, minimum))}",
    )


def _id_at_least(ctx: Context, field: str, kind: str, need: int, when_unset: str) -> Outcome:
    """Every container's effective ``field`` (runAsUser/runAsGroup) is set and at least ``need``."""

    def problem(c: Container) -> str | None:
        value = effective(ctx, c, field)
        if value is None:
            return f"{c.label} sets no {field} ({when_unset}); set spec.template.spec.securityContext.{field}: {need} or higher"
        if int(value) < need:
            return f"{c.label} runs as {kind} {value}, below {need}; set {c.path}.securityContext.{field} to at least {need}"
        return None

    return judge_each_container(ctx, problem, f"every container runs as {kind} >= {need}")


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
    reads=_SECURITY_CONTEXTS,
    cel=_id_at_least_cel("runAsUser", "run_as_user_min"),
)
def run_as_user_min(ctx: Context, rule: SecurityContextRule) -> Outcome:
    """Effective runAsUser >= rule.run_as_user_min (an unset UID fails: the image decides it)."""
    return _id_at_least(ctx, "runAsUser", "UID", rule.run_as_user_min or 0, "the image decides")


@register(
    "run-as-group-min",
    category="security",
    severity=Severity.WARNING,
    title="Minimum GID",
    why="Without an explicit, high primary group the process runs as GID 0 (root's group) and can read "
    "and write files that group owns, on volumes too.",
    remediation="Set `securityContext.runAsGroup` (pod or container level) to at least the policy "
    "minimum, e.g. 10001.",
    group="security_context",
    enabled=lambda rule: rule.run_as_group_min is not None,
    reads=_SECURITY_CONTEXTS,
    cel=_id_at_least_cel("runAsGroup", "run_as_group_min"),
)
def run_as_group_min(ctx: Context, rule: SecurityContextRule) -> Outcome:
    """Effective runAsGroup >= rule.run_as_group_min (an unset GID fails: the image decides, often 0)."""
    return _id_at_least(ctx, "runAsGroup", "GID", rule.run_as_group_min or 0, "the image decides, often GID 0")


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
    return judge_each_container(
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
        "spec.template.spec.os",
    )},
    cel=_strict_or(
        each_container(
            ALL_CONTAINERS,
            "c.?securityContext.?capabilities.?drop.orValue([]).exists(d, d.upperAscii() == 'ALL')",
            "set securityContext.capabilities.drop: [ALL]",
        ),
        lambda check_id, rule: _windows_or(per_container(
            check_id, ALL_CONTAINERS, "c.?securityContext.?capabilities.?drop.orValue([]).exists(d, d == 'ALL')",
            "set securityContext.capabilities.drop: [ALL]",
        )),
    ),
)
def drop_all_capabilities(ctx: Context, rule: SecurityContextRule) -> Outcome:
    """capabilities.drop contains ALL on every container (any case; exactly ``ALL`` when strict)."""
    if _windows_exempt(ctx, rule):
        return passed("a Windows pod: Linux capabilities do not apply")

    def problem(c: Container) -> str | None:
        drop = (_own(c, "capabilities") or {}).get("drop") or ()
        if any(str(cap) == "ALL" if rule.strict else str(cap).upper() == "ALL" for cap in drop):
            return None
        return (
            f"{c.label} keeps the default capabilities; set {c.path}.securityContext.capabilities.drop: [ALL]"
        )

    return judge_each_container(ctx, problem, "every container drops ALL capabilities")


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
        "spec.template.spec.os",
    )},
    cel=_strict_or(
        each_container(
            ALL_CONTAINERS,
            f"{_sc('seccompProfile')}.?type.orValue('') in ['RuntimeDefault', 'Localhost']",
            "run with seccompProfile RuntimeDefault or Localhost",
        ),
        lambda check_id, rule: _windows_or(Cel(
            f"variables.pod.?securityContext.?seccompProfile.?type.orValue('RuntimeDefault') in {_GOOD_SECCOMP} && "
            f"{ALL_CONTAINERS}.all(c, c.?securityContext.?seccompProfile.hasValue() ? "
            f"c.securityContext.seccompProfile.?type.orValue('') in {_GOOD_SECCOMP} : "
            f"variables.pod.?securityContext.?seccompProfile.?type.orValue('') in {_GOOD_SECCOMP})",
            f"{check_id}: set {_POD_SC}.seccompProfile.type: RuntimeDefault (no pod or container may set another type)",
        )),
    ),
)
def seccomp_runtime_default(ctx: Context, rule: SecurityContextRule) -> Outcome:
    """Effective seccompProfile.type is RuntimeDefault or Localhost.

    Strict (Pod Security 'restricted'): a bad pod-level profile fails even where every container sets
    its own; Windows pods are exempt.
    """
    if _windows_exempt(ctx, rule):
        return passed("a Windows pod: seccomp does not apply")
    if rule.strict:
        pod = (ctx.target.pod_spec.get("securityContext") or {}).get("seccompProfile")
        if pod is not None and pod.get("type") not in ("RuntimeDefault", "Localhost"):
            return failed([f"the pod sets seccompProfile {pod.get('type')}; set {_POD_SC}.seccompProfile.type: RuntimeDefault"])

    def problem(c: Container) -> str | None:
        profile = effective(ctx, c, "seccompProfile") or {}
        kind = profile.get("type")
        if kind in ("RuntimeDefault", "Localhost"):
            return None
        now = f"seccompProfile {kind}" if kind else "no seccompProfile"
        return (
            f"{c.label} has {now}; set spec.template.spec.securityContext.seccompProfile.type: RuntimeDefault"
        )

    return judge_each_container(ctx, problem, "every container runs with a seccomp profile")


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
        "spec.template.spec.os",
    )},
    cel=_strict_or(
        each_container(
            ALL_CONTAINERS,
            "c.?securityContext.?allowPrivilegeEscalation.orValue(true) == false",
            "set securityContext.allowPrivilegeEscalation: false",
        ),
        lambda check_id, rule: _windows_or(per_container(
            check_id, ALL_CONTAINERS, "c.?securityContext.?allowPrivilegeEscalation.orValue(true) == false",
            "set securityContext.allowPrivilegeEscalation: false",
        )),
    ),
)
def no_privilege_escalation(ctx: Context, rule: SecurityContextRule) -> Outcome:
    """allowPrivilegeEscalation explicitly false on every container (unset means true); strict mode
    exempts Windows pods like Pod Security does."""
    if _windows_exempt(ctx, rule):
        return passed("a Windows pod: privilege escalation does not apply")
    return judge_each_container(
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
    return judge_each_container(
        ctx,
        lambda c: (
            f"{c.label} is privileged; remove {c.path}.securityContext.privileged or set it to false"
            if _own(c, "privileged") is True
            else None
        ),
        "no container is privileged",
    )
