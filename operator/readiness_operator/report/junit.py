"""``-o junit``: JUnit XML, the test-report shape CI systems show (GitLab, Jenkins, Azure, CircleCI).

One ``<testsuite>`` per Deployment (``namespace/name``), one ``<testcase>`` per check the policy ran:
a failed check is a ``<failure>`` (message, then the remediation, in the body), an exempt or unknown
one (an SLO without a measurement) is ``<skipped>``; passed checks are plain test cases.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from readiness_operator.engine import Finding
from readiness_operator.report import TOOL_NAME, Audit, Audited

__all__ = ["junit"]


def _case(suite: ET.Element, a: Audited, f: Finding) -> None:
    case = ET.SubElement(
        suite,
        "testcase",
        name=f.check,
        classname=f"{TOOL_NAME}.{a.verdict.namespace}.{a.verdict.name}",
        file=a.file,
        line=str(a.line_of(f)),
        time="0",
    )
    if f.status == "fail":
        failure = ET.SubElement(case, "failure", message=f.message, type=str(f.severity))
        failure.text = f"{f.message}\n\nseverity: {f.severity}\ncategory: {f.category}\nfix: {f.remediation}\n"
    elif f.status in ("exempt", "unknown"):
        ET.SubElement(case, "skipped", message=f"{f.status}: {f.message}")


def junit(audit: Audit) -> str:
    """The JUnit XML document as text (with an XML declaration)."""
    root = ET.Element("testsuites", name=f"{TOOL_NAME} audit ({audit.policy.name or audit.policy_source})")
    totals = {"tests": 0, "failures": 0, "skipped": 0}
    for a in audit.results:
        findings = a.verdict.findings
        counts = {
            "tests": len(findings),
            "failures": sum(1 for f in findings if f.status == "fail"),
            "skipped": sum(1 for f in findings if f.status in ("exempt", "unknown")),
        }
        suite = ET.SubElement(
            root,
            "testsuite",
            name=f"{a.verdict.namespace}/{a.verdict.name}",
            tests=str(counts["tests"]),
            failures=str(counts["failures"]),
            errors="0",
            skipped=str(counts["skipped"]),
            time="0",
            file=a.file,
        )
        props = ET.SubElement(suite, "properties")
        for name, value in (
            ("file", a.file),
            ("line", str(a.line)),
            ("compliant", str(a.verdict.compliant).lower()),
            ("score", str(a.verdict.score)),
            ("level", a.verdict.level),
            ("policy", audit.policy.name),
        ):
            ET.SubElement(props, "property", name=name, value=value)
        for f in findings:
            _case(suite, a, f)
        for key in totals:
            totals[key] += counts[key]
    root.set("tests", str(totals["tests"]))
    root.set("failures", str(totals["failures"]))
    root.set("errors", "0")
    root.set("skipped", str(totals["skipped"]))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
