"""The call log behind the integration's dashboard."""

from __future__ import annotations

from rest_framework.response import Response

from apps.common.sql import insert

from .models import ApiCall, ApiUser


def call_log(*, api_user: ApiUser, operation: str, response: Response) -> None:
    reason = ""
    if response.status_code >= 400 and isinstance(response.data, dict):
        reason = str(response.data.get("detail", ""))[:2000]
    # One plain INSERT: every call writes one, replays included.
    insert(
        ApiCall(
            integration_id=api_user.integration_id,
            api_user=api_user,
            operation=operation,
            status_code=response.status_code,
            reason=reason,
        )
    )
