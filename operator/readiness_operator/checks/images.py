"""Pinned images, on containers and init containers (an init container image runs in the pod too)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from readiness_operator.checks.base import Cel, Container, Context, Outcome, failed, passed, register
from readiness_operator.checks.cel import ALL_CONTAINERS, per_container
from readiness_operator.severity import Severity

if TYPE_CHECKING:
    from readiness_operator.model.rules import ImagesRule

__all__ = ["split_image"]


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
