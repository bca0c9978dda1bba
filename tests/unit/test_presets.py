"""Built-in policies (``--policy builtin:NAME``): valid, shipped as package data, in step with examples/."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

import pytest
import yaml

from readiness_operator import presets
from readiness_operator.cli import load_policy
from readiness_operator.manifests import ManifestError
from readiness_operator.model import ReadinessPolicy

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "policies"
PRESET_DIR = ROOT / "operator" / "readiness_operator" / "presets"
SYSTEM = ["kube-system", "kube-public", "kube-node-lease"]


def test_the_shipped_presets() -> None:
    assert presets.available() == [
        "baseline", "hardened", "pod-security-baseline", "pod-security-restricted", "production"
    ]
    for name in presets.available():
        assert presets.description(name), f"{name} needs a line for --help"


@pytest.mark.parametrize("name", presets.available())
def test_preset_is_a_valid_policy_matching_all_but_system_namespaces(name: str) -> None:
    policy = load_policy(f"builtin:{name}")
    assert policy.name == name
    match = policy.spec.match
    assert match.exclude_namespaces == SYSTEM
    assert match.selector is None and match.namespace_selector is None and not match.namespaces


@pytest.mark.parametrize(
    "name", ["baseline", "production", "hardened", "pod-security-baseline", "pod-security-restricted"]
)
def test_preset_checks_what_the_example_checks(name: str) -> None:
    example = ReadinessPolicy.model_validate(yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text()))
    preset = load_policy(f"builtin:{name}")
    assert preset.spec.rules == example.spec.rules
    assert preset.spec.slos == example.spec.slos
    assert preset.spec.weights == example.spec.weights
    assert preset.spec.exemptions == example.spec.exemptions


def test_pod_security_restricted_checks() -> None:
    sc = load_policy("builtin:pod-security-restricted").spec.rules.security_context
    assert sc is not None
    assert sc.run_as_non_root and sc.drop_all_capabilities and sc.seccomp_runtime_default
    assert sc.no_privilege_escalation and sc.no_privileged
    assert not sc.read_only_root_filesystem and sc.run_as_user_min is None  # not in the restricted profile
    assert sc.strict  # judged like Pod Security admission


def test_unknown_preset() -> None:
    with pytest.raises(ManifestError, match="available: builtin:baseline, builtin:hardened"):
        load_policy("builtin:missing")


def test_presets_are_package_data() -> None:
    # The wheel (and an editable install) carries every preset file.
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["readiness_operator"]
    for path in PRESET_DIR.glob("*.yaml"):
        rel = path.relative_to(ROOT / "operator" / "readiness_operator").as_posix()
        assert any(fnmatch.fnmatch(rel, p) for p in patterns), rel
