"""The fees office on the staff site: fees, their money history, and fees for lists.

Every page that moves money is a thin view: a Django form parses what the clerk typed, one
service of `apps.fees.services` does the work, and the clerk reads the result in a message.
When the service refuses (`LedgerError`), the same form is shown again with its reason and
nothing has changed. Nothing here saves a fee, an entry or an allocation itself.

Every form that posts money carries a one-time token (`apps.fees.once`): a double click or
a resubmitted page shows what the first submission recorded instead of recording it again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypedDict

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.forms import Form, ModelForm
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.templatetags.static import static
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, json_script
from django_stubs_ext import WithAnnotations

from apps.accounting.services.cashiering import (
    CashieringError,
    clerk_open_session,
    office_payment_book,
    office_payment_session,
)
from apps.common.admin import (
    ActionPageMixin,
    FeeSyncMedia,
    NotFoundMixin,
    ReadOnlyAdmin,
    ReadOnlyMixin,
    admin_url,
    object_or_404,
    short_date,
    short_when,
    staff_user,
)
from apps.students.models import Student
from apps.students.selectors import student_list_students

from .forms import (
    AssignmentAddForm,
    ConfirmForm,
    FeeAddForm,
    FeeChangeForm,
    ListFromAssignmentForm,
    PaymentForm,
    RefundForm,
    VoidForm,
    WaiveForm,
    dollars,
    refundable_payments,
)
from .models import ZERO, Allocation, BulkJob, Fee, FeeAssignment, LedgerEntry, StudentCredit
from .once import (
    STAFF_FORM_SOURCE,
    AlreadyRecorded,
    already_recorded_message,
    first_posting,
    post_once,
    staff_origin,
)
from .roles import can_post_money
from .services import (
    LedgerError,
    Origin,
    assignment_create,
    bulk_job_start,
    credit_kind_totals,
    fee_change,
    fee_create,
    fee_void,
    fee_waive,
    payment_refund,
    payment_take,
    student_list_from_assignment,
    unpaid_fees,
)

#: Set on the request when the ledger refused a save from a fee's page (see FeeAdmin).
LEDGER_ERROR_ATTR = "_feesync_ledger_error"

FINAL_STATUSES = (Fee.Status.VOIDED, Fee.Status.WAIVED, Fee.Status.CLOSED)


def person(user: AbstractBaseUser | None) -> str:
    if user is None:
        return ""
    full = user.get_full_name() if hasattr(user, "get_full_name") else ""
    return full or user.get_username()


def owed_now(fee: Fee) -> str:
    """The second half of a success message: where the fee stands now."""
    if fee.balance > 0:
        return f"{dollars(fee.balance)} is still owed"
    return f"nothing is owed on this fee now ({fee.get_status_display().lower()})"


def outside_id(entry: LedgerEntry) -> str:
    """The sender's own transaction id; a staff form's one-time token means nothing to a
    clerk, so it is not shown (the entry's "who" says who posted it)."""
    return "" if entry.external_source == STAFF_FORM_SOURCE else entry.external_id


def student_cell(student: Any) -> str:
    """A student in a list: name, and the student number under it."""
    return format_html(
        '{}, {}<br><span class="feesync-quiet">{}</span>',
        student.last_name,
        student.first_name,
        student.student_number,
    )


def student_link(student: Any) -> str:
    """A student in a list, linked to the student's page: name, and the number under it."""
    return format_html(
        '<a href="{}">{}, {}</a><br><span class="feesync-quiet">{}</span>',
        admin_url(student),
        student.last_name,
        student.first_name,
        student.student_number,
    )


def _receiver_hint(form: Form, routes: list[dict[str, Any]]) -> str:
    """The add-fee form's "who receives it" line, kept up to date by static/feesync/
    receiver.js as the clerk picks a category and a date (no reload); the routes are the
    rule of apps.vendors.routing, as data."""
    return format_html(
        '<p class="feesync-note" id="receiver-hint" aria-live="polite">'
        "Pick a category and a fee date to see which integration receives the fee.</p>{}"
        '<script src="{}" defer></script>',
        json_script(routes, "receiver-routes"),
        static("feesync/receiver.js"),
    )


# --- ledger entries and allocations: read-only --------------------------------------------


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = [
        "when",
        "kind",
        "amount",
        "fee_reference",
        "student_name",
        "how",
        "source_and_id",
        "who",
    ]
    list_select_related = ["fee", "student", "created_by"]
    list_filter = ["kind", "source", "method"]
    search_fields = [
        "=fee__reference",
        "^student__student_number",
        "student__last_name",
        "student__first_name",
        "=external_id",
        "=check_number",
    ]
    search_help_text = (
        "Search by fee reference, student number or name, vendor transaction id or check number."
    )
    show_full_result_count = False
    date_hierarchy = "created_at"

    @admin.display(description="When", ordering="created_at")
    def when(self, obj: LedgerEntry) -> str:
        return short_when(obj.created_at)

    @admin.display(description="Student", ordering="student__last_name")
    def student_name(self, obj: LedgerEntry) -> str:
        return student_cell(obj.student)

    @admin.display(description="Method")
    def how(self, obj: LedgerEntry) -> str:
        if obj.check_number:
            return f"{obj.get_method_display()} #{obj.check_number}"
        return obj.get_method_display() or "—"

    @admin.display(description="Source", ordering="source")
    def source_and_id(self, obj: LedgerEntry) -> str:
        if outside_id(obj):
            return format_html(
                '{}<br><span class="feesync-quiet">{}</span>',
                obj.get_source_display(),
                outside_id(obj),
            )
        return obj.get_source_display()

    @admin.display(description="Fee", ordering="fee__reference")
    def fee_reference(self, obj: LedgerEntry) -> str:
        if obj.fee is None:
            return "—"
        return format_html('<a href="{}">{}</a>', admin_url(obj.fee), obj.fee.reference)

    @admin.display(description="Who")
    def who(self, obj: LedgerEntry) -> str:
        return person(obj.created_by) or obj.external_source or obj.get_source_display()


@admin.register(Allocation)
class AllocationAdmin(ReadOnlyAdmin):
    list_display = ["id", "created_at", "credit", "debit", "amount", "fee_reference", "manual"]
    list_select_related = ["credit", "debit", "debit__fee"]
    search_fields = ["=debit__fee__reference", "=credit__fee__reference"]
    search_help_text = "Search by fee reference."
    list_filter = ["manual", "credit__kind"]
    show_full_result_count = False

    @admin.display(description="Fee", ordering="debit__fee__reference")
    def fee_reference(self, obj: Allocation) -> str:
        fee = obj.debit.fee
        if fee is None:
            return "—"
        return format_html('<a href="{}">{}</a>', admin_url(fee), fee.reference)


@admin.register(StudentCredit)
class StudentCreditAdmin(ReadOnlyAdmin):
    """Credits: students with money on account (paid at a vendor beyond what a fee owed),
    for staff to apply or refund from each student's page."""

    list_display = ["student_name", "amount_shown", "since_shown"]
    list_select_related = ["student"]
    search_fields = ["^student__student_number", "student__last_name", "student__first_name"]
    search_help_text = "Search by student name or student number."
    ordering = ["since", "student_id"]
    list_per_page = 100

    def get_queryset(self, request: HttpRequest) -> QuerySet[StudentCredit]:
        return super().get_queryset(request).filter(amount__gt=0)

    @admin.display(description="Student", ordering="student__last_name")
    def student_name(self, obj: StudentCredit) -> str:
        return format_html(
            '<a href="{}">{}, {}</a><br><span class="feesync-quiet">{}</span>',
            admin_url(obj.student),
            obj.student.last_name,
            obj.student.first_name,
            obj.student.student_number,
        )

    @admin.display(description="Credit", ordering="amount")
    def amount_shown(self, obj: StudentCredit) -> str:
        return dollars(obj.amount)

    @admin.display(description="Since", ordering="since")
    def since_shown(self, obj: StudentCredit) -> str:
        return short_when(obj.since)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # A credit is looked at and acted on from the student's own page.
        credit = self.get_object(request, unquote(object_id))
        if credit is None:
            raise Http404("No such credit.")
        return HttpResponseRedirect(admin_url(credit.student))


class LedgerEntryInline(ReadOnlyMixin, admin.TabularInline[LedgerEntry, Fee]):
    model = LedgerEntry
    fk_name = "fee"
    extra = 0
    can_delete = False
    show_change_link = True
    verbose_name = "ledger entry"
    verbose_name_plural = "Ledger entries (posted money is never changed or deleted)"
    fields = readonly_fields = (
        "created_at",
        "kind",
        "amount",
        "method",
        "check_number",
        "reason",
        "source",
        "outside_id",
        "who",
        "gives_back",
    )
    ordering = ["created_at", "id"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[LedgerEntry]:
        return super().get_queryset(request).select_related("created_by", "reverses")

    @admin.display(description="Who")
    def who(self, obj: LedgerEntry) -> str:
        return person(obj.created_by) or obj.external_source or obj.get_source_display()

    @admin.display(description="External id")
    def outside_id(self, obj: LedgerEntry) -> str:
        return outside_id(obj)

    @admin.display(description="Gives back")
    def gives_back(self, obj: LedgerEntry) -> str:
        return str(obj.reverses) if obj.reverses else ""


# --- fees -------------------------------------------------------------------------------------


def _sync_timeline(fee: Fee) -> list[Any]:
    """The fee at each payment vendor (shown under its ledger entries)."""
    from apps.vendors.selectors import fee_sync_timeline  # vendors builds on fees, not back

    return fee_sync_timeline(fee=fee)


def _refund_findings(fee: Fee) -> list[Any]:
    """Refunds made at a vendor on this fee, waiting for staff to keep it owed or waive it."""
    from apps.vendors.selectors import open_refund_findings  # vendors builds on fees

    return open_refund_findings(fee=fee)


def amount_note(fee: Fee) -> str:
    """Why a fee's amount cannot be changed, or "" when it can."""
    if fee.amount_locked:
        return (
            "Locked: a payment vendor has already taken a payment on this fee, so its "
            "amount cannot change. Waive or refund instead."
        )
    if fee.status in FINAL_STATUSES:
        return f"This fee is {fee.get_status_display().lower()}; its amount is final."
    return ""


@admin.register(Fee)
class FeeAdmin(NotFoundMixin, ActionPageMixin, admin.ModelAdmin[Fee]):
    Media = FeeSyncMedia
    form = FeeChangeForm
    change_form_template = "admin/fees/fee/change_form.html"
    list_display = [
        "reference",
        "student_name",
        "category_code",
        "description",
        "amount",
        "balance",
        "status",
        "fee_date_short",
        "due_date_short",
    ]
    list_select_related = ["student", "category"]
    list_filter = ["status", "category", ("student__school", admin.RelatedFieldListFilter)]
    search_fields = [
        "=reference",
        "^student__student_number",
        "student__first_name",
        "student__last_name",
    ]
    search_help_text = "Search by student name, student number or fee reference."
    list_per_page = 50
    show_full_result_count = False
    inlines = [LedgerEntryInline]
    readonly_fields = [
        "reference",
        "student",
        "category",
        "merchant_account",
        "assignment",
        "fee_date",
        "amount_shown",
        "balance",
        "status",
        "amount_locked",
        "version",
        "created_by_name",
        "created_at",
        "updated_at",
    ]

    # --- list ---

    @admin.display(description="Category", ordering="category__code")
    def category_code(self, obj: Fee) -> str:
        return obj.category.code

    @admin.display(description="Student", ordering="student__last_name")
    def student_name(self, obj: Fee) -> str:
        return student_link(obj.student)

    def get_list_filter(self, request: HttpRequest) -> list[Any]:
        # The sync-state filter asks the vendors app (lazily: vendors builds on fees, not back).
        from apps.vendors.admin import FeeSyncStateFilter

        return [*self.list_filter, FeeSyncStateFilter]

    @admin.display(description="Fee date", ordering="fee_date")
    def fee_date_short(self, obj: Fee) -> str:
        return short_date(obj.fee_date)

    @admin.display(description="Due date", ordering="due_date")
    def due_date_short(self, obj: Fee) -> str:
        return short_date(obj.due_date)

    # --- change page ---

    @admin.display(description="Amount")
    def amount_shown(self, obj: Fee) -> str:
        note = amount_note(obj)
        if not note:
            return dollars(obj.amount)
        return format_html('{}<div class="feesync-note">{}</div>', dollars(obj.amount), note)

    @admin.display(description="Created by")
    def created_by_name(self, obj: Fee) -> str:
        return person(obj.created_by) or "FeeSync"

    def get_fieldsets(self, request: HttpRequest, obj: Fee | None = None) -> list[Any]:
        editable = obj is not None and self.has_change_permission(request, obj)
        amount_editable = editable and obj is not None and not amount_note(obj)
        charge = ["description", "due_date", "amount" if amount_editable else "amount_shown"]
        if amount_editable:
            charge.append("reason")
        if editable:
            charge.append("token")  # hidden: the one-time token of apps.fees.once
        return [
            (
                None,
                {
                    "fields": [
                        "reference",
                        "student",
                        "category",
                        "merchant_account",
                        "assignment",
                        "fee_date",
                    ]
                },
            ),
            ("Charge", {"fields": charge}),
            (
                "Where it stands",
                {
                    "fields": [
                        "balance",
                        "status",
                        "amount_locked",
                        "version",
                        "created_by_name",
                        "created_at",
                        "updated_at",
                    ]
                },
            ),
        ]

    def get_form(
        self, request: HttpRequest, obj: Fee | None = None, change: bool = False, **kwargs: Any
    ) -> type[ModelForm[Fee]]:
        form_class = super().get_form(request, obj, change, **kwargs)
        error = getattr(request, LEDGER_ERROR_ATTR, None)
        if error is None:
            return form_class

        # mypy takes no class made at run time as a base (the admin builds the form class).
        class RefusedByLedger(form_class):  # type: ignore[misc, valid-type]
            def clean(self) -> dict[str, Any]:
                cleaned: dict[str, Any] = super().clean()
                self.add_error(None, error)
                return cleaned

        return RefusedByLedger

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except LedgerError as exc:
            # The admin's own transaction was rolled back, so nothing changed; show the same
            # form again with the ledger's reason on it.
            setattr(request, LEDGER_ERROR_ATTR, exc)
            return super().changeform_view(request, object_id, form_url, extra_context)

    def save_model(self, request: HttpRequest, obj: Fee, form: Any, change: bool) -> None:
        data = form.cleaned_data
        token = data["token"]
        # Inside the admin's transaction: locked until it commits, so of two identical
        # submissions the second sees what the first did (see apps.fees.once).
        before = Fee.objects.select_for_update().get(pk=obj.pk)
        first = first_posting(token)
        if first is not None:
            messages.info(request, already_recorded_message(first))
        else:
            fee = fee_change(
                fee=obj,
                origin=staff_origin(staff_user(request), token),
                description=data.get("description"),
                due_date=data.get("due_date"),
                amount=data.get("amount") if "amount" in form.fields else None,
                reason=data.get("reason", ""),
            )
            if fee.amount != before.amount:
                messages.info(
                    request,
                    f"Amount changed from {dollars(before.amount)} to {dollars(fee.amount)}; "
                    f"{owed_now(fee)}.",
                )
        # The form never writes its instance (the ledger does), so it still holds what the
        # clerk saw; the admin's "… was changed successfully" names it, so it must be the
        # fee as it is now.
        obj.refresh_from_db()

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        fee = self.get_object(request, unquote(object_id))
        extra = dict(extra_context or {})
        if fee is not None:
            extra.update(self._money_context(request, fee))
        return super().change_view(request, object_id, form_url, extra)

    def _money_context(self, request: HttpRequest, fee: Fee) -> dict[str, Any]:
        totals = credit_kind_totals(fee)
        has_refundable = refundable_payments(fee).exists()
        actions: list[tuple[str, str]] = []
        if can_post_money(request.user):
            if fee.balance > 0:
                actions.append(("pay", "Take a payment"))
                actions.append(("waive", "Waive"))
            if has_refundable:
                actions.append(("refund", "Refund"))
            if fee.balance > 0 and totals[LedgerEntry.Kind.PAYMENT] == 0:
                actions.append(("void", "Void"))
        allocations = (
            Allocation.objects.filter(Q(debit__fee=fee) | Q(credit__fee=fee))
            .select_related("credit", "debit")
            .order_by("id")
        )
        return {
            # A fee is charged from its own page ("Add fee"), not from another fee's.
            "show_save_and_add_another": False,
            "money_actions": [
                (reverse(f"admin:fees_fee_{name}", args=[fee.pk]), label, name)
                for name, label in actions
            ],
            "allocations": allocations,
            "balance_text": dollars(fee.balance),
            "sync_timeline": _sync_timeline(fee),
            # Fees clerks answer these here: they do not see the integration's dashboard.
            "refund_findings": _refund_findings(fee) if can_post_money(request.user) else [],
        }

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and can_post_money(request.user)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    # --- adding a fee: fee_create ---

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        initial: dict[str, Any] = {}
        if "student" in request.GET:
            # "Add a fee" on a student's page; a link with a bad student is a page not found.
            initial["student"] = object_or_404(
                Student.objects.all(), request.GET["student"], "student"
            ).pk
        from apps.vendors.routing import (  # vendors builds on fees, not back
            receiver_routes,
            routing_lines,
        )

        form = FeeAddForm(request.POST if request.method == "POST" else None, initial=initial)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                fee = post_once(
                    token=data["token"],
                    lock=Student.objects.filter(pk=data["student"].pk),
                    perform=lambda: fee_create(
                        student=data["student"],
                        category=data["category"],
                        merchant_account=data["merchant_account"],
                        description=data["description"],
                        amount=data["amount"],
                        fee_date=data["fee_date"],
                        due_date=data["due_date"],
                        origin=staff_origin(staff_user(request), data["token"]),
                    ),
                )
            except LedgerError as exc:
                form.add_error(None, exc)
            except AlreadyRecorded as repeat:
                # A double click or a resubmitted page: the fee the first one charged.
                messages.info(request, str(repeat))
                first_fee = repeat.entry.fee
                return HttpResponseRedirect(
                    admin_url(first_fee) if first_fee else reverse("admin:fees_fee_changelist")
                )
            else:
                from apps.vendors.routing import fee_receivers, receivers_said

                self.log_addition(request, fee, [{"added": {}}])
                receivers = fee_receivers(category_id=fee.category_id, fee_date=fee.fee_date)
                messages.success(
                    request,
                    f"Fee {fee.reference} of {dollars(fee.amount)} charged to "
                    f"{fee.student.full_name}. {receivers_said(receivers)}",
                )
                return HttpResponseRedirect(admin_url(fee))
        return self.render_action_page(
            request,
            form=form,
            title="Charge a student a fee",
            submit_label="Charge this fee",
            cancel_url=reverse("admin:fees_fee_changelist"),
            intro="The fee is sent to the payment vendor of its category as soon as it is "
            "saved. For the same fee to many students, use a fee assignment.",
            summary=[("Which integration receives it", "; ".join(routing_lines()))],
            after_fields=_receiver_hint(form, receiver_routes()),
        )

    # --- money on one fee ---

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/pay/", view(self.payment_view), name="fees_fee_pay"),
            path("<path:object_id>/waive/", view(self.waive_view), name="fees_fee_waive"),
            path("<path:object_id>/refund/", view(self.refund_view), name="fees_fee_refund"),
            path("<path:object_id>/void/", view(self.void_view), name="fees_fee_void"),
            *super().get_urls(),
        ]

    def _money_page(
        self,
        request: HttpRequest,
        object_id: str,
        *,
        form_class: Callable[..., Form],
        perform: Callable[[Fee, dict[str, Any]], str],
        title: str,
        submit_label: str,
        intro: str = "",
        danger: bool = False,
    ) -> HttpResponse:
        if not (can_post_money(request.user) and self.has_view_permission(request)):
            raise PermissionDenied
        fee = self.get_object(request, unquote(object_id))
        if fee is None:
            raise Http404("No such fee.")
        form = form_class(request.POST if request.method == "POST" else None, fee=fee)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                message = post_once(
                    token=data["token"],
                    lock=Fee.objects.filter(pk=fee.pk),
                    perform=lambda: perform(fee, data),
                )
            except LedgerError as exc:
                form.add_error(None, exc)
                fee.refresh_from_db()
            except AlreadyRecorded as repeat:
                # A double click or a resubmitted page: say what the first one did.
                messages.info(request, str(repeat))
                return HttpResponseRedirect(admin_url(fee))
            else:
                self.log_change(request, fee, message)
                messages.success(request, message)
                return HttpResponseRedirect(admin_url(fee))
        summary = [
            ("Student", fee.student),
            ("Fee", f"{fee.description} ({fee.reference})"),
            ("Amount", dollars(fee.amount)),
            ("Owed", dollars(fee.balance)),
            ("Status", fee.get_status_display()),
        ]
        return self.render_action_page(
            request,
            form=form,
            obj=fee,
            title=title,
            submit_label=submit_label,
            cancel_url=admin_url(fee),
            intro=intro,
            summary=summary,
            danger=danger,
        )

    def payment_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        # Cashiering (issue 14): at a school that takes payments at cash drawers the
        # payment goes through the clerk's open session, and is refused without one.
        def perform(fee: Fee, data: dict[str, Any]) -> str:
            user = staff_user(request)
            try:
                session = office_payment_session(user=user, school=fee.student.school)
            except CashieringError as exc:
                raise LedgerError(exc.text) from None
            entry = payment_take(
                fee=fee,
                amount=data["amount"],
                method=data["method"],
                check_number=data["check_number"],
                note=data["note"],
                origin=staff_origin(user, data["token"]),
            )
            try:
                office_payment_book(entry=entry, session=session)
            except CashieringError as exc:  # the session was closed meanwhile
                raise LedgerError(exc.text) from None
            fee.refresh_from_db()
            into = f" in cash drawer session {session.pk}" if session is not None else ""
            return f"Payment of {dollars(entry.amount)} recorded{into}; {owed_now(fee)}."

        intro = ""
        fee = self.get_object(request, unquote(object_id))
        if fee is not None and fee.student.school.cashiering:
            session = clerk_open_session(user=request.user, school=fee.student.school)
            intro = (
                f"{fee.student.school.name} takes payments at cash drawers: this one goes "
                f"into your session {session.pk} at {session.drawer.name}."
                if session is not None
                else f"{fee.student.school.name} takes payments at cash drawers and you have "
                "no open cash drawer session there: open one (Business office › Cash drawer "
                "sessions) before taking this payment."
            )
        return self._money_page(
            request,
            object_id,
            form_class=PaymentForm,
            perform=perform,
            title="Take a payment",
            submit_label="Record the payment",
            intro=intro,
        )

    def waive_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        def perform(fee: Fee, data: dict[str, Any]) -> str:
            entry = fee_waive(
                fee=fee,
                amount=data["amount"],
                reason=data["reason"],
                origin=staff_origin(staff_user(request), data["token"]),
            )
            fee.refresh_from_db()
            return f"{dollars(entry.amount)} waived; {owed_now(fee)}."

        return self._money_page(
            request,
            object_id,
            form_class=WaiveForm,
            perform=perform,
            title="Waive this fee",
            submit_label="Waive",
            intro="The district gives up what it waives; nothing is paid back.",
        )

    def refund_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        def perform(fee: Fee, data: dict[str, Any]) -> str:
            entry = payment_refund(
                payment=data["payment"],
                amount=data["amount"],
                reason=data["reason"],
                fee=fee,
                origin=staff_origin(staff_user(request), data["token"]),
            )
            fee.refresh_from_db()
            return (
                f"Refund of {dollars(entry.amount)} recorded; what it paid is owed again: "
                f"{owed_now(fee)}."
            )

        return self._money_page(
            request,
            object_id,
            form_class=RefundForm,
            perform=perform,
            title="Refund a payment",
            submit_label="Record the refund",
            intro="Record money given back to the family. What the refund gives back is "
            "owed on the fee again; waive it if nothing more should be collected.",
        )

    def void_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        def perform(fee: Fee, data: dict[str, Any]) -> str:
            fee_void(
                fee=fee,
                reason=data["reason"],
                origin=staff_origin(staff_user(request), data["token"]),
            )
            fee.refresh_from_db()
            return f"Fee {fee.reference} voided; nothing is owed on it now."

        return self._money_page(
            request,
            object_id,
            form_class=VoidForm,
            perform=perform,
            title="Void this fee",
            submit_label="Void the fee",
            intro="Void a fee that was charged in error. It stays on the student's record, "
            "with nothing owed. A fee with payments cannot be voided: refund them first.",
            danger=True,
        )


# --- fees for lists of students ---------------------------------------------------------------


class BulkJobInline(ReadOnlyMixin, admin.TabularInline[BulkJob, FeeAssignment]):
    model = BulkJob
    extra = 0
    can_delete = False
    verbose_name = "job"
    verbose_name_plural = "Jobs on this fee"
    fields = readonly_fields = ("job", "state", "progress", "changed", "started", "created_at")
    ordering = ["-created_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[BulkJob]:
        return super().get_queryset(request).select_related("started_by")

    @admin.display(description="Job")
    def job(self, obj: BulkJob) -> str:
        return format_html('<a href="{}">{}</a>', admin_url(obj), action_label(obj.action))

    @admin.display(description="Progress")
    def progress(self, obj: BulkJob) -> str:
        return f"{obj.done} of {obj.total} ({obj.percent}%)"

    @admin.display(description="Started by")
    def started(self, obj: BulkJob) -> str:
        return person(obj.started_by)


#: The four list actions: URL name, button label, what it does.
LIST_ACTIONS = [
    (
        "make_list",
        "Create a student list of all students assigned this fee",
        "A fixed list you can use for another fee or an export.",
    ),
    (
        BulkJob.Action.ASSIGN,
        BulkJob.Action.ASSIGN.label.replace("a list", "the list"),
        "Charges the fee to every student on the list today who does not have it yet.",
    ),
    (
        BulkJob.Action.REMOVE_UNPAID,
        BulkJob.Action.REMOVE_UNPAID.label,
        "Voids the fee for students who have paid nothing on it.",
    ),
    (
        BulkJob.Action.REMOVE_INACTIVE_UNPAID,
        BulkJob.Action.REMOVE_INACTIVE_UNPAID.label,
        "Voids the fee for withdrawn or graduated students who have paid nothing on it.",
    ),
]


def action_label(action: str) -> str:
    """The button label of a list action, as districts word it."""
    return next(label for name, label, _ in LIST_ACTIONS if name == action)


def assignment_stats(assignment: FeeAssignment) -> dict[str, Any]:
    stats = Fee.objects.filter(assignment=assignment).aggregate(
        live=Count("id", filter=~Q(status=Fee.Status.VOIDED)),
        paid=Count("id", filter=Q(status__in=[Fee.Status.PAID, Fee.Status.CLOSED])),
        owed=Coalesce(Sum("balance"), ZERO),
    )
    stats["on_list"] = student_list_students(student_list=assignment.student_list).count()
    stats["unpaid"] = unpaid_fees(assignment).count()
    stats["inactive_unpaid"] = unpaid_fees(assignment, inactive_only=True).count()
    return stats


class _FeeCounts(TypedDict):
    """What FeeAssignmentAdmin.get_queryset annotates each assignment with."""

    n_live: int
    n_paid: int


@admin.register(FeeAssignment)
class FeeAssignmentAdmin(NotFoundMixin, ActionPageMixin, admin.ModelAdmin[FeeAssignment]):
    Media = FeeSyncMedia
    change_form_template = "admin/fees/feeassignment/change_form.html"
    list_display = [
        "description",
        "student_list",
        "category_code",
        "amount",
        "fee_date_short",
        "due_date_short",
        "students_with_fee",
        "students_paid",
    ]
    list_select_related = ["student_list", "category"]
    list_filter = ["category"]
    search_fields = ["description", "student_list__name"]
    search_help_text = "Search by description or student list name."
    inlines = [BulkJobInline]
    fields = readonly_fields = (
        "description",
        "student_list",
        "category",
        "merchant_account",
        "amount",
        "fee_date",
        "due_date",
        "created_by_name",
        "created_at",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[FeeAssignment]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_live=Count("fees", filter=~Q(fees__status=Fee.Status.VOIDED)),
                n_paid=Count(
                    "fees", filter=Q(fees__status__in=[Fee.Status.PAID, Fee.Status.CLOSED])
                ),
            )
        )

    @admin.display(description="Category", ordering="category__code")
    def category_code(self, obj: FeeAssignment) -> str:
        return obj.category.code

    @admin.display(description="Fee date", ordering="fee_date")
    def fee_date_short(self, obj: FeeAssignment) -> str:
        return short_date(obj.fee_date)

    @admin.display(description="Due date", ordering="due_date")
    def due_date_short(self, obj: FeeAssignment) -> str:
        return short_date(obj.due_date)

    @admin.display(description="Students with this fee", ordering="n_live")
    def students_with_fee(self, obj: WithAnnotations[FeeAssignment, _FeeCounts]) -> int:
        return obj.n_live

    @admin.display(description="Paid in full", ordering="n_paid")
    def students_paid(self, obj: WithAnnotations[FeeAssignment, _FeeCounts]) -> int:
        return obj.n_paid

    @admin.display(description="Created by")
    def created_by_name(self, obj: FeeAssignment) -> str:
        return person(obj.created_by)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # An assignment is not edited once made; its page is where the list actions live.
        return False

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        assignment = self.get_object(request, unquote(object_id))
        extra = dict(extra_context or {})
        if assignment is not None:
            allowed = self._may_run_actions(request)
            extra["stats"] = assignment_stats(assignment)
            extra["list_actions"] = [
                (reverse(f"admin:fees_feeassignment_{name}", args=[assignment.pk]), label, help)
                for name, label, help in LIST_ACTIONS
                if allowed(name)
            ]
        return super().change_view(request, object_id, form_url, extra)

    def _may_run_actions(self, request: HttpRequest) -> Callable[[str], bool]:
        user = request.user

        def allowed(name: str) -> bool:
            if name == "make_list":
                return bool(user.has_perm("students.add_studentlist"))
            return can_post_money(user) and bool(user.has_perm("fees.add_bulkjob"))

        return allowed

    # --- creating an assignment: assignment_create ---

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and can_post_money(request.user)

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = AssignmentAddForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                assignment = assignment_create(
                    **form.cleaned_data, origin=Origin(user=staff_user(request))
                )
            except LedgerError as exc:
                form.add_error(None, exc)
            else:
                self.log_addition(request, assignment, [{"added": {}}])
                messages.success(
                    request,
                    f"Fee “{assignment.description}” ({dollars(assignment.amount)}) is ready "
                    f"for the list “{assignment.student_list}”. Nobody is charged yet: use "
                    "“Assign this fee to the students of the list” below.",
                )
                return HttpResponseRedirect(admin_url(assignment))
        return self.render_action_page(
            request,
            form=form,
            title="Fees for a list of students",
            submit_label="Save",
            cancel_url=reverse("admin:fees_feeassignment_changelist"),
            intro="Set up a fee for the students of a saved list. Nobody is charged until you "
            "assign it, on the next page.",
        )

    # --- the four list actions ---

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        urls = [
            path(
                "<path:object_id>/make-list/",
                view(self.make_list_view),
                name="fees_feeassignment_make_list",
            )
        ]
        for action in BulkJob.Action:
            urls.append(
                path(
                    f"<path:object_id>/{action.value.replace('_', '-')}/",
                    view(self.bulk_view),
                    {"action": action.value},
                    name=f"fees_feeassignment_{action.value}",
                )
            )
        return urls + super().get_urls()

    def _assignment_or_404(self, request: HttpRequest, object_id: str) -> FeeAssignment:
        if not self.has_view_permission(request):
            raise PermissionDenied
        assignment: FeeAssignment = object_or_404(
            FeeAssignment.objects.select_related("student_list", "category"),
            object_id,
            "fee assignment",
        )
        return assignment

    def _summary(self, assignment: FeeAssignment, stats: dict[str, Any]) -> list[tuple[str, Any]]:
        return [
            ("Fee", f"{assignment.description} ({dollars(assignment.amount)})"),
            ("Student list", assignment.student_list),
            ("Students on the list today", stats["on_list"]),
            ("Students with this fee", stats["live"]),
            ("Paid in full", stats["paid"]),
        ]

    def make_list_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        assignment = self._assignment_or_404(request, object_id)
        if not self._may_run_actions(request)("make_list"):
            raise PermissionDenied
        form = ListFromAssignmentForm(
            request.POST if request.method == "POST" else None,
            initial={"name": f"Assigned: {assignment.description}"[:120]},
        )
        if request.method == "POST" and form.is_valid():
            try:
                student_list = student_list_from_assignment(
                    assignment=assignment, name=form.cleaned_data["name"]
                )
            except LedgerError as exc:
                form.add_error("name", exc)
            else:
                count = student_list.students.count()
                messages.success(
                    request,
                    format_html(
                        'The list <a href="{}">{}</a> was created with {} student{}.',
                        admin_url(student_list),
                        student_list.name,
                        count,
                        "" if count == 1 else "s",
                    ),
                )
                return HttpResponseRedirect(admin_url(assignment))
        stats = assignment_stats(assignment)
        return self.render_action_page(
            request,
            form=form,
            obj=assignment,
            title=LIST_ACTIONS[0][1],
            submit_label="Create the list",
            cancel_url=admin_url(assignment),
            intro=f"A fixed list of the {stats['live']} students who have this fee now "
            "(voided fees not counted).",
            summary=self._summary(assignment, stats),
        )

    def bulk_view(self, request: HttpRequest, object_id: str, action: str) -> HttpResponse:
        assignment = self._assignment_or_404(request, object_id)
        if not self._may_run_actions(request)(action):
            raise PermissionDenied
        stats = assignment_stats(assignment)
        label = action_label(action)
        form = ConfirmForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                job = bulk_job_start(
                    assignment=assignment, action=action, origin=Origin(user=staff_user(request))
                )
            except LedgerError as exc:
                form.add_error(None, exc)
            else:
                # Straight to the job's own page, which follows it live until it is done.
                messages.success(request, f"“{label}” has started.")
                return HttpResponseRedirect(admin_url(job))
        list_name = assignment.student_list
        if action == BulkJob.Action.ASSIGN:
            intro = (
                f"Charge {dollars(assignment.amount)} to each of the {stats['on_list']} "
                f"students on the list “{list_name}” today. The {stats['live']} who already "
                "have this fee are not charged again."
            )
            if assignment.follows_activity:
                intro += " Students who join the activity later are charged automatically."
        elif action == BulkJob.Action.REMOVE_UNPAID:
            intro = (
                f"Void this fee for the {stats['unpaid']} students who have paid nothing on "
                "it. Students who paid something keep it."
            )
        else:
            intro = (
                f"Void this fee for the {stats['inactive_unpaid']} inactive students who have "
                "paid nothing on it."
            )
        return self.render_action_page(
            request,
            form=form,
            obj=assignment,
            title=label,
            submit_label="Yes, " + label[0].lower() + label[1:],
            cancel_url=admin_url(assignment),
            intro=intro,
            summary=self._summary(assignment, stats),
            danger=action != BulkJob.Action.ASSIGN,
        )


@admin.register(BulkJob)
class BulkJobAdmin(ReadOnlyAdmin):
    """Jobs started from a fee assignment's page; a job's own page shows its progress."""

    list_display = ["job", "assignment", "state", "progress", "changed", "created"]
    list_select_related = ["assignment", "assignment__student_list"]
    list_filter = ["state", "action"]
    search_fields = ["assignment__description"]
    search_help_text = "Search by the fee's description."

    @admin.display(description="Job", ordering="action")
    def job(self, obj: BulkJob) -> str:
        return action_label(obj.action)

    @admin.display(description="Progress")
    def progress(self, obj: BulkJob) -> str:
        return f"{obj.done} of {obj.total} ({obj.percent}%)"

    @admin.display(description="Started", ordering="created_at")
    def created(self, obj: BulkJob) -> str:
        return short_when(obj.created_at)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        job: BulkJob = object_or_404(
            BulkJob.objects.select_related("assignment__student_list", "started_by"),
            object_id,
            "job",
        )
        running = job.state in (BulkJob.State.QUEUED, BulkJob.State.RUNNING)
        context = {
            **self.admin_site.each_context(request),
            "title": action_label(job.action),
            "opts": self.opts,
            "original": job,
            "job": job,
            "running": running,
            "started_by": person(job.started_by),
            "assignment_url": admin_url(job.assignment),
        }
        return TemplateResponse(request, "admin/fees/bulkjob/progress.html", context)
