"""``readiness-operator`` CLI: the audit contract (JSON shape, exit codes 0/1/2/3), run and version.

The pipeline features (formats, file/line, presets, skipped files, --fail-below-score, help) are in
test_cli_pipelines.py.
"""

from __future__ import annotations

import io
import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from readiness_operator.cli import main

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "examples" / "policies"
WORKLOADS = ROOT / "examples" / "workloads"

EXAMPLES = [
    ("baseline", "compliant", 0, ["baseline-ok"]),
    ("baseline", "noncompliant", 1, ["baseline-bad"]),
    ("production", "compliant", 0, ["checkout"]),
    ("production", "noncompliant", 1, ["payments"]),
    ("hardened", "compliant", 0, ["vault-proxy"]),
    ("hardened", "noncompliant", 1, ["legacy-agent"]),
]


def audit_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["audit", *args, "-o", "json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else {}


@pytest.mark.parametrize(("policy", "kind", "exit_code", "names"), EXAMPLES)
def test_example_workloads(
    capsys: pytest.CaptureFixture[str], policy: str, kind: str, exit_code: int, names: list[str]
) -> None:
    code, report = audit_json(
        capsys, "--policy", str(POLICIES / f"{policy}.yaml"), "-f", str(WORKLOADS / f"{policy}-{kind}.yaml")
    )
    assert code == exit_code
    results = report["results"]
    assert [r["name"] for r in results] == names
    for result in results:
        # design.md's keys are all there (more may be added next to them, never fewer)
        assert {"namespace", "name", "compliant", "score", "level", "findings"} <= set(result)
        assert result["namespace"] == "demo"
        assert result["compliant"] is (exit_code == 0)
        for finding in result["findings"]:
            assert {"check", "severity", "message"} <= set(finding)
        if exit_code == 0:
            assert result["score"] == 100 and result["level"] == "ready" and result["findings"] == []
        else:
            assert result["findings"] and result["score"] < 75


@pytest.mark.parametrize("policy", ["baseline", "production", "hardened"])
def test_examples_do_not_overlap(capsys: pytest.CaptureFixture[str], policy: str) -> None:
    code, report = audit_json(capsys, "--policy", str(POLICIES / f"{policy}.yaml"), "-f", str(WORKLOADS))
    expected = sorted(n for p, _, _, names in EXAMPLES if p == policy for n in names)
    assert sorted(r["name"] for r in report["results"]) == expected
    assert code == 1


def test_production_noncompliant_names_the_failures(capsys: pytest.CaptureFixture[str]) -> None:
    _, report = audit_json(
        capsys,
        "--policy",
        str(POLICIES / "production.yaml"),
        "-f",
        str(WORKLOADS / "production-noncompliant.yaml"),
    )
    failed = {f["check"] for f in report["results"][0]["findings"]}
    assert {
        "replicas-min",
        "pdb-present",
        "hpa-metrics",
        "rolling-update",
        "probe-readiness",
        "requests-memory",
    } <= failed
    assert not any(c.startswith("slo:") for c in failed), "SLOs are unknown offline, never failed"


def test_stdin_and_namespace_default(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "apiVersion: readiness.dev/v1alpha1\nkind: ReadinessPolicy\nmetadata: {name: p}\n"
        "spec: {match: {namespaces: [default]}, rules: {replicas: {min: 2}}}\n"
    )
    manifest = "kind: Deployment\napiVersion: apps/v1\nmetadata: {name: solo}\nspec: {replicas: 1}\n---\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(manifest))
    code, report = audit_json(capsys, "--policy", str(policy), "-f", "-")
    assert code == 1
    (result,) = report["results"]
    assert (result["namespace"], result["name"], result["compliant"]) == ("default", "solo", False)
    assert result["findings"][0]["check"] == "replicas-min"
    assert "spec.replicas" in result["findings"][0]["message"]


def test_no_match_is_its_own_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--policy", str(POLICIES / "hardened.yaml"), "-f", str(WORKLOADS / "baseline-noncompliant.yaml")]
    code, report = audit_json(capsys, *args)
    assert code == 3 and report["results"] == []
    code, report = audit_json(capsys, *args, "--allow-no-match")
    assert code == 0 and report["results"] == []


def test_table_output(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "audit",
            "--policy",
            str(POLICIES / "baseline.yaml"),
            "-f",
            str(WORKLOADS / "baseline-noncompliant.yaml"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert out.splitlines()[0].split() == ["NAMESPACE", "NAME", "COMPLIANT", "SCORE", "LEVEL", "FAILED"]
    assert "baseline-bad" in out and "[critical] image-tag-pinned" in out


POLICY_OK = "apiVersion: readiness.dev/v1alpha1\nkind: ReadinessPolicy\nmetadata: {name: p}\nspec: {}\n"


@pytest.mark.parametrize(
    ("policy_text", "manifest_text", "needle"),
    [
        (
            POLICY_OK.replace("spec: {}", "spec: {rules: {probes: {livenes: true}}}"),
            None,
            "spec.rules.probes.livenes: unknown field",
        ),
        (POLICY_OK.replace("spec: {}", "spec: {mode: Loud}"), None, "spec.mode"),
        (
            POLICY_OK.replace("spec: {}", "spec: {exemptions: [{checks: [nope], reason: x}]}"),
            None,
            'unknown check id "nope"',
        ),
        ("kind: Deployment\nmetadata: {name: x}\n", None, "expected exactly one ReadinessPolicy"),
        (POLICY_OK + "---\n" + POLICY_OK, None, "found 2"),
        ("a: [1,\n", None, "invalid YAML"),
        (POLICY_OK, "kind: Deployment\nspec: {}\n", "a Deployment has no metadata.name"),
        (POLICY_OK, "- just\n- a list\n", "document 1 is not a mapping"),
        (POLICY_OK, "metadata: {name: x}\n", "a document has no kind"),
        (POLICY_OK, "key: [unclosed\n", "invalid YAML"),
    ],
)
def test_bad_input_exits_2_naming_file(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    policy_text: str,
    manifest_text: str | None,
    needle: str,
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_text)
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(manifest_text or "kind: Deployment\nmetadata: {name: x}\n")
    code = main(["audit", "--policy", str(policy), "-f", str(manifest), "-o", "json"])
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err
    bad_file = manifest if manifest_text else policy
    assert str(bad_file) in err


def test_missing_file_and_empty_dir(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["audit", "--policy", str(tmp_path / "nope.yaml"), "-f", str(WORKLOADS)]) == 2
    assert "nope.yaml: no such file" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["audit", "--policy", str(POLICIES / "baseline.yaml"), "-f", str(empty)]) == 2
    assert "holds no .yaml" in capsys.readouterr().err


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "--policy", "p", "-f", "x", "-o", "xml"]) == 2
    assert main(["audit", "--policy", "builtin:production"]) == 2  # no input at all
    assert "no input" in capsys.readouterr().err
    assert main(["audit", "-f", "x.yaml", "--fail-below-score", "101"]) == 2
    assert "0-100" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out.startswith("readiness-operator 0.")


