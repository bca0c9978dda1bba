"""Differential fuzzing of admission (issue #13): Deployments generated from the API server's own
OpenAPI v3 schema, judged by the engine/webhook decision and, through server-side dry-run, by the
ValidatingAdmissionPolicy that `generate_vap` makes of the same policy.

Shared by `tests/e2e/test_fuzz.py` (a few hundred examples) and `hack/bench/fuzz.py` (thousands).
Only public entry points are used (`generate_vap`, `review_deployment`), so a refactor of how each
check's CEL is produced keeps this harness valid.

The strategy walks the schema of `io.k8s.api.apps.v1.Deployment` ($refs resolved): types, enums,
required fields and int-or-string come from the schema; only the fields the checks read (and a few
neighbours) are generated, with values the API server accepts (DNS names, quantities, ports), so
most examples get past validation and reach admission. Cross-field rules the schema cannot say
(the selector matches the template labels, unique container names, one probe handler) are fixed up.
"""

from __future__ import annotations

import base64
import json
import random
import re
import ssl
import tempfile
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.client import HTTPSConnection
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from readiness_operator.admission.decide import review_deployment
from readiness_operator.admission.vap import generate_vap
from readiness_operator.model import ReadinessPolicySpec
from readiness_operator.quantity import parse_quantity
from readiness_operator.world import World

DEPLOYMENT = "io.k8s.api.apps.v1.Deployment"

#: What is generated below each object (by the schema's property names). Everything else is left out:
#: a PodSpec has ~40 fields and 30 volume types, which would only make the API server reject examples.
FIELDS: Mapping[str, tuple[str, ...]] = {
    "io.k8s.api.apps.v1.Deployment": ("metadata", "spec"),
    "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta": ("name", "labels", "annotations"),
    "io.k8s.api.apps.v1.DeploymentSpec": ("replicas", "strategy", "minReadySeconds", "revisionHistoryLimit",
                                           "paused", "progressDeadlineSeconds", "template"),
    "io.k8s.api.apps.v1.DeploymentStrategy": ("type", "rollingUpdate"),
    "io.k8s.api.apps.v1.RollingUpdateDeployment": ("maxSurge", "maxUnavailable"),
    "io.k8s.api.core.v1.PodTemplateSpec": ("metadata", "spec"),
    "io.k8s.api.core.v1.PodSpec": ("containers", "initContainers", "securityContext", "affinity",
                                   "topologySpreadConstraints", "terminationGracePeriodSeconds",
                                   "automountServiceAccountToken", "hostNetwork"),
    "io.k8s.api.core.v1.Container": ("name", "image", "resources", "livenessProbe", "readinessProbe",
                                     "startupProbe", "securityContext", "lifecycle", "ports", "imagePullPolicy",
                                     "restartPolicy"),
    "io.k8s.api.core.v1.ResourceRequirements": ("requests", "limits"),
    "io.k8s.api.core.v1.Probe": ("exec", "httpGet", "tcpSocket", "grpc", "initialDelaySeconds", "periodSeconds",
                                 "failureThreshold"),
    "io.k8s.api.core.v1.ExecAction": ("command",),
    "io.k8s.api.core.v1.HTTPGetAction": ("path", "port", "scheme"),
    "io.k8s.api.core.v1.TCPSocketAction": ("port",),
    "io.k8s.api.core.v1.GRPCAction": ("port",),
    "io.k8s.api.core.v1.SleepAction": ("seconds",),
    "io.k8s.api.core.v1.Lifecycle": ("preStop", "postStart"),
    "io.k8s.api.core.v1.LifecycleHandler": ("exec", "httpGet", "tcpSocket", "sleep"),
    "io.k8s.api.core.v1.ContainerPort": ("name", "containerPort", "protocol"),
    "io.k8s.api.core.v1.SecurityContext": ("runAsUser", "runAsGroup", "runAsNonRoot", "readOnlyRootFilesystem",
                                           "allowPrivilegeEscalation", "privileged", "capabilities",
                                           "seccompProfile"),
    "io.k8s.api.core.v1.PodSecurityContext": ("runAsUser", "runAsGroup", "runAsNonRoot", "seccompProfile",
                                              "fsGroup"),
    "io.k8s.api.core.v1.Capabilities": ("add", "drop"),
    "io.k8s.api.core.v1.SeccompProfile": ("type", "localhostProfile"),
    "io.k8s.api.core.v1.Affinity": ("podAntiAffinity", "podAffinity"),
    "io.k8s.api.core.v1.PodAntiAffinity": ("requiredDuringSchedulingIgnoredDuringExecution",
                                           "preferredDuringSchedulingIgnoredDuringExecution"),
    "io.k8s.api.core.v1.PodAffinity": ("preferredDuringSchedulingIgnoredDuringExecution",),
    "io.k8s.api.core.v1.WeightedPodAffinityTerm": ("weight", "podAffinityTerm"),
    "io.k8s.api.core.v1.PodAffinityTerm": ("labelSelector", "topologyKey"),
    "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector": ("matchLabels", "matchExpressions"),
    "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelectorRequirement": ("key", "operator", "values"),
    "io.k8s.api.core.v1.TopologySpreadConstraint": ("maxSkew", "topologyKey", "whenUnsatisfiable", "labelSelector",
                                                    "minDomains"),
}

