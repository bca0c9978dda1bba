"""``readiness-operator``: ``audit`` (offline, files in, report out), ``run`` (the operator), ``slo-rules``
(the recording rules of policies' SLOs), ``version``.

Exit codes of ``audit``: 0 every matched Deployment complies, 1 any does not (or scores below
``--fail-below-score``), 2 bad input, 3 no Deployment matched the policy. The report formats live in
:mod:`readiness_operator.report`; this module only parses arguments and wires files to the engine.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import re
import sys
from datetime import UTC, datetime
from typing import TextIO

import yaml
from pydantic import ValidationError

from readiness_operator import __version__, presets
from readiness_operator.engine import compile_policy, evaluate, matches
from readiness_operator.manifests import ManifestError, iter_documents, load_inventory
from readiness_operator.model import KIND, ReadinessPolicy, format_validation_error
from readiness_operator.model.slo import DURATION_PATTERN, duration_seconds
from readiness_operator.report import Audit, Audited
from readiness_operator.report.document import document, write_json
from readiness_operator.report.junit import junit
from readiness_operator.report.sarif import sarif
from readiness_operator.report.table import Palette, table, use_colour
from readiness_operator.slo.rules import rule_groups
from readiness_operator.world import InMemoryView, Worlds, namespace_of

__all__ = ["EXIT_BAD_INPUT", "EXIT_NONCOMPLIANT", "EXIT_NO_MATCH", "EXIT_OK", "build_parser", "load_policy", "main"]

EXIT_OK, EXIT_NONCOMPLIANT, EXIT_BAD_INPUT, EXIT_NO_MATCH = 0, 1, 2, 3
FORMATS = ("table", "json", "yaml", "sarif", "junit")
DEFAULT_POLICY = presets.PREFIX + "baseline"


def _audit_epilog() -> str:
    names = presets.available()
    width = max(len(presets.PREFIX + n) for n in names)
    listed = "\n".join(f"  {(presets.PREFIX + n).ljust(width)}  {presets.description(n)}" for n in names)
    return f"""\
built-in policies (--policy builtin:NAME, no file needed):
{listed}

exit codes:
  0  every matched Deployment complies (and scores at least --fail-below-score)
  1  a matched Deployment is noncompliant, or scores below --fail-below-score
  2  bad input or usage: unreadable or invalid file, invalid policy, unknown preset (message names it)
  3  no Deployment matched the policy (nothing was judged; --allow-no-match makes this 0)

Files found in a directory that are not Kubernetes manifests (Helm Chart.yaml, values*.yaml and
templates, Kustomize files, YAML or JSON without a kind) are skipped with a note on stderr;
--skip-non-manifests does the same for files named on the command line. A summary line
("N Deployments: X compliant, Y noncompliant, mean score S") goes to stderr unless --quiet.

examples:
  readiness-operator audit --policy builtin:production -f k8s/
  readiness-operator audit --policy policy.yaml -f app.yaml -f pdb.yaml -o json
  helm template charts/app | readiness-operator audit --policy builtin:hardened -f -
  readiness-operator audit --policy builtin:production -f k8s/ -o sarif > readiness.sarif
  readiness-operator audit -f k8s/ -o junit > readiness-junit.xml
  readiness-operator audit --policy builtin:production -f k8s/ --fail-below-score 90
  readiness-operator audit --skip-non-manifests --allow-no-match --policy policy.yaml a.yaml b.yaml

