"""One definition each for what the engine/webhook and the fail-safe CEL must read the same way
(issue #13 items 5 and 6): name globs, blank override reasons, quantity exponents, wildcard
exemptions, exempt counts and scores."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any

import pytest
from pydantic import ValidationError

from readiness_operator.admission.vap import _glob_re
from readiness_operator.checks.resources import _EXPONENT_OUT_OF_RANGE
from readiness_operator.engine import evaluate
from readiness_operator.kube.reports import results_for
from readiness_operator.kube.state import Judged
from readiness_operator.model import ReadinessPolicySpec
from readiness_operator.names import OVERRIDE_ANNOTATION, is_blank
from readiness_operator.quantity import is_quantity
from readiness_operator.summary import summarize
from readiness_operator.world import World

NOW = datetime(2026, 1, 1, tzinfo=UTC)
PATTERNS = ["legacy-[ab]", "legacy-*", "a?c", "x[!0-9]y", "[a-c]*", "web", "v1.2-*", "*-[0-9][0-9]"]
NAMES = ["legacy-a", "legacy-b", "legacy-c", "legacy-", "abc", "a.c", "xay", "x1y", "b-x", "web", "webs",
         "v1.2-x", "v1x2-x", "db-42", "db-4"]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_name_globs_translate_faithfully(pattern: str) -> None:
    regex = _glob_re(pattern)
    for name in NAMES:
        assert bool(re.search(regex, name)) == fnmatchcase(name, pattern), (pattern, name, regex)


@pytest.mark.parametrize("bad", ["Legacy", "un[closed", "[z-a]", "a/b", "a b"])
def test_globs_the_cel_could_read_differently_are_rejected(bad: str) -> None:
    with pytest.raises(ValidationError, match="is not a Deployment name glob"):
        ReadinessPolicySpec.model_validate({"exemptions": [{"checks": ["probe-readiness"], "names": [bad],
                                                            "reason": "r"}]})


@pytest.mark.parametrize(("value", "blank"), [
    ("", True), (" ", True), ("\x1f", True), ("\u200b", True), ("\ufeff\t\u00a0\u3000", True),
    ("x", False), (" INC-1 ", False), ("\u200bINC", False),
])
def test_blank_means_no_visible_character(value: str, blank: bool) -> None:
    assert is_blank(value) is blank


@pytest.mark.parametrize("exponent", [3, 99, 100, 101, 120, 399, 1000, -100, -101, -399])
def test_the_cel_exponent_range_is_parse_quantitys(exponent: int) -> None:
    for text in (f"1e{exponent}", f"10E{exponent}", f"1.5e{exponent:+d}"):
        assert bool(re.search(_EXPONENT_OUT_OF_RANGE, text)) == (not is_quantity(text)), text


def test_a_wildcard_exemption_needs_an_expiry_or_the_policy_flag() -> None:
    forever = {"checks": ["*"], "reason": "r"}
    with pytest.raises(ValidationError, match=r"exemptions\[0\]\.expires: an exemption of every check"):
        ReadinessPolicySpec.model_validate({"exemptions": [forever]})
    ReadinessPolicySpec.model_validate({"exemptions": [{**forever, "expires": "2099-01-01T00:00:00Z"}]})
    ReadinessPolicySpec.model_validate({"exemptions": [forever], "allowPermanentWildcardExemptions": True})
    ReadinessPolicySpec.model_validate({"exemptions": [{"checks": ["probe-readiness"], "reason": "r"}]})


def deployment(name: str, **annotations: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "ns", "annotations": annotations},
            "spec": {"replicas": 1, "template": {"metadata": {"labels": {"app": name}},
                                                 "spec": {"containers": [{"name": "c", "image": "i:1"}]}}}}



def test_exempted_checks_count_neither_as_pass_nor_weight_and_are_counted_in_status() -> None:
    world = World(now=NOW)
    base = ReadinessPolicySpec.model_validate({"rules": {"probes": {"liveness": True, "readiness": True}}})
    only_liveness = ReadinessPolicySpec.model_validate({"rules": {"probes": {"liveness": True, "readiness": False}}})
    exempted = ReadinessPolicySpec.model_validate({
        "rules": {"probes": {"liveness": True, "readiness": True}},
        "exemptions": [{"checks": ["probe-readiness"], "reason": "r"}]})
    d = deployment("web")
    d["spec"]["template"]["spec"]["containers"][0]["livenessProbe"] = {"tcpSocket": {"port": 1}}
    plain, without, exempt = (evaluate(p, d, world) for p in (base, only_liveness, exempted))
    assert plain.score < 100 and exempt.score == without.score  # as if the check were not there at all
    assert [f.status for f in exempt.findings if f.check == "probe-readiness"] == ["exempt"]
    status = summarize([exempt, plain], now=NOW)
    assert status.exempt == 1 and status.targets == 2


def test_the_report_shows_an_override_only_when_it_bypassed_something() -> None:
    spec = ReadinessPolicySpec.model_validate({"rules": {"probes": {"liveness": False, "readiness": True}}})
    compliant = deployment("ok", **{OVERRIDE_ANNOTATION: "approved by nobody"})
    compliant["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] = {"tcpSocket": {"port": 1}}
    failing = deployment("bad", **{OVERRIDE_ANNOTATION: "INC-7"})
    blank = deployment("blank", **{OVERRIDE_ANNOTATION: "\u200b"})

    def props(d: dict[str, Any]) -> dict[str, str]:
        return dict(results_for("p", Judged(evaluate(spec, d, World(now=NOW)), d, NOW))[0]["properties"])

    assert "override" not in props(compliant) and "override" not in props(blank)
    assert props(failing)["override"] == "INC-7"
