"""Admin pages: cashiering. The district admin keeps the cash drawers (and sets one aside
for a vendor's API user); a cashier opens a session at a drawer, takes payments in it (a
fee's "Take a payment" at a school with cashiering on goes through it), and closes it with
what was counted; a supervisor reconciles it. Sessions are never edited or deleted here:
each step is its own page calling `apps.accounting.services.cashiering`."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join

from apps.common.admin import (
    ActionPageMixin,
    FeeSyncMedia,
    NotFoundMixin,
    admin_url,
    object_or_404,
    short_when,
    staff_user,
)
from apps.fees.money import MoneyField

from ..models import CashDrawer, CashDrawerSession, EntryBooking, PaymentType
from ..services.cashiering import (
    CashieringError,
    may_reconcile,
    session_close,
    session_expected,
    session_open,
    session_reconcile,
)

ZERO = Decimal("0.00")


def _dollars(value: Any) -> str:
    amount = Decimal(str(value or 0))
    return f"−${-amount:,.2f}" if amount < 0 else f"${amount:,.2f}"


def _total(totals: dict[str, Any]) -> Decimal:
    return sum((Decimal(str(v)) for v in totals.values()), ZERO)


@admin.register(CashDrawer)
class CashDrawerAdmin(NotFoundMixin, admin.ModelAdmin[CashDrawer]):
    Media = FeeSyncMedia
    list_display = ["name", "school", "api_user", "active", "open_session"]
    list_filter = ["active", "school"]
    search_fields = ["name"]
    list_select_related = ["school", "api_user__user"]
    fields = ["school", "name", "api_user", "active"]

    @admin.display(description="open session")
    def open_session(self, obj: CashDrawer) -> str:
        session = obj.sessions.filter(status=CashDrawerSession.Status.OPEN).first()
        if session is None:
            return "—"
        return format_html(
            '<a href="{}">Session {} ({})</a>', admin_url(session), session.pk, session.cashier
        )


class OpenSessionForm(forms.Form):
    drawer = forms.ModelChoiceField(
        queryset=CashDrawer.objects.none(),
        label="Cash drawer",
        help_text="Drawers in use without an open session. A drawer set aside for a vendor "
        "opens a session for that vendor's API payments.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        busy = CashDrawerSession.objects.filter(
            drawer=OuterRef("pk"), status=CashDrawerSession.Status.OPEN
        )
        self.fields["drawer"].queryset = (  # type: ignore[attr-defined]
            CashDrawer.objects.filter(active=True)
            .exclude(Exists(busy))
            .select_related("school", "api_user__user")
        )


class CloseSessionForm(forms.Form):
    """What the cashier counted in the drawer, per payment type (empty: none)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for value, label in PaymentType.choices:
            self.fields[value] = MoneyField(
                label=f"{label} counted",
                required=False,
                allow_zero=True,
                help_text=f"Total {label.lower()} in the drawer, in dollars and cents; leave "
                "empty for none.",
            )

    def counted(self) -> dict[str, Decimal]:
        return {k: v for k, v in self.cleaned_data.items() if v}


class ReconcileForm(forms.Form):
    note = forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3, "class": "vLargeTextField"}),
        help_text="Required when counted differs from expected: say why (e.g. change given "
        "wrongly, a check counted twice).",
    )


