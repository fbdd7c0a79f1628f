"""How a partner signs in: HTTP Basic with an API user's name and password, or an
application key (`Authorization: Api-Key <key>`, stored hashed by
djangorestframework-api-key). Either way the request's user is the API user's staff user
and `request.auth` says which (None for Basic, the key row for a key)."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from .models import PartnerApiKey

KEYWORD = "Api-Key"


class _Verified:
    """Credentials this process verified in the last FEESYNC_API_AUTH_CACHE_SECONDS, with
    the user (its permissions loaded once, on it) and the key row.

    Why: a partner posts many payments a second with the same credentials, and each check
    costs a query or three (key row, two permission queries) and, for HTTP Basic, Django's
    deliberately slow password hash (~100 ms of CPU). The entries are keyed by a keyed hash
    of the credentials (never the credentials themselves). The price is that a revoked key,
    a changed password or a removed permission takes effect within that many seconds
    (`forget_verified()` drops them at once in this process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, Any, Any]] = {}

    @staticmethod
    def _ttl() -> float:
        return float(getattr(settings, "FEESYNC_API_AUTH_CACHE_SECONDS", 30))

    @staticmethod
    def tag(kind: str, secret: str) -> str:
        return hmac.new(
            settings.SECRET_KEY.encode(), f"{kind}:{secret}".encode(), hashlib.sha256
        ).hexdigest()

    def get(self, tag: str) -> tuple[Any, Any] | None:
        with self._lock:
            found = self._entries.get(tag)
            if found is None:
                return None
            if found[0] < time.monotonic():
                del self._entries[tag]
                return None
            return found[1], found[2]

    def put(self, tag: str, user: Any, auth: Any) -> None:
        ttl = self._ttl()
        if ttl <= 0:
            return
        # Load the permissions now, once: `has_perm` then answers from the user's caches.
        user.get_all_permissions()
        with self._lock:
            if len(self._entries) > 1000:  # many keys in use: start over rather than grow
                self._entries.clear()
            self._entries[tag] = (time.monotonic() + ttl, user, auth)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_verified = _Verified()


def forget_verified(*args: Any, **kwargs: Any) -> None:
    """Forget every credential this process verified: connected to saves of keys, API
    users and users and to changes of groups and permissions, so a change made in this
    process counts at once (other processes: within the cache's seconds)."""
    _verified.clear()


def _connect() -> None:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db.models.signals import m2m_changed, post_delete, post_save

    from apps.vendors.models import Integration

    from .models import ApiUser

    user_model = get_user_model()
    # The integration too: switching it off must stop its API users at once.
    for model in (PartnerApiKey, ApiUser, user_model, Group, Integration):
        post_save.connect(forget_verified, sender=model, dispatch_uid=f"forget-{model}")
        post_delete.connect(forget_verified, sender=model, dispatch_uid=f"forget-d-{model}")
    for through in (
        user_model.groups.through,
        user_model.user_permissions.through,
        Group.permissions.through,
    ):
        m2m_changed.connect(forget_verified, sender=through, dispatch_uid=f"forget-{through}")


_connect()


def _audited_as(user: Any) -> Any:
    """Make `user` the actor of the audit rows the rest of the request writes. django-auditlog's
    middleware took the request's user before the view ran, when DRF had not signed the caller
    in yet (an API call carries no session), so without this an API user's changes were
    audited with no actor. The context is the request's own (a context variable)."""
    from auditlog.context import auditlog_value

    try:
        context = auditlog_value.get()
    except LookupError:  # outside a request (a test calling the view directly)
        return user
    context["actor"] = user
    return user


class PartnerBasicAuthentication(authentication.BasicAuthentication):
    www_authenticate_realm = "FeeSync partner API"

    def authenticate_credentials(
        self, userid: str, password: str, request: Any = None
    ) -> tuple[Any, None]:
        tag = _verified.tag("basic", f"{userid}\0{password}")
        if (found := _verified.get(tag)) is not None:
            return _audited_as(found[0]), None
        user, auth = super().authenticate_credentials(userid, password, request)
        # Only API users are kept: staff signing in to the API by mistake gain nothing.
        if hasattr(user, "api_user"):
            _verified.put(tag, user, None)
        return _audited_as(user), auth


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
        tag = _verified.tag("key", parts[1])
        if (found := _verified.get(tag)) is not None:
            user, key = found
            if key.has_expired:
                raise exceptions.AuthenticationFailed("That application key has expired.")
            return _audited_as(user), key
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
        _verified.put(tag, user, key)
        return _audited_as(user), key

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
