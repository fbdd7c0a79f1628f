"""The call log behind the integration's dashboard."""

from __future__ import annotations

from rest_framework.response import Response

from apps.common.sql import insert

from .models import ApiCall, ApiUser


def call_row(*, api_user: ApiUser, operation: str, response: Response) -> ApiCall:
    """The log row of a call (not saved): its operation, status and, for a refusal, why."""
    reason = ""
    if response.status_code >= 400 and isinstance(response.data, dict):
        reason = str(response.data.get("detail", ""))[:2000]
    return ApiCall(
        integration_id=api_user.integration_id,
        api_user=api_user,
        operation=operation,
        status_code=response.status_code,
        reason=reason,
    )


def call_log(*, api_user: ApiUser, operation: str, response: Response) -> None:
    # One plain INSERT: every call writes one, replays included.
    insert(call_row(api_user=api_user, operation=operation, response=response))
