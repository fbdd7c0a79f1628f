"""The parent portal: sign-in, password reset, the Fees and Fines page, a page per child and
that child's other sections (which a vendor balance may lock).

Every page that names a student looks it up among the signed-in parent's own children, so
anyone else's id is a 404, exactly like an id that does not exist. Staff accounts are not
parents: they are refused at sign-in, and a staff session that reaches a portal page gets a
403 page pointing to the staff site (redirecting to the portal sign-in would loop, since the
sign-in page sends signed-in users on to the portal).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec

from axes.helpers import get_cool_off, get_lockout_message
from axes.utils import reset as axes_reset
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    JsonResponse,
)
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from apps.students.models import Guardian
from apps.vendors import freshness

from .forms import (
    ParentAuthenticationForm,
    ParentPasswordResetForm,
    ParentSetPasswordForm,
    SignupForm,
)
from .models import ActivityOffer, StudentDocument
from .services import SignupRefused, activity_sign_up, document_download
from .templatetags.portal_tags import money

if TYPE_CHECKING:
    from django.contrib.auth.forms import SetPasswordForm
    from django.contrib.auth.models import User
from .sections import ACTIVITIES, DOCUMENTS, section_by_slug
from .selectors import (
    ChildFees,
    PortalPage,
    documents_for,
    fees_page_cache_key,
    guardian_for,
    offers_for,
    portal_page_for,
)

P = ParamSpec("P")
ParentView = Callable[Concatenate[HttpRequest, Guardian, P], HttpResponseBase]


def parent_required(
    view: ParentView[P],
) -> Callable[Concatenate[HttpRequest, P], HttpResponseBase]:
    """Signed in (else to the portal sign-in) and a parent (else a 403 page); the view gets
    the parent's guardian record."""

    @login_required(login_url="portal:login")
    @wraps(view)
    def wrapper(request: HttpRequest, *args: P.args, **kwargs: P.kwargs) -> HttpResponseBase:
        guardian = guardian_for(user=request.user)
        if guardian is None:
            return render(request, "portal/not_a_parent.html", status=403)
        return view(request, guardian, *args, **kwargs)

    return wrapper


def _unchecked_vendors(request: HttpRequest) -> list[str]:
    """Vendors whose payments the sign-in could not check in time: said once, on the first
    page after signing in (the background pull brings them in)."""
    session = getattr(request, "session", None)
    if session is None or "portal_unchecked_vendors" not in session:
        return []  # read without writing: most pages cost no session save
    return list(session.pop("portal_unchecked_vendors") or [])


#: The parts of a portal page that show money, swapped in when a background pull lands, and
#: the notice that some payments could not be checked yet (gone once they have landed).
MONEY_PARTS = "#portal-money, #portal-unchecked"


def _watch(request: HttpRequest, since: float) -> dict[str, Any] | None:
    """While the sign-in's background pulls may still land, the page watches the children's
    money and updates itself (apps/vendors/freshness.py); None the rest of the time. No
    query: the window is read from the session the request has loaded already."""
    session = getattr(request, "session", None)
    until = session.get("portal_watch_until") if session is not None else None
    return freshness.watch_context(
        url=reverse("portal:money_changed"), since=since, until=until, refresh=MONEY_PARTS
    )


@parent_required
def money_changed_view(request: HttpRequest, guardian: Guardian) -> JsonResponse:
    """When the children's money last changed, which a watching page compares with the time
    it was built from (static/feesync/freshness.js). JSON: {"changed_at": Unix time or
    null}; never cached."""
    ids = list(guardian.students.values_list("pk", flat=True))
    response = JsonResponse({"changed_at": freshness.money_changed_at(student_ids=ids)})
    response["Cache-Control"] = "no-store"
    return response


@parent_required
def fees_page(request: HttpRequest, guardian: Guardian) -> HttpResponse:
    """Fees and Fines. Its body comes from the cache while nothing it shows has changed
    (see selectors.fees_page_cache_key); the frame around it is rendered for each request."""
    since = time.time()  # before anything the page shows is read
    ttl = settings.PORTAL_PAGE_CACHE_SECONDS
    key = fees_page_cache_key(guardian=guardian) if ttl else None
    body = cache.get(key) if key else None
    frame = {"unchecked": _unchecked_vendors(request), "watch": _watch(request, since)}
    if body is not None:
        return render(request, "portal/fees.html", {**frame, "body": mark_safe(body)})  # noqa: S308 - our own rendered template
    page = portal_page_for(guardian=guardian)
    if key:
        body = render_to_string("portal/_fees_body.html", {"page": page}, request=request)
        cache.set(key, body, ttl)
    return render(request, "portal/fees.html", {**frame, "page": page, "body": None})


