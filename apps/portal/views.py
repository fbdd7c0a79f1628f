"""The parent portal: sign-in, password reset, the Fees and Fines page, a page per child and
that child's other sections (which a vendor balance may lock).

Every page that names a student looks it up among the signed-in parent's own children, so
anyone else's id is a 404, exactly like an id that does not exist. Staff accounts are not
parents: they are refused at sign-in, and a staff session that reaches a portal page gets a
403 page pointing to the staff site (redirecting to the portal sign-in would loop, since the
sign-in page sends signed-in users on to the portal).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec

from axes.helpers import get_cool_off, get_lockout_message
from axes.utils import reset as axes_reset
from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.utils.safestring import mark_safe

from apps.students.models import Guardian

from .forms import ParentAuthenticationForm, ParentPasswordResetForm, ParentSetPasswordForm

if TYPE_CHECKING:
    from django.contrib.auth.forms import SetPasswordForm
    from django.contrib.auth.models import User
from .sections import section_by_slug
from .selectors import (
    ChildFees,
    PortalPage,
    fees_page_cache_key,
    guardian_for,
    portal_page_for,
)

P = ParamSpec("P")
ParentView = Callable[Concatenate[HttpRequest, Guardian, P], HttpResponse]


def parent_required(view: ParentView[P]) -> Callable[Concatenate[HttpRequest, P], HttpResponse]:
    """Signed in (else to the portal sign-in) and a parent (else a 403 page); the view gets
    the parent's guardian record."""

    @login_required(login_url="portal:login")
    @wraps(view)
    def wrapper(request: HttpRequest, *args: P.args, **kwargs: P.kwargs) -> HttpResponse:
        guardian = guardian_for(user=request.user)
        if guardian is None:
            return render(request, "portal/not_a_parent.html", status=403)
        return view(request, guardian, *args, **kwargs)

    return wrapper


@parent_required
def fees_page(request: HttpRequest, guardian: Guardian) -> HttpResponse:
    """Fees and Fines. Its body comes from the cache while nothing it shows has changed
    (see selectors.fees_page_cache_key); the frame around it is rendered for each request."""
    ttl = settings.PORTAL_PAGE_CACHE_SECONDS
    key = fees_page_cache_key(guardian=guardian) if ttl else None
    body = cache.get(key) if key else None
    if body is not None:
        return render(request, "portal/fees.html", {"body": mark_safe(body)})  # noqa: S308 - our own rendered template
    page = portal_page_for(guardian=guardian)
    if key:
        body = render_to_string("portal/_fees_body.html", {"page": page}, request=request)
        cache.set(key, body, ttl)
    return render(request, "portal/fees.html", {"page": page, "body": None})


def _own_child(guardian: Guardian, student_id: int) -> tuple[PortalPage, ChildFees]:
    page = portal_page_for(guardian=guardian, student_id=student_id)
    if not page.children:
        raise Http404("No such student among your children.")
    return page, page.children[0]


@parent_required
def student_page(request: HttpRequest, guardian: Guardian, student_id: int) -> HttpResponse:
    page, child = _own_child(guardian, student_id)
    return render(request, "portal/student.html", {"page": page, "child": child})


@parent_required
def section_page(
    request: HttpRequest, guardian: Guardian, student_id: int, slug: str
) -> HttpResponse:
    section = section_by_slug(slug)
    if section is None:
        raise Http404("No such section.")
    page, child = _own_child(guardian, student_id)
    return render(
        request,
        "portal/section.html",
        {
            "page": page,
            "child": child,
            "section": section,
            "locked": child.section_locked(section),
        },
    )


# --- signing in ---------------------------------------------------------------------------------


class ParentLoginView(auth_views.LoginView):
    """Django's sign-in view with the parents' form. Signing in queues the background pull of
    the children's payments (apps.vendors.receivers.pull_at_parent_login) and never waits on
    a vendor."""

    template_name = "portal/login.html"
    authentication_form = ParentAuthenticationForm
    redirect_authenticated_user = True
    next_page = "portal:fees"  # a URL name: resolve_url() reverses it per request


def lockout_response(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict[str, Any] | None = None,
) -> HttpResponse:
    """django-axes' lockout response (settings.AXES_LOCKOUT_CALLABLE): in the portal, a page
    that says what happened and what to do; elsewhere (the staff site), axes' own message."""
    if not request.path.startswith(reverse("portal:fees")):
        return HttpResponse(get_lockout_message(), status=429)
    cool_off = get_cool_off(request)
    minutes = max(1, round(cool_off.total_seconds() / 60)) if cool_off else None
    until = timezone.localtime() + cool_off if cool_off else None
    return render(
        request,
        "portal/locked_out.html",
        {"minutes": minutes, "until": until},
        status=429,
    )


# --- password reset ---------------------------------------------------------------------------


class ParentPasswordResetView(auth_views.PasswordResetView):
    form_class = ParentPasswordResetForm
    template_name = "portal/password_reset_form.html"
    email_template_name = "portal/email/password_reset.txt"
    subject_template_name = "portal/email/password_reset_subject.txt"
    success_url = reverse_lazy("portal:password_reset_done")


class ParentPasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = "portal/password_reset_done.html"


class ParentPasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    form_class = ParentSetPasswordForm
    template_name = "portal/password_reset_confirm.html"
    success_url = reverse_lazy("portal:password_reset_complete")

    def get_user(self, uidb64: str) -> User | None:
        user = super().get_user(uidb64)
        # A staff account's link (from anywhere) is not honoured here.
        if user is None or user.is_staff:
            return None
        return user

    def form_valid(self, form: SetPasswordForm[User]) -> HttpResponse:
        response = super().form_valid(form)
        # Whoever opened the link controls the parent's e-mail: a sign-in pause from wrong
        # passwords no longer protects anything, so it ends with the new password.
        axes_reset(username=form.user.get_username())
        return response


class ParentInvitationView(ParentPasswordResetConfirmView):
    """The link of a portal invitation (apps/roster/invitations.py): the guardian chooses
    their first password and is signed in, straight onto their children's fees. The same
    one-use, expiring token as a password reset."""

    template_name = "portal/invitation.html"
    post_reset_login = True
    post_reset_login_backend = "django.contrib.auth.backends.ModelBackend"
    success_url = reverse_lazy("portal:fees")


class ParentPasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "portal/password_reset_complete.html"
