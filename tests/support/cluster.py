"""The local control plane (hack/cluster.sh) and a thin kubectl wrapper for tests."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
HACK = REPO_ROOT / "hack"


class KubectlError(RuntimeError):
    """kubectl exited non-zero; the message carries its stderr so tests can assert on it."""

    def __init__(self, args: list[str], result: subprocess.CompletedProcess[str]) -> None:
        super().__init__(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
        self.stdout = result.stdout
        self.stderr = result.stderr
        self.returncode = result.returncode


@dataclass(frozen=True)
class Cluster:
    kubeconfig: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        cmd = ["kubectl", f"--kubeconfig={self.kubeconfig}", *args]
        result = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise KubectlError(list(args), result)
        return result

    def apply(self, manifest: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.kubectl("apply", "-f", "-", *extra, input=manifest)

    def get_json(self, *args: str) -> Any:
        """`kubectl get ARGS -o json`, read straight from the API server when the arguments allow.

        A kubectl process costs about half a second on a loaded 2-core machine and tests poll with
        this in `eventually` loops; the answer (object or List) is the same JSON either way.
        """
        fast = _api_get(self.kubeconfig, args)
        if fast is not None:
            return fast
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def create_many(self, docs: list[dict[str, Any]], workers: int = 4) -> None:
        """Create many objects (of the kinds `get_json` knows) quickly: POSTs on a few connections.

        `kubectl create -f` sends one request after the other, each waiting for its answer.
        """
        from concurrent.futures import ThreadPoolExecutor

        _client(self.kubeconfig)  # once, before the threads
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda doc: _api_create(self.kubeconfig, doc), docs))

    def server(self) -> str:
        return self.kubectl("config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}").stdout

    def ca_file(self, directory: Path) -> Path:
        """Write the cluster CA to a file (for clients that need a path, e.g. a token kubeconfig)."""
        data = self.kubectl(
            "config", "view", "--raw", "--minify",
            "-o", "jsonpath={.clusters[0].cluster.certificate-authority-data}",
        ).stdout
        import base64

        path = directory / "ca.crt"
        path.write_bytes(base64.b64decode(data))
        return path

    def token_kubeconfig(self, namespace: str, service_account: str, directory: Path) -> Path:
        """A kubeconfig that authenticates as a ServiceAccount, via `kubectl create token`."""
        token = self.kubectl("-n", namespace, "create", "token", service_account, "--duration=2h").stdout.strip()
        path = directory / f"{namespace}-{service_account}.kubeconfig"
        ca = self.ca_file(directory)
        env = {**os.environ, "KUBECONFIG": str(path)}
        for cmd in (
            ["config", "set-cluster", "c", f"--server={self.server()}", f"--certificate-authority={ca}",
             "--embed-certs=true"],
            ["config", "set-credentials", "u", f"--token={token}"],
            ["config", "set-context", "c", "--cluster=c", "--user=u"],
            ["config", "use-context", "c"],
        ):
            subprocess.run(["kubectl", *cmd], env=env, check=True, capture_output=True)
        return path


# kubectl's names for the resources tests read -> (API path prefix, plural, namespaced).
_RESOURCES: dict[str, tuple[str, str, bool]] = {}
for _prefix, _plural, _namespaced, _names in (
    ("/apis/readiness.dev/v1alpha1", "readinesspolicies", False, ("rp", "readinesspolicy")),
    ("/apis/wgpolicyk8s.io/v1alpha2", "policyreports", True, ("polr", "policyreport")),
    ("/apis/wgpolicyk8s.io/v1alpha2", "clusterpolicyreports", False, ("cpolr", "clusterpolicyreport")),
    ("/apis/apiextensions.k8s.io/v1", "customresourcedefinitions", False, ("crd", "crds", "customresourcedefinition")),
    ("/apis/admissionregistration.k8s.io/v1", "validatingwebhookconfigurations", False,
     ("validatingwebhookconfiguration",)),
    ("/apis/admissionregistration.k8s.io/v1", "validatingadmissionpolicies", False, ("validatingadmissionpolicy",)),
    ("/apis/admissionregistration.k8s.io/v1", "validatingadmissionpolicybindings", False,
     ("validatingadmissionpolicybinding",)),
    ("/apis/apps/v1", "deployments", True, ("deploy", "deployment")),
    ("/apis/apps/v1", "replicasets", True, ("rs", "replicaset")),
    ("/apis/policy/v1", "poddisruptionbudgets", True, ("pdb", "pdbs", "poddisruptionbudget")),
    ("/apis/autoscaling/v2", "horizontalpodautoscalers", True, ("hpa", "hpas", "horizontalpodautoscaler")),
    ("/apis/coordination.k8s.io/v1", "leases", True, ("lease",)),
    ("/api/v1", "pods", True, ("po", "pod")),
    ("/api/v1", "services", True, ("svc", "service")),
    ("/api/v1", "secrets", True, ("secret",)),
    ("/api/v1", "configmaps", True, ("cm", "configmap")),
    ("/api/v1", "events", True, ("ev", "event")),
    ("/api/v1", "serviceaccounts", True, ("sa", "serviceaccount")),
    ("/api/v1", "nodes", False, ("no", "node")),
    ("/api/v1", "namespaces", False, ("ns", "namespace")),
):
    for _name in (_plural, *_names):
        _RESOURCES[_name] = (_prefix, _plural, _namespaced)

_CLIENTS: dict[Path, Any] = {}


def _client(kubeconfig: Path) -> Any:
    client = _CLIENTS.get(kubeconfig)
    if client is None:
        import kubernetes

        client = _CLIENTS[kubeconfig] = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
        _, active = kubernetes.config.list_kube_config_contexts(config_file=str(kubeconfig))
        client.default_namespace = (active.get("context") or {}).get("namespace") or "default"
    return client


def _request(client: Any, method: str, path: str, args: list[str], query: list[tuple[str, str]] | None = None,
             body: Any = None) -> Any:
    """One API request; failures raise KubectlError with kubectl's wording, as `Cluster.kubectl` would."""
    try:
        method, url, headers, payload, post = client.param_serialize(
            method, path, query_params=query or [], body=body,
            header_params={"Accept": "application/json", "Content-Type": "application/json"},
            auth_settings=["BearerToken"])
        response = client.call_api(method, url, header_params=headers, body=payload, post_params=post,
                                   _request_timeout=60)
        data = response.read()
    except Exception as exc:  # connection refused/reset (e.g. the API server is restarting), timeouts
        raise KubectlError(args, subprocess.CompletedProcess(["kubectl"], 1, "", f"error: {exc}")) from exc
    if not 200 <= response.status < 300:
        try:
            status = json.loads(data)
            stderr = f"Error from server ({status.get('reason', response.reason)}): {status.get('message', '')}"
        except ValueError:
            stderr = f"error: {response.status} {response.reason}"
        raise KubectlError(args, subprocess.CompletedProcess(["kubectl"], 1, "", stderr))
    return json.loads(data)


