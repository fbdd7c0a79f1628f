"""Parent sign-in and password reset: Django's forms, kept to parents' accounts. Every form
here renders through crispy-forms with the shared FeeSync layout (apps/common/forms.py), the
same as the staff site's setup steps.

Staff accounts sign in at the staff site; they are refused here and cannot have their
password reset through the portal either (a reset link mailed from a public page must not
become a way into a staff account).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from crispy_forms.layout import Layout, Submit
from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm, SetPasswordForm
from django.urls import reverse

from apps.common.forms import CrispyFormMixin, FeeSyncFormHelper
from apps.fees.once import OneTimeTokenForm
from apps.students.models import Student

from .models import ActivityOffer
from .templatetags.portal_tags import money

if TYPE_CHECKING:
    from django.contrib.auth.models import User


class ParentAuthenticationForm(CrispyFormMixin, AuthenticationForm):
    error_note = ""  # signing in saves nothing; the message says what to do
    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "That username and password do not match. Check them and try again; "
        "after 10 wrong tries sign-in is paused for a while.",
        "staff": "Staff accounts sign in at the staff site, not the parent portal.",
        "not_parent": "This account is not linked to any student. Please contact the school.",
    }

    def confirm_login_allowed(self, user: User) -> None:
        super().confirm_login_allowed(user)
        if user.is_staff:
            raise forms.ValidationError(self.error_messages["staff"], code="staff")
        if getattr(user, "guardian", None) is None:
            raise forms.ValidationError(self.error_messages["not_parent"], code="not_parent")


class ParentPasswordResetForm(CrispyFormMixin, PasswordResetForm):
    error_note = ""
    email = forms.EmailField(
        label="Email address",
        max_length=254,
        help_text="The address the school has on file for you.",
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )

    def get_users(self, email: str) -> Iterator[User]:
        """Only parents' accounts: never a staff account, never a login without a guardian."""
        users = super().get_users(email)
        user_model = get_user_model()
        ids = [u.pk for u in users]
        parents = user_model._default_manager.filter(
            pk__in=ids, is_staff=False, guardian__isnull=False
        )
        return iter(parents)


class ParentSetPasswordForm(CrispyFormMixin, SetPasswordForm):
    error_note = "Your password was not changed."


class SignupForm(OneTimeTokenForm):
    """Sign a child up for an activity: one button, carrying the one-time token that makes a
    resent form charge nothing more (apps/fees/once.py). Rendered by crispy-forms with the
    shared helper, its own `<form>` (one per activity) and the portal's button style (the
    portal does not use Bootstrap's)."""

    def __init__(self, *args: Any, offer: ActivityOffer, student: Student, **kwargs: Any) -> None:
        # One form per activity on the page: ids of their own.
        kwargs.setdefault("auto_id", f"offer-{offer.pk}-%s")
        super().__init__(*args, **kwargs)
        self.helper = FeeSyncFormHelper(self)
        self.helper.form_tag = True  # one small form per activity, drawn whole by crispy
        self.helper.disable_csrf = False
        self.helper.form_action = reverse("portal:sign_up", args=[student.pk, offer.pk])
        self.helper.form_class = "signup-form"
        self.helper.form_show_labels = False
        self.helper.layout = Layout(
            "token",
            Submit(
                "sign_up",
                f"Sign up {student.first_name} · {money(offer.fee_amount)}",
                css_class="button",
            ),
        )
