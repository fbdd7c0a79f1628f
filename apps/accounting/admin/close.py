"""Admin pages: the daily close (release a business date to the general ledger, download
its GL export file) and the business office's reports with their CSV export."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html

from apps.common.admin import (
    ActionPageMixin,
    FeeSyncMedia,
    NotFoundMixin,
    ReadOnlyMixin,
    object_or_404,
    staff_user,
)
from apps.fees.services import LedgerError

from ..models import GLRelease
from ..reports import REPORTS
from ..services.close import export_path, gl_release

REPORT_NAMES = {
    "deposits": ("Deposits", "accounting_deposit_report"),
    "fund-sources": ("Payments by fund source", "accounting_fund_source_report"),
    "refunds": ("Refunds by status", "accounting_refund_report"),
}


class ReleaseForm(forms.Form):
    business_date = forms.DateField(
        label="Business date",
        help_text="The day to release (MM/DD/YYYY). Its receipts and postings are locked "
        "afterwards.",
        widget=forms.DateInput(attrs={"type": "date"}),
    )


class PeriodForm(forms.Form):
    start = forms.DateField(
        label="From", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    end = forms.DateField(
        label="To", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("start"), data.get("end")
        if start and end and end < start:
            self.add_error("end", "The end of the period cannot be before its start.")
        elif start and end and (end - start).days > 366:
            self.add_error("end", "Pick a period of at most a year.")
        return data


@admin.register(GLRelease)
class GLReleaseAdmin(NotFoundMixin, ActionPageMixin, ReadOnlyMixin, admin.ModelAdmin[GLRelease]):
    list_display = [
        "business_date",
        "released_at",
        "released_by",
        "entry_count",
        "receipt_count",
        "debit_total",
        "credit_total",
        "export_file",
    ]
    date_hierarchy = "business_date"
    Media = FeeSyncMedia

    @admin.display(description="GL export file")
    def export_file(self, obj: GLRelease) -> str:
        url = reverse("admin:accounting_glrelease_file", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, obj.file_name)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.has_perm("accounting.add_glrelease"))

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/file/", view(self.file_view), name="accounting_glrelease_file"),
            path(
                "reports/deposits/",
                view(self.report_view),
                {"name": "deposits"},
                name="accounting_deposit_report",
            ),
            path(
                "reports/fund-sources/",
                view(self.report_view),
                {"name": "fund-sources"},
                name="accounting_fund_source_report",
            ),
            path(
                "reports/refunds/",
                view(self.report_view),
                {"name": "refunds"},
                name="accounting_refund_report",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        extra = {
            "title": "General-ledger releases",
            "subtitle": "Each business date released, with its GL export file. Reports: "
            "deposits, payments by fund source, refunds by status.",
        }
        return super().changelist_view(request, {**(extra_context or {}), **extra})

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ReleaseForm(
            request.POST if request.method == "POST" else None,
            initial={"business_date": timezone.localdate() - timedelta(days=1)},
        )
        if request.method == "POST" and form.is_valid():
            try:
                release = gl_release(
                    business_date=form.cleaned_data["business_date"], user=staff_user(request)
                )
            except LedgerError as exc:
                form.add_error("business_date", exc)
            else:
                message = (
                    f"{release.business_date:%m/%d/%Y} released to the general ledger: "
                    f"{release.entry_count} entries and {release.receipt_count} receipts, "
                    f"debits ${release.debit_total:,.2f}, credits ${release.credit_total:,.2f}. "
                    f"The GL export file is {release.file_name}."
                )
                self.log_addition(request, release, message)
                messages.success(request, message)
                return HttpResponseRedirect(reverse("admin:accounting_glrelease_changelist"))
        return self.render_action_page(
            request,
            form=form,
            title="Release a business date to the general ledger",
            submit_label="Release this date",
            cancel_url=reverse("admin:accounting_glrelease_changelist"),
            intro="Writes the day's GL export file (by GL account, bank account and payment "
            "type) and locks the day: its receipts and postings can no longer change.",
        )

    def file_view(self, request: HttpRequest, object_id: str) -> FileResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        release = object_or_404(GLRelease.objects.all(), object_id, "release")
        file = export_path(release)
        if not file.exists():
            raise Http404("The GL export file is not on this server.")
        return FileResponse(
            file.open("rb"), as_attachment=True, filename=release.file_name, content_type="text/csv"
        )

    def report_view(self, request: HttpRequest, name: str) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        today = timezone.localdate()
        form = PeriodForm(request.GET or None)
        start: date = today - timedelta(days=6)
        end: date = today
        if form.is_bound and form.is_valid():
            start = form.cleaned_data.get("start") or start
            end = form.cleaned_data.get("end") or end
        report = REPORTS[name](start=start, end=end)
        if request.GET.get("format") == "csv":
            response = HttpResponse(report.csv(), content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = (
                f'attachment; filename="{name}-{start.isoformat()}-{end.isoformat()}.csv"'
            )
            return response
        query = request.GET.copy()
        query["format"] = "csv"
        if "start" not in query:
            query["start"], query["end"] = start.isoformat(), end.isoformat()
        context = {
            **self.admin_site.each_context(request),
            "title": report.title,
            "report": report,
            "form": form if form.is_bound else PeriodForm(initial={"start": start, "end": end}),
            "start": start,
            "end": end,
            "csv_url": f"?{query.urlencode()}",
            "reports": [
                (label, reverse(f"admin:{url_name}"), key == name)
                for key, (label, url_name) in REPORT_NAMES.items()
            ],
        }
        return TemplateResponse(request, "admin/accounting/report.html", context)