def test_run_delegates_to_kube_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def run(args: Any) -> int:
        seen["args"] = args
        return 0

    fake = types.ModuleType("readiness_operator.kube.runner")
    fake.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "readiness_operator.kube.runner", fake)
    argv = [
        "run",
        "--namespace",
        "a",
        "--namespace",
        "b",
        "--log-format",
        "json",
        "--standalone",
        "--webhook-port",
        "9443",
    ]
    assert main(argv) == 0
    args = seen["args"]
    assert args.namespaces == ["a", "b"] and args.log_format == "json" and args.standalone
    assert args.webhook_port == 9443 and args.liveness == "http://0.0.0.0:8080/healthz"
    assert args.metrics_port is None and args.peering is None and not args.verbose


@pytest.mark.parametrize(
    ("flags", "env", "leading", "lease", "namespace", "pod"),
    [
        (["--standalone"], {}, True, None, "readiness-system", None),  # always the leader, no election
        ([], {"READINESS_NAMESPACE": "ops"}, False, "readiness-operator", "ops", None),  # elected by default
        (["--leader-election-lease", "mine"], {"READINESS_POD_NAME": "op-abc"}, False, "mine", "readiness-system", "op-abc"),
        (["--peering", "old"], {"POD_ID": "replica-1"}, False, "old", "readiness-system", "replica-1"),  # deprecated alias
    ],
)
def test_run_builds_the_leader_election(monkeypatch: pytest.MonkeyPatch, flags: list[str], env: dict[str, str],
                                        leading: bool, lease: str | None, namespace: str, pod: str | None) -> None:
    from readiness_operator.cli import build_parser
    from readiness_operator.kube.runner import build_context

    for name in ("READINESS_NAMESPACE", "READINESS_POD_NAME", "POD_NAME", "POD_ID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    ctx = build_context(build_parser().parse_args(["run", *flags]))
    election = ctx.leadership
    assert (election.leading, election.lease) == (leading, lease)
    if lease is not None:
        assert election.namespace == namespace and not election.standalone
        assert election.me.startswith(f"{pod}_") if pod else "_" in election.me


def test_live_checks_are_unknown_offline(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A manifest's status or a PDB's is not the living cluster's: in the CLI live checks are Unknown,
    so a Deployment whose exported status says its rollout failed is still compliant here."""
    import yaml

    fixture = ROOT / "tests" / "fixtures" / "checks" / "rollout-healthy" / "fail-progress-deadline.yaml"
    docs = list(yaml.safe_load_all(fixture.read_text()))
    policy, manifest = tmp_path / "policy.yaml", tmp_path / "deploy.yaml"
    policy.write_text(yaml.safe_dump(docs[0]))
    manifest.write_text(yaml.safe_dump(next(d for d in docs if d.get("kind") == "Deployment")))
    code, report = audit_json(capsys, "--policy", str(policy), "-f", str(manifest))
    [result] = report["results"]
    assert (code, result["compliant"], result["findings"]) == (0, True, [])
    # the same file judged as the cluster's state fails (tests/fixtures/.../fail-progress-deadline.yaml)
    assert "status" in docs[1] and docs[2] == {"kind": "FixtureWorld", "live": True}
