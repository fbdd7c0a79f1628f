"""Two-step sign-in for staff: a password, then a code from an authenticator app (TOTP,
django-otp).

* Any staff member may turn it on from "Two-step sign-in" in the staff site's top bar
  (``/admin/two-step/``): scan the QR code or type the key into an app, confirm with a
  code. From then on the staff sign-in asks for a code after the password.
* With ``FEESYNC_REQUIRE_2FA_FOR_ADMINS`` on, a district admin (the "District admin" group,
  or a superuser) who has not set it up is sent to that page after signing in and cannot
  use the rest of the staff site until they have.
* Parents are never asked: the portal has its own sign-in, untouched.

The password step does not sign anybody in when a code is due: it remembers who passed it
(for ``PENDING_SECONDS``) and the code step signs them in, so a session that only knows
the password is never a signed-in session. Wrong codes are slowed down by django-otp's
throttle (1, 2, 4 ... seconds between tries). Turning it on and off is in the audit log
(the device model is registered with django-auditlog, its secret key left out).
"""

from __future__ import annotations

import re
import time
from base64 import b32encode
from binascii import unhexlify
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import django_otp
import segno
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import REDIRECT_FIELD_NAME, get_user_model, logout
from django.contrib.auth import login as auth_login
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp.util import random_hex

from apps.fees.roles import DISTRICT_ADMIN

#: Who passed the password step and where they were going, until the code step.
PENDING = "feesync_two_step_pending"
PENDING_SECONDS = 5 * 60
#: The key being set up, kept until it is confirmed with a code (no device row before that).
NEW_KEY = "feesync_two_step_new_key"
DEVICE_NAME = "Authenticator app"


def confirmed_device(user: Any) -> TOTPDevice | None:
    return TOTPDevice.objects.devices_for_user(user, confirmed=True).first()


def two_step_required(user: Any) -> bool:
    """The district requires it of this staff member (and so it cannot be turned off)."""
    if not settings.FEESYNC_REQUIRE_2FA_FOR_ADMINS or not user.is_staff:
        return False
    return user.is_superuser or user.groups.filter(name=DISTRICT_ADMIN).exists()


# --- forms ------------------------------------------------------------------------------------


class CodeForm(forms.Form):
    code = forms.CharField(
        label="Code from your authenticator app",
        help_text="Six digits. The app shows a new code every 30 seconds.",
        strip=True,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "one-time-code",
                "inputmode": "numeric",
                "pattern": "[0-9 ]*",
                "autofocus": True,
                "size": 8,
            }
        ),
    )

    def clean_code(self) -> str:
        code = self.cleaned_data["code"].replace(" ", "")
        if not re.fullmatch(r"[0-9]{6}", code):
            raise forms.ValidationError(
                "Enter the six digits your authenticator app shows, for example 123456."
            )
        return code


WRONG_CODE = (
    "That code is not the one your authenticator app shows now. Check that you are looking "
    "at FeeSync in the app and enter the newest code."
)


def _too_many_tries(locked_until: Any) -> str:
    at = timezone.localtime(locked_until).strftime("%H:%M:%S") if locked_until else "a moment"
    return f"Too many wrong codes. Wait until {at}, then enter the newest code from your app."


# --- signing in -------------------------------------------------------------------------------


class StaffLoginView(auth_views.LoginView):
    """The staff site's sign-in page. It takes the place of ``admin.site.login`` at the same
    address (config/urls.py lists it first) and is the admin's own page and form, except that
    a staff member with an authenticator app goes on to the code step instead of being
    signed in."""

    template_name = "admin/login.html"
    authentication_form = AdminAuthenticationForm
    next_page = reverse_lazy("admin:index")

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        request.current_app = admin.site.name
        if request.method == "GET" and admin.site.has_permission(request):
            return redirect("admin:index")
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        request = self.request
        context.update(
            {
                **admin.site.each_context(request),
                "title": "Log in",
                "subtitle": None,
                "app_path": request.get_full_path(),
                "username": request.user.get_username(),
            }
        )
        if REDIRECT_FIELD_NAME not in request.GET and REDIRECT_FIELD_NAME not in request.POST:
            context[REDIRECT_FIELD_NAME] = reverse("admin:index")
        return context

    def form_valid(self, form: AdminAuthenticationForm) -> HttpResponse:
        user = form.get_user()
        if confirmed_device(user) is None:
            return super().form_valid(form)
        self.request.session[PENDING] = {
            "user": user.pk,
            "backend": user.backend,
            "next": self.get_success_url(),
            "at": time.time(),
        }
        return redirect("staff_login_code")


def _pending(request: HttpRequest) -> tuple[Any, dict[str, Any]] | None:
    data = request.session.get(PENDING)
    if not data or time.time() - data["at"] > PENDING_SECONDS:
        return None
    user = get_user_model()._default_manager.filter(pk=data["user"], is_active=True).first()
    return (user, data) if user is not None else None


