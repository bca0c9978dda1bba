"""Pod-level isolation (``spec.rules.podSecurity``): host namespaces, host paths and ports, added
capabilities, kernel and LSM settings, volume sources, service account tokens, secrets in env.

Each check judges what the Pod Security Standards (:mod:`readiness_operator.pss`) judge for its
control, over containers of every kind: init containers (sidecars included, they are init containers
with ``restartPolicy: Always``) and app containers. A Deployment's pod template cannot carry
ephemeral containers (the API server rejects them), so they never reach a check.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from readiness_operator.checks.base import Cel, Container, Context, Outcome, failed, judge_each_container, passed, register
from readiness_operator.checks.cel import ALL_CONTAINERS, each_container, lit, per_container
from readiness_operator.checks.images import split_image
from readiness_operator.severity import Severity

if TYPE_CHECKING:
    from readiness_operator.model.rules import ImagesRule, PodSecurityRule

__all__ = ["SECRET_NAME", "host_path_allowed", "image_repository"]

_POD = "spec.template.spec"
_C = "spec.template.spec.containers[]"
_I = "spec.template.spec.initContainers[]"
_POD_SC = "variables.pod.?securityContext"
_ANNOTATIONS = "object.spec.template.metadata.?annotations.orValue({})"
_APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"
_GOOD_PROFILES = ("RuntimeDefault", "Localhost")
_HANDLERS = ("livenessProbe", "readinessProbe", "startupProbe", "lifecycle.postStart", "lifecycle.preStop")

#: Env var names that hold secrets (RE2 and Python ``re`` read it alike).
SECRET_NAME = r"(?i)(passw(or)?d|pwd|secret|token|api[-_.]?key|private[-_.]?key|access[-_.]?key|credential)"
_SECRET_RE = re.compile(SECRET_NAME)


def _containers(fields: Iterable[str]) -> tuple[str, ...]:
    """The same container fields for app and init containers (for ``reads=``)."""
    return tuple(f"{kind}.{f}" for f in fields for kind in (_C, _I))


def _sc(c: Container) -> Mapping[str, Any]:
    return c.get("securityContext") or {}


def _pod_sc(ctx: Context) -> Mapping[str, Any]:
    return ctx.target.pod_spec.get("securityContext") or {}


def _pod_flag(check_id: str, field: str, what: str) -> Cel:
    return Cel(f"variables.pod.?{field}.orValue(false) == false", f"{check_id}: set {_POD}.{field}: false ({what})")


def _host_namespace(ctx: Context, field: str, what: str) -> Outcome:
    if ctx.target.pod_spec.get(field) is True:
        return failed([f"the pod shares the node's {what}; remove {_POD}.{field} or set it to false"])
    return passed(f"the pod has its own {what}")


_HOST_NS_TEXT = {
    "no-host-network": (
        "hostNetwork",
        "network namespace",
        "No host network",
        "On the host network a pod sees every node interface and can bind node ports, bypassing "
        "NetworkPolicies and Service isolation.",
    ),
    "no-host-pid": (
        "hostPID",
        "process namespace",
        "No host PID",
        "With the host PID namespace a container sees (and with enough privilege signals or ptraces) every process on the node.",
    ),
    "no-host-ipc": (
        "hostIPC",
        "IPC namespace",
        "No host IPC",
        "With the host IPC namespace a container reads and writes other processes' shared memory and semaphores on the node.",
    ),
}


def _register_host_namespace(check_id: str, switch: str) -> None:
    field, what, title, why = _HOST_NS_TEXT[check_id]

    def judge(ctx: Context, rule: PodSecurityRule) -> Outcome:
        return _host_namespace(ctx, field, what)

    judge.__name__ = judge.__qualname__ = check_id.replace("-", "_")
    judge.__doc__ = f"{field} is not true."
    register(
        check_id,
        category="security",
        severity=Severity.CRITICAL,
        title=title,
        why=why,
        remediation=f"Remove `{_POD}.{field}` (it defaults to false).",
        group="pod_security",
        enabled=lambda rule: bool(getattr(rule, switch)),
        reads={"Deployment": (f"{_POD}.{field}",)},
        cel=lambda cid, rule: _pod_flag(cid, field, f"do not share the node's {what}"),
    )(judge)


_register_host_namespace("no-host-network", "no_host_network")
_register_host_namespace("no-host-pid", "no_host_pid")
_register_host_namespace("no-host-ipc", "no_host_ipc")


_HOST_PROCESS = "securityContext.?windowsOptions.?hostProcess.orValue(false) == false"


@register(
    "no-host-process",
    category="security",
    severity=Severity.CRITICAL,
    title="No Windows HostProcess",
    why="A Windows HostProcess container runs directly on the node with the node's privileges: it is "
    "an administrator on the host.",
    remediation="Remove `securityContext.windowsOptions.hostProcess: true` from the pod and every container.",
    group="pod_security",
    enabled=lambda rule: rule.no_host_process,
    reads={"Deployment": (f"{_POD}.securityContext.windowsOptions", *_containers(["securityContext.windowsOptions"]))},
    cel=lambda check_id, rule: Cel(
        f"variables.pod.?{_HOST_PROCESS} && {ALL_CONTAINERS}.all(c, c.?{_HOST_PROCESS})",
        f"{check_id}: remove windowsOptions.hostProcess: true from the pod and its containers",
    ),
)
def no_host_process(ctx: Context, rule: PodSecurityRule) -> Outcome:
    """windowsOptions.hostProcess is not true at pod or container level."""
    problems = []
    if (_pod_sc(ctx).get("windowsOptions") or {}).get("hostProcess") is True:
        problems.append(f"the pod is a Windows HostProcess pod; remove {_POD}.securityContext.windowsOptions.hostProcess")
    for c in ctx.target.all_containers():
        if (_sc(c).get("windowsOptions") or {}).get("hostProcess") is True:
            problems.append(f"{c.label} is a HostProcess container; remove {c.path}.securityContext.windowsOptions.hostProcess")
    return failed(problems) if problems else passed("no HostProcess pod or container")


def _prefixes(rule: PodSecurityRule) -> list[str]:
    hp = rule.host_path
    return [p if p == "/" else p.rstrip("/") for p in (hp.allowed_prefixes if hp else ())]


def host_path_allowed(path: str, prefixes: Iterable[str]) -> bool:
    """``path`` is one of ``prefixes`` or below one, by whole segments; a ``..`` segment never is."""
    if ".." in path.split("/"):
        return False
    return any(path == p or path.startswith(p if p.endswith("/") else p + "/") for p in prefixes)


def _host_path_cel(check_id: str, rule: PodSecurityRule) -> Cel:
    prefixes = _prefixes(rule)
    if not prefixes:
        return Cel(
            "variables.pod.?volumes.orValue([]).all(v, !has(v.hostPath))",
            f"{check_id}: remove the hostPath volumes from {_POD}.volumes",
        )
    path = "v.hostPath.path"
    inside = " || ".join(f"{path} == {lit(p)} || {path}.startsWith({lit(p if p.endswith('/') else p + '/')})" for p in prefixes)
    cond = f"(!{path}.split('/').exists(s, s == '..') && ({inside}))"
    if rule.host_path and rule.host_path.read_only:
        cond += (
            f" && {ALL_CONTAINERS}.all(c, c.?volumeMounts.orValue([]).all(m, m.name != v.name || "
            "m.?readOnly.orValue(false) == true))"
        )
    ro = ", mounted readOnly" if rule.host_path and rule.host_path.read_only else ""
    return Cel(
        f"variables.pod.?volumes.orValue([]).all(v, !has(v.hostPath) || ({cond}))",
        f"{check_id}: hostPath volumes must be under {', '.join(prefixes)}{ro}",
    )


@register(
    "no-host-path",
    category="security",
    severity=Severity.CRITICAL,
    title="No hostPath volumes",
    why="A hostPath volume exposes the node's filesystem: writing to it (or reading /var/run, /etc) "
    "is a classic way out of the container.",
    remediation="Use an emptyDir, a ConfigMap/Secret or a PersistentVolumeClaim instead of `hostPath`; "
    "where a host path is unavoidable, keep it under an allowed prefix and mount it `readOnly: true`.",
    group="pod_security",
    enabled=lambda rule: rule.host_path is not None,
    reads={"Deployment": (f"{_POD}.volumes", *_containers(["volumeMounts"]))},
    cel=_host_path_cel,
)
def no_host_path(ctx: Context, rule: PodSecurityRule) -> Outcome:
    """Every hostPath volume is under an allowed prefix (none: no hostPath) and, if asked, mounted read-only."""
    prefixes = _prefixes(rule)
    read_only = bool(rule.host_path and rule.host_path.read_only)
    problems = []
    for v in ctx.target.pod_spec.get("volumes") or ():
        if not isinstance(v, Mapping) or "hostPath" not in v:
            continue
        name, path = v.get("name"), str((v.get("hostPath") or {}).get("path", ""))
        if not prefixes:
            problems.append(f"volume '{name}' mounts host path {path}; remove it from {_POD}.volumes (use an emptyDir or a PVC)")
            continue
        if not host_path_allowed(path, prefixes):
            problems.append(
                f"volume '{name}' mounts host path {path}, outside {', '.join(prefixes)}; "
                f"remove it or set {_POD}.volumes[name={name}].hostPath.path under an allowed prefix"
            )
            continue
        if read_only:
            for c in ctx.target.all_containers():
                for m in c.get("volumeMounts") or ():
                    if m.get("name") == name and m.get("readOnly") is not True:
                        problems.append(
                            f"{c.label} mounts host path volume '{name}' writable; "
                            f"set {c.path}.volumeMounts[name={name}].readOnly: true"
                        )
    return failed(problems) if problems else passed("no hostPath volume outside the allowed prefixes")


def _host_port_expr() -> str:
    return "p.?hostPort.orValue(variables.pod.?hostNetwork.orValue(false) ? p.containerPort : 0)"


def _ranges(rule: PodSecurityRule) -> list[tuple[int, int]]:
    return [(r.min, r.max) for r in (rule.host_ports.allowed if rule.host_ports else ())]


def _host_ports_cel(check_id: str, rule: PodSecurityRule) -> Cel:
    hp = _host_port_expr()
    ok = " || ".join(f"({hp} >= {lo} && {hp} <= {hi})" for lo, hi in _ranges(rule))
    cond = f"c.?ports.orValue([]).all(p, {hp} == 0{' || ' + ok if ok else ''})"
    allowed = ", ".join(f"{lo}-{hi}" for lo, hi in _ranges(rule))
    return per_container(check_id, ALL_CONTAINERS, cond, f"use no hostPort{' outside ' + allowed if allowed else ''}")


@register(
    "no-host-ports",
    category="security",
    severity=Severity.WARNING,
    title="No host ports",
    why="A hostPort binds the node's network interface: it bypasses NetworkPolicies, limits the pod to "
    "one replica per node and collides with other workloads.",
    remediation="Remove `ports[].hostPort` and reach the pod through a Service; keep any needed host "
    "port within the policy's allowed range.",
    group="pod_security",
    enabled=lambda rule: rule.host_ports is not None,
    reads={"Deployment": (f"{_POD}.hostNetwork", *_containers(["ports"]))},
    cel=_host_ports_cel,
)
def no_host_ports(ctx: Context, rule: PodSecurityRule) -> Outcome:
    """No container port has a non-zero hostPort outside the allowed ranges (hostNetwork defaults it)."""
    ranges = _ranges(rule)
    host_network = ctx.target.pod_spec.get("hostNetwork") is True

    def problem(c: Container) -> str | None:
        bad = []
        for p in c.get("ports") or ():
            hp = p.get("hostPort")
            port = int(hp if hp is not None else (p.get("containerPort") or 0) if host_network else 0)
            if port and not any(lo <= port <= hi for lo, hi in ranges):
                bad.append(str(port))
        if not bad:
            return None
        where = f" outside {', '.join(f'{lo}-{hi}' for lo, hi in ranges)}" if ranges else ""
        return f"{c.label} binds host port(s) {', '.join(bad)}{where}; remove {c.path}.ports[].hostPort (use a Service)"

    return judge_each_container(ctx, problem, "no container binds a host port outside the allowed ranges")


def _caps(rule: PodSecurityRule) -> list[str]:
    return list(rule.capabilities.allowed) if rule.capabilities else []


@register(
    "capabilities-allowed",
    category="security",
    severity=Severity.CRITICAL,
    title="Allowed capabilities only",
    why="Added capabilities such as NET_ADMIN or SYS_ADMIN (or `ALL`) give a container kernel powers "
    "that reach beyond it, even when it drops the defaults first.",
    remediation="Add only capabilities from the policy's allow-list in `securityContext.capabilities.add` (never `ALL`).",
    group="pod_security",
    enabled=lambda rule: rule.capabilities is not None,
    reads={"Deployment": _containers(["securityContext.capabilities"])},
    cel=each_container(
        ALL_CONTAINERS,
        lambda rule: f"c.?securityContext.?capabilities.?add.orValue([]).all(a, a in {lit(_caps(rule))})",
        lambda rule: f"add only capabilities from {', '.join(_caps(rule)) or '(none)'}",
    ),
)
def capabilities_allowed(ctx: Context, rule: PodSecurityRule) -> Outcome:
    """Every capability in capabilities.add is on the allow-list (exact names, like Pod Security)."""
    allowed = set(_caps(rule))

    def problem(c: Container) -> str | None:
        bad = [str(a) for a in (_sc(c).get("capabilities") or {}).get("add") or () if a not in allowed]
        if not bad:
            return None
        return f"{c.label} adds capabilities {', '.join(bad)}; remove them from {c.path}.securityContext.capabilities.add"

    return judge_each_container(ctx, problem, "no container adds a capability outside the allow-list")


@register(
    "proc-mount-default",
    category="security",
    severity=Severity.WARNING,
    title="Default /proc mount",
    why="An Unmasked /proc exposes kernel interfaces the runtime normally hides from containers.",
    remediation="Remove `securityContext.procMount` or set it to `Default`.",
    group="pod_security",
    enabled=lambda rule: rule.proc_mount_default,
    reads={"Deployment": _containers(["securityContext.procMount"])},
    cel=each_container(ALL_CONTAINERS, "c.?securityContext.?procMount.orValue('Default') == 'Default'", "use procMount Default"),
)
def proc_mount_default(ctx: Context, rule: PodSecurityRule) -> Outcome:
    """procMount is unset or Default on every container."""
    return judge_each_container(
        ctx,
        lambda c: (
            None
            if _sc(c).get("procMount") in (None, "Default")
            else f"{c.label} sets procMount {_sc(c).get('procMount')}; remove {c.path}.securityContext.procMount"
        ),
        "every container uses the default /proc mount",
    )


def _sysctls(rule: PodSecurityRule) -> list[str]:
    return list(rule.sysctls.allowed) if rule.sysctls else []


@register(
    "sysctls-safe",
    category="security",
    severity=Severity.WARNING,
    title="Safe sysctls only",
    why="Sysctls outside the safe, namespaced set change kernel settings for every pod on the node or disable protections.",
    remediation="Set only allowed sysctls in `spec.template.spec.securityContext.sysctls` (by default the "
    "Pod Security safe set); tune the others on the node.",
    group="pod_security",
    enabled=lambda rule: rule.sysctls is not None,
    reads={"Deployment": (f"{_POD}.securityContext.sysctls",)},
    cel=lambda check_id, rule: Cel(
        f"{_POD_SC}.?sysctls.orValue([]).all(s, s.name in {lit(_sysctls(rule))})",
        f"{check_id}: set only allowed sysctls in {_POD}.securityContext.sysctls",
    ),
)
def sysctls_safe(ctx: Context, rule: PodSecurityRule) -> Outcome:
    """Every pod sysctl name is in the allowed set."""
    allowed = set(_sysctls(rule))
    bad = [str(s.get("name")) for s in _pod_sc(ctx).get("sysctls") or () if s.get("name") not in allowed]
    if bad:
        return failed([f"the pod sets sysctls {', '.join(bad)}; remove them from {_POD}.securityContext.sysctls"])
    return passed("every sysctl is in the safe set")


def _pod_and_container_problems(ctx: Context, field: str, ok: Callable[[Any], bool], fault: str, fix: str) -> list[str]:
    """Problems with a securityContext ``field`` Pod Security judges on the pod and on every container.

    Each problem reads "<where> <fault>; <fix with {path}>", ``{path}`` being that securityContext's field.
    """
    places = [("the pod", f"{_POD}.securityContext", _pod_sc(ctx))]
    places += [(c.label, f"{c.path}.securityContext", _sc(c)) for c in ctx.target.all_containers()]
    return [
        f"{where} {fault}; {fix.format(path=f'{path}.{field}')}"
        for where, path, context in places
        if not ok(context.get(field))
    ]


def _profile_ok(profile: Any) -> bool:
    return profile is None or (profile or {}).get("type", "RuntimeDefault") in _GOOD_PROFILES


def _profile_cel(opt: str) -> str:
    return f"{opt}.?type.orValue('RuntimeDefault') in {lit(list(_GOOD_PROFILES))}"


@register(
    "apparmor-allowed",
    category="security",
    severity=Severity.CRITICAL,
    title="AppArmor confined",
    why="An Unconfined AppArmor profile removes the runtime's default mandatory access control from the container.",
    remediation="Remove `appArmorProfile` (pod and containers) or set its type to `RuntimeDefault` or "
    "`Localhost`; legacy `container.apparmor.security.beta.kubernetes.io/*` annotations must say "
    "`runtime/default` or `localhost/<profile>`.",
    group="pod_security",
    enabled=lambda rule: rule.no_unconfined_app_armor,
    reads={
        "Deployment": (
            "spec.template.metadata.annotations",
            f"{_POD}.securityContext.appArmorProfile",
            *_containers(["securityContext.appArmorProfile"]),
        )
    },
    cel=lambda check_id, rule: Cel(
        f"{_profile_cel(_POD_SC + '.?appArmorProfile')} && "
        f"{ALL_CONTAINERS}.all(c, {_profile_cel('c.?securityContext.?appArmorProfile')}) && "
        f"{_ANNOTATIONS}.all(k, !k.startsWith({lit(_APPARMOR_ANNOTATION)}) || {_ANNOTATIONS}[k] == '' || "
        f"{_ANNOTATIONS}[k] == 'runtime/default' || {_ANNOTATIONS}[k].startsWith('localhost/'))",
        f"{check_id}: use AppArmor RuntimeDefault or Localhost (field and annotations), not Unconfined",
    ),
)
def apparmor_allowed(ctx: Context, rule: PodSecurityRule) -> Outcome:
    """No AppArmor profile (pod, container or legacy annotation) other than RuntimeDefault/Localhost."""
    problems = _pod_and_container_problems(
        ctx, "appArmorProfile", _profile_ok, "runs AppArmor Unconfined", "set {path}.type: RuntimeDefault"
    )
    template = (ctx.target.spec.get("template") or {}).get("metadata") or {}
    annotations = template.get("annotations") or {}
    for key, value in sorted(annotations.items()):
        if key.startswith(_APPARMOR_ANNOTATION) and not (value in ("", "runtime/default") or str(value).startswith("localhost/")):
            problems.append(f"annotation {key} is {value!r}; set it to runtime/default or remove it (use appArmorProfile)")
    return failed(problems) if problems else passed("AppArmor confines every container")


def _selinux_types(rule: PodSecurityRule) -> list[str]:
    return ["", *(rule.se_linux.allowed_types if rule.se_linux else ())]


def _selinux_ok(opts: Any, types: list[str]) -> bool:
    if not isinstance(opts, Mapping):
        return True
    return opts.get("type", "") in types and not opts.get("user") and not opts.get("role")


def _selinux_cel(opt: str, types: list[str]) -> str:
    return f"({opt}.?type.orValue('') in {lit(types)} && {opt}.?user.orValue('') == '' && {opt}.?role.orValue('') == '')"


@register(
    "selinux-allowed",
    category="security",
    severity=Severity.CRITICAL,
    title="SELinux type allowed",
    why="A custom SELinux user, role or type (such as spc_t) lifts the confinement the container runtime applies.",
    remediation="Remove `seLinuxOptions.user` and `.role`; keep `seLinuxOptions.type` empty or one of the "
    "allowed container types (container_t ...).",
    group="pod_security",
    enabled=lambda rule: rule.se_linux is not None,
    reads={"Deployment": (f"{_POD}.securityContext.seLinuxOptions", *_containers(["securityContext.seLinuxOptions"]))},
    cel=lambda check_id, rule: Cel(
        f"{_selinux_cel(_POD_SC + '.?seLinuxOptions', _selinux_types(rule))} && "
        f"{ALL_CONTAINERS}.all(c, {_selinux_cel('c.?securityContext.?seLinuxOptions', _selinux_types(rule))})",
        f"{check_id}: seLinuxOptions may set only an allowed type (no user, no role)",
    ),
)
def selinux_allowed(ctx: Context, rule: PodSecurityRule) -> Outcome:
    """seLinuxOptions (pod and containers): type empty or allowed, user and role unset."""
    types = _selinux_types(rule)
    problems = _pod_and_container_problems(
        ctx, "seLinuxOptions", lambda opts: _selinux_ok(opts, types), "sets forbidden seLinuxOptions",
        "remove user/role and set an allowed type in {path}",
    )
    return failed(problems) if problems else passed("SELinux options are within the allowed types")


@register(
    "seccomp-not-unconfined",
    category="security",
    severity=Severity.CRITICAL,
    title="seccomp not Unconfined",
    why="An explicit Unconfined seccomp profile switches syscall filtering off, including for syscalls "
    "used by container escapes.",
    remediation="Remove `seccompProfile.type: Unconfined` (pod and containers) or set `RuntimeDefault`.",
    group="pod_security",
    enabled=lambda rule: rule.no_unconfined_seccomp,
    reads={"Deployment": (f"{_POD}.securityContext.seccompProfile", *_containers(["securityContext.seccompProfile"]))},
    cel=lambda check_id, rule: Cel(
        f"{_profile_cel(_POD_SC + '.?seccompProfile')} && "
        f"{ALL_CONTAINERS}.all(c, {_profile_cel('c.?securityContext.?seccompProfile')})",
        f"{check_id}: do not set seccompProfile.type Unconfined (pod or containers)",
    ),
)
def seccomp_not_unconfined(ctx: Context, rule: PodSecurityRule) -> Outcome:
    """No pod or container seccompProfile other than RuntimeDefault/Localhost (unset is fine)."""
    problems = _pod_and_container_problems(
        ctx, "seccompProfile", _profile_ok, "runs seccomp Unconfined", "set {path}.type: RuntimeDefault"
    )
    return failed(problems) if problems else passed("no seccomp profile is Unconfined")


def _handler_host_cel() -> str:
    terms = []
    for handler in _HANDLERS:
        opt = "c.?" + ".?".join(handler.split("."))
        for kind in ("httpGet", "tcpSocket"):
            terms.append(f"{opt}.?{kind}.?host.orValue('') == ''")
    return " && ".join(terms)


def _handler(c: Container, path: str) -> Mapping[str, Any]:
    node: Any = c.spec
    for part in path.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node if isinstance(node, Mapping) else {}


@register(
    "no-probe-host",
    category="security",
    severity=Severity.WARNING,
    title="Probes stay on the pod",
    why="A probe or lifecycle hook with `host` set makes the kubelet send requests to another address, "
    "reaching services on the node's network on the pod's behalf.",
    remediation="Remove `httpGet.host` and `tcpSocket.host` from probes and lifecycle hooks (they then target the pod's own IP).",
    group="pod_security",
    enabled=lambda rule: rule.no_probe_host,
    reads={"Deployment": _containers(_HANDLERS)},
    cel=each_container(ALL_CONTAINERS, _handler_host_cel(), "not set host in probes or lifecycle hooks"),
)
def no_probe_host(ctx: Context, rule: PodSecurityRule) -> Outcome:
    """No probe or lifecycle handler sets httpGet.host or tcpSocket.host."""

    def problem(c: Container) -> str | None:
        bad = [
            f"{h}.{kind}.host"
            for h in _HANDLERS
            for kind in ("httpGet", "tcpSocket")
            if (_handler(c, h).get(kind) or {}).get("host")
        ]
        return f"{c.label} sets {', '.join(bad)}; remove it from {c.path}" if bad else None

    return judge_each_container(ctx, problem, "no probe or hook targets another host")


def _volume_types(rule: PodSecurityRule) -> list[str]:
    return list(rule.volume_types.allowed) if rule.volume_types else []


def _sources(volume: Mapping[str, Any]) -> list[str]:
    """A volume's source fields; none means emptyDir (the API server defaults it)."""
    return [k for k in volume if k != "name"] or ["emptyDir"]


