"""Pinned images, on containers and init containers (an init container image runs in the pod too)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from readiness_operator.checks.base import Cel, Container, Context, Outcome, failed, passed, register
from readiness_operator.checks.cel import ALL_CONTAINERS, lit, per_container
from readiness_operator.severity import Severity

if TYPE_CHECKING:
    from readiness_operator.model.rules import ImagesRule

__all__ = ["default_pull_policy", "split_image"]


def split_image(image: str) -> tuple[str, str | None, str | None]:
    """``repo``, ``tag`` and ``digest`` of an image reference.

    The tag is after the last ``:`` of the last path segment, so a registry port
    (``host:5000/app``) is not mistaken for a tag.
    """
    repo, _, digest = image.partition("@")
    last_slash = repo.rfind("/")
    colon = repo.rfind(":")
    if colon > last_slash:
        return repo[:colon], repo[colon + 1 :], digest or None
    return repo, None, digest or None


def _cel(check_id: str, rule: ImagesRule) -> Cel:
    img = "c.?image.orValue('')"
    digest = f"{img}.matches('@.+$')"
    conds = [f"{img} != ''"]
    words = []
    if rule.require_digest:
        conds.append(digest)
        words.append("reference the image by digest (@sha256:...)")
    if rule.forbid_latest:
        repo = f"{img}.split('@')[0]"
        tagged = (
            f"({repo}.lastIndexOf(':') > {repo}.lastIndexOf('/') && {repo}.substring({repo}.lastIndexOf(':') + 1) != 'latest')"
        )
        conds.append(f"({digest} || {tagged})")
        words.append("use a versioned image tag or a digest, not :latest or no tag")
    return per_container(check_id, ALL_CONTAINERS, " && ".join(conds), " and ".join(words))


@register(
    "image-tag-pinned",
    category="images",
    severity=Severity.CRITICAL,
    title="Pinned image",
    why="`:latest` or an untagged image changes under you: two pods of one ReplicaSet may run different code "
    "and a rollback does not roll back.",
    remediation="Reference a versioned tag (`app:1.4.2`) or, better, a digest (`app@sha256:...`).",
    group="images",
    enabled=lambda rule: rule.active,
    reads={"Deployment": ("spec.template.spec.containers[].image", "spec.template.spec.initContainers[].image")},
    cel=_cel,
)
def image_tag_pinned(ctx: Context, rule: ImagesRule) -> Outcome:
    """No ``:latest`` or missing tag (a digest pins too); with requireDigest, a digest is mandatory."""

    def problem(c: Container) -> str | None:
        image = str(c.get("image") or "")
        if not image:
            return f"{c.label} has no image"
        _, tag, digest = split_image(image)
        if rule.require_digest and not digest:
            return f"{c.label} image '{image}' has no digest; set {c.path}.image to '<repo>@sha256:<digest>'"
        if rule.forbid_latest and not digest and (tag is None or tag == "latest"):
            what = "uses the latest tag" if tag else "has no tag (means latest)"
            return f"{c.label} image '{image}' {what}; set {c.path}.image to a versioned tag or a digest"
        return None

    problems = [p for c in ctx.target.all_containers() if (p := problem(c)) is not None]
    return failed(problems) if problems else passed("every image is pinned")


def default_pull_policy(image: str) -> str:
    """The API server's default imagePullPolicy: Always for `:latest` or no tag, else IfNotPresent
    (a digest without a tag counts as tagged)."""
    _, tag, digest = split_image(image)
    return "Always" if not digest and (tag is None or tag == "latest") else "IfNotPresent"


def _pull_policy_cel(check_id: str, rule: ImagesRule) -> Cel:
    img = "c.?image.orValue('')"
    repo = f"{img}.split('@')[0]"
    untagged = (
        f"(!{img}.contains('@') && ({repo}.lastIndexOf(':') <= {repo}.lastIndexOf('/') || "
        f"{repo}.substring({repo}.lastIndexOf(':') + 1) == 'latest'))"
    )
    policy = f"c.?imagePullPolicy.orValue({untagged} ? 'Always' : 'IfNotPresent')"
    allowed = list(rule.pull_policies)
    return per_container(check_id, ALL_CONTAINERS, f"{policy} in {lit(allowed)}",
                         f"use imagePullPolicy {' or '.join(allowed)}")


@register(
    "image-pull-policy",
    category="images",
    severity=Severity.WARNING,
    title="Image pull policy",
    why="With IfNotPresent a node keeps running whatever it cached under a tag, so a re-pushed tag or a "
    "pruned registry goes unnoticed until a node is replaced; Never fails on every new node.",
    remediation="Set `imagePullPolicy` on every container and init container to a policy the policy allows "
    "(usually `Always`).",
    group="images",
    enabled=lambda rule: bool(rule.pull_policies),
    reads={
        "Deployment": (
            "spec.template.spec.containers[].image",
            "spec.template.spec.containers[].imagePullPolicy",
            "spec.template.spec.initContainers[].image",
            "spec.template.spec.initContainers[].imagePullPolicy",
        )
    },
    cel=_pull_policy_cel,
)
def image_pull_policy(ctx: Context, rule: ImagesRule) -> Outcome:
    """Every container's effective imagePullPolicy (set, or the API server's default) is allowed."""
    allowed = list(rule.pull_policies)
    problems = []
    for c in ctx.target.all_containers():
        raw = c.get("imagePullPolicy")
        policy = str(raw) if raw else default_pull_policy(str(c.get("image") or ""))
        if policy not in allowed:
            shown = policy if raw else f"{policy} (the default for '{c.get('image')}')"
            problems.append(f"{c.label} pulls with {shown}; set {c.path}.imagePullPolicy: {allowed[0]}")
    return failed(problems) if problems else passed(f"every container pulls with {' or '.join(allowed)}")
