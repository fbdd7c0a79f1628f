"""How a partner signs in: HTTP Basic with an API user's name and password, or an
application key (`Authorization: Api-Key <key>`, stored hashed by
djangorestframework-api-key). Either way the request's user is the API user's staff user
and `request.auth` says which (None for Basic, the key row for a key)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from .models import PartnerApiKey

KEYWORD = "Api-Key"


class PartnerBasicAuthentication(authentication.BasicAuthentication):
    www_authenticate_realm = "FeeSync partner API"


class ApplicationKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, PartnerApiKey] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        parts = header.split()
        if not parts or parts[0] != KEYWORD:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(
                f"The Authorization header must be “{KEYWORD} <application key>”."
            )
        prefix = parts[1].partition(".")[0]
        key = (
            PartnerApiKey.objects.get_usable_keys()
            .select_related("api_user__user", "api_user__integration")
            .filter(prefix=prefix)
            .first()
        )
        if key is None or not key.is_valid(parts[1]):
            raise exceptions.AuthenticationFailed(
                "That application key is not valid, or it was revoked."
            )
        if key.has_expired:
            raise exceptions.AuthenticationFailed("That application key has expired.")
        user = key.api_user.user
        if not user.is_active:
            raise exceptions.AuthenticationFailed("The API user of that key is inactive.")
        return user, key

    def authenticate_header(self, request: Request) -> str:
        return KEYWORD


class ApplicationKeyScheme(OpenApiAuthenticationExtension):
    target_class = "apps.partner_api.auth.ApplicationKeyAuthentication"
    name = "ApplicationKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": f"“{KEYWORD} <application key>”, issued in the admin.",
        }


class PartnerBasicScheme(OpenApiAuthenticationExtension):
    target_class = "apps.partner_api.auth.PartnerBasicAuthentication"
    name = "BasicAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "basic",
            "description": "An API user's name and password.",
        }
