"""Built-in policies for the offline CLI (``--policy builtin:NAME``), shipped as package data.

A pipeline can judge manifests without keeping a policy file of its own; each preset is a plain
ReadinessPolicy YAML file next to this module (listed in ``readiness-operator audit --help``).
"""

from __future__ import annotations

from importlib import resources

__all__ = ["PREFIX", "available", "description", "read"]

PREFIX = "builtin:"

_DESCRIPTIONS = {
    "baseline": "probes, requests, memory limit, no :latest image, not privileged",
    "production": "design checklist 1: replicas 3, requests/limits, probes, rolling update, HPA, PDB, SLOs",
    "hardened": "design checklist 2: hardened securityContext, all probes, PDB, anti-affinity, HPA, SLOs",
    "pod-security-baseline": "the Kubernetes Pod Security Standards (v1.34) 'baseline' level, control by control",
    "pod-security-restricted": "the Kubernetes Pod Security Standards (v1.34) 'restricted' level, control by control",
}


def available() -> list[str]:
    """Names of the shipped presets, sorted."""
    files = resources.files(__name__).iterdir()
    return sorted(f.name.removesuffix(".yaml") for f in files if f.name.endswith(".yaml"))


def description(name: str) -> str:
    """One line for ``--help`` and the docs."""
    return _DESCRIPTIONS.get(name, "")


def read(name: str) -> str | None:
    """The preset's YAML text, or None when there is no such preset."""
    if name not in available():
        return None
    return resources.files(__name__).joinpath(f"{name}.yaml").read_text(encoding="utf-8")