@register(
    "volume-types-allowed",
    category="security",
    severity=Severity.WARNING,
    title="Allowed volume types",
    why="Volume types beyond ConfigMaps, Secrets, emptyDirs and claims (hostPath, nfs, iscsi, gitRepo...) "
    "reach node or network storage outside the cluster's access control.",
    remediation="Use only the allowed volume sources in `spec.template.spec.volumes` (by default the Pod "
    "Security restricted list); move other storage behind a PersistentVolumeClaim.",
    group="pod_security",
    enabled=lambda rule: rule.volume_types is not None,
    reads={"Deployment": (f"{_POD}.volumes",)},
    cel=lambda check_id, rule: Cel(
        f"variables.pod.?volumes.orValue([]).all(v, v.exists(k, k in {lit(_volume_types(rule))}))",
        f"{check_id}: use only the volume types {', '.join(_volume_types(rule))}",
    ),
)
def volume_types_allowed(ctx: Context, rule: PodSecurityRule) -> Outcome:
    """Every volume uses an allowed source."""
    allowed = set(_volume_types(rule))
    problems = [
        f"volume '{v.get('name')}' is a {', '.join(_sources(v))} volume; remove it from {_POD}.volumes or use one of "
        f"{', '.join(sorted(allowed))}"
        for v in ctx.target.pod_spec.get("volumes") or ()
        if isinstance(v, Mapping) and not any(s in allowed for s in _sources(v))
    ]
    return failed(problems) if problems else passed("every volume type is allowed")