docs: docs/cli.md (formats, exit codes, presets, pre-commit, code scanning upload)
"""


def _score(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number 0-100, got {text!r}") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"expected a whole number 0-100, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for docs and tests)."""
    parser = argparse.ArgumentParser(
        prog="readiness-operator",
        description="Production-readiness policy for Kubernetes Deployments.",
        epilog="`readiness-operator audit --help` lists the audit's formats, presets, exit codes and examples.",
    )
    parser.add_argument("--version", action="version", version=f"readiness-operator {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    audit = sub.add_parser(
        "audit",
        help="evaluate manifests against a ReadinessPolicy, offline",
        description="Judge the Deployments in manifest files with the operator's engine, offline.",
        epilog=_audit_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    audit.add_argument(
        "--policy",
        default=DEFAULT_POLICY,
        metavar="FILE|builtin:NAME",
        help=f"ReadinessPolicy YAML file, - for stdin, or a built-in preset (default: {DEFAULT_POLICY})",
    )
    audit.add_argument(
        "-f",
        "--filename",
        dest="files",
        action="append",
        default=[],
        metavar="PATH",
        help="manifest file, directory or - (repeatable); Deployments plus optional PDBs, HPAs, Namespaces",
    )
    audit.add_argument("paths", nargs="*", metavar="FILE", help="more manifest files or directories (as -f)")
    audit.add_argument("-o", "--output", choices=FORMATS, default="table", help="output format (default: table)")
    audit.add_argument(
        "--fail-below-score",
        type=_score,
        default=None,
        metavar="N",
        help="also exit 1 when any matched Deployment scores below N (0-100)",
    )
    audit.add_argument(
        "--skip-non-manifests",
        action="store_true",
        help="skip named files that are not manifests, as in directories (for pre-commit, which names every file)",
    )
    audit.add_argument(
        "--allow-no-match", action="store_true", help="exit 0 instead of 3 when no Deployment matched the policy"
    )
    audit.add_argument(
        "--color",
        "--colour",
        dest="color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour the table: auto = on a terminal unless NO_COLOR is set (default)",
    )
    audit.add_argument("-q", "--quiet", action="store_true", help="no notes or summary line on stderr")

    run = sub.add_parser("run", help="run the operator against the current cluster")
    run.add_argument(
        "--namespace",
        "-n",
        dest="namespaces",
        action="append",
        default=[],
        help="watch only this namespace (repeatable; default: cluster-wide)",
    )
    run.add_argument("--liveness", default="http://0.0.0.0:8080/healthz", help="liveness endpoint URL")
    run.add_argument("--log-format", choices=("plain", "full", "json"), default="plain")
    run.add_argument("--verbose", action="store_true", help="debug logging")
    run.add_argument("--standalone", action="store_true", help="a single replica: always the leader, no election")
    run.add_argument(
        "--leader-election-lease",
        dest="lease",
        default=None,
        metavar="NAME",
        help="the coordination.k8s.io Lease (in READINESS_NAMESPACE) the replicas elect the writer with "
        "(default: readiness-operator)",
    )
    run.add_argument("--peering", default=None, metavar="NAME", help=argparse.SUPPRESS)  # deprecated alias
    run.add_argument("--webhook-port", type=int, default=None, help="admission webhook port")
    run.add_argument("--metrics-port", type=int, default=None, help="Prometheus metrics port")

    rules = sub.add_parser(
        "slo-rules",
        help="print the Prometheus recording rules of policies' SLOs",
        description="Print a Prometheus rules file with the recording rules of the policies' SLOs (docs/slo.md, "
        "\"Recording rules\"): load it with rule_files, or pass it to the chart "
        "(--set-file metrics.sloRecordingRules.rules=FILE) for a PrometheusRule.",
    )
    rules.add_argument("policies", nargs="+", metavar="FILE", help="ReadinessPolicy YAML files (or builtin:NAME)")
    rules.add_argument("--interval", default="1m", type=_duration,
                       help="how often the burn-rate windows are evaluated (default: 1m; at most the shortest window)")
    rules.add_argument("--period-step", default="5m", type=_duration,
                       help="the period is summed from counts per this step, evaluated as often (default: 5m)")

    sub.add_parser("version", help="print the version")
    return parser


def _duration(text: str) -> str:
    if not re.fullmatch(DURATION_PATTERN.strip("^$"), text) or duration_seconds(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a Prometheus duration of at least 1s such as 30s or 5m, got {text!r}")
    return text


def _slo_rules(args: argparse.Namespace, out: TextIO) -> int:
    groups: list[dict[str, object]] = []
    names: set[str] = set()
    for source in args.policies:
        policy = load_policy(source)
        name = policy.name or ""
        if not name:
            raise ManifestError(f"{source}: the policy needs metadata.name (the rules are labelled with it)")
        if name in names:
            raise ManifestError(f"{source}: a second policy named {name!r}")
        names.add(name)
        try:
            groups += rule_groups(name, policy.spec.slos, namespaces=policy.spec.match.namespaces,
                                  interval=args.interval, period_step=args.period_step)
        except ValueError as exc:
            raise ManifestError(f"{source}: {exc}") from None
    out.write(f"# Recording rules for the SLOs of {', '.join(sorted(names))}; generated by readiness-operator "
              f"{__version__} slo-rules (docs/slo.md).\n")
    yaml.safe_dump({"groups": groups}, out, sort_keys=False, width=1000)
    return EXIT_OK


def _preset(source: str) -> ReadinessPolicy:
    name = source.removeprefix(presets.PREFIX)
    text = presets.read(name)
    if text is None:
        available = ", ".join(presets.PREFIX + n for n in presets.available())
        raise ManifestError(f"{source}: no such built-in policy; available: {available}")
    return ReadinessPolicy.model_validate(yaml.safe_load(text))


def load_policy(source: str) -> ReadinessPolicy:
    """Read exactly one ReadinessPolicy (a file, ``-`` or ``builtin:NAME``); ManifestError names the
    file and the invalid field."""
    if source.startswith(presets.PREFIX):
        return _preset(source)
    docs = [(name, doc) for name, doc in iter_documents(source) if doc.get("kind") == KIND]
    shown = "<stdin>" if source == "-" else source
    if len(docs) != 1:
        raise ManifestError(f"{shown}: expected exactly one ReadinessPolicy document, found {len(docs)}")
    name, doc = docs[0]
    try:
        return ReadinessPolicy.model_validate(doc)
    except ValidationError as exc:
        raise ManifestError(f"{name}: invalid ReadinessPolicy:\n{format_validation_error(exc)}") from exc


def _audit(args: argparse.Namespace, out: TextIO) -> int:
    # A batch run builds millions of small dicts and lists (the manifests, the findings) that live until
    # the end; the cyclic GC would re-scan them over and over (~25% of the CPU at 10,000 Deployments)
    # and find nothing to collect (reference counting frees what the run drops).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _audit_files(args, out)
    finally:
        if was_enabled:
            gc.enable()


def _audit_files(args: argparse.Namespace, out: TextIO) -> int:
    files = [*args.files, *args.paths]
    if not files:
        raise ManifestError("no input: name manifest files or directories (FILE ..., -f PATH, or -f - for stdin)")
    policy = load_policy(args.policy)
    inv = load_inventory(files, skip_non_manifests=args.skip_non_manifests)
    plan = compile_policy(policy.spec)
    view = InMemoryView(pdbs=inv.pdbs, hpas=inv.hpas, namespace_labels=inv.namespace_labels,
                        network_policies=inv.network_policies)
    worlds = Worlds(view,
                    datetime.now(UTC))
    audited: list[Audited] = []
    for located in inv.deployments:
        dep = located.obj
        if matches(plan, dep, worlds.namespace_labels(namespace_of(dep))):
            audited.append(Audited(evaluate(plan, dep, worlds.of(dep)), located.file, located.line, located.containers))
    audited.sort(key=lambda a: (a.verdict.namespace, a.verdict.name))
    audit = Audit(policy=policy, policy_source=args.policy, results=audited, skipped=inv.skipped)
    code = _exit_code(audit, args.fail_below_score, args.allow_no_match)
    _write(audit, args, out, code)
    if not args.quiet:
        for sk in audit.skipped:
            print(f"note: skipped {sk.file}: {sk.reason}", file=sys.stderr)
        _summary(audit, args, code)
    return code


def _exit_code(audit: Audit, fail_below: int | None, allow_no_match: bool) -> int:
    """1 beats 3 beats 0: nothing judged is its own answer, so a typo in a selector cannot pass CI."""
    if not audit.results:
        return EXIT_OK if allow_no_match else EXIT_NO_MATCH
    verdicts = [a.verdict for a in audit.results]
    if not all(v.compliant for v in verdicts):
        return EXIT_NONCOMPLIANT
    if fail_below is not None and any(v.score < fail_below for v in verdicts):
        return EXIT_NONCOMPLIANT
    return EXIT_OK


def _write_json(data: object, out: TextIO) -> None:
    """Indented JSON written in chunks of ~64k pieces: ``json.dump`` writes each of the millions of
    tokens of a 10,000-Deployment report separately (a third of the run), ``json.dumps`` would hold
    the whole text and its pieces at once (+170 MB)."""
    pending: list[str] = []
    for piece in json.JSONEncoder(indent=2).iterencode(data):
        pending.append(piece)
        if len(pending) >= 65536:
            out.write("".join(pending))
            pending.clear()
    pending.append("\n")
    out.write("".join(pending))


def _write(audit: Audit, args: argparse.Namespace, out: TextIO, code: int) -> None:
    if args.output == "json":
        write_json(audit, out)
    elif args.output == "yaml":
        yaml.dump(document(audit), out, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False)
    elif args.output == "sarif":
        _write_json(sarif(audit, exit_code=code), out)
    elif args.output == "junit":
        out.write(junit(audit))
    else:
        table(audit, out, Palette(use_colour(args.color, out, os.environ)))


def _summary(audit: Audit, args: argparse.Namespace, code: int) -> None:
    colour = Palette(use_colour(args.color, sys.stderr, os.environ))
    s = audit.summary()
    line = f"{s.line()} (policy {audit.policy.name or '-'} from {audit.policy_source})"
    if code == EXIT_NO_MATCH:
        line += "; no Deployment matched (exit 3)"
    elif args.fail_below_score is not None and s.noncompliant == 0 and code == EXIT_NONCOMPLIANT:
        line += f"; a Deployment scores below {args.fail_below_score}"
    print(colour("red" if code == EXIT_NONCOMPLIANT else "green" if code == EXIT_OK else "yellow", line), file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    # Imported lazily: the audit path must work without kopf or a cluster.
    runner = importlib.import_module("readiness_operator.kube.runner")
    result = runner.run(args)
    return int(result or 0)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = build_parser()
    try:
        # argparse gives a positional list only one run of words: `audit a.yaml -f b.yaml c.yaml` would
        # leave c.yaml over, so leftover file names join the others (leftover options are still errors).
        args, extra = parser.parse_known_args(argv)
        if extra and (args.command != "audit" or any(e.startswith("-") and e != "-" for e in extra)):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        if extra:
            args.paths += extra
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    if args.command == "version":
        print(f"readiness-operator {__version__}")
        return EXIT_OK
    if args.command == "run":
        return _run(args)
    try:
        if args.command == "slo-rules":
            return _slo_rules(args, sys.stdout)
        return _audit(args, sys.stdout)
    except ManifestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
