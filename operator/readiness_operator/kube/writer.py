"""The production `Writer`: the API calls of api.py behind the reconcile protocol."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import api


class ApiWriter:
    async def patch_policy_status(self, name: str, status: Mapping[str, Any]) -> None:
        await api.patch_policy_status(name, status)

    async def policy_reports_available(self) -> bool:
        return await api.policy_reports_available()

    async def list_policy_reports(self, policy: str) -> list[dict[str, Any]]:
        return await api.list_policy_reports(policy)

    async def put_policy_report(self, report: Mapping[str, Any]) -> None:
        await api.put_policy_report(report)

    async def delete_policy_report(self, namespace: str, name: str) -> None:
        await api.delete_policy_report(namespace, name)

    async def post_event(self, involved: Mapping[str, Any], *, reason: str, message: str, warning: bool = False) -> None:
        await api.post_event(involved, reason=reason, message=message, warning=warning)