@register(
    "automount-service-account-token",
    category="security",
    severity=Severity.WARNING,
    title="No automounted API token",
    why="An automounted service account token lets anyone who gets into the container call the API "
    "server as the pod; most apps never need it.",
    remediation="Set `spec.template.spec.automountServiceAccountToken: false` (mount a projected token "
    "explicitly where the app calls the API).",
    group="pod_security",
    enabled=lambda rule: rule.no_automount_service_account_token,
    reads={"Deployment": (f"{_POD}.automountServiceAccountToken",)},
    cel=lambda check_id, rule: Cel(
        "variables.pod.?automountServiceAccountToken.orValue(true) == false",
        f"{check_id}: set {_POD}.automountServiceAccountToken: false",
    ),
)
def automount_service_account_token(ctx: Context, rule: PodSecurityRule) -> Outcome:
    """The pod template opts out of the token explicitly (the ServiceAccount's default is invisible here)."""
    if ctx.target.pod_spec.get("automountServiceAccountToken") is False:
        return passed("the pod does not mount a service account token")
    return failed([f"the pod mounts the service account token; set {_POD}.automountServiceAccountToken: false"])


@register(
    "no-plain-secret-env",
    category="security",
    severity=Severity.CRITICAL,
    title="No secrets in env literals",
    why="A password or token written as an env `value` is stored in the Deployment, readable by anyone "
    "who can read Deployments and kept in every revision.",
    remediation="Move the value into a Secret and reference it with `env[].valueFrom.secretKeyRef` (or `envFrom.secretRef`).",
    group="pod_security",
    enabled=lambda rule: rule.no_plain_secret_env,
    reads={"Deployment": _containers(["env[].name", "env[].value"])},
    cel=each_container(
        ALL_CONTAINERS,
        f"c.?env.orValue([]).all(e, e.?value.orValue('') == '' || !e.name.matches({lit(SECRET_NAME)}))",
        "take secret-looking env vars from a Secret (valueFrom.secretKeyRef)",
    ),
)
def no_plain_secret_env(ctx: Context, rule: PodSecurityRule) -> Outcome:
    """No env var with a secret-looking name has a literal value (the value is never repeated)."""

    def problem(c: Container) -> str | None:
        names = [
            str(e.get("name"))
            for e in c.get("env") or ()
            if isinstance(e, Mapping) and e.get("value") and _SECRET_RE.search(str(e.get("name", "")))
        ]
        if not names:
            return None
        return (
            f"{c.label} sets {', '.join(names)} as a literal value; set {c.path}.env[name=...].valueFrom.secretKeyRef "
            "instead (move the value into a Secret)"
        )

    return judge_each_container(ctx, problem, "no secret-looking env var holds a literal value")


