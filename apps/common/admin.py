"""What the staff pages of every app share: the signed-in staff user, the FeeSync
stylesheet, a form page in the admin's own look for one action, read-only admins for
history, and short dates for lists."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.forms import Form
from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format


def staff_user(request: HttpRequest) -> User:
    """The person using a staff page, for `Origin(user=...)` and the like. Staff pages are
    behind the admin's login, so an anonymous visitor never gets this far; should one, the
    page is refused rather than money recorded as nobody's."""
    user = request.user
    if isinstance(user, AnonymousUser):
        raise PermissionDenied
    return user


def short_date(value: Any) -> str:
    """09/15/2026: dates in lists are short so every column fits on a laptop screen."""
    return date_format(value, "SHORT_DATE_FORMAT") if value else "—"


def short_when(value: Any) -> str:
    return date_format(timezone.localtime(value), "SHORT_DATETIME_FORMAT") if value else "—"


def admin_url(obj: Any, view: str = "change") -> str:
    opts = obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=[obj.pk])


def object_or_404(queryset: QuerySet[Any], object_id: Any, what: str) -> Any:
    """The row with this id from a staff URL or query string, or a 404: an id that is not a
    number (`abc`) or names nothing (`999999`) is a page that does not exist, never a 500."""
    try:
        obj = queryset.filter(pk=unquote(str(object_id))).first()
    except (ValueError, TypeError, ValidationError):
        obj = None
    if obj is None:
        raise Http404(f"No such {what}.")
    return obj


class NotFoundMixin:
    """For a ModelAdmin: an id that names nothing in the admin's own change, delete and
    history pages is a 404, like every other staff page, rather than the admin's redirect
    to the index (which a bookmark or a mistyped link would silently turn into "home")."""

    opts: Any

    def _get_obj_does_not_exist_redirect(
        self, request: HttpRequest, opts: Any, object_id: str
    ) -> HttpResponseRedirect:
        raise Http404(f"No such {opts.verbose_name}.")


class FeeSyncMedia:
    css = {"all": ["feesync/admin.css"]}


class ActionPageMixin:
    """A form page in the admin's own look (breadcrumbs, fieldsets, errors, submit row)."""

    action_template = "admin/common/action_form.html"
    admin_site: admin.AdminSite
    opts: Any
    media: Any

    def render_action_page(
        self,
        request: HttpRequest,
        *,
        form: Form,
        title: str,
        submit_label: str,
        cancel_url: str,
        obj: Any = None,
        intro: str = "",
        summary: Sequence[tuple[str, Any]] = (),
        danger: bool = False,
        hidden_inputs: Sequence[tuple[str, Any]] = (),
        after_fields: str = "",
    ) -> TemplateResponse:
        fields = list(form.fields)
        fieldsets = [(None, {"fields": fields})] if fields else []
        # AdminForm lays out any Form; django-stubs asks for a ModelForm (and a ModelAdmin).
        adminform = helpers.AdminForm(form, fieldsets, {}, model_admin=self)  # type: ignore[arg-type]
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.opts,
            "original": obj,
            "adminform": adminform,
            "form": form,
            "media": self.media + form.media,
            "submit_label": submit_label,
            "cancel_url": cancel_url,
            "intro": intro,
            "summary": summary,
            "danger": danger,
            "hidden_inputs": hidden_inputs,
            "after_fields": after_fields,  # safe HTML under the fields (a live hint)
        }
        return TemplateResponse(request, self.action_template, context)


# --- history: read-only ---------------------------------------------------------------------


class NoAddOrChangeMixin:
    """Rows shown but never added or edited here (they are written through a service)."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyMixin(NoAddOrChangeMixin):
    """For admins and inlines of history: anyone allowed may look, nobody adds, changes or
    deletes there."""

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyAdmin(NotFoundMixin, ReadOnlyMixin, admin.ModelAdmin):
    """History (money, syncs, runs): anyone allowed may look, nobody adds, changes or
    deletes here."""

    Media = FeeSyncMedia
