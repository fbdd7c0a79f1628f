"""The wrong-password throttle (django-axes), keyed on who *and* where from.

* A username tried from one address is paused after ``AXES_FAILURE_LIMIT`` wrong passwords
  (axes' own lockout, on the pair ``["username", "ip_address"]``). Wrong passwords typed for
  ``admin`` somewhere else never pause ``admin`` here, so nobody can lock the district admin
  out from anywhere.
* One address trying many usernames (password spraying) is paused after
  ``FEESYNC_ADDRESS_FAILURE_LIMIT`` wrong passwords in all. axes compares every lockout
  parameter with one and the same limit, so this second, higher limit is added here, on top
  of axes' database handler, counted from the same ``AccessAttempt`` rows and within the same
  cool-off. A successful sign-in clears that person's rows (``AXES_RESET_ON_SUCCESS``), so the
  families behind one school address who eventually get their password right do not add up.

The client address is ``REMOTE_ADDR`` unless ``FEESYNC_TRUSTED_PROXY_COUNT`` says how many
reverse proxies of the district's own stand in front of Django (see ``client_address``).
https://django-axes.readthedocs.io/en/latest/4_configuration.html
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username
from axes.models import AccessAttempt
from axes.signals import user_locked_out
from django.conf import settings
from django.db.models import Sum
from django.http import HttpRequest

log = logging.getLogger(__name__)


def client_address(request: HttpRequest) -> str | None:
    """The address a sign-in came from (``AXES_CLIENT_IP_CALLABLE``).

    With no trusted proxy (the default) it is the connection's own address: a client can put
    anything in ``X-Forwarded-For``, so the header is ignored. With N proxies, each of which
    appends the address it was connected from, the N-th entry from the right is the one the
    outermost proxy saw; anything left of it was written by the client and is not trusted.
    A header shorter than that, or not an address, means the proxy setup is not what the
    setting says, and the connection's address is used.
    """
    remote = request.META.get("REMOTE_ADDR")
    hops = settings.FEESYNC_TRUSTED_PROXY_COUNT
    if hops <= 0:
        return remote
    forwarded = [
        part.strip()
        for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
        if part.strip()
    ]
    if len(forwarded) < hops:
        return remote
    candidate = forwarded[-hops]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote


def address_failures(request: HttpRequest) -> int:
    """Wrong passwords from the request's address, every username together, within the
    cool-off."""
    address = getattr(request, "axes_ip_address", None)
    if not address:
        return 0
    attempts = AccessAttempt.objects.filter(ip_address=address)
    if settings.AXES_COOLOFF_TIME is not None:
        attempts = attempts.filter(attempt_time__gte=get_cool_off_threshold(request))
    return attempts.aggregate(n=Sum("failures_since_start"))["n"] or 0


def address_is_over_limit(request: HttpRequest) -> bool:
    limit = settings.FEESYNC_ADDRESS_FAILURE_LIMIT
    return bool(limit) and address_failures(request) >= limit


class SignInThrottleHandler(AxesDatabaseHandler):
    """axes' database handler (``AXES_HANDLER``) plus the limit per address."""

    def is_locked(self, request: HttpRequest, credentials: dict[str, Any] | None = None) -> bool:
        return super().is_locked(request, credentials) or address_is_over_limit(request)

    def user_login_failed(
        self,
        sender: Any,
        credentials: dict[str, Any],
        request: HttpRequest | None = None,
        **kwargs: Any,
    ) -> None:
        super().user_login_failed(sender, credentials, request, **kwargs)
        if request is None or request.axes_locked_out:
            return
        if self.is_whitelisted(request, credentials) or not address_is_over_limit(request):
            return
        # The same flags and signal axes sets for its own lockout, so AxesMiddleware answers
        # with the lockout page (the parents' friendly one in the portal).
        # Not the address itself: axes keeps addresses out of its logs (AXES_SENSITIVE_PARAMETERS).
        log.warning("AXES: Locking out an address after %s failures.", address_failures(request))
        request.axes_locked_out = True
        request.axes_credentials = credentials
        user_locked_out.send(
            "axes",
            request=request,
            username=get_client_username(request, credentials),
            ip_address=request.axes_ip_address,
        )