def _own_child(guardian: Guardian, student_id: int) -> tuple[PortalPage, ChildFees]:
    page = portal_page_for(guardian=guardian)
    child = page.child(student_id)
    if child is None:
        raise Http404("No such student among your children.")
    return page, child


@parent_required
def student_page(request: HttpRequest, guardian: Guardian, student_id: int) -> HttpResponse:
    since = time.time()  # before anything the page shows is read
    page, child = _own_child(guardian, student_id)
    return render(
        request,
        "portal/student.html",
        {
            "page": page,
            "child": child,
            "unchecked": _unchecked_vendors(request),
            "watch": _watch(request, since),
        },
    )


@parent_required
def section_page(
    request: HttpRequest, guardian: Guardian, student_id: int, slug: str
) -> HttpResponse:
    section = section_by_slug(slug)
    if section is None:
        raise Http404("No such section.")
    page, child = _own_child(guardian, student_id)
    locked = child.section_locked(section)
    context: dict[str, Any] = {"page": page, "child": child, "section": section, "locked": locked}
    if not locked and section.slug == "documents":
        context["documents"] = documents_for(student=child.student)
    if not locked and section.slug == "activities":
        context["offers"] = [
            (offer, signup, None if signup else SignupForm(offer=offer, student=child.student))
            for offer, signup in offers_for(student=child.student, day=page.today)
        ]
    return render(request, "portal/section.html", context)


@parent_required
def document_download_view(
    request: HttpRequest, guardian: Guardian, student_id: int, document_id: int
) -> HttpResponseBase:
    """A guardian downloads one of their child's documents: their own child's (else 404),
    while Documents is not locked (else its locked page), logged (services.document_download)."""
    page, child = _own_child(guardian, student_id)
    if child.section_locked(DOCUMENTS):
        return section_page(request, student_id=student_id, slug="documents")
    document = StudentDocument.objects.filter(pk=document_id, student=child.student).first()
    if document is None:
        raise Http404("No such document for this student.")
    return stream_document(request, document)


def stream_document(request: HttpRequest, document: StudentDocument) -> HttpResponseBase:
    """Authorize and log the download (services.document_download), then send the file."""
    document_download(
        user=request.user, document=document, ip_address=request.META.get("REMOTE_ADDR")
    )
    try:
        handle = document.file.open("rb")
    except FileNotFoundError:
        raise Http404(
            "The file of this document is missing; please tell the school office."
        ) from None
    return FileResponse(handle, as_attachment=True, filename=document.filename)


@require_POST
@parent_required
def activity_sign_up_view(
    request: HttpRequest, guardian: Guardian, student_id: int, offer_id: int
) -> HttpResponse:
    """Sign a child up: charges the activity's fee once, however often the form is sent."""
    page, child = _own_child(guardian, student_id)
    back = redirect("portal:section", student_id, ACTIVITIES.slug)
    if child.section_locked(ACTIVITIES):
        messages.error(request, "Activity sign-up is locked: see below why and how to unlock it.")
        return back
    offer = ActivityOffer.objects.select_related("activity", "category").filter(pk=offer_id).first()
    if offer is None:
        raise Http404("No such activity open for sign-up.")
    form = SignupForm(request.POST, offer=offer, student=child.student)
    if not form.is_valid():
        messages.error(request, " ".join(str(e) for errs in form.errors.values() for e in errs))
        return back
    name = child.student.first_name
    try:
        result = activity_sign_up(
            offer=offer, student=child.student, user=request.user, token=form.cleaned_data["token"]
        )
    except SignupRefused as exc:
        messages.error(request, str(exc))
        return back
    fee = result.signup.fee
    if result.created:
        messages.success(
            request,
            f"{name} is signed up for {offer.title}. The {money(fee.amount)} fee is now in "
            f"{name}'s Fees and Fines.",
        )
    else:
        messages.info(
            request, f"{name} was already signed up for {offer.title}; nothing more was charged."
        )
    return back


# --- signing in ---------------------------------------------------------------------------------


class ParentLoginView(auth_views.LoginView):
    """Django's sign-in view with the parents' form. Signing in brings in the children's
    payments before the first page, waiting on the vendors at most
    FEESYNC_PARENT_SIGN_IN_DEADLINE_SECONDS (apps.vendors.receivers.pull_at_parent_login);
    a vendor that did not answer in time is pulled in the background and the page says so."""

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
