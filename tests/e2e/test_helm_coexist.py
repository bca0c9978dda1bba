"""The chart coexists with another release owning the shared PolicyReport CRDs, and upgrades its own
CRD (issue 15 item 6), with the real `helm` against the real API server.

The CRDs are cluster-wide and other test modules use them, so every test here leaves them
established with the repository's schema and no Helm owner (as the `crds` fixture applies them).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.cluster import REPO_ROOT, Cluster

pytestmark = pytest.mark.e2e

CHART = REPO_ROOT / "charts" / "readiness-operator"
SHARED = ("policyreports.wgpolicyk8s.io", "clusterpolicyreports.wgpolicyk8s.io")
OURS_CRD = "readinesspolicies.readiness.dev"
OWNER_KEYS = ("meta.helm.sh/release-name", "meta.helm.sh/release-namespace")


def helm(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["helm", f"--kubeconfig={cluster.kubeconfig}", *args], capture_output=True, text=True,
                            timeout=180)
    assert result.returncode == 0, f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}"
    return result


def owner(cluster: Cluster, crd: str) -> tuple[str | None, str | None]:
    annotations = cluster.get_json("crd", crd)["metadata"].get("annotations") or {}
    return annotations.get(OWNER_KEYS[0]), annotations.get(OWNER_KEYS[1])


def hand_over(cluster: Cluster, release: str, namespace: str, *crds: str) -> None:
    """docs/operations.md's hand-over of existing CRDs to a release (what Helm checks before adopting)."""
    cluster.kubectl("annotate", "--overwrite", "crd", *crds, f"{OWNER_KEYS[0]}={release}", f"{OWNER_KEYS[1]}={namespace}")
    cluster.kubectl("label", "--overwrite", "crd", *crds, "app.kubernetes.io/managed-by=Helm")


def disown(cluster: Cluster, *crds: str) -> None:
    """Back to the session's state: the repository's CRDs, owned by no release."""
    cluster.kubectl("annotate", "crd", *crds, *(f"{k}-" for k in (*OWNER_KEYS, "helm.sh/resource-policy")), check=False)
    cluster.kubectl("label", "crd", *crds, "app.kubernetes.io/managed-by-", "fake-revision-", "app.kubernetes.io/part-of-",
                    check=False)
    cluster.kubectl("apply", "-f", str(REPO_ROOT / "crds"))
    cluster.kubectl("wait", "--for=condition=established", "--timeout=60s", "crd", *crds)


def fake_kyverno_chart(directory: Path) -> Path:
    """A tiny chart that, like Kyverno's, ships the wgpolicyk8s.io CRDs as templates of its release."""
    chart = directory / "kyverno-crds"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(yaml.safe_dump({"apiVersion": "v2", "name": "kyverno-crds", "version": "3.3.0"}))
    for crd in ("wgpolicyk8s.io_policyreports.yaml", "wgpolicyk8s.io_clusterpolicyreports.yaml"):
        doc = yaml.safe_load((REPO_ROOT / "crds" / crd).read_text())
        doc["metadata"]["labels"] = {"app.kubernetes.io/part-of": "kyverno", "fake-revision": "{{ .Release.Revision }}"}
        doc["metadata"]["annotations"] = {"helm.sh/resource-policy": "keep"}  # the session needs them afterwards
        (chart / "templates" / crd).write_text(yaml.safe_dump(doc))
    return chart


@pytest.fixture(scope="module")
def shared_crds(crds: Cluster) -> Iterator[Cluster]:
    yield crds
    disown(crds, *SHARED, OURS_CRD)


def rendered_crds(cluster: Cluster, release: str, namespace: str) -> set[str]:
    manifest = helm(cluster, "get", "manifest", release, "-n", namespace).stdout
    return {d["metadata"]["name"] for d in yaml.safe_load_all(manifest) if d and d["kind"] == "CustomResourceDefinition"}


def report(namespace: str) -> str:
    return json.dumps({"apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport",
                       "metadata": {"name": "kyverno-owned", "namespace": namespace}, "results": []})