#: A DNS-1123 label (cheaper to draw than from_regex): a letter, then letters, digits and inner hyphens.
_LABEL = st.builds(lambda head, tail: (head + tail).rstrip("-"), st.sampled_from("abcdefghijklmnopqrstuvwxyz"),
                   st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", max_size=9))
_KEYS = st.sampled_from(["app", "tier", "team", "example.com/role", "x", "app.kubernetes.io/name"])
_VALUE = st.one_of(st.sampled_from(["a", "b", "web"]), _LABEL)  # "a": the fuzz policy's exemption selector
_LABELS = st.dictionaries(_KEYS, _VALUE, max_size=3)
# Values around the fuzz policy's bounds (cpu request >= 50m, limit <= 8; memory request <= 8Gi, limit
# 64Mi..16Gi) in several spellings, and the odd forms the API server accepts (huge exponents, 0).
_CPU = st.sampled_from(["1m", "49m", "50m", "51m", "0.05", "100m", "250m", "0.5", "1", "2", "4", "1500m", "0",
                        "1e3", "10", "64", "7999m", "8", "8001m", "8.001", "5e-2", "50e-3"])
_MEMORY = st.sampled_from(["1", "63Mi", "64Mi", "65Mi", "67108864", "67108863", "128Mi", "256M", "0.5Gi", "1Gi",
                           "8Gi", "8193Mi", "8589934592", "8589934593", "16Gi", "16385Mi", "17179869184", "16.5Gi",
                           "1e9", "1e100", "1e400", "0", "129M", "1.5Gi", "999Ki", "1Ti", "100", "64e6", "0.0625Gi"])
_IMAGES = st.sampled_from([
    "app", "app:1.0", "app:latest", "registry.example/team/app:2.3.4", "registry.example:5000/app",
    "registry.example:5000/app:v1", "app@sha256:" + "0" * 64, "app:1.0@sha256:" + "a" * 64, "busybox:latest",
    "ghcr.io/org/app:sha-1234", "localhost/app:dev",
])
_PORT = st.integers(1, 65535)
_NAMED_PORT = st.sampled_from(["http", "grpc", "metrics"])
_OVERRIDE = st.sampled_from(["INC-1 approved by on-call", "", " ", "\x1f", "\u200b", "\u00a0x", "ok"])


def _resources() -> st.SearchStrategy[dict[str, str]]:
    return st.fixed_dictionaries({}, optional={"cpu": _CPU, "memory": _MEMORY})


#: Values by property name (in any object) where the schema says only "string" or "integer".
_BY_NAME: dict[str, st.SearchStrategy[Any]] = {
    "name": _LABEL, "image": _IMAGES, "port": st.one_of(_PORT, _NAMED_PORT), "labels": _LABELS,
    "matchLabels": _LABELS, "containerPort": _PORT,
    "requests": _resources(), "limits": _resources(), "topologyKey": st.sampled_from(
        ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]),
    "runAsUser": st.one_of(st.sampled_from([0, 1, 999, 1000, 1001, 65534]), st.integers(0, 70000)),
    "runAsGroup": st.integers(0, 70000), "fsGroup": st.integers(0, 70000),
    "command": st.lists(st.sampled_from(["true", "sh", "-c", "sleep 1"]), min_size=1, max_size=2),
    "path": st.sampled_from(["/", "/healthz", "/ready"]), "replicas": st.integers(0, 12),
    "terminationGracePeriodSeconds": st.one_of(st.sampled_from([0, 9, 10, 11, 30]), st.integers(0, 120)),
    "seconds": st.integers(1, 30),
    "add": st.lists(st.sampled_from(["NET_ADMIN", "ALL", "SYS_TIME", "CHOWN"]), max_size=2, unique=True),
    "drop": st.lists(st.sampled_from(["ALL", "NET_RAW", "all", "CHOWN"]), max_size=2, unique=True),
    "values": st.lists(_LABEL, min_size=1, max_size=2), "key": _KEYS, "localhostProfile": st.just("profile.json"),
    "operator": st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]),
    "weight": st.integers(1, 100), "maxSkew": st.integers(1, 3), "minDomains": st.integers(1, 3),
    "minReadySeconds": st.integers(0, 30), "progressDeadlineSeconds": st.integers(31, 900),
    "revisionHistoryLimit": st.integers(0, 10), "initialDelaySeconds": st.integers(0, 30),
    "periodSeconds": st.integers(1, 30), "failureThreshold": st.integers(1, 5),
}
_INT_OR_STRING = st.one_of(st.integers(0, 5), st.sampled_from(["0%", "24%", "25%", "26%", "34%", "49%", "50%", "51%",
                                                              "100%", "1%", "33%"]))


