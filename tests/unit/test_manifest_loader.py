"""The audit's fast YAML path builds exactly what PyYAML's safe loader builds (issue 16: the engine's
parse cost), falling back to the full constructor for everything a manifest rarely holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from readiness_operator.manifests import ManifestError, _Loader, iter_documents

ROOT = Path(__file__).resolve().parents[2]


def fast_load_all(text: str) -> list[Any]:
    loader = _Loader(text)
    try:
        out = []
        while loader.check_node():
            out.append(loader.construct_fast(loader.get_node()))
        return out
    finally:
        loader.dispose()


def safe_load_all(text: str) -> list[Any]:
    return list(yaml.load_all(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))


ODD_DOCUMENTS = [
    "a: yes\nb: 0x1f\nc: 1_000\nd: .inf\ne: ~\nf: 1e3\ng: 0o17\nh: 017\ni: 1:30\nj: -.5\nk: NO\n",
    "1: x\ntrue: y\nnull: z\n3.5: w\n",
    "a: !!str 1\nb: !!int '3'\nc: '007'\nd: \"true\"\n",
    "base: &b {x: 1}\nd:\n  <<: *b\n  y: 2\n",  # merge key: full constructor
    "t: 2020-01-01\nu: 2020-01-01T10:00:00Z\n",  # timestamps: full constructor
    "k: !!binary aGVsbG8=\n",
    "? [a, b]\n: 1\n",  # a complex key the safe loader rejects
    "x: !custom 1\n",  # an unknown tag the safe loader rejects
    "a: &n x\nb: *n\n",
    "a: {b: [1, {c: d}], e: []}\n---\n- 1\n- [2, 3]\n---\nplain\n---\n",
]


@pytest.mark.parametrize("text", ODD_DOCUMENTS)
def test_fast_path_builds_what_the_safe_loader_builds(text: str) -> None:
    try:
        expected: Any = safe_load_all(text)
    except yaml.YAMLError as exc:
        with pytest.raises(yaml.YAMLError) as got:
            fast_load_all(text)
        assert type(got.value) is type(exc)
        return
    assert repr(fast_load_all(text)) == repr(expected)  # repr: bool vs int and float vs int count


def test_aliases_share_one_object_and_recursion_is_kept() -> None:
    shared = fast_load_all("a: &x [1, 2]\nb: *x\n")[0]
    assert shared["a"] is shared["b"]
    recursive = fast_load_all("a: &a [*a]\n")[0]
    assert recursive["a"][0] is recursive["a"]


def test_alias_bomb_stays_small() -> None:
    """Aliases are shared, not copied: a 'billion laughs' document stays a few objects."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    doc = fast_load_all("\n".join(lines) + "\n")[0]
    assert doc["a8"][0] is doc["a7"]


def test_repository_manifests_read_the_same(tmp_path: Path) -> None:
    files = sorted(p for p in (ROOT / "examples").rglob("*.yaml")) + sorted((ROOT / "tests").rglob("*.yaml"))
    assert len(files) > 20
    for path in files:
        text = path.read_text()
        try:
            expected = safe_load_all(text)
        except yaml.YAMLError:
            continue
        assert repr(fast_load_all(text)) == repr(expected), path


def test_invalid_yaml_is_still_a_named_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: Deployment\nmetadata: {name: x\n")
    with pytest.raises(ManifestError, match=r"bad\.yaml: invalid YAML"):
        list(iter_documents(str(bad)))


def test_manifests_take_the_fast_path() -> None:
    """A plain Deployment is built without the full constructor (the speed-up is real)."""
    path = sorted((ROOT / "examples" / "workloads").rglob("*.yaml"))[0]
    loader = _Loader(path.read_text())
    try:
        assert loader.check_node()
        node = loader.get_node()
        assert node is not None
        assert loader._build(node, {}, {}) == loader.construct_document(node)
    finally:
        loader.dispose()