def test_shared_crds_owned_by_another_release_are_never_taken_or_deleted(shared_crds: Cluster, tmp_path: Path) -> None:
    cluster = shared_crds
    kyverno, ours = ("kyverno", "ro-kyverno"), ("ro-coexist", "ro-coexist")
    hand_over(cluster, *kyverno, *SHARED)  # Kyverno was installed first: it owns the PolicyReport CRDs
    fake = fake_kyverno_chart(tmp_path)
    helm(cluster, "install", kyverno[0], str(fake), "-n", kyverno[1], "--create-namespace")
    cluster.kubectl("create", "namespace", "ro-coexist-app", check=False)
    cluster.apply(report("ro-coexist-app"))
    try:
        installed = helm(cluster, "install", ours[0], str(CHART), "-n", ours[1], "--create-namespace")
        assert rendered_crds(cluster, *ours) == set(), "another release's and kubectl's CRDs are left alone"
        for crd in SHARED:
            assert f"CRD {crd} exists outside this release" in installed.stdout
        helm(cluster, "upgrade", ours[0], str(CHART), "-n", ours[1], "--reuse-values", "--set", "logLevel=debug")
        helm(cluster, "upgrade", kyverno[0], str(fake), "-n", kyverno[1])  # Kyverno still upgrades its CRDs
        for crd in SHARED:
            assert owner(cluster, crd) == kyverno
            assert cluster.get_json("crd", crd)["metadata"]["labels"]["fake-revision"] == "2"
        helm(cluster, "uninstall", ours[0], "-n", ours[1])
        for crd in SHARED:
            assert owner(cluster, crd) == kyverno, "our uninstall did not touch Kyverno's CRDs"
        assert cluster.get_json("policyreport", "kyverno-owned", "-n", "ro-coexist-app")["metadata"]["name"]
        helm(cluster, "uninstall", kyverno[0], "-n", kyverno[1])
    finally:
        cluster.kubectl("delete", "namespace", "ro-coexist-app", ours[1], kyverno[1], "--ignore-not-found",
                        "--wait=false")


def previous_chart(directory: Path) -> Path:
    """The previous chart version: this chart with the version lowered and its CRD as it was before
    the last schema change (no `spec.allowPermanentWildcardExemptions`).

    Why a copy and not `git show` of the last 0.1.x commit: a fresh CI clone may be shallow, and 0.1.0
    kept its CRDs in Helm's crds/ directory, which `helm upgrade` never touches; its upgrade path
    (hand the CRD to the release, then upgrade) is what `hand_over` runs below.
    """
    old = directory / "readiness-operator"
    shutil.copytree(CHART, old)
    meta = yaml.safe_load((old / "Chart.yaml").read_text())
    meta["version"] = "0.1.9"
    (old / "Chart.yaml").write_text(yaml.safe_dump(meta))
    crd_file = old / "files" / "crds" / "readiness.dev_readinesspolicies.yaml"
    crd = yaml.safe_load(crd_file.read_text())
    for version in crd["spec"]["versions"]:
        spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
        assert spec["properties"].pop("allowPermanentWildcardExemptions", None) is not None
    crd_file.write_text(yaml.safe_dump(crd))
    return old


def kept_by_the_schema(cluster: Cluster) -> bool:
    """Whether the API server accepts and keeps `spec.allowPermanentWildcardExemptions` (kubectl's
    strict field validation rejects it while the schema lacks it)."""
    policy = json.dumps({"apiVersion": "readiness.dev/v1alpha1", "kind": "ReadinessPolicy",
                         "metadata": {"name": "ro-upgrade-probe"},
                         "spec": {"mode": "Audit", "allowPermanentWildcardExemptions": True,
                                  "rules": {"probes": {"readiness": True}}}})
    result = cluster.kubectl("create", "--dry-run=server", "-o", "json", "-f", "-", input=policy, check=False)
    if result.returncode != 0:
        assert 'unknown field "spec.allowPermanentWildcardExemptions"' in result.stderr, result.stderr
        return False
    created: dict[str, Any] = json.loads(result.stdout)
    return created["spec"].get("allowPermanentWildcardExemptions") is True


def test_upgrade_from_the_previous_version_changes_the_crd(shared_crds: Cluster, tmp_path: Path) -> None:
    cluster, release, namespace = shared_crds, "ro-upgrade", "ro-upgrade"
    hand_over(cluster, release, namespace, OURS_CRD)  # it came from kubectl (or chart 0.1.0's crds/)
    try:
        helm(cluster, "install", release, str(previous_chart(tmp_path)), "-n", namespace, "--create-namespace")
        assert rendered_crds(cluster, release, namespace) == {OURS_CRD}
        assert not kept_by_the_schema(cluster), "the previous version's CRD lacks the field"

        helm(cluster, "upgrade", release, str(CHART), "-n", namespace, "--reuse-values")
        history = json.loads(helm(cluster, "history", release, "-n", namespace, "-o", "json").stdout)
        version = yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]
        assert [(h["revision"], h["chart"]) for h in history] == [
            (1, "readiness-operator-0.1.9"), (2, f"readiness-operator-{version}")]
        assert kept_by_the_schema(cluster), "helm upgrade applied the CRD change"
        assert owner(cluster, OURS_CRD) == (release, namespace)

        helm(cluster, "uninstall", release, "-n", namespace)
        conditions = cluster.get_json("crd", OURS_CRD)["status"]["conditions"]
        assert {"type": "Established", "status": "True"} in [{"type": c["type"], "status": c["status"]}
                                                            for c in conditions], "uninstall keeps the CRD"
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--ignore-not-found", "--wait=false")