class SchemaStrategies:
    """Hypothesis strategies from an OpenAPI v3 document's components (one per schema, cached)."""

    def __init__(self, components: Mapping[str, Any]) -> None:
        self.components = components
        self._cache: dict[str, st.SearchStrategy[Any]] = {}

    def _resolve(self, schema: Mapping[str, Any]) -> tuple[str | None, Mapping[str, Any]]:
        ref = schema.get("$ref") or next((s.get("$ref") for s in schema.get("allOf") or () if "$ref" in s), None)
        if ref is None:
            return None, schema
        name = str(ref).rsplit("/", 1)[-1]
        return name, self.components[name]

    def for_ref(self, name: str) -> st.SearchStrategy[Any]:
        if name not in self._cache:
            self._cache[name] = st.deferred(lambda: self._object(name, self.components[name]))
        return self._cache[name]

    def _object(self, name: str, schema: Mapping[str, Any]) -> st.SearchStrategy[Any]:
        if schema.get("format") == "int-or-string" or name.endswith("util.intstr.IntOrString"):
            return _INT_OR_STRING
        if name.endswith("api.resource.Quantity"):
            return _MEMORY
        props = schema.get("properties") or {}
        wanted = [p for p in FIELDS.get(name, ()) if p in props]
        required = {p for p in schema.get("required") or () if p in props}
        return st.fixed_dictionaries(
            {p: self.for_property(p, props[p]) for p in wanted if p in required},
            optional={p: self.for_property(p, props[p]) for p in wanted if p not in required},
        )

    def for_property(self, prop: str, schema: Mapping[str, Any]) -> st.SearchStrategy[Any]:
        if prop in _BY_NAME:
            return _BY_NAME[prop]
        name, resolved = self._resolve(schema)
        if name is not None:
            return self.for_ref(name)
        if resolved.get("enum"):
            return st.sampled_from(sorted(str(v) for v in resolved["enum"]))
        if resolved.get("format") == "int-or-string":
            return _INT_OR_STRING
        kind = resolved.get("type")
        if kind == "array":
            items = resolved.get("items") or {}
            return st.lists(self.for_property(f"{prop}[]", items), min_size=1 if prop == "containers" else 0,
                            max_size=3 if prop == "containers" else 2)
        if kind == "object" and "additionalProperties" in resolved:
            return st.dictionaries(_KEYS, _LABEL, max_size=2)
        if kind == "boolean":
            return st.booleans()
        if kind == "integer":
            return st.integers(0, 100)
        if kind == "string":
            return _LABEL
        return st.nothing()


def _one_handler(handler: dict[str, Any], kinds: tuple[str, ...]) -> None:
    present = [k for k in kinds if k in handler]
    for extra in present[1:]:
        del handler[extra]
    if not present:
        handler["tcpSocket"] = {"port": 8080}


