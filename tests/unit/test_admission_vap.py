"""The merged ValidatingAdmissionPolicy + binding: structure, per-check CEL, exemptions, per-policy scoping.

The expressions are checked structurally here (balanced brackets and quotes, known variables, message
prefixes); their behaviour against a real kube-apiserver is covered end to end.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from readiness_operator.admission.vap import GeneratedVap, PolicyCel, generate_vap
from readiness_operator.checks import CATALOGUE
from readiness_operator.model import ReadinessPolicy, ReadinessPolicySpec, check_promql_balance

NOW = datetime(2025, 6, 1, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]
EXCLUDED = ["kube-system", "readiness-system"]
#: The checks whose definition declares CEL (checks/), in catalogue order.
VAP_CHECKS = tuple(cid for cid, c in CATALOGUE.items() if c.cel is not None)

ALL_RULES: dict[str, Any] = {
    "probes": {"startup": True, "distinct": True, "severity": "warning"},
    "resources": {
        "requests": {"cpu": {"max": "2"}, "memory": {"min": "64Mi"}, "ephemeralStorage": {"min": "100Mi"}},
        "limits": {"cpu": {}, "memory": {"max": "1Gi"}, "ephemeralStorage": {}},
        "severity": "warning",
    },
    "replicas": {"min": 2},
    "securityContext": {"runAsUserMin": 1000, "runAsGroupMin": 1000},
    "antiAffinity": {},
    "images": {"requireDigest": True, "pullPolicies": ["Always"], "allowedRegistries": ["registry.example.com"]},
    "podSecurity": {
        "noHostNetwork": True, "noHostPid": True, "noHostIpc": True, "noHostProcess": True,
        "hostPath": {"allowedPrefixes": ["/var/log"]}, "hostPorts": {"allowed": [{"min": 30000, "max": 30100}]},
        "capabilities": {}, "procMountDefault": True, "sysctls": {}, "noUnconfinedAppArmor": True, "seLinux": {},
        "noUnconfinedSeccomp": True, "noProbeHost": True, "volumeTypes": {}, "noAutomountServiceAccountToken": True,
        "noPlainSecretEnv": True,
    },
    "rollingUpdate": {"maxUnavailable": "25%"},
    "gracefulShutdown": {"minTerminationGracePeriodSeconds": 20, "requirePreStopHook": True, "severity": "warning"},
    "scheduling": {"requirePriorityClass": True, "allowedPriorityClasses": ["high"], "zoneSpread": True, "maxSkew": 1},
    "env": {},
}


def spec(mode: str = "Enforce", **raw: Any) -> ReadinessPolicySpec:
    raw.setdefault("rules", ALL_RULES)
    return ReadinessPolicySpec.model_validate({"mode": mode, **raw})


NAME = "readiness-operator"


def gen(s: ReadinessPolicySpec, name: str = "prod") -> GeneratedVap:
    return generate_vap({name: s}, name=NAME, now=NOW, excluded_namespaces=EXCLUDED)


def only(g: GeneratedVap) -> PolicyCel:
    """The one policy a single-policy generation holds."""
    [cel] = g.policies.values()
    return cel


def vap_and_binding(g: GeneratedVap) -> tuple[dict[str, Any], dict[str, Any]]:
    assert len(g.objects) == 2
    vap, binding = g.objects
    assert vap["kind"] == "ValidatingAdmissionPolicy" and binding["kind"] == "ValidatingAdmissionPolicyBinding"
    return vap, binding


def check_of(v: dict[str, Any]) -> str:
    return str(v["message"]).split(":", 1)[0]


def validations(g: GeneratedVap) -> dict[str, dict[str, Any]]:
    vap, _ = vap_and_binding(g)
    [combined] = vap["spec"]["validations"]
    assert combined["expression"] == "size(variables.denials) == 0"
    *_, failures, denials, _text, _brief = vap["spec"]["variables"]
    assert (failures["name"], denials["name"]) == ("policy0", "denials")
    assert "variables.policy0" in denials["expression"]
    for v in only(g).per_check:  # every per-check rule is folded into the policy's failures list
        assert v["expression"] in failures["expression"]
    return {check_of(v): v for v in only(g).per_check}


def test_structure_and_yaml_round_trip() -> None:
    g = gen(spec())
    text = yaml.safe_dump_all(g.objects)
    assert list(yaml.safe_load_all(text)) == g.objects
    vap, binding = vap_and_binding(g)
    labels = {"app.kubernetes.io/managed-by": "readiness-operator"}
    for obj in (vap, binding):
        assert obj["apiVersion"] == "admissionregistration.k8s.io/v1"
        assert obj["metadata"]["name"] == NAME
        assert obj["metadata"]["labels"] == labels
    rules = [
        {
            "apiGroups": ["apps"],
            "apiVersions": ["v1"],
            "operations": ["CREATE", "UPDATE"],
            "resources": ["deployments"],
            "scope": "Namespaced",
        },
        {
            "apiGroups": ["apps"],
            "apiVersions": ["v1"],
            "operations": ["UPDATE"],
            "resources": ["deployments/scale"],
            "scope": "Namespaced",
        },
    ]
    assert vap["spec"]["matchConstraints"] == {"resourceRules": rules}
    assert vap["spec"]["failurePolicy"] == "Fail"
    assert [c["name"] for c in vap["spec"]["matchConditions"]] == ["no-override", "rollout-relevant"]
    assert binding["spec"]["policyName"] == NAME
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert binding["spec"]["matchResources"]["resourceRules"] == rules
    assert vap["metadata"]["annotations"]["readiness.dev/checks"] == "prod: " + ",".join(only(g).checks)
    assert vap["metadata"]["annotations"]["readiness.dev/policies"] == "prod"


def test_every_covered_check_has_a_validation() -> None:
    g = gen(spec())  # every group severity is warning or critical, so every covered check denies
    assert only(g).checks == VAP_CHECKS  # every check declaring CEL, in catalogue order
    assert list(validations(g)) == list(only(g).checks)
    for banned in ("pdb-present", "pdb-min-available", "hpa-present", "hpa-metrics"):
        assert banned not in only(g).checks


_IDENT = re.compile(r"variables\.([A-Za-z_][A-Za-z0-9_]*)")


def _all_expressions(g: GeneratedVap) -> list[str]:
    vap, _ = vap_and_binding(g)
    out = [v["expression"] for v in vap["spec"]["variables"]]
    out += [c["expression"] for c in vap["spec"]["matchConditions"]]
    for v in [*vap["spec"]["validations"], *(v for cel in g.policies.values() for v in cel.per_check)]:
        out.append(v["expression"])
        if "messageExpression" in v:
            out.append(v["messageExpression"])
    return out


@pytest.mark.parametrize(
    "raw",
    [
        {},
        {"admission": {"overrideUsers": ["bob"], "overrideGroups": ["sre"], "judgeUnchangedUpdates": True}},
        {
            "exemptions": [
                {"checks": ["*"], "names": ["legacy-*", "a.b?"], "namespaces": ["x"], "reason": "r",
                 "expires": "2099-01-01T00:00:00Z"},
                {"checks": ["image-tag-pinned"], "names": ["v1.[ab]*"], "reason": "r"},
                {
                    "checks": ["probe-liveness"],
                    "selector": {
                        "matchLabels": {"team": "o.brien"},
                        "matchExpressions": [
                            {"key": "a", "operator": "In", "values": ["1", "2"]},
                            {"key": "b", "operator": "NotIn", "values": ["3"]},
                            {"key": "c", "operator": "Exists"},
                            {"key": "d", "operator": "DoesNotExist"},
                        ],
                    },
                    "reason": "r",
                },
            ]
        },
    ],
)
def test_expressions_are_structurally_valid(raw: dict[str, Any]) -> None:
    g = gen(spec(**raw))
    vap, _ = vap_and_binding(g)
    declared = {v["name"] for v in vap["spec"]["variables"]}
    for expr in _all_expressions(g):
        assert check_promql_balance(expr) is None, expr  # brackets and quotes balance
        assert set(_IDENT.findall(expr)) <= declared, expr
        assert "None" not in expr and "True" not in expr and "False" not in expr, expr  # no Python leaks
    assert vap["spec"]["validations"][0]["reason"] == "Forbidden"
    for v in only(g).per_check:
        v = {**v, "reason": "Forbidden"}
        cid = check_of(v)
        assert cid in VAP_CHECKS
        assert v["reason"] == "Forbidden"
        if "messageExpression" in v:
            assert v["messageExpression"].startswith((f'"{cid}: ', f"'{cid}: ")), v["messageExpression"]


@pytest.mark.parametrize(
    ("check", "fragments"),
    [
        ("probe-liveness", ["(variables.containers + variables.pod.?initContainers.orValue([]).filter(s, "
                            "s.?restartPolicy.orValue('') == 'Always')).all(c, has(c.livenessProbe))"]),
        ("probe-startup", ["has(c.startupProbe)"]),
        (
            "requests-cpu",
            [
                'c.?resources.?requests[?"cpu"].or(c.?resources.?limits[?"cpu"]).hasValue()',
                '.sum() <= (quantity("2").asApproximateFloat() * (1.0 + 1e-12))',  # the pod's effective request
                "variables.allContainers",
            ],
        ),
        ("requests-memory", ['.sum() >= (quantity("64Mi").asApproximateFloat() * (1.0 - 1e-12))']),
        ("limits-memory", ['c.?resources.?limits[?"memory"].hasValue()', 'compareTo(quantity("1Gi")) <= 0']),
        ("replicas-min",
         ["variables.replicas >= 2", "!(variables.rollout || variables.reconfigured || variables.scaleDown) || "]),
        (
            "run-as-non-root",
            ["c.?securityContext.?runAsNonRoot.or(variables.pod.?securityContext.?runAsNonRoot)", "orValue(-1) != 0"],
        ),
        ("run-as-user-min", ["c.?securityContext.?runAsUser.or(variables.pod.?securityContext.?runAsUser).orValue(-1) >= 1000"]),
        ("read-only-root-fs", ["readOnlyRootFilesystem.orValue(false) == true"]),
        ("drop-all-capabilities", ["upperAscii() == 'ALL'"]),
        ("seccomp-runtime-default", ["in ['RuntimeDefault', 'Localhost']", "variables.pod.?securityContext.?seccompProfile"]),
        ("no-privilege-escalation", ["allowPrivilegeEscalation.orValue(true) == false"]),
        ("no-privileged", ["privileged.orValue(false) == false"]),
        ("image-tag-pinned", ["matches('@.+$')"]),
        ("rolling-update", ["orValue('RollingUpdate') == 'RollingUpdate'", "(variables.replicas * 25 / 100)"]),
        ("termination-grace-period", ["terminationGracePeriodSeconds.orValue(30) >= 20"]),
        ("pre-stop-hook", ["variables.containers.all(c, c.?lifecycle.?preStop.hasValue())"]),
        (
            "anti-affinity",
            [
                't.topologyKey == "kubernetes.io/hostname"',
                "topologySpreadConstraints",
                "preferredDuringSchedulingIgnoredDuringExecution",
            ],
        ),
    ],
)
def test_check_expressions(check: str, fragments: list[str]) -> None:
    v = validations(gen(spec()))[check]
    for fragment in fragments:
        assert fragment in v["expression"], (fragment, v["expression"])
    if check != "replicas-min":
        assert v["expression"].startswith("!(variables.rollout || variables.reconfigured) || ")
    assert v["message"].startswith(f"{check}: ")


def test_forbid_latest_only() -> None:
    rules = {"images": {}}
    v = validations(gen(spec(rules=rules)))["image-tag-pinned"]
    assert "lastIndexOf(':') > " in v["expression"] and "!= 'latest'" in v["expression"]


def test_rolling_update_without_limit_and_not_required() -> None:
    v = validations(gen(spec(rules={"rollingUpdate": {}})))["rolling-update"]
    assert v["expression"].endswith("== 'RollingUpdate' ? (true) : false)")
    v = validations(gen(spec(rules={"rollingUpdate": {"required": False, "maxUnavailable": 1}})))["rolling-update"]
    assert "<= 1) : true" in v["expression"]


@pytest.mark.parametrize("mode", ["Warn", "Audit"])
def test_nothing_for_warn_and_audit(mode: str) -> None:
    assert gen(spec(mode)) == GeneratedVap([], None)


def test_nothing_when_fail_safe_off_or_no_static_check() -> None:
    assert gen(spec(admission={"failSafe": False})).objects == []
    only_live = {"podDisruptionBudget": {}, "horizontalPodAutoscaler": {}}
    assert gen(spec(rules=only_live)).objects == []
    assert gen(spec(rules={})).objects == []


def test_info_severity_checks_are_left_out() -> None:
    g = gen(spec(rules={"probes": {"startup": True}, "graceful_shutdown": {"requirePreStopHook": True}}))
    assert only(g).checks == ("probe-liveness", "probe-readiness")  # probe-startup, pre-stop-hook default to info


def test_replicas_min_left_to_webhook_with_hpa_rule() -> None:
    assert "replicas-min" in only(gen(spec(rules={"replicas": {}}))).checks
    assert "replicas-min" not in only(gen(spec(rules={"replicas": {}, "probes": {}, "horizontalPodAutoscaler": {}}))).checks


def test_override_match_condition() -> None:
    vap, _ = vap_and_binding(gen(spec()))
    cond = vap["spec"]["matchConditions"][0]["expression"]
    assert cond == ("object.metadata.?annotations[?\"readiness.dev/override\"].orValue('')"
                    '.matches("^[\\\\p{Z}\\\\p{Cc}\\\\p{Cf}]*$")')
    vap, _ = vap_and_binding(gen(spec(admission={"overrideUsers": ["bob"], "overrideGroups": ["sre"]})))
    cond = vap["spec"]["matchConditions"][0]["expression"]
    assert 'request.userInfo.username in ["bob"]' in cond
    assert 'request.userInfo.?groups.orValue([]).exists(g, g in ["sre"])' in cond


def test_judge_unchanged_updates_drops_the_rollout_guard() -> None:
    g = gen(spec(admission={"judgeUnchangedUpdates": True}))
    vap, _ = vap_and_binding(g)
    assert [c["name"] for c in vap["spec"]["matchConditions"]] == ["no-override"]
    for v in only(g).per_check:
        guard = "!(variables.rollout || variables.reconfigured || variables.scaleDown || variables.unchanged) || "
        if check_of(v) != "replicas-min":
            guard = "!(variables.rollout || variables.reconfigured || variables.unchanged) || "
        assert v["expression"].startswith(guard), v["expression"]


def test_exemptions_per_check_with_expiry() -> None:
    s = spec(
        exemptions=[
            {"checks": ["probe-liveness"], "names": ["legacy-*"], "reason": "old", "expires": "2025-07-01T00:00:00Z"},
            {"checks": ["*"], "namespaces": ["sandbox"], "reason": "play", "expires": "2025-06-15T00:00:00Z"},
            {
                "checks": ["probe-readiness"],
                "selector": {"matchLabels": {"gone": "yes"}},
                "reason": "x",
                "expires": "2025-05-01T00:00:00Z",
            },
        ]
    )
    g = gen(s)
    assert g.next_expiry == datetime(2025, 6, 15, tzinfo=UTC)
    vs = validations(g)
    live = vs["probe-liveness"]["expression"]
    assert live.startswith(
        '!(variables.rollout || variables.reconfigured) || ((object.metadata.name.matches("^legacy-.*$"))) || ')
    assert 'request.namespace in ["sandbox"]' in live
    ready = vs["probe-readiness"]["expression"]
    assert "legacy" not in ready and 'request.namespace in ["sandbox"]' in ready
    assert "gone" not in ready  # expired exemption left out
    later = generate_vap({"prod": s}, name=NAME, now=datetime(2025, 6, 20, tzinfo=UTC), excluded_namespaces=[])
    assert later.next_expiry == datetime(2025, 7, 1, tzinfo=UTC)
    assert "sandbox" not in validations(later)["probe-readiness"]["expression"]
    never = generate_vap({"prod": s}, name=NAME, now=NOW + timedelta(days=400), excluded_namespaces=[])
    assert never.next_expiry is None


def test_exemption_selector_cel() -> None:
    s = spec(
        rules={"probes": {}},
        exemptions=[
            {
                "checks": ["probe-liveness"],
                "selector": {
                    "matchLabels": {"team": "a"},
                    "matchExpressions": [
                        {"key": "x", "operator": "In", "values": ["1"]},
                        {"key": "y", "operator": "NotIn", "values": ["2"]},
                        {"key": "z", "operator": "Exists"},
                        {"key": "w", "operator": "DoesNotExist"},
                    ],
                },
                "reason": "r",
            }
        ],
    )
    expr = validations(gen(s))["probe-liveness"]["expression"]
    assert (
        '((variables.isScale || ("team" in variables.labels && variables.labels["team"] == "a") && '
        '("x" in variables.labels && variables.labels["x"] in ["1"]) && '
        '!("y" in variables.labels && variables.labels["y"] in ["2"]) && '
        '("z" in variables.labels) && !("w" in variables.labels))'
    ) in expr


def _policy_variable(g: GeneratedVap, index: int = 0) -> str:
    vap, _ = vap_and_binding(g)
    return str(next(v["expression"] for v in vap["spec"]["variables"] if v["name"] == f"policy{index}"))


def test_match_is_part_of_the_policys_cel() -> None:
    s = spec(
        match={
            "namespaces": ["shop", "pay"],
            "excludeNamespaces": ["pay-canary"],
            "namespaceSelector": {
                "matchLabels": {"env": "prod"},
                "matchExpressions": [{"key": "tier", "operator": "Exists"}],
            },
            "selector": {"matchLabels": {"tier": "production"}, "matchExpressions": [{"key": "x", "operator": "DoesNotExist"}]},
        }
    )
    g = gen(s)
    guard = _policy_variable(g).split(" ? [] : ", 1)[0]
    assert guard == (
        '!(request.namespace in ["pay", "shop"] && !(request.namespace in ["pay-canary"]) && '
        '(("env" in variables.namespaceLabels && variables.namespaceLabels["env"] == "prod") && '
        '("tier" in variables.namespaceLabels)) && '
        '((("tier" in variables.labels && variables.labels["tier"] == "production") && !("x" in variables.labels)) || '
        '(("tier" in variables.oldLabels && variables.oldLabels["tier"] == "production") && !("x" in variables.oldLabels))))'
    )
    _, binding = vap_and_binding(g)
    assert "objectSelector" not in binding["spec"]["matchResources"]  # per policy, in its CEL


def test_binding_selects_all_but_the_operator_wide_exclusions() -> None:
    _, binding = vap_and_binding(gen(spec(match={"excludeNamespaces": ["own"]})))
    assert binding["spec"]["matchResources"]["namespaceSelector"] == {"matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system", "readiness-system"]},
        {"key": "readiness.dev/ignore", "operator": "NotIn", "values": ["true"]},
    ]}  # the opt-out label the webhook honours too; a policy's own exclusions are in its CEL
    g = generate_vap({"p": spec()}, name=NAME, now=NOW, excluded_namespaces=[])
    _, binding = vap_and_binding(g)
    assert binding["spec"]["matchResources"]["namespaceSelector"] == {
        "matchExpressions": [{"key": "readiness.dev/ignore", "operator": "NotIn", "values": ["true"]}]
    }
    assert not _policy_variable(g).startswith("!(")  # no match, no override restriction: no guard


def test_two_policies_each_judge_only_their_own_namespaces() -> None:
    """A Deployment in namespace A gets policy A's rules only: B's failures list is empty there."""
    a = spec(rules={"probes": {}}, match={"namespaceSelector": {"matchLabels": {"team": "a"}}})
    b = spec(rules={"replicas": {"min": 3}}, match={"namespaceSelector": {"matchLabels": {"team": "b"}}})
    g = generate_vap({"b": b, "a": a}, name=NAME, now=NOW, excluded_namespaces=EXCLUDED)
    assert list(g.policies) == ["a", "b"]  # sorted: the same policies always give the same object
    assert g.policies["a"].checks == ("probe-liveness", "probe-readiness") and g.policies["b"].checks == ("replicas-min",)
    first, second = _policy_variable(g, 0), _policy_variable(g, 1)
    assert first.startswith('!((("team" in variables.namespaceLabels && variables.namespaceLabels["team"] == "a"))) ? [] : ')
    assert second.startswith('!((("team" in variables.namespaceLabels && variables.namespaceLabels["team"] == "b"))) ? [] : ')
    assert "probe-" in first and "replicas-min" not in first
    assert "replicas-min" in second and "probe-" not in second
    vap, _ = vap_and_binding(g)
    denials = vap["spec"]["variables"][-3]["expression"]
    assert 'ReadinessPolicy \\"a\\" (Enforce, fail-safe) denies this Deployment: ' in denials
    assert "variables.policy0.map(f, f[0] + f[1]).join('; ')" in denials  # with the fixes
    assert "variables.policy1.map(f, f[0]).join('; ')" in denials  # without: for a message over 5 KiB
    assert vap["metadata"]["annotations"]["readiness.dev/policies"] == "a,b"


def test_guards_shared_only_when_every_policy_agrees() -> None:
    plain, sre = spec(rules={"probes": {}}), spec(rules={"probes": {}}, admission={"overrideUsers": ["bob"]})
    g = generate_vap({"a": plain, "b": plain}, name=NAME, now=NOW, excluded_namespaces=[])
    vap, _ = vap_and_binding(g)
    assert [c["name"] for c in vap["spec"]["matchConditions"]] == ["no-override", "rollout-relevant"]
    g = generate_vap({"a": plain, "b": sre}, name=NAME, now=NOW, excluded_namespaces=[])
    vap, _ = vap_and_binding(g)
    assert [c["name"] for c in vap["spec"]["matchConditions"]] == ["rollout-relevant"]
    assert 'request.userInfo.username in ["bob"]' in _policy_variable(g, 1)
    assert "username" not in _policy_variable(g, 0) and "readiness.dev/override" in _policy_variable(g, 0)
    unchanged = spec(rules={"probes": {}}, admission={"judgeUnchangedUpdates": True})
    g = generate_vap({"a": plain, "b": unchanged}, name=NAME, now=NOW, excluded_namespaces=[])
    vap, _ = vap_and_binding(g)
    assert [c["name"] for c in vap["spec"]["matchConditions"]] == ["no-override"]
    assert "variables.unchanged" in _policy_variable(g, 1) and "variables.unchanged" not in _policy_variable(g, 0)


def test_earliest_expiry_of_all_policies_and_only_enforce_ones_held() -> None:
    soon = spec(rules={"probes": {}}, exemptions=[{"checks": ["probe-liveness"], "names": ["x"], "reason": "r",
                                                     "expires": "2025-06-10T00:00:00Z"}])
    later = spec(rules={"probes": {}}, exemptions=[{"checks": ["probe-liveness"], "names": ["y"], "reason": "r",
                                                      "expires": "2025-06-20T00:00:00Z"}])
    g = generate_vap({"a": later, "b": soon, "w": spec("Warn"), "off": spec(admission={"failSafe": False})},
                     name=NAME, now=NOW, excluded_namespaces=[])
    assert list(g.policies) == ["a", "b"]
    assert g.next_expiry == datetime(2025, 6, 10, tzinfo=UTC)
    assert generate_vap({"w": spec("Warn")}, name=NAME, now=NOW, excluded_namespaces=[]) == GeneratedVap([], None)


@pytest.mark.parametrize("path", sorted((ROOT / "examples" / "policies").glob("*.yaml")), ids=lambda p: p.name)
def test_examples_generate_when_enforced(path: Path) -> None:
    raw = yaml.safe_load(path.read_text())
    raw["spec"]["mode"] = "Enforce"
    p = ReadinessPolicy.model_validate(raw)
    g = generate_vap({p.name: p.spec}, name=NAME, now=NOW, excluded_namespaces=EXCLUDED)
    vap, _ = vap_and_binding(g)
    assert vap["metadata"]["name"] == NAME
    assert ("probe-readiness" in only(g).checks) == (p.spec.rules.probes is not None)
    assert only(g).checks  # the pod-security examples have no probe rules, but every check of theirs is static
    for expr in _all_expressions(g):
        assert check_promql_balance(expr) is None
