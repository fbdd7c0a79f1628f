"""How long a staff member stays signed in: ``FEESYNC_STAFF_IDLE_MINUTES`` without a request,
or ``FEESYNC_STAFF_SESSION_HOURS`` since signing in, whichever comes first. Then the next
request signs them out and sends them to the staff sign-in page saying why.

Parents keep Django's normal session (the portal shows nothing that moves money).

The sign-in time and the last request's time live in the session as Unix seconds. The last
request's time is written only when it has moved on by ``ACTIVITY_RESOLUTION_SECONDS``, so
a staff member clicking around does not rewrite a (cache-backed) session on every request;
the idle limit is therefore kept to within that minute.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.signals import user_logged_in
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

SIGNED_IN_AT = "feesync_signed_in_at"
LAST_SEEN_AT = "feesync_last_seen_at"
ACTIVITY_RESOLUTION_SECONDS = 60


def now() -> float:
    """The clock (a function so that a unit test can stand in a fixed one)."""
    return time.time()


def record_sign_in(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    """Signing in (again) starts the staff member's hours afresh."""
    if request is not None and getattr(user, "is_staff", False):
        request.session[SIGNED_IN_AT] = request.session[LAST_SEEN_AT] = now()


user_logged_in.connect(record_sign_in, dispatch_uid="feesync-staff-session-sign-in")


def expired_because(session: Any, at: float) -> str | None:
    """Why a staff session has ended at time ``at``, in words, or None while it has not."""
    hours = settings.FEESYNC_STAFF_SESSION_HOURS
    idle = settings.FEESYNC_STAFF_IDLE_MINUTES
    signed_in_at = session.get(SIGNED_IN_AT)
    last_seen_at = session.get(LAST_SEEN_AT, signed_in_at)
    if signed_in_at is not None and at - signed_in_at > hours * 3600:
        return f"You were signed out after {_count(hours, 'hour')}. Please sign in again."
    if last_seen_at is not None and at - last_seen_at > idle * 60:
        return (
            f"You were signed out after {_count(idle, 'minute')} without activity. "
            "Please sign in again."
        )
    return None


def _count(n: int, unit: str) -> str:
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


class StaffSessionLimitsMiddleware:
    """After AuthenticationMiddleware and MessageMiddleware."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if user.is_authenticated and user.is_staff:
            at = now()
            session = request.session
            reason = expired_because(session, at)
            if reason:
                logout(request)  # flushes the session; the message travels in its cookie
                messages.info(request, reason)
                login = reverse("admin:login")
                if request.path == login:
                    return self.get_response(request)  # already where they sign in again
                if request.method == "GET":
                    login += "?" + urlencode({"next": request.get_full_path()})
                return HttpResponseRedirect(login)
            if SIGNED_IN_AT not in session:
                # A session from before these limits (or from force_login): it starts now.
                session[SIGNED_IN_AT] = session[LAST_SEEN_AT] = at
            elif at - session.get(LAST_SEEN_AT, 0) >= ACTIVITY_RESOLUTION_SECONDS:
                session[LAST_SEEN_AT] = at
        return self.get_response(request)
