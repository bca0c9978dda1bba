"""Reading Kubernetes manifests from files for the offline CLI (and the fixture tests).

Accepts files, directories (``*.yaml``, ``*.yml``, ``*.json``, recursively) and ``-`` for stdin;
multi-document YAML and ``kind: List`` are flattened. Every object keeps the file and the line its
document starts on (and, for Deployments, the line of each container), so reports can point at it.
Errors name the file and the problem.

Files found in a directory (and every file with ``skip_non_manifests``) that are not Kubernetes
manifests -- Helm's ``Chart.yaml``/``values*.yaml`` and templates, Kustomize files, YAML or JSON in
which no document has a ``kind`` -- are skipped and listed in :attr:`Inventory.skipped` instead of
failing the run: a repository keeps such files next to its manifests.
"""

from __future__ import annotations

import fnmatch
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from readiness_operator.shape import deployment_problem, related_problem

__all__ = ["Inventory", "Located", "ManifestError", "Skipped", "iter_documents", "iter_located", "load_inventory"]

_SUFFIXES = (".yaml", ".yml", ".json")
# libyaml's parser when PyYAML was built with it (the wheels are): ~10x faster than pure Python.
_BASE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
# Plain scalars other than strings that the safe loader turns into Python values (by tag).
_SCALAR_TAGS = {
    "tag:yaml.org,2002:null": "construct_yaml_null",
    "tag:yaml.org,2002:bool": "construct_yaml_bool",
    "tag:yaml.org,2002:int": "construct_yaml_int",
    "tag:yaml.org,2002:float": "construct_yaml_float",
}
# Scalars resolved to a tag, shared by every file of a run (manifests repeat the same keys and values);
# bounded so a stream of distinct values cannot grow it without end.
_RESOLVED: dict[tuple[str, tuple[bool, bool]], str] = {}
_RESOLVED_MAX = 200_000


class _Slow(Exception):
    """The document needs PyYAML's full constructor (merge keys, other tags, complex keys)."""


class _Loader(_BASE_LOADER):  # type: ignore[misc,valid-type]
    """The safe loader with a faster path to the same Python objects.

    PyYAML's constructor spends most of a large audit's parse time on per-node bookkeeping
    (generators, a registry lookup per node, an ABC check per key) and its resolver runs the same
    regular expressions for every repeated scalar. Documents made only of maps, sequences and the
    plain scalar types (what Kubernetes manifests are) are built directly, aliases shared as the safe
    loader shares them; any other document goes through the full constructor, so the result is
    always what ``yaml.safe_load`` gives.
    """

    def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is not yaml.ScalarNode:
            return str(super().resolve(kind, value, implicit))
        key = (value, implicit)
        tag = _RESOLVED.get(key)
        if tag is None:
            tag = str(super().resolve(kind, value, implicit))
            if len(_RESOLVED) >= _RESOLVED_MAX:
                _RESOLVED.clear()
            _RESOLVED[key] = tag
        return tag

    def construct_fast(self, node: yaml.Node) -> Any:
        """The document's object, as ``construct_document`` would build it."""
        try:
            return self._build(node, {}, {})
        except (_Slow, RecursionError):
            return self.construct_document(node)

    def _build(self, node: yaml.Node, shared: dict[int, Any], scalars: dict[tuple[str, str], Any]) -> Any:
        cls = node.__class__
        tag = node.tag
        if cls is yaml.ScalarNode:
            if tag == _STR:
                return node.value
            method = _SCALAR_TAGS.get(tag)
            if method is None:
                raise _Slow
            key = (tag, node.value)
            if key in scalars:
                return scalars[key]
            value = scalars[key] = getattr(self, method)(node)
            return value
        ident = id(node)
        if ident in shared:  # an alias: the same object, as the safe loader gives
            return shared[ident]
        if cls is yaml.MappingNode and tag == _MAP:
            mapping: dict[Any, Any] = {}
            shared[ident] = mapping
            for key_node, value_node in node.value:
                if key_node.__class__ is not yaml.ScalarNode:
                    raise _Slow  # complex keys: the full constructor accepts or rejects them
                key_tag = key_node.tag
                if key_tag == _STR:
                    key = key_node.value
                elif key_tag in _SCALAR_TAGS:
                    key = self._build(key_node, shared, scalars)
                else:
                    raise _Slow  # merge keys (<<), '=' and other tags
                mapping[key] = self._build(value_node, shared, scalars)
            return mapping
        if cls is yaml.SequenceNode and tag == _SEQ:
            sequence: list[Any] = []
            shared[ident] = sequence
            sequence.extend([self._build(item, shared, scalars) for item in node.value])
            return sequence
        raise _Slow


