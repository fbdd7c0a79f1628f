"""The parent portal in the staff site: the district's lockout, the documents shared with
guardians (uploaded here, downloaded through an authorized, logged view), the download log,
and the activities open for sign-up with who signed up."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin
from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join

from apps.common.admin import (
    NotFoundMixin,
    ReadOnlyAdmin,
    ReadOnlyMixin,
    object_or_404,
    short_when,
    staff_user,
)

from .models import ActivityOffer, ActivitySignup, DocumentDownload, PortalLockout, StudentDocument
from .sections import LOCKABLE_CHOICES
from .services import document_upload


class PortalLockoutForm(forms.ModelForm[PortalLockout]):
    locked_sections = forms.MultipleChoiceField(
        label="Sections to lock",
        choices=LOCKABLE_CHOICES,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Hidden from a family's parents while it owes more than the threshold. Fees "
        "and Fines is never locked.",
    )

    class Meta:
        model = PortalLockout
        fields = ["enabled", "threshold", "categories", "locked_sections", "unlock_message"]
        widgets = {"categories": forms.CheckboxSelectMultiple}

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("enabled") and not data.get("locked_sections"):
            self.add_error(
                "locked_sections", "Choose at least one section to lock, or turn lockout off."
            )
        return data


@admin.register(PortalLockout)
class PortalLockoutAdmin(NotFoundMixin, admin.ModelAdmin[PortalLockout]):
    """One row for the district: the list opens it directly."""

    form = PortalLockoutForm
    fieldsets = [
        (None, {"fields": ["enabled", "threshold", "categories", "locked_sections"]}),
        (
            "What parents read",
            {
                "fields": ["unlock_message"],
                "description": "A locked family sees what it owes, the threshold, how much to "
                "pay to unlock and the pay buttons. Community Pass can add the family's "
                "balance there to the test: its “Lock the portal while a balance is owed” "
                "option on the integration's parent-portal step.",
            },
        ),
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the row is made by PortalLockout.current()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        row = PortalLockout.current()
        return HttpResponseRedirect(reverse("admin:portal_portallockout_change", args=[row.pk]))


class StudentDocumentForm(forms.ModelForm[StudentDocument]):
    class Meta:
        model = StudentDocument
        fields = ["student", "title", "note", "file"]

    def clean_file(self) -> Any:
        file = self.cleaned_data.get("file")
        limit = settings.FEESYNC_DOCUMENT_MAX_BYTES
        if file is not None and file.size is not None and file.size > limit:
            raise forms.ValidationError(
                f"The file is {file.size / 1_048_576:.1f} MB; the most is "
                f"{limit / 1_048_576:.0f} MB. Make it smaller (a PDF of the scan, say)."
            )
        return file


def _download_link(obj: StudentDocument) -> str:
    if not obj.pk:
        return "—"
    url = reverse("admin:portal_studentdocument_download", args=[obj.pk])
    return format_html('<a href="{}">Download {}</a> (logged)', url, obj.filename)


class StudentDocumentsInline(ReadOnlyMixin, admin.TabularInline[StudentDocument, Any]):
    """On a student's page: the documents shared with the student's guardians, with the
    logged download link and who has downloaded each (guardians and staff)."""

    template = "admin/common/tabular_cards.html"  # rows become cards on a phone
    empty_text = (
        "No documents shared yet. Share one below: the guardians download it in the portal."
    )
    model = StudentDocument
    extra = 0
    verbose_name = "document"
    verbose_name_plural = "Documents shared with the guardians"
    fields = readonly_fields = ("title", "note", "download", "shared", "downloaded_by")

    def get_queryset(self, request: HttpRequest) -> QuerySet[StudentDocument]:
        return (
            super()
            .get_queryset(request)
            .select_related("uploaded_by")
            .prefetch_related(
                Prefetch("downloads", queryset=DocumentDownload.objects.select_related("user"))
            )
        )

    @admin.display(description="file")
    def download(self, obj: StudentDocument) -> str:
        return _download_link(obj)

    @admin.display(description="shared")
    def shared(self, obj: StudentDocument) -> str:
        when = short_when(obj.uploaded_at)
        return f"{when} by {obj.uploaded_by.get_username()}" if obj.uploaded_by else when

    @admin.display(description="downloaded by")
    def downloaded_by(self, obj: StudentDocument) -> str:
        rows = list(obj.downloads.all())
        if not rows:
            return "Not downloaded yet"
        return format_html_join(
            "",
            '<div>{} <span class="feesync-quiet">({}, {})</span></div>',
            (
                (
                    row.user.get_username(),
                    "guardian" if row.downloaded_as == DocumentDownload.As.GUARDIAN else "staff",
                    short_when(row.at),
                )
                for row in rows
            ),
        )


class StudentDocumentUploadInline(admin.StackedInline[StudentDocument, Any]):
    """On a student's page: share a new document. Only new rows (the shared ones are listed
    above); each is saved through `document_upload` (StudentAdmin.save_formset)."""

    model = StudentDocument
    form = StudentDocumentForm
    extra = 1
    can_delete = False
    verbose_name = "new document"
    verbose_name_plural = "Share a document with the guardians"
    fields = ("title", "note", "file")

    def get_queryset(self, request: HttpRequest) -> QuerySet[StudentDocument]:
        return super().get_queryset(request).none()

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_add_permission(request, obj)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_add_permission(request, obj)


def documents_formset_save(request: HttpRequest, formset: Any, student: Any) -> int:
    """Save the new documents of a student page's upload inline through the service (which
    checks the title and the size and records who shared it). Returns how many."""
    new: list[StudentDocument] = []
    for form in formset.forms:
        if form.instance.pk or not form.has_changed() or not form.cleaned_data:
            continue
        data = form.cleaned_data
        new.append(
            document_upload(
                student=student,
                title=data.get("title") or "",
                note=data.get("note") or "",
                file=data["file"],
                user=staff_user(request),
            )
        )
    # What formset.save() would have left, for the admin's change message ("Added ...").
    formset.new_objects, formset.changed_objects, formset.deleted_objects = new, [], []
    return len(new)


@admin.register(StudentDocument)
class StudentDocumentAdmin(NotFoundMixin, admin.ModelAdmin[StudentDocument]):
    form = StudentDocumentForm
    list_display = ["title", "student", "uploaded", "uploaded_by", "download"]
    list_select_related = ["student", "uploaded_by"]
    search_fields = [
        "title",
        "student__first_name",
        "student__last_name",
        "student__student_number",
    ]
    autocomplete_fields = ["student"]
    readonly_fields = ["uploaded_by", "uploaded_at", "download"]

    @admin.display(description="shared", ordering="uploaded_at")
    def uploaded(self, obj: StudentDocument) -> str:
        return short_when(obj.uploaded_at)

    @admin.display(description="file")
    def download(self, obj: StudentDocument) -> str:
        return _download_link(obj)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # A shared document's file is not changed (share a new one: the download log names
        # what was read) and is never shown by URL: only the logged download link.
        if obj is None:
            return ["student", "title", "note", "file"]
        return ["student", "title", "note", "download", "uploaded_by", "uploaded_at"]

    def save_model(
        self, request: HttpRequest, obj: StudentDocument, form: Any, change: bool
    ) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        saved = document_upload(
            student=obj.student,
            title=obj.title,
            note=obj.note,
            file=form.cleaned_data["file"],
            user=staff_user(request),
        )
        obj.pk = saved.pk
        obj.file = saved.file

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<path:object_id>/download/",
                self.admin_site.admin_view(self.download_view),
                name="portal_studentdocument_download",
            ),
            *super().get_urls(),
        ]

    def download_view(self, request: HttpRequest, object_id: str) -> HttpResponseBase:
        from .views import stream_document

        document = object_or_404(StudentDocument.objects.all(), object_id, "document")
        return stream_document(request, document)


@admin.register(DocumentDownload)
class DocumentDownloadAdmin(ReadOnlyAdmin):
    list_display = ["document_title", "student", "user", "downloaded_as", "when", "ip_address"]
    list_filter = ["downloaded_as"]
    list_select_related = ["student", "user"]
    search_fields = [
        "document_title",
        "student__last_name",
        "student__student_number",
        "user__username",
    ]

    @admin.display(description="when", ordering="at")
    def when(self, obj: DocumentDownload) -> str:
        return short_when(obj.at)


class SignupInline(admin.TabularInline[ActivitySignup, ActivityOffer]):
    model = ActivitySignup
    extra = 0
    can_delete = False
    fields = ("student", "fee", "signed_up_by", "created_at")
    readonly_fields = ("student", "fee", "signed_up_by", "created_at")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # parents sign up in the portal (the fee is charged there)


@admin.register(ActivityOffer)
class ActivityOfferAdmin(NotFoundMixin, admin.ModelAdmin[ActivityOffer]):
    list_display = ["title", "activity", "fee_amount", "opens_on", "closes_on", "signed_up"]
    list_select_related = ["activity"]
    search_fields = ["title", "activity__name"]
    inlines = [SignupInline]

    @admin.display(description="signed up")
    def signed_up(self, obj: ActivityOffer) -> int:
        return obj.signups.count()

    def get_queryset(self, request: HttpRequest) -> QuerySet[ActivityOffer]:
        return super().get_queryset(request).prefetch_related("signups")


@admin.register(ActivitySignup)
class ActivitySignupAdmin(ReadOnlyAdmin):
    list_display = ["student", "offer", "fee", "signed_up_by", "created_at"]
    list_select_related = ["student", "offer", "fee", "signed_up_by"]
    search_fields = ["student__last_name", "student__student_number", "offer__title"]