def image_repository(image: str) -> str:
    """The image's repository with its registry host: ``app:1`` -> ``docker.io/library/app``."""
    repo, _, _ = split_image(image)
    first, slash, _ = repo.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return repo
    return f"docker.io/{repo}" if slash else f"docker.io/library/{repo}"


def _registries(rule: ImagesRule) -> list[str]:
    return [r.rstrip("/") for r in rule.allowed_registries]


def _registry_cel(check_id: str, rule: ImagesRule) -> Cel:
    r0 = "c.?image.orValue('').split('@')[0]"
    repo = f"({r0}.lastIndexOf(':') > {r0}.lastIndexOf('/') ? {r0}.substring(0, {r0}.lastIndexOf(':')) : {r0})"
    first = f"{repo}.split('/')[0]"
    has_host = f"({repo}.contains('/') && ({first}.contains('.') || {first}.contains(':') || {first} == 'localhost'))"
    norm = f"({has_host} ? {repo} : ({repo}.contains('/') ? 'docker.io/' + {repo} : 'docker.io/library/' + {repo}))"
    cond = f"{lit(_registries(rule))}.exists(r, {norm} == r || {norm}.startsWith(r + '/'))"
    return per_container(check_id, ALL_CONTAINERS, cond, f"use an image from {', '.join(_registries(rule))}")


@register(
    "image-registry-allowed",
    category="security",
    severity=Severity.WARNING,
    title="Trusted registry",
    why="An image from an unvetted registry bypasses the scanning, signing and availability guarantees "
    "of the registries the platform trusts.",
    remediation="Pull every image (init containers too) from one of the policy's "
    "`images.allowedRegistries`; mirror third-party images there.",
    group="images",
    enabled=lambda rule: bool(rule.allowed_registries),
    reads={"Deployment": _containers(["image"])},
    cel=_registry_cel,
)
def image_registry_allowed(ctx: Context, rule: ImagesRule) -> Outcome:
    """Every image's repository is an allowed registry (or below it, by whole path segments)."""
    allowed = _registries(rule)

    def problem(c: Container) -> str | None:
        repo = image_repository(str(c.get("image") or ""))
        if any(repo == r or repo.startswith(r + "/") for r in allowed):
            return None
        return (
            f"{c.label} image '{c.get('image')}' is from {repo.split('/')[0]}; "
            f"set {c.path}.image to an image from {', '.join(allowed)}"
        )

    return judge_each_container(ctx, problem, "every image is from an allowed registry")