def near_bounds(obj: dict[str, Any], rng: random.Random) -> None:
    """Move some fields onto the fuzz policy's boundaries (a grace period of exactly 10 s, a 50m CPU
    request, 25% of 4 replicas...): drawn at random, such values are too rare to tell `>=` from `>`."""
    spec = obj.setdefault("spec", {})
    pod = spec.setdefault("template", {}).setdefault("spec", {})
    containers = pod.setdefault("containers", [{"name": "app", "image": "app:1.0"}])
    if rng.random() < 0.3:
        pod["terminationGracePeriodSeconds"] = rng.choice([9, 10, 11])
    if rng.random() < 0.3:
        spec["replicas"] = rng.choice([1, 2, 3, 4, 8])
        spec["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {
            "maxUnavailable": rng.choice(["24%", "25%", "26%", "50%", 1, 2]), "maxSurge": 1}}
    for c in containers:
        if rng.random() < 0.3:
            resources = c.setdefault("resources", {})
            resources.setdefault("requests", {})["cpu"] = rng.choice(["49m", "50m", "51m", "0.05"])
            resources.setdefault("limits", {})["memory"] = rng.choice(["63Mi", "64Mi", "16Gi", "16385Mi"])
        if rng.random() < 0.3:
            c.setdefault("securityContext", {})["runAsUser"] = rng.choice([999, 1000, 1001])


