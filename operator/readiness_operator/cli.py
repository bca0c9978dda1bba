"""``readiness-operator``: ``audit`` (offline, files in, report out), ``run`` (the operator), ``version``.

Exit codes of ``audit``: 0 every matched Deployment complies, 1 any does not, 2 bad input.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from pydantic import ValidationError

from readiness_operator import __version__
from readiness_operator.engine import DeploymentVerdict, compile_policy, evaluate, matches
from readiness_operator.manifests import ManifestError, iter_documents, load_inventory
from readiness_operator.model import KIND, ReadinessPolicy, format_validation_error
from readiness_operator.world import InMemoryView, Worlds, namespace_of

__all__ = ["build_parser", "load_policy", "main"]

EXIT_OK, EXIT_NONCOMPLIANT, EXIT_BAD_INPUT = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for docs and tests)."""
    parser = argparse.ArgumentParser(
        prog="readiness-operator", description="Production-readiness policy for Kubernetes Deployments."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    audit = sub.add_parser("audit", help="evaluate manifests against a ReadinessPolicy, offline")
    audit.add_argument("--policy", required=True, help="ReadinessPolicy YAML file (or - for stdin)")
    audit.add_argument(
        "-f",
        "--filename",
        dest="files",
        action="append",
        required=True,
        help="manifest file, directory or - (repeatable); Deployments plus optional PDBs, HPAs, Namespaces",
    )
    audit.add_argument("-o", "--output", choices=("table", "json"), default="table", help="output format")

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
    run.add_argument("--standalone", action="store_true", help="no peering (single replica)")
    run.add_argument("--peering", default=None, metavar="NAME", help="kopf peering object name")
    run.add_argument("--webhook-port", type=int, default=None, help="admission webhook port")
    run.add_argument("--metrics-port", type=int, default=None, help="Prometheus metrics port")

    sub.add_parser("version", help="print the version")
    return parser


def load_policy(source: str) -> ReadinessPolicy:
    """Read exactly one ReadinessPolicy; ManifestError names the file and the invalid field."""
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
    policy = load_policy(args.policy)
    inv = load_inventory(args.files)
    plan = compile_policy(policy.spec)
    worlds = Worlds(InMemoryView(pdbs=inv.pdbs, hpas=inv.hpas, namespace_labels=inv.namespace_labels),
                    datetime.now(UTC))
    verdicts: list[DeploymentVerdict] = []
    for _, dep in inv.deployments:
        if matches(plan, dep, worlds.namespace_labels(namespace_of(dep))):
            verdicts.append(evaluate(plan, dep, worlds.of(dep)))
    verdicts.sort(key=lambda v: (v.namespace, v.name))
    if args.output == "json":
        json.dump({"results": [_result(v) for v in verdicts]}, out, indent=2)
        out.write("\n")
    else:
        _table(verdicts, out)
    return EXIT_OK if all(v.compliant for v in verdicts) else EXIT_NONCOMPLIANT


def _result(v: DeploymentVerdict) -> dict[str, Any]:
    return {
        "namespace": v.namespace,
        "name": v.name,
        "compliant": v.compliant,
        "score": v.score,
        "level": v.level,
        "findings": [
            {"check": f.check, "severity": str(f.severity), "message": f.message} for f in v.failures
        ],
    }


def _table(verdicts: Sequence[DeploymentVerdict], out: TextIO) -> None:
    if not verdicts:
        out.write("No Deployments matched the policy.\n")
        return
    rows = [("NAMESPACE", "NAME", "COMPLIANT", "SCORE", "LEVEL", "FAILED")]
    rows += [
        (
            v.namespace,
            v.name,
            "yes" if v.compliant else "no",
            str(v.score),
            v.level,
            ",".join(v.failed_checks) or "-",
        )
        for v in verdicts
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        out.write(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1] + "\n"
        )
    for v in verdicts:
        if v.failures:
            out.write(f"\n{v.namespace}/{v.name}:\n")
            for f in v.failures:
                out.write(f"  [{f.severity}] {f.check}: {f.message}\n")


def _run(args: argparse.Namespace) -> int:
    # Imported lazily: the audit path must work without kopf or a cluster.
    runner = importlib.import_module("readiness_operator.kube.runner")
    result = runner.run(args)
    return int(result or 0)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    if args.command == "version":
        print(f"readiness-operator {__version__}")
        return EXIT_OK
    if args.command == "run":
        return _run(args)
    try:
        return _audit(args, sys.stdout)
    except ManifestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
