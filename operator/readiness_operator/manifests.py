"""Reading Kubernetes manifests from files for the offline CLI (and the fixture tests).

Accepts files, directories (``*.yaml``, ``*.yml``, ``*.json``, recursively) and ``-`` for stdin;
multi-document YAML and ``kind: List`` are flattened. Errors name the file and the problem.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from readiness_operator.shape import deployment_problem, related_problem

__all__ = ["Inventory", "ManifestError", "iter_documents", "load_inventory"]

_SUFFIXES = (".yaml", ".yml", ".json")
# libyaml's parser when PyYAML was built with it (the wheels are): ~10x faster than pure Python.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ManifestError(Exception):
    """Bad input: the message names the file and what is wrong with it."""


def _read(source: str) -> str:
    if source == "-":
        return sys.stdin.read()
    try:
        return Path(source).read_text()
    except FileNotFoundError as exc:
        raise ManifestError(f"{source}: no such file or directory") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{source}: cannot read: {exc}") from exc


def _expand(source: str) -> list[str]:
    if source != "-" and Path(source).is_dir():
        files = sorted(str(p) for p in Path(source).rglob("*") if p.is_file() and p.suffix in _SUFFIXES)
        if not files:
            raise ManifestError(f"{source}: directory holds no .yaml, .yml or .json files")
        return files
    return [source]


def iter_documents(source: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(file name, object) for every non-empty document under ``source``; List items are flattened."""
    for name in _expand(source):
        shown = "<stdin>" if name == "-" else name
        try:
            docs = list(yaml.load_all(_read(name), Loader=_LOADER))
        except yaml.YAMLError as exc:
            raise ManifestError(f"{shown}: invalid YAML: {exc}") from exc
        for index, doc in enumerate(docs):
            if doc is None:
                continue
            if not isinstance(doc, dict):
                raise ManifestError(
                    f"{shown}: document {index + 1} is not a mapping (got {type(doc).__name__})"
                )
            if doc.get("kind") == "List" or (str(doc.get("kind", "")).endswith("List") and "items" in doc):
                for item in doc.get("items") or ():
                    if isinstance(item, dict):
                        yield shown, item
                continue
            yield shown, doc


@dataclass
class Inventory:
    """Deployments plus the "live" objects checks look up, as read from files."""

    deployments: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    pdbs: list[dict[str, Any]] = field(default_factory=list)
    hpas: list[dict[str, Any]] = field(default_factory=list)
    namespace_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    others: list[tuple[str, Mapping[str, Any]]] = field(default_factory=list)


def load_inventory(sources: list[str]) -> Inventory:
    """Sort documents by kind; unrelated kinds are kept aside and ignored by the audit."""
    inv = Inventory()
    for source in sources:
        for name, doc in iter_documents(source):
            kind = doc.get("kind")
            if not kind:
                raise ManifestError(f"{name}: a document has no kind")
            if kind == "Deployment":
                if problem := deployment_problem(doc):
                    raise ManifestError(f"{name}: malformed Deployment: {problem}")
                if not (doc.get("metadata") or {}).get("name"):
                    raise ManifestError(f"{name}: a Deployment has no metadata.name")
                inv.deployments.append((name, doc))
            elif kind in ("PodDisruptionBudget", "HorizontalPodAutoscaler"):
                if problem := related_problem(doc):
                    raise ManifestError(f"{name}: malformed {kind}: {problem}")
                (inv.pdbs if kind == "PodDisruptionBudget" else inv.hpas).append(doc)
            elif kind == "Namespace":
                meta = doc.get("metadata") or {}
                inv.namespace_labels[str(meta.get("name", ""))] = dict(meta.get("labels") or {})
            else:
                inv.others.append((name, doc))
    return inv