@sensitive_post_parameters("code")
@never_cache
def login_code(request: HttpRequest) -> HttpResponse:
    """The second step of the staff sign-in: the code from the authenticator app."""
    pending = _pending(request)
    device = confirmed_device(pending[0]) if pending else None
    if pending is None or device is None:
        request.session.pop(PENDING, None)
        messages.info(request, "Please sign in with your username and password.")
        return redirect("admin:login")
    user, data = pending
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        allowed, why = device.verify_is_allowed()  # django-otp's throttle, asked first to say so
        verified = django_otp.verify_token(user, device.persistent_id, form.cleaned_data["code"])
        if verified is not None:
            del request.session[PENDING]
            auth_login(request, user, backend=data["backend"])
            django_otp.login(request, verified)
            return HttpResponseRedirect(data["next"])
        form.add_error("code", WRONG_CODE if allowed else _too_many_tries(why.get("locked_until")))
    request.current_app = admin.site.name
    return render(
        request,
        "admin/two_step/login_code.html",
        {
            **admin.site.each_context(request),
            "title": "Enter your code",
            "subtitle": None,
            "form": form,
            "username": user.get_username(),
        },
    )


# --- turning it on and off --------------------------------------------------------------------


def _qr_svg(device: TOTPDevice) -> str:
    svg = segno.make(device.config_url, error="m").svg_inline(
        scale=5, title="QR code of your FeeSync sign-in key", svgclass="two-step-qr"
    )
    return mark_safe(svg)  # noqa: S308 - segno's own SVG of our own otpauth:// URL


def _grouped(key_hex: str) -> str:
    """The key as an app asks for it when typed in: base32, in groups of four."""
    secret = b32encode(unhexlify(key_hex)).decode()
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


@sensitive_post_parameters("code")
def setup_page(request: HttpRequest) -> HttpResponse:
    """Two-step sign-in for the signed-in staff member: set it up, or see that it is on and
    turn it off (unless the district requires it of them)."""
    user = request.user
    device = confirmed_device(user)
    required = two_step_required(user)
    form = CodeForm()
    if request.method == "POST" and request.POST.get("action") == "remove":
        if device is None:
            return redirect("staff_two_step")
        if required:
            messages.error(
                request,
                "The district requires two-step sign-in for district admins, so it stays on.",
            )
            return redirect("staff_two_step")
        for each in TOTPDevice.objects.devices_for_user(user, confirmed=None):
            each.delete()  # one by one, so each removal is in the audit log
        request.session.pop(django_otp.DEVICE_ID_SESSION_KEY, None)
        messages.success(request, "Two-step sign-in is off. You sign in with your password.")
        return redirect("staff_two_step")

    new_key = None
    if device is None:
        new_key = request.session.setdefault(NEW_KEY, random_hex(20))
        if request.method == "POST" and request.POST.get("action") == "confirm":
            form = CodeForm(request.POST)
            if form.is_valid():
                totp = TOTP(unhexlify(new_key))
                if totp.verify(int(form.cleaned_data["code"]), tolerance=1):
                    # The step the code matched: spent, and how far the phone's clock is off.
                    device = TOTPDevice.objects.create(
                        user=user,
                        name=DEVICE_NAME,
                        key=new_key,
                        confirmed=True,
                        last_t=totp.t(),
                        drift=totp.drift,
                    )
                    del request.session[NEW_KEY]
                    django_otp.login(request, device)  # this session has just shown a code
                    messages.success(
                        request,
                        "Two-step sign-in is on. From now on, signing in asks for a code "
                        "from your app after your password.",
                    )
                    return redirect("admin:index")
                form.add_error("code", WRONG_CODE)

    context: dict[str, Any] = {
        **admin.site.each_context(request),
        "title": "Two-step sign-in",
        "subtitle": None,
        "device": device,
        "required": required,
        "form": form,
    }
    if new_key:
        candidate = TOTPDevice(user=user, key=new_key, name=DEVICE_NAME)
        context.update(qr_svg=_qr_svg(candidate), secret=_grouped(new_key))
    return render(request, "admin/two_step/setup.html", context)


# --- keeping to it ----------------------------------------------------------------------------


class StaffTwoStepMiddleware:
    """In the staff site: a staff member with an authenticator app must have given a code in
    this session (a session signed in before the app was set up, or by any other way, is
    signed out); a district admin the district requires it of must set it up first.

    After OTPMiddleware, MessageMiddleware and StaffSessionLimitsMiddleware.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.check(request) or self.get_response(request)

    def check(self, request: HttpRequest) -> HttpResponse | None:
        user = request.user
        if not (user.is_authenticated and user.is_staff):
            return None
        if not request.path.startswith(reverse("admin:index")) or user.is_verified():
            return None
        signing = (reverse("admin:login"), reverse("staff_login_code"), reverse("admin:logout"))
        if request.path in signing:
            return None
        if confirmed_device(user) is not None:
            logout(request)
            messages.info(
                request, "Your account asks for a code from your authenticator app. Please sign in."
            )
            login = reverse("admin:login")
            if request.method == "GET":
                login += "?" + urlencode({"next": request.get_full_path()})
            return HttpResponseRedirect(login)
        setup = reverse("staff_two_step")
        if request.path != setup and two_step_required(user):
            return redirect(setup)  # which says why
        return None