def fix_up(obj: dict[str, Any], namespace: str, name: str, override: str | None,
           selects_pods: bool = False) -> dict[str, Any]:
    """What the schema cannot say: the API server's cross-field rules, so examples reach admission."""
    obj.update(apiVersion="apps/v1", kind="Deployment")
    meta = obj.setdefault("metadata", {})
    meta.update(name=name, namespace=namespace)
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != "readiness.dev/override"}
    if override is not None:
        annotations["readiness.dev/override"] = override
    meta["annotations"] = annotations
    spec = obj.setdefault("spec", {})
    template = spec.setdefault("template", {})
    tmeta = template.setdefault("metadata", {})
    labels = dict(tmeta.get("labels") or {}) or {"app": name}
    tmeta["labels"] = labels
    spec["selector"] = {"matchLabels": labels}
    pod = template.setdefault("spec", {})
    pod.setdefault("containers", [{"name": "app", "image": "app:1.0"}])
    pod.pop("restartPolicy", None)
    strategy = spec.get("strategy")
    if strategy is not None:
        if strategy.get("type") != "RollingUpdate":
            strategy.pop("rollingUpdate", None)
        ru = strategy.get("rollingUpdate")
        if ru is not None and ru.get("maxSurge") in (0, "0%") and ru.get("maxUnavailable") in (0, "0%", None):
            ru["maxSurge"] = 1
    if "progressDeadlineSeconds" in spec and spec["progressDeadlineSeconds"] <= spec.get("minReadySeconds", 0):
        spec["progressDeadlineSeconds"] = spec.get("minReadySeconds", 0) + 1
    seen: set[str] = set()
    for i, c in enumerate([*(pod.get("initContainers") or ()), *pod["containers"]]):
        c.setdefault("name", f"c{i}")
        c.setdefault("image", "app:1.0")
        if c["name"] in seen:
            c["name"] = f"{c['name'][:50]}-{i}"
        seen.add(c["name"])
        ports = [p for p in c.get("ports") or ()]
        used: set[int] = set()
        names: set[str] = set()
        for p in ports:
            p.setdefault("containerPort", 8080)
            while p["containerPort"] in used:
                p["containerPort"] = p["containerPort"] % 65535 + 1
            used.add(p["containerPort"])
            if p.get("name") in names or len(str(p.get("name", ""))) > 15 or "--" in str(p.get("name", "")):
                p.pop("name", None)
            names.add(str(p.get("name")))
        if ports:
            c["ports"] = ports
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            if probe in c:
                _one_handler(c[probe], ("exec", "httpGet", "tcpSocket", "grpc"))
                for handler in ("httpGet", "tcpSocket", "grpc"):
                    if handler not in c[probe]:
                        continue
                    port = c[probe][handler].get("port")
                    if handler == "grpc" and not isinstance(port, int):
                        c[probe][handler]["port"] = 9090
                    elif port is None or (isinstance(port, str) and port not in names):
                        c[probe][handler]["port"] = 8080
        for hook in ("preStop", "postStart"):
            handler = (c.get("lifecycle") or {}).get(hook)
            if handler is not None:
                _one_handler(handler, ("exec", "httpGet", "tcpSocket", "sleep"))
                handler.pop("tcpSocket", None)  # deprecated: rejected in lifecycle hooks
                if not handler:
                    handler["sleep"] = {"seconds": 1}
                for h in ("httpGet",):
                    if isinstance((handler.get(h) or {}).get("port"), str):
                        handler[h]["port"] = 8080
        if c.get("restartPolicy") is not None and c not in (pod.get("initContainers") or ()):
            del c["restartPolicy"]  # only init containers may be sidecars
        elif c in (pod.get("initContainers") or ()) and ({"livenessProbe", "readinessProbe", "startupProbe",
                                                           "lifecycle"} & set(c)):
            c["restartPolicy"] = "Always"  # probes and hooks only on sidecars
        for handler in [*(c.get(p) for p in ("livenessProbe", "readinessProbe", "startupProbe")),
                        *(c.get("lifecycle") or {}).values()]:
            if isinstance(handler, dict) and "exec" in handler:
                handler["exec"].setdefault("command", ["true"])
        resources = c.get("resources") or {}
        for kind in ("cpu", "memory"):
            request, limit = (resources.get("requests") or {}).get(kind), (resources.get("limits") or {}).get(kind)
            if request is not None and limit is not None and _more(request, limit):
                resources["requests"][kind] = limit
        seccomp = (c.get("securityContext") or {}).get("seccompProfile")
        for sc in (seccomp, (pod.get("securityContext") or {}).get("seccompProfile")):
            if sc is not None:
                if sc.get("type") == "Localhost":
                    sc["localhostProfile"] = "profile.json"
                else:
                    sc.pop("localhostProfile", None)
        sc = c.get("securityContext") or {}
        if sc.get("privileged") and sc.get("allowPrivilegeEscalation") is False:
            sc["allowPrivilegeEscalation"] = True
    for term in (pod.get("affinity") or {}).get("podAntiAffinity", {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution") or ():
        term.setdefault("topologyKey", "kubernetes.io/hostname")
    spread = {(t.get("topologyKey"), t.get("whenUnsatisfiable")): t for t in pod.get("topologySpreadConstraints") or ()}
    if "topologySpreadConstraints" in pod:
        pod["topologySpreadConstraints"] = list(spread.values())
    for tsc in pod.get("topologySpreadConstraints") or ():
        tsc.setdefault("maxSkew", 1)
        tsc.setdefault("topologyKey", "kubernetes.io/hostname")
        tsc.setdefault("whenUnsatisfiable", "DoNotSchedule")
        if tsc.get("whenUnsatisfiable") != "DoNotSchedule":
            tsc.pop("minDomains", None)
    for sel in _selectors(pod, selects_pods):
        if selects_pods:  # an anti-affinity term or spread constraint over this Deployment's own pods
            sel.clear()
            sel["matchLabels"] = dict(labels)
        for expr in sel.get("matchExpressions") or ():
            if expr.get("operator") in ("Exists", "DoesNotExist"):
                expr.pop("values", None)
            elif not expr.get("values"):
                expr["values"] = ["x"]
    return obj


def _more(a: str, b: str) -> bool:
    """a > b as quantities; a value our parser refuses (an exponent out of range) counts as larger."""
    try:
        return parse_quantity(a) > parse_quantity(b)
    except ValueError:
        return True


def _selectors(pod: Mapping[str, Any], attach: bool) -> list[dict[str, Any]]:
    """The label selectors of the pod's affinity terms and spread constraints (`attach`: add missing ones)."""
    def of(holder: dict[str, Any]) -> dict[str, Any]:
        return holder.setdefault("labelSelector", {}) if attach else holder.get("labelSelector") or {}

    out = []
    affinity = pod.get("affinity") or {}
    for kind in ("podAntiAffinity", "podAffinity"):
        section = affinity.get(kind) or {}
        out += [of(term) for term in section.get("requiredDuringSchedulingIgnoredDuringExecution") or ()]
        out += [of(w.setdefault("podAffinityTerm", {"topologyKey": "kubernetes.io/hostname"}))
                for w in section.get("preferredDuringSchedulingIgnoredDuringExecution") or ()]
    out += [of(t) for t in pod.get("topologySpreadConstraints") or ()]
    return out


def deployments(components: Mapping[str, Any], namespace: str) -> st.SearchStrategy[dict[str, Any]]:
    """Deployments from the schema, fixed up to pass the API server's cross-field validation."""
    base = SchemaStrategies(components).for_ref(DEPLOYMENT)
    name = st.one_of(_LABEL, st.sampled_from(["legacy-a", "legacy-b", "legacy-c", "xy-z", "xy-1", "web"]))
    def build(obj: dict[str, Any], n: str, o: str | None, own: bool, rng: random.Random) -> dict[str, Any]:
        near_bounds(obj, rng)
        return fix_up(obj, namespace, n, o, own)

    return st.builds(build, base, name, st.one_of(st.none(), _OVERRIDE), st.booleans(), st.randoms(use_true_random=False))


#: The policy both sides judge with: every static check the fail-safe VAP covers, with bounds and
#: exemptions (globs with classes, a label selector) so their translation to CEL is exercised too.
def fuzz_policy(namespace: str) -> dict[str, Any]:
    return {
        "mode": "Enforce", "match": {"namespaces": [namespace]},
        "rules": {
            "probes": {"liveness": True, "readiness": True, "startup": True, "severity": "warning"},
            "resources": {"requests": {"cpu": {"min": "50m"}, "memory": {"max": "8Gi"}},
                          "limits": {"cpu": {"max": "8"}, "memory": {"min": "64Mi", "max": "16Gi"}},
                          "severity": "warning"},
            "replicas": {"min": 2},
            "securityContext": {"runAsNonRoot": True, "runAsUserMin": 1000, "readOnlyRootFilesystem": True,
                                "dropAllCapabilities": True, "seccompRuntimeDefault": True,
                                "noPrivilegeEscalation": True, "noPrivileged": True},
            "images": {"forbidLatest": True, "requireDigest": False},
            "rollingUpdate": {"required": True, "maxUnavailable": "25%"},
            "gracefulShutdown": {"minTerminationGracePeriodSeconds": 10, "requirePreStopHook": True,
                                 "severity": "warning"},
            "antiAffinity": {"required": True, "topologyKey": "kubernetes.io/hostname"},
        },
        "exemptions": [
            {"checks": ["probe-startup"], "names": ["legacy-[ab]", "xy-[!0-9]"], "reason": "migrating",
             "expires": "2099-01-01T00:00:00Z"},
            {"checks": ["read-only-root-fs"], "selector": {"matchLabels": {"tier": "a"}}, "reason": "writes /tmp",
             "expires": "2099-01-01T00:00:00Z"},
        ],
    }


@dataclass
class ApiConnection:
    """One kept-alive HTTPS connection to the API server, authenticated as the kubeconfig's user."""

    kubeconfig: Path
    _conn: HTTPSConnection | None = None
    _headers: dict[str, str] = field(default_factory=dict)

    def _connect(self) -> HTTPSConnection:
        config = yaml.safe_load(self.kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        user = config["users"][0]["user"]
        context = ssl.create_default_context()
        base = self.kubeconfig.parent
        if "certificate-authority" in cluster:
            context.load_verify_locations(str(base / cluster["certificate-authority"]))
        elif "certificate-authority-data" in cluster:
            context.load_verify_locations(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
        if "client-certificate" in user:
            context.load_cert_chain(str(base / user["client-certificate"]), str(base / user["client-key"]))
        elif "client-certificate-data" in user:  # ssl wants files: a private temporary directory
            with tempfile.TemporaryDirectory() as tmp:
                cert, key = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
                cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
                key.write_bytes(base64.b64decode(user["client-key-data"]))
                context.load_cert_chain(str(cert), str(key))
        if "token" in user:
            self._headers["Authorization"] = f"Bearer {user['token']}"
        server = urllib.parse.urlsplit(cluster["server"])
        return HTTPSConnection(server.hostname or "127.0.0.1", server.port or 443, context=context, timeout=30)

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        for attempt in range(2):
            if self._conn is None:
                self._conn = self._connect()
            try:
                data = json.dumps(body).encode() if body is not None else None
                self._conn.request(method, path, body=data, headers={
                    **self._headers, "Content-Type": "application/json", "Accept": "application/json"})
                answer = self._conn.getresponse()
                raw = answer.read()
                return answer.status, json.loads(raw) if raw else None
            except (OSError, ConnectionError):
                self._conn.close()
                self._conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def deployment_schema_components(self) -> dict[str, Any]:
        """`/openapi/v3/apis/apps/v1`'s component schemas (where the Deployment's $refs point)."""
        status, doc = self.request("GET", "/openapi/v3/apis/apps/v1")
        assert status == 200, status
        components: dict[str, Any] = doc["components"]["schemas"]
        assert DEPLOYMENT in components
        return components

    def dry_run_create(self, obj: Mapping[str, Any]) -> tuple[int, Any]:
        ns = obj["metadata"]["namespace"]
        return self.request("POST", f"/apis/apps/v1/namespaces/{ns}/deployments?dryRun=All&fieldValidation=Strict",
                            obj)


@dataclass
class Outcome:
    """One example's fate: rejected by validation, or judged by both sides (and whether they agree)."""

    rejected: bool = False
    vap_denied: bool = False
    engine_denied: bool = False
    vap_failed: frozenset[str] = frozenset()
    engine_failed: frozenset[str] = frozenset()
    crash: str | None = None
    reason: str = ""  # why the API server rejected it (its validation message)

    @property
    def agrees(self) -> bool:
        return self.crash is None and (self.rejected or (
            self.vap_denied == self.engine_denied and self.vap_failed == self.engine_failed))


def failed_in_message(message: str, checks: tuple[str, ...]) -> frozenset[str]:
    """The check ids the VAP's deny message lists (each entry is `<check-id>: ... Fix: ...`, `; `-joined)."""
    body = message.split("denies this Deployment: ", 1)[-1]
    return frozenset(c for c in checks if re.search(rf"(?:^|; ){re.escape(c)}: ", body))


@dataclass
class Differential:
    """The policy as both judges see it: the VAP applied on the server, the spec for the engine."""

    api: ApiConnection
    namespace: str  # selected by the policy and its binding
    staging: str  # not selected: the API server's defaults and canonical form, without admission
    policy_name: str
    spec: ReadinessPolicySpec
    checks: tuple[str, ...]
    world: Callable[[Mapping[str, Any]], World] = field(default=lambda _: World(namespace_labels={}))

    @classmethod
    def generated(cls, api: ApiConnection, policy_name: str, namespace: str, staging: str,
                  apply: Callable[[dict[str, Any]], None], *, now: Any) -> Differential:
        spec = ReadinessPolicySpec.model_validate(fuzz_policy(namespace))
        vap = generate_vap({policy_name: spec}, name=f"readiness-{policy_name}", now=now, excluded_namespaces=())
        for obj in vap.objects:
            apply(obj)
        return cls(api, namespace, staging, policy_name, spec, vap.policies[policy_name].checks)

    def engine(self, stored: Mapping[str, Any]) -> tuple[bool, frozenset[str], str | None]:
        request = {"operation": "CREATE", "object": stored, "namespace": self.namespace,
                   "userInfo": {"username": "fuzz", "groups": ["system:authenticated"]},
                   "resource": {"group": "apps", "version": "v1", "resource": "deployments"}}
        try:
            decision = review_deployment(request, [(self.policy_name, self.spec)], self.world)
        except Exception as exc:  # the decision must never raise: a crash is a finding
            return False, frozenset(), f"review_deployment raised {exc!r}"
        if any("could not evaluate" in w for w in decision.warnings):
            return False, frozenset(), f"the engine could not evaluate it: {decision.warnings}"
        failed = frozenset(f.check for _, v in decision.verdicts for f in v.findings
                           if f.status == "fail" and f.check in self.checks)
        return not decision.allowed, failed if not decision.allowed else frozenset(), None

    def judge(self, obj: dict[str, Any]) -> Outcome:
        staged = json.loads(json.dumps(obj))
        staged["metadata"]["namespace"] = self.staging
        status, stored = self.api.dry_run_create(staged)
        if status in (400, 422):
            return Outcome(rejected=True, reason=str((stored or {}).get("message") or ""))
        if status >= 300:
            return Outcome(crash=f"dry-run in {self.staging} answered HTTP {status}: {stored}")
        stored["metadata"]["namespace"] = self.namespace
        for key in ("uid", "creationTimestamp", "generation", "managedFields", "resourceVersion"):
            stored["metadata"].pop(key, None)
        stored.pop("status", None)
        status, answer = self.api.dry_run_create(stored)
        if status not in (201, 403):
            return Outcome(crash=f"dry-run in {self.namespace} answered HTTP {status}: {answer}")
        message = str((answer or {}).get("message") or "") if status == 403 else ""
        if status == 403 and f"ValidatingAdmissionPolicy 'readiness-{self.policy_name}'" not in message:
            return Outcome(crash=f"denied by something else: {message}")
        engine_denied, engine_failed, crash = self.engine(stored)
        return Outcome(vap_denied=status == 403, engine_denied=engine_denied,
                       vap_failed=failed_in_message(message, self.checks), engine_failed=engine_failed, crash=crash)
