"""Parent sign-in: Django's form, refusing staff accounts (staff use the staff site)."""

from django import forms
from django.contrib.auth.forms import AuthenticationForm


class ParentAuthenticationForm(AuthenticationForm):
    error_messages = {
        **AuthenticationForm.error_messages,
        "staff": "Staff accounts sign in at the staff site, not the parent portal.",
        "not_parent": "This account is not linked to any student. Please contact the school.",
    }

    def confirm_login_allowed(self, user):
        super().confirm_login_allowed(user)
        if user.is_staff:
            raise forms.ValidationError(self.error_messages["staff"], code="staff")
        if getattr(user, "guardian", None) is None:
            raise forms.ValidationError(self.error_messages["not_parent"], code="not_parent")
