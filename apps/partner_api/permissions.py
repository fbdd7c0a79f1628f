"""Who may call what: a staff user flagged as an API user of an enabled partner-API
integration, holding the operation's permission (directly, or by the section's group)."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, permissions
from rest_framework.request import Request

from .models import OPERATIONS, ApiUser, group_for
from .problems import MissingPermission

KIND = "partnerapi"


def api_user_of(request: Request) -> ApiUser:
    user = request.user
    try:
        api_user: ApiUser = user.api_user  # type: ignore[union-attr]
    except (AttributeError, ApiUser.DoesNotExist):
        raise exceptions.PermissionDenied(
            f"{user} is not an API user: ask the district to flag the user as one in the admin."
        ) from None
    return api_user


class IsApiUser(permissions.BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        # UNAUTHENTICATED_USER is None: a request without credentials has no user at all.
        if not getattr(user, "is_authenticated", False):
            raise exceptions.NotAuthenticated(
                "Sign in with HTTP Basic (API user and password) or "
                "“Authorization: Api-Key <application key>”."
            )
        api_user = api_user_of(request)
        if not user.is_staff:
            raise exceptions.PermissionDenied(f"{user} is not a staff user.")
        integration = api_user.integration
        if integration.vendor_kind != KIND:
            raise exceptions.PermissionDenied(
                f"{user}'s integration {integration.slug} is not a Partner API integration."
            )
        if not integration.enabled:
            raise exceptions.PermissionDenied(
                f"The integration {integration.slug} is switched off; the district must enable it."
            )
        codename = getattr(view, "operation", None)
        if codename and not user.has_perm(f"partner_api.{codename}"):
            raise MissingPermission(
                codename,
                f"{user} lacks the permission {codename} ({OPERATIONS[codename].lower()}), "
                f"granted by the group “{group_for(codename)}”.",
            )
        return True
