"""``spec.admission``: how the admission webhook and the fail-safe ValidatingAdmissionPolicy behave."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from readiness_operator.model.common import KubeModel

__all__ = ["AdmissionSettings"]

_Subject = Annotated[str, Field(min_length=1, max_length=253)]


class AdmissionSettings(KubeModel):
    """Admission behaviour of the policy (the mode itself is `spec.mode`).

    An UPDATE that changes neither the pod template nor the replicas is admitted without judgement
    (pre-existing violations never block unrelated edits) unless `judgeUnchangedUpdates` is true.
    The break-glass annotation `readiness.dev/override: "<reason>"` admits a Deployment despite the
    policy; when `overrideUsers` or `overrideGroups` is set only those users/groups may use it.
    """

    judge_unchanged_updates: bool = Field(
        default=False,
        description="Also judge UPDATEs that change neither spec.template nor spec.replicas (metadata-only "
        "edits), so pre-existing violations block them too.",
    )
    override_users: list[_Subject] = Field(
        default_factory=list,
        max_length=64,
        description="Users allowed to use the readiness.dev/override annotation (empty with empty "
        "overrideGroups: anyone allowed to edit the Deployment).",
    )
    override_groups: list[_Subject] = Field(
        default_factory=list,
        max_length=64,
        description="Groups allowed to use the readiness.dev/override annotation (see overrideUsers).",
    )
    fail_safe: bool = Field(
        default=True,
        description="With mode Enforce, also generate a ValidatingAdmissionPolicy (CEL) for the static "
        "checks, so they stay enforced while the operator is down.",
    )

    @property
    def restricts_override(self) -> bool:
        """Whether only listed users/groups may override."""
        return bool(self.override_users or self.override_groups)
