"""Roster imports on the staff site (district admins only): upload a file, read its preview,
confirm, watch its progress and read the result, all on the import's own page."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

from apps.common.admin import (
    NotFoundMixin,
    ReadOnlyMixin,
    admin_url,
    object_or_404,
    short_when,
    staff_user,
)

from .invitations import guardians_to_invite, guardians_without_email, invitations_start
from .jobs import roster_import_confirm, roster_import_start
from .models import AcademicSession, InvitationBatch, RosterImport, RosterSource
from .nightly import roster_source_password_set

MAX_UPLOAD = 200 * 1024 * 1024


class RosterUploadForm(forms.Form):
    file = forms.FileField(
        label="Roster file",
        help_text="A OneRoster 1.2 or 1.1 zip (manifest.csv, orgs.csv, users.csv, roles.csv …) "
        "exported by the student information system, or a plain roster CSV with the columns "
        "described in the roster guide. Nothing changes until you confirm the preview.",
    )

    def clean_file(self) -> Any:
        f = self.cleaned_data["file"]
        if f.size > MAX_UPLOAD:
            raise forms.ValidationError("The file is larger than 200 MB; split it or zip it.")
        return f


def may_import(user: Any) -> bool:
    return bool(user.has_perm("roster.add_rosterimport"))


@admin.register(RosterImport)
class RosterImportAdmin(NotFoundMixin, ReadOnlyMixin, admin.ModelAdmin[RosterImport]):
    list_display = ["file_name", "source", "state", "summary", "created"]
    list_filter = ["state", "source"]
    search_fields = ["file_name"]
    search_help_text = "Search by file name."

    def has_module_permission(self, request: HttpRequest) -> bool:
        return may_import(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return may_import(request.user)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return may_import(request.user)

    @admin.display(description="Started", ordering="created_at")
    def created(self, obj: RosterImport) -> str:
        return short_when(obj.created_at)

    @admin.display(description="What it does")
    def summary(self, obj: RosterImport) -> str:
        c = (obj.preview or {}).get("counts")
        if not c:
            return obj.error[:120] or "—"
        return (
            f"{c['students_added']} added, {c['students_changed']} changed, "
            f"{c['students_deactivated']} inactive, {c['rows_refused']} refused"
        )

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/confirm/", view(self.confirm_view), name="roster_confirm"),
            *super().get_urls(),
        ]

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not may_import(request.user):
            raise PermissionDenied
        form = (
            RosterUploadForm(request.POST or None, request.FILES or None)
            if request.method == "POST"
            else RosterUploadForm()
        )
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            job = roster_import_start(
                content=upload.read(),
                file_name=upload.name,
                source=RosterImport.Source.UPLOAD,
                user=staff_user(request),
            )
            messages.info(request, f"“{job.file_name}” is being read; its preview follows.")
            return HttpResponseRedirect(admin_url(job))
        context = {
            **self.admin_site.each_context(request),
            "title": "Import a roster",
            "opts": self.opts,
            "form": form,
        }
        return TemplateResponse(request, "admin/roster/rosterimport/upload.html", context)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        if not may_import(request.user):
            raise PermissionDenied
        job: RosterImport = object_or_404(
            RosterImport.objects.select_related("started_by", "confirmed_by").defer("content"),
            object_id,
            "roster import",
        )
        running = job.state in (RosterImport.State.PREVIEWING, RosterImport.State.APPLYING)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Roster import: {job.file_name}",
            "opts": self.opts,
            "original": job,
            "job": job,
            "running": running,
            "preview": job.preview or {},
            "result": job.result or {},
            "confirm_url": admin_url(job).replace("/change/", "/confirm/"),
        }
        return TemplateResponse(request, "admin/roster/rosterimport/page.html", context)

    def confirm_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not may_import(request.user) or request.method != "POST":
            raise PermissionDenied
        job: RosterImport = object_or_404(
            RosterImport.objects.defer("content"), object_id, "roster import"
        )
        override = request.POST.get("allow_deactivate") == "1"
        if job.state == RosterImport.State.HELD and not override:
            messages.error(
                request,
                "This roster would make more students inactive than the guard allows. Tick "
                "“Yes, make them inactive” to apply it anyway; nothing was changed.",
            )
            return HttpResponseRedirect(admin_url(job))
        before = job.state
        job = roster_import_confirm(job=job, user=staff_user(request), allow_deactivate=override)
        if before not in (RosterImport.State.READY, RosterImport.State.HELD):
            messages.warning(request, "This import was already confirmed or cannot be applied.")
        else:
            messages.success(request, "Confirmed: the roster is being applied.")
        return HttpResponseRedirect(admin_url(job))


@admin.register(AcademicSession)
class AcademicSessionAdmin(NotFoundMixin, ReadOnlyMixin, admin.ModelAdmin[AcademicSession]):
    """School years and terms, as the student information system sends them."""

    list_display = ["title", "kind", "start_date", "end_date", "school_year", "parent", "active"]
    list_filter = ["kind", "school_year", "active"]
    search_fields = ["title", "sourced_id"]
    search_help_text = "Search by title or SIS id."


@admin.register(InvitationBatch)
class InvitationBatchAdmin(NotFoundMixin, ReadOnlyMixin, admin.ModelAdmin[InvitationBatch]):
    """Portal invitations sent in bulk; "Add" is the page that sends the next batch."""

    list_display = ["__str__", "state", "sent", "total", "created"]
    list_filter = ["state"]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("roster.add_invitationbatch"))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.has_perm("roster.add_invitationbatch"))

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.has_perm("roster.add_invitationbatch"))

    @admin.display(description="Started", ordering="created_at")
    def created(self, obj: InvitationBatch) -> str:
        return short_when(obj.created_at)

    def _context(self, request: HttpRequest, **extra: Any) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "to_invite": guardians_to_invite().count(),
            "without_email": guardians_without_email().count(),
            **extra,
        }

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            if not guardians_to_invite().exists():
                messages.info(request, "Every guardian with a login has been invited already.")
                return HttpResponseRedirect(request.path)
            batch = invitations_start(
                base_url=request.build_absolute_uri("/"), user=staff_user(request)
            )
            messages.success(request, f"Sending {batch.total:,} invitations.")
            return HttpResponseRedirect(admin_url(batch))
        context = self._context(request, title="Invite guardians to the parent portal")
        return TemplateResponse(request, "admin/roster/invitationbatch/page.html", context)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        batch: InvitationBatch = object_or_404(
            InvitationBatch.objects.select_related("started_by"), object_id, "invitation batch"
        )
        running = batch.state in (InvitationBatch.State.QUEUED, InvitationBatch.State.RUNNING)
        context = self._context(
            request, title="Portal invitations", batch=batch, running=running, original=batch
        )
        return TemplateResponse(request, "admin/roster/invitationbatch/page.html", context)


class RosterSourceForm(forms.ModelForm[RosterSource]):
    password = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted and never shown again. Leave empty to keep the saved one.",
    )

    class Meta:
        model = RosterSource
        fields = ["enabled", "host", "port", "username", "password", "directory", "host_key"]


@admin.register(RosterSource)
class RosterSourceAdmin(NotFoundMixin, admin.ModelAdmin[RosterSource]):
    """The SIS's SFTP export directory, fetched every night (district admins only)."""

    form = RosterSourceForm
    list_display = ["__str__", "enabled", "password_saved", "last_file"]
    readonly_fields = ["password_saved", "last_file"]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("roster.change_rostersource"))

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # One source: the SIS exports to one place.
        return super().has_add_permission(request) and not RosterSource.objects.exists()

    @admin.display(description="Password")
    def password_saved(self, obj: RosterSource) -> str:
        return "saved (encrypted)" if obj.secrets else "not set"

    def save_model(self, request: HttpRequest, obj: RosterSource, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if form.cleaned_data.get("password"):
            roster_source_password_set(source=obj, password=form.cleaned_data["password"])