_LOADER = _Loader

#: File names that are never Kubernetes manifests (Helm and Kustomize inputs), with the reason shown.
_NOT_MANIFESTS = (
    ("Chart.yaml", "Helm chart metadata"),
    ("Chart.lock", "Helm chart lock file"),
    ("values*.yaml", "Helm values"),
    ("values*.yml", "Helm values"),
    ("kustomization.yaml", "Kustomize file"),
    ("kustomization.yml", "Kustomize file"),
    ("Kustomization", "Kustomize file"),
)


class ManifestError(Exception):
    """Bad input: the message names the file and what is wrong with it."""


@dataclass(frozen=True, slots=True)
class Located:
    """One object read from a file, with where it came from.

    ``line`` is the 1-based line of the document's (or List item's) first key; ``containers`` maps
    ``(is_init_container, name)`` to the line of that container's entry (Deployments only).
    """

    file: str
    line: int
    obj: dict[str, Any]
    containers: Mapping[tuple[bool, str], int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Skipped:
    """A file left out because it is not a Kubernetes manifest, and why."""

    file: str
    reason: str


def _read(source: str) -> str:
    if source == "-":
        return sys.stdin.read()
    try:
        return Path(source).read_text()
    except FileNotFoundError as exc:
        raise ManifestError(f"{source}: no such file or directory") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{source}: cannot read: {exc}") from exc


def _expand(source: str) -> tuple[list[str], bool]:
    """(files, whether they were found in a directory rather than named)."""
    if source != "-" and Path(source).is_dir():
        files = sorted(str(p) for p in Path(source).rglob("*") if p.is_file() and p.suffix in _SUFFIXES)
        if not files:
            raise ManifestError(f"{source}: directory holds no .yaml, .yml or .json files")
        return files, True
    return [source], False


def _not_manifest_by_name(name: str) -> str | None:
    if name == "-":
        return None
    path = Path(name)
    for pattern, reason in _NOT_MANIFESTS:
        if fnmatch.fnmatchcase(path.name, pattern):
            return reason
    for parent in path.parents:
        if parent.name == "templates" and (parent.parent / "Chart.yaml").is_file():
            return "Helm template (render it with `helm template` and audit the output, e.g. with -f -)"
    return None


def _value(node: yaml.Node, key: str) -> yaml.Node | None:
    """The value node of ``key`` in a mapping node (None when absent or not a mapping)."""
    if not isinstance(node, yaml.MappingNode):
        return None
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return v if isinstance(v, yaml.Node) else None
    return None


def _container_lines(node: yaml.Node) -> dict[tuple[bool, str], int]:
    """Line of each container entry under spec.template.spec, found on the node tree (no re-parse)."""
    pod = node
    for key in ("spec", "template", "spec"):
        found = _value(pod, key)
        if found is None:
            return {}
        pod = found
    lines: dict[tuple[bool, str], int] = {}
    for key, init in (("initContainers", True), ("containers", False)):
        seq = _value(pod, key)
        if not isinstance(seq, yaml.SequenceNode):
            continue
        for item in seq.value:
            name = _value(item, "name")
            if isinstance(name, yaml.ScalarNode):
                lines.setdefault((init, str(name.value)), item.start_mark.line + 1)
    return lines


def _located(shown: str, node: yaml.Node, obj: dict[str, Any]) -> Located:
    containers = _container_lines(node) if obj.get("kind") == "Deployment" else {}
    return Located(shown, node.start_mark.line + 1, obj, containers)


def _is_list(obj: Mapping[str, Any]) -> bool:
    kind = str(obj.get("kind", ""))
    return kind == "List" or (kind.endswith("List") and "items" in obj)


def _objects(shown: str, node: yaml.Node, obj: dict[str, Any]) -> list[Located]:
    if not _is_list(obj):
        return [_located(shown, node, obj)]
    items = _value(node, "items")
    item_nodes = items.value if isinstance(items, yaml.SequenceNode) else []
    return [
        _located(shown, item_node, item)
        for item, item_node in zip(obj.get("items") or (), item_nodes, strict=False)
        if isinstance(item, dict)
    ]


# (1-based document index, the object, its objects with their lines -- None when not a mapping)
_Doc = tuple[int, Any, list[Located] | None]


def _parse(shown: str, text: str) -> list[_Doc]:
    """Every non-empty document, located while its node is at hand; the nodes are dropped at once
    (keeping them for a 10,000-Deployment file would triple the memory)."""
    docs: list[_Doc] = []
    loader = _LOADER(text)
    try:
        index = 0
        # What yaml.load_all does, looking at each document's node for its marks (same cost).
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                break
            index += 1
            obj = loader.construct_fast(node)
            if obj is not None:
                docs.append((index, obj, _objects(shown, node, obj) if isinstance(obj, dict) else None))
    except yaml.YAMLError as exc:
        raise ManifestError(f"{shown}: invalid YAML: {exc}") from exc
    finally:
        loader.dispose()
    return docs


def _has_kind(docs: list[_Doc]) -> bool:
    return any(isinstance(obj, dict) and obj.get("kind") for _, obj, _ in docs)


def iter_located(source: str, *, skip_non_manifests: bool = False, skipped: list[Skipped] | None = None) -> Iterator[Located]:
    """Every object under ``source`` with its file and line; List items are flattened.

    Files found in a directory, or every file when ``skip_non_manifests``, that are not manifests are
    appended to ``skipped`` (when given) instead of raising. A file that is not YAML at all still
    raises, unless it holds Go template markers (``{{``) where skipping applies.
    """
    files, in_directory = _expand(source)
    lenient = skip_non_manifests or in_directory
    for name in files:
        shown = "<stdin>" if name == "-" else name
        if lenient and (reason := _not_manifest_by_name(name)):
            if skipped is not None:
                skipped.append(Skipped(shown, reason))
            continue
        text = _read(name)
        try:
            docs = _parse(shown, text)
        except ManifestError:
            if lenient and "{{" in text:
                if skipped is not None:
                    skipped.append(Skipped(shown, "templated YAML (Go template markers), not a manifest"))
                continue
            raise
        if lenient and not _has_kind(docs):
            if skipped is not None:
                skipped.append(Skipped(shown, "no document has a kind: not a Kubernetes manifest"))
            continue
        for index, obj, located in docs:
            if located is None:
                raise ManifestError(f"{shown}: document {index} is not a mapping (got {type(obj).__name__})")
            yield from located


def iter_documents(source: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(file name, object) for every non-empty document under ``source``; List items are flattened."""
    for located in iter_located(source):
        yield located.file, located.obj


@dataclass
class Inventory:
    """Deployments plus the "live" objects checks look up, as read from files."""

    deployments: list[Located] = field(default_factory=list)
    pdbs: list[dict[str, Any]] = field(default_factory=list)
    hpas: list[dict[str, Any]] = field(default_factory=list)
    network_policies: list[dict[str, Any]] = field(default_factory=list)
    namespace_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    others: list[tuple[str, Mapping[str, Any]]] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def load_inventory(sources: list[str], *, skip_non_manifests: bool = False) -> Inventory:
    """Sort documents by kind; unrelated kinds are kept aside and ignored by the audit."""
    inv = Inventory()
    for source in sources:
        for located in iter_located(source, skip_non_manifests=skip_non_manifests, skipped=inv.skipped):
            name, doc = located.file, located.obj
            kind = doc.get("kind")
            if not kind:
                raise ManifestError(f"{name}:{located.line}: a document has no kind")
            if kind == "Deployment":
                if problem := deployment_problem(doc):
                    raise ManifestError(f"{name}:{located.line}: malformed Deployment: {problem}")
                if not (doc.get("metadata") or {}).get("name"):
                    raise ManifestError(f"{name}:{located.line}: a Deployment has no metadata.name")
                inv.deployments.append(located)
            elif kind in ("PodDisruptionBudget", "HorizontalPodAutoscaler"):
                if problem := related_problem(doc):
                    raise ManifestError(f"{name}:{located.line}: malformed {kind}: {problem}")
                (inv.pdbs if kind == "PodDisruptionBudget" else inv.hpas).append(doc)
            elif kind == "NetworkPolicy":
                if problem := related_problem(doc):
                    raise ManifestError(f"{name}:{located.line}: malformed {kind}: {problem}")
                inv.network_policies.append(doc)
            elif kind == "Namespace":
                meta = doc.get("metadata") or {}
                inv.namespace_labels[str(meta.get("name", ""))] = dict(meta.get("labels") or {})
            else:
                inv.others.append((name, doc))
    return inv
