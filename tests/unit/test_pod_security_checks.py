"""The podSecurity checks' edge cases beyond the fixtures, their rule validation and the PSS presets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from readiness_operator.checks import CATALOGUE
from readiness_operator.checks.pod_security import host_path_allowed, image_repository
from readiness_operator.cli import load_policy, main
from readiness_operator.engine import evaluate
from readiness_operator.model import ReadinessPolicySpec
from readiness_operator.pss import CONTROLS
from readiness_operator.world import World


def _deployment(pod: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "demo"},
        "spec": {"template": {"metadata": {"labels": {"app": "web"}}, "spec": pod}},
    }


def _finding(rules: dict[str, Any], pod: dict[str, Any], check: str) -> tuple[str, str]:
    spec = ReadinessPolicySpec.model_validate({"rules": rules})
    [f] = [f for f in evaluate(spec, _deployment(pod), World()).findings if f.check == check]
    return f.status, f.message


@pytest.mark.parametrize(
    ("path", "ok"),
    [
        ("/var/log", True),
        ("/var/log/pods", True),
        ("/var/log/", True),
        ("/var/logs", False),
        ("/var/log/../../etc", False),
        ("/var", False),
    ],
)
def test_host_path_prefixes_match_whole_segments(path: str, ok: bool) -> None:
    assert host_path_allowed(path, ["/var/log"]) is ok


def test_root_prefix_allows_every_path_but_dot_dot() -> None:
    assert host_path_allowed("/etc", ["/"]) and not host_path_allowed("/a/../b", ["/"])


@pytest.mark.parametrize(
    ("image", "repo"),
    [
        ("nginx:1.27", "docker.io/library/nginx"),
        ("bitnami/redis:7", "docker.io/bitnami/redis"),
        ("ghcr.io/acme/tool@sha256:" + "a" * 64, "ghcr.io/acme/tool"),
        ("localhost/app:1", "localhost/app"),
        ("registry.example.com:5000/web:1.2", "registry.example.com:5000/web"),
    ],
)
def test_image_repository_names_the_registry(image: str, repo: str) -> None:
    assert image_repository(image) == repo


def test_a_plain_secret_value_is_never_echoed() -> None:
    secret = "s3cr3t-value-xyz"
    pod = {"containers": [{"name": "app", "image": "a:1", "env": [{"name": "DB_PASSWORD", "value": secret}]}]}
    status, message = _finding({"podSecurity": {"noPlainSecretEnv": True}}, pod, "no-plain-secret-env")
    assert status == "fail" and "DB_PASSWORD" in message and secret not in message


def test_env_names_that_only_look_alike_pass() -> None:
    pod = {"containers": [{"name": "app", "image": "a:1", "env": [{"name": "LOG_LEVEL", "value": "debug"}]}]}
    assert _finding({"podSecurity": {"noPlainSecretEnv": True}}, pod, "no-plain-secret-env")[0] == "pass"


def test_windows_pods_skip_seccomp_capabilities_and_escalation_when_strict() -> None:
    pod = {"os": {"name": "windows"}, "containers": [{"name": "app", "image": "a:1"}]}
    strict = {"securityContext": {"strict": True, "runAsNonRoot": False, "readOnlyRootFilesystem": False}}
    for check in ("seccomp-runtime-default", "drop-all-capabilities", "no-privilege-escalation"):
        assert _finding(strict, pod, check)[0] == "pass", check
        assert _finding({"securityContext": {}}, pod, check)[0] == "fail", check  # not strict: no exemption


def test_the_pod_security_group_changes_nothing_by_itself() -> None:
    spec = ReadinessPolicySpec.model_validate({"rules": {"podSecurity": {}}})
    assert not evaluate(spec, _deployment({"containers": [{"name": "a", "image": "a:1"}]}), World()).findings


@pytest.mark.parametrize(
    ("rules", "where"),
    [
        ({"podSecurity": {"capabilities": {"allowed": ["ALL"]}}}, "podSecurity.capabilities.allowed"),
        ({"podSecurity": {"capabilities": {"allowed": ["CAP_NET_ADMIN"]}}}, "podSecurity.capabilities.allowed"),
        ({"podSecurity": {"hostPorts": {"allowed": [{"min": 9000, "max": 80}]}}}, "podSecurity.hostPorts.allowed.0"),
        ({"podSecurity": {"hostPorts": {"allowed": [{"min": 0, "max": 80}]}}}, "podSecurity.hostPorts.allowed.0.min"),
        ({"podSecurity": {"hostPath": {"allowedPrefixes": ["var/log"]}}}, "podSecurity.hostPath.allowedPrefixes.0"),
        ({"podSecurity": {"sysctls": {"allowed": ["Not A Sysctl"]}}}, "podSecurity.sysctls.allowed"),
        ({"podSecurity": {"volumeTypes": {"allowed": ["emptyDir", "emptyDir"]}}}, "podSecurity.volumeTypes.allowed"),
        ({"podSecurity": {"noHostNetwrok": True}}, "podSecurity.noHostNetwrok"),
        ({"images": {"allowedRegistries": ["https://registry.example.com"]}}, "images.allowedRegistries.0"),
        ({"securityContext": {"runAsGroupMin": 0}}, "securityContext.runAsGroupMin"),
    ],
)
def test_bad_settings_name_their_field(rules: dict[str, Any], where: str) -> None:
    with pytest.raises(ValidationError) as info:
        ReadinessPolicySpec.model_validate({"rules": rules})
    locations = [".".join(str(p) for p in e["loc"]) for e in info.value.errors()]
    assert any(loc.startswith(f"rules.{where}") for loc in locations), locations


def test_every_pss_control_maps_to_checks_the_presets_enable() -> None:
    for level in ("baseline", "restricted"):
        preset = load_policy(f"builtin:pod-security-{level}").spec
        enabled = {c for c in CATALOGUE if (rule := getattr(preset.rules, CATALOGUE[c].group, None)) is not None
                   and CATALOGUE[c].enabled(rule)}
        wanted = {c for control in CONTROLS if control.level == "baseline" or level == "restricted"
                  for c in control.checks}
        if level == "restricted":  # replaced by volume-types-allowed / seccomp-runtime-default
            wanted -= {"no-host-path", "seccomp-not-unconfined"}
        assert enabled == wanted, level


def test_cli_audits_with_the_pod_security_presets(capsys: pytest.CaptureFixture[str]) -> None:
    fixtures = Path(__file__).resolve().parent.parent / "fixtures" / "checks"
    cases = [
        ("pod-security-baseline", "no-host-network/fail-hostnetwork.yaml", 1, {"no-host-network"}),
        ("pod-security-baseline", "capabilities-allowed/fail-drop-all-add-all.yaml", 1, {"capabilities-allowed"}),
        ("pod-security-baseline", "capabilities-allowed/fail-restricted-chown.yaml", 0, set()),
        ("pod-security-restricted", "capabilities-allowed/fail-restricted-chown.yaml", 1, {"capabilities-allowed"}),
        ("pod-security-restricted", "run-as-non-root/fail-strict-uid-only.yaml", 1, {"run-as-non-root"}),
        ("pod-security-restricted", "volume-types-allowed/pass-restricted-set.yaml", 0, set()),
    ]
    for preset, fixture, exit_code, failing in cases:
        code = main(["audit", "--policy", f"builtin:{preset}", "-f", str(fixtures / fixture), "-o", "json"])
        [result] = json.loads(capsys.readouterr().out)["results"]
        assert code == exit_code, (preset, fixture)
        assert {f["check"] for f in result["findings"]} == failing, (preset, fixture, result["findings"])


@pytest.mark.parametrize(("fixture", "exit_code"), [("pass-split-policies", 0), ("fail-ingress-only", 1)])
def test_cli_reads_network_policies_from_the_files(
    capsys: pytest.CaptureFixture[str], fixture: str, exit_code: int
) -> None:
    path = Path(__file__).resolve().parent.parent / "fixtures" / "checks" / "network-policy" / f"{fixture}.yaml"
    code = main(["audit", "--policy", str(path), "-f", str(path), "-o", "json"])
    [result] = json.loads(capsys.readouterr().out)["results"]
    assert code == exit_code
    assert [f["check"] for f in result["findings"]] == ([] if exit_code == 0 else ["network-policy"])