def _api_create(kubeconfig: Path, doc: dict[str, Any]) -> None:
    prefix, plural, namespaced = _RESOURCES[doc["kind"].lower()]
    group_version = prefix.removeprefix("/apis/").removeprefix("/api/")
    assert doc["apiVersion"] == group_version, f"{doc['kind']} is served as {group_version}, not {doc['apiVersion']}"
    client = _client(kubeconfig)
    path = prefix
    if namespaced:
        path += f"/namespaces/{doc['metadata'].get('namespace') or client.default_namespace}"
    _request(client, "POST", f"{path}/{plural}", ["create", doc["kind"], doc["metadata"]["name"]], body=doc)


def _api_get(kubeconfig: Path, args: tuple[str, ...]) -> Any:
    """`kubectl get` of one resource type (optionally one name, -n/-A, -l, --field-selector) through
    the API; None when the arguments are anything else (the caller runs kubectl then)."""
    namespace: str | None = None
    all_namespaces = False
    query: list[tuple[str, str]] = []
    positional: list[str] = []
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        flag, eq, value = arg.partition("=")
        if flag in ("-n", "--namespace", "-l", "--selector", "--field-selector"):
            if not eq:
                if not rest:
                    return None
                value = rest.pop(0)
            if flag in ("-n", "--namespace"):
                namespace = value
            else:
                query.append(("fieldSelector" if flag == "--field-selector" else "labelSelector", value))
        elif arg in ("-A", "--all-namespaces"):
            all_namespaces = True
        elif arg.startswith("-"):
            return None
        else:
            positional.append(arg)
    if not 1 <= len(positional) <= 2 or positional[0] not in _RESOURCES:
        return None
    prefix, plural, namespaced = _RESOURCES[positional[0]]
    name = positional[1] if len(positional) == 2 else None
    if all_namespaces and name is not None:
        return None
    client = _client(kubeconfig)
    path = prefix
    if namespaced and not all_namespaces:
        path += f"/namespaces/{namespace or client.default_namespace}"
    path += f"/{plural}" + (f"/{name}" if name else "")
    found = _request(client, "GET", path, ["get", *args], query=query)
    for obj in (found, *(found.get("items") or ())):  # kubectl leaves them out unless --show-managed-fields
        (obj.get("metadata") or {}).pop("managedFields", None)
    if name is None:  # as kubectl prints a list: a v1 List whose items carry their kind
        kind = found.get("kind", "").removesuffix("List")
        items = [{"apiVersion": found.get("apiVersion"), "kind": kind, **item} for item in found.get("items") or []]
        return {"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}}
    return found


def eventually(check: Callable[[], Any], timeout: float = 30, interval: float = 0.25, what: str = "") -> Any:
    """Retry `check` until it returns a truthy value (or stops raising AssertionError)."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = check()
            if value:
                return value
            last = None
        except (AssertionError, KubectlError) as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}: {last}")
        time.sleep(interval)


@contextmanager
def local_cluster(state_dir: Path) -> Iterator[Cluster]:
    """Start a private control plane with hack/cluster.sh and stop it afterwards."""
    env = {**os.environ, "CLUSTER_DIR": str(state_dir)}
    env.pop("KUBECONFIG", None)
    result = subprocess.run(
        [str(HACK / "cluster.sh"), "up"], env=env, capture_output=True, text=True, timeout=3600
    )
    if result.returncode != 0:
        subprocess.run([str(HACK / "cluster.sh"), "down"], env=env, capture_output=True)
        raise RuntimeError(f"hack/cluster.sh up failed:\n{result.stderr}")
    try:
        yield Cluster(Path(result.stdout.strip().splitlines()[-1]))
    finally:
        subprocess.run([str(HACK / "cluster.sh"), "down"], env=env, capture_output=True, timeout=120)


@contextmanager
def kubeconfig_or_local_cluster(prefix: str) -> Iterator[Cluster]:
    """The cluster `KUBECONFIG` names, else a private control plane for the caller's run (benches)."""
    if os.environ.get("KUBECONFIG"):
        yield Cluster(Path(os.environ["KUBECONFIG"]))
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp, local_cluster(Path(tmp) / "cluster") as started:
        yield started