@admin.register(CashDrawerSession)
class CashDrawerSessionAdmin(ActionPageMixin, NotFoundMixin, admin.ModelAdmin[CashDrawerSession]):
    Media = FeeSyncMedia
    list_display = [
        "__str__",
        "cashier",
        "status",
        "opened",
        "expected_total",
        "counted_total",
        "difference_shown",
    ]
    list_filter = ["status", "drawer__school", "drawer"]
    list_select_related = ["drawer__school", "cashier"]
    fields = (
        "drawer",
        "cashier",
        "vendor",
        "status",
        "opened",
        "closed",
        "totals",
        "difference_shown",
        "note",
        "reconciled",
        "payments",
        "next_step",
    )
    readonly_fields = fields

    # Sessions change only through their pages (open, close, reconcile).
    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/close/", view(self.close_view), name="accounting_session_close"),
            path(
                "<path:object_id>/reconcile/",
                view(self.reconcile_view),
                name="accounting_session_reconcile",
            ),
            *super().get_urls(),
        ]

    # --- shown ---

    @admin.display(description="vendor (API user)")
    def vendor(self, obj: CashDrawerSession) -> str:
        return str(obj.api_user) if obj.api_user_id else "None: an office session"

    @admin.display(description="opened", ordering="opened_at")
    def opened(self, obj: CashDrawerSession) -> str:
        return short_when(obj.opened_at)

    @admin.display(description="closed")
    def closed(self, obj: CashDrawerSession) -> str:
        return short_when(obj.closed_at)

    @admin.display(description="reconciled")
    def reconciled(self, obj: CashDrawerSession) -> str:
        if obj.reconciled_at is None:
            return "—"
        return f"{short_when(obj.reconciled_at)} by {obj.reconciled_by}"

    @admin.display(description="expected")
    def expected_total(self, obj: CashDrawerSession) -> str:
        if obj.status == CashDrawerSession.Status.OPEN:
            return _dollars(_total(session_expected(session=obj))) + " so far"
        return _dollars(_total(obj.expected))

    @admin.display(description="counted")
    def counted_total(self, obj: CashDrawerSession) -> str:
        return "—" if obj.status == CashDrawerSession.Status.OPEN else _dollars(_total(obj.counted))

    @admin.display(description="difference")
    def difference_shown(self, obj: CashDrawerSession) -> str:
        return "—" if obj.difference is None else _dollars(obj.difference)

    @admin.display(description="totals per payment type")
    def totals(self, obj: CashDrawerSession) -> str:
        expected = (
            session_expected(session=obj)
            if obj.status == CashDrawerSession.Status.OPEN
            else {k: Decimal(v) for k, v in obj.expected.items()}
        )
        counted = {k: Decimal(v) for k, v in obj.counted.items()}
        kinds = [(v, label) for v, label in PaymentType.choices if v in expected or v in counted]
        if not kinds:
            return "No payments yet."
        rows = format_html_join(
            "",
            "<tr><th scope='row'>{}</th><td>{}</td><td>{}</td></tr>",
            (
                (
                    label,
                    _dollars(expected.get(v)),
                    "—" if obj.status == "open" else _dollars(counted.get(v)),
                )
                for v, label in kinds
            ),
        )
        return format_html(
            "<table class='feesync-totals'><thead><tr><th scope='col'>Payment type</th>"
            "<th scope='col'>Expected</th><th scope='col'>Counted</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            rows,
        )

    @admin.display(description="payments in this session")
    def payments(self, obj: CashDrawerSession) -> str:
        bookings = (
            EntryBooking.objects.filter(cash_session=obj)
            .select_related("entry__student", "entry__fee")
            .order_by("entry_id")
        )
        if not bookings:
            return "None yet."
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                "<li>{} {} — {} ({})</li>",
                (
                    (
                        _dollars(b.entry.amount),
                        b.get_payment_type_display().lower(),
                        b.entry.student,
                        b.entry.fee.reference if b.entry.fee else "to the account",
                    )
                    for b in bookings
                ),
            ),
        )

    @admin.display(description="next step")
    def next_step(self, obj: CashDrawerSession) -> str:
        if obj.status == CashDrawerSession.Status.OPEN:
            return format_html(
                '<a class="button" href="{}">Close this session</a>',
                reverse("admin:accounting_session_close", args=[obj.pk]),
            )
        if obj.status == CashDrawerSession.Status.CLOSED:
            return format_html(
                '<a class="button" href="{}">Reconcile this session</a> (a supervisor)',
                reverse("admin:accounting_session_reconcile", args=[obj.pk]),
            )
        return "None: reconciled. The session takes no more payments."

    def get_queryset(self, request: HttpRequest) -> QuerySet[CashDrawerSession]:
        return super().get_queryset(request).select_related("drawer__school", "cashier")

    # --- open ---

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = OpenSessionForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            drawer = form.cleaned_data["drawer"]
            try:
                session = session_open(drawer=drawer, cashier=staff_user(request))
            except CashieringError as exc:
                form.add_error("drawer", exc.text)
            else:
                self.log_addition(request, session, "Opened")
                messages.success(
                    request,
                    f"Session {session.pk} opened at {drawer.name}: payments you take at "
                    f"{drawer.school.name} go into it until you close it.",
                )
                return HttpResponseRedirect(admin_url(session))
        return self.render_action_page(
            request,
            form=form,
            title="Open a cash drawer session",
            submit_label="Open the session",
            cancel_url=reverse("admin:accounting_cashdrawersession_changelist"),
            intro="You are the session's cashier: while it is open, the payments you take at "
            "the drawer's school go into it.",
        )

    # --- close ---

    def close_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        session = object_or_404(self.get_queryset(request), object_id, "cash drawer session")
        user = staff_user(request)
        if not (user.has_perm("accounting.change_cashdrawersession") or may_reconcile(user)):
            raise PermissionDenied
        if session.status != CashDrawerSession.Status.OPEN:
            status = session.get_status_display().lower()
            messages.info(request, f"Session {session.pk} is already {status}.")
            return HttpResponseRedirect(admin_url(session))
        form = CloseSessionForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                closed = session_close(session=session, counted=form.counted(), user=user)
            except CashieringError as exc:
                form.add_error(None, exc.text)
            else:
                self.log_change(request, closed, "Closed")
                messages.success(
                    request,
                    f"Session {closed.pk} closed with {_dollars(_total(closed.counted))} "
                    "counted; a supervisor reconciles it.",
                )
                return HttpResponseRedirect(admin_url(closed))
        return self.render_action_page(
            request,
            form=form,
            obj=session,
            title="Close the session",
            submit_label="Close the session",
            cancel_url=admin_url(session),
            summary=[
                ("Drawer", session.drawer),
                ("Cashier", session.cashier),
                ("Opened", short_when(session.opened_at)),
            ],
            intro="Count the drawer and enter what you counted per payment type. A closed "
            "session takes no more payments; a supervisor compares your count with what "
            "its payments say.",
        )

    # --- reconcile ---

    def reconcile_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        session = object_or_404(self.get_queryset(request), object_id, "cash drawer session")
        user = staff_user(request)
        if not may_reconcile(user):
            raise PermissionDenied
        if session.status != CashDrawerSession.Status.CLOSED:
            messages.info(
                request,
                f"Session {session.pk} is {session.get_status_display().lower()}: only a "
                "closed session can be reconciled.",
            )
            return HttpResponseRedirect(admin_url(session))
        form = ReconcileForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                done = session_reconcile(session=session, user=user, note=form.cleaned_data["note"])
            except CashieringError as exc:
                form.add_error("note", exc.text)
            else:
                self.log_change(request, done, "Reconciled")
                messages.success(
                    request,
                    f"Session {done.pk} reconciled; difference {_dollars(done.difference)}.",
                )
                return HttpResponseRedirect(admin_url(done))
        expected = _total(session_expected(session=session))
        counted = _total(session.counted)
        return self.render_action_page(
            request,
            form=form,
            obj=session,
            title="Reconcile the session",
            submit_label="Reconcile",
            cancel_url=admin_url(session),
            summary=[
                ("Drawer", session.drawer),
                ("Cashier", session.cashier),
                ("Expected", _dollars(expected)),
                ("Counted", _dollars(counted)),
                ("Difference (counted − expected)", _dollars(counted - expected)),
            ],
            intro="Expected is what the session's payments add up to. The difference is "
            "recorded with your note.",
        )
