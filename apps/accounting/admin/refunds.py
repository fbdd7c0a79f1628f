"""Admin pages: the refund queue (by status, with each refund's history), scheduling a refund
out of a student's credit, paying one from the office, voiding a paid one."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join

from apps.common.admin import (
    ActionPageMixin,
    FeeSyncMedia,
    NotFoundMixin,
    ReadOnlyMixin,
    admin_url,
    object_or_404,
    staff_user,
)
from apps.fees.models import MONEY, LedgerEntry
from apps.fees.services import LedgerError, student_credit
from apps.students.models import Student

from ..models import BankAccount, FundSource, PaymentType, Refund, RefundChange, StudentAward
from ..services.refunds import refund_pay, refund_schedule, refund_void, refunds_pending


class RefundChangeInline(ReadOnlyMixin, admin.TabularInline[RefundChange, Refund]):
    model = RefundChange
    extra = 0
    fields = ["created_at", "from_status", "to_status", "user", "api_user", "note"]
    readonly_fields = ["created_at", "from_status", "to_status", "user", "api_user", "note"]
    verbose_name = "change"
    verbose_name_plural = "History"


class ScheduleForm(forms.Form):
    student = forms.ModelChoiceField(
        queryset=Student.objects.order_by("last_name", "first_name"),
        help_text="The student the refund is owed to; it is paid out of their credit.",
    )
    amount = forms.DecimalField(**MONEY, min_value=0.01, help_text="Dollars to the cent.")
    due_date = forms.DateField(
        help_text="When it is due: vendors query refunds due by a date.",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    fund_source = forms.ModelChoiceField(
        queryset=FundSource.objects.filter(active=True),
        required=False,
        help_text="The fund source it is refunded from, if any.",
    )
    student_award = forms.ModelChoiceField(
        queryset=StudentAward.objects.select_related("fund_source", "student"),
        required=False,
        help_text="The student award it is tied to, if any (its fund source is used).",
    )
    reason = forms.CharField(max_length=300, help_text="Why it is owed, e.g. an overpayment.")


class PayForm(forms.Form):
    check_number = forms.CharField(
        max_length=30, help_text="The number of the refund check the office wrote."
    )
    bank_account = forms.ModelChoiceField(
        queryset=BankAccount.objects.filter(active=True),
        required=False,
        help_text="The bank account the check is drawn on.",
    )


class VoidForm(forms.Form):
    reason = forms.CharField(
        max_length=300, help_text="Why, e.g. the check was never cashed or sent in error."
    )


@admin.register(Refund)
class RefundAdmin(NotFoundMixin, ActionPageMixin, admin.ModelAdmin[Refund]):
    list_display = [
        "id",
        "student",
        "amount",
        "due_date",
        "status",
        "fund_source",
        "selected_by",
        "entry",
    ]
    list_filter = ["status", "fund_source", "due_date"]
    # A filtered queue needs no second COUNT of every refund.
    show_full_result_count = False
    search_fields = ["student__first_name", "student__last_name", "student__student_number"]
    list_select_related = ["student", "fund_source", "selected_by__user"]
    readonly_fields = [
        "student",
        "amount",
        "due_date",
        "fund_source",
        "student_award",
        "status",
        "reason",
        "entries",
        "selected_by",
        "created_by",
        "created_at",
        "what_next",
    ]
    fields = list(readonly_fields)
    inlines = [RefundChangeInline]
    Media = FeeSyncMedia

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # changed through its actions only (pay, void)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Ledger entries")
    def entries(self, obj: Refund) -> str:
        rows = obj.bookings.select_related("entry").order_by("entry_id")
        if not rows:
            return "None yet: not paid."
        return format_html_join(
            ", ",
            "{} ${} (#{})",
            ((b.entry.get_kind_display(), b.entry.amount, b.entry_id) for b in rows),
        )

    @admin.display(description="Actions")
    def what_next(self, obj: Refund) -> str:
        if obj.status == Refund.Status.NOT_PROCESSED:
            return format_html(
                '<a class="button" href="{}">Pay this refund from the office</a>',
                reverse("admin:accounting_refund_pay", args=[obj.pk]),
            )
        if obj.status == Refund.Status.PAID:
            return format_html(
                '<a class="button" href="{}">Void this refund</a>',
                reverse("admin:accounting_refund_void", args=[obj.pk]),
            )
        if obj.status == Refund.Status.SELECTED:
            return "Selected for processing by a vendor: the vendor pays it."
        return "Voided: nothing more to do."

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/pay/", view(self.pay_view), name="accounting_refund_pay"),
            path("<path:object_id>/void/", view(self.void_view), name="accounting_refund_void"),
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        extra = {
            "title": "Refund queue",
            "subtitle": "Filter by status: N not processed, S selected by a vendor, P paid, "
            "V voided. Open a refund for its history.",
        }
        return super().changelist_view(request, {**(extra_context or {}), **extra})

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ScheduleForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                refund = refund_schedule(
                    student=data["student"],
                    amount=data["amount"],
                    due_date=data["due_date"],
                    fund_source=data["fund_source"],
                    student_award=data["student_award"],
                    reason=data["reason"],
                    user=staff_user(request),
                )
            except LedgerError as exc:
                form.add_error(None, exc)
            else:
                message = (
                    f"Refund of ${refund.amount:,.2f} to {refund.student.full_name} scheduled, "
                    f"due {refund.due_date:%m/%d/%Y} (status N)."
                )
                self.log_addition(request, refund, message)
                messages.success(request, message)
                return HttpResponseRedirect(admin_url(refund))
        return self.render_action_page(
            request,
            form=form,
            title="Schedule a refund",
            submit_label="Schedule the refund",
            cancel_url=reverse("admin:accounting_refund_changelist"),
            intro="A refund owed to a student, paid out of their credit: by a vendor that "
            "selects it, or from the office. It cannot be more than the credit not already "
            "scheduled for refund.",
        )

    def _refund_page(
        self, request: HttpRequest, object_id: str, form_class: type[forms.Form]
    ) -> tuple[Refund, forms.Form]:
        if not request.user.has_perm("accounting.change_refund"):
            raise PermissionDenied
        refund = object_or_404(Refund.objects.select_related("student"), object_id, "refund")
        return refund, form_class(request.POST if request.method == "POST" else None)

    def _summary(self, refund: Refund) -> list[tuple[str, Any]]:
        return [
            ("Student", refund.student),
            ("Amount", f"${refund.amount:,.2f}"),
            ("Due", f"{refund.due_date:%m/%d/%Y}"),
            ("Status", refund.get_status_display()),
            ("Credit on account", f"${student_credit(student=refund.student):,.2f}"),
            ("Scheduled for refund", f"${refunds_pending(student=refund.student):,.2f}"),
        ]

    def pay_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        refund, form = self._refund_page(request, object_id, PayForm)
        if request.method == "POST" and form.is_valid():
            try:
                refund_pay(
                    refund=refund,
                    user=staff_user(request),
                    method=LedgerEntry.Method.CHECK,
                    check_number=form.cleaned_data["check_number"],
                    payment_type=PaymentType.CHECK,
                    bank_account=form.cleaned_data["bank_account"],
                )
            except LedgerError as exc:
                form.add_error(None, exc)
            else:
                message = f"Refund {refund.pk} paid by check {form.cleaned_data['check_number']}."
                self.log_change(request, refund, message)
                messages.success(request, message)
                return HttpResponseRedirect(admin_url(refund))
        return self.render_action_page(
            request,
            form=form,
            obj=refund,
            title="Pay this refund from the office",
            submit_label="Record the refund check",
            cancel_url=admin_url(refund),
            summary=self._summary(refund),
            intro="Records the refund check on the student's ledger card, out of their credit. "
            "A refund a vendor selected for processing is the vendor's to pay.",
        )

    def void_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        refund, form = self._refund_page(request, object_id, VoidForm)
        if request.method == "POST" and form.is_valid():
            try:
                refund_void(
                    refund=refund, user=staff_user(request), reason=form.cleaned_data["reason"]
                )
            except LedgerError as exc:
                form.add_error(None, exc)
            else:
                message = (
                    f"Refund {refund.pk} voided: ${refund.amount:,.2f} is the student's credit "
                    "again."
                )
                self.log_change(request, refund, message)
                messages.success(request, message)
                return HttpResponseRedirect(admin_url(refund))
        return self.render_action_page(
            request,
            form=form,
            obj=refund,
            title="Void this refund",
            submit_label="Void the refund",
            cancel_url=admin_url(refund),
            summary=self._summary(refund),
            intro="Reversing entries give the money back to the student's credit; the refund "
            "stays in the queue as voided (V).",
            danger=True,
        )
