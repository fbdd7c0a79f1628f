"""Cashiering: cash drawers and their sessions, and the bookings that put money in them.

A cashier opens a session at a drawer, takes payments in it (office payments in the admin,
a vendor's API payments naming the session), closes it with what was counted per payment
type, and a supervisor (a district admin) reconciles it: expected (what the session's
bookings say) against counted, the difference recorded with a note. A closed or reconciled
session takes nothing more.

Lock order: a payment posts its entry first (the ledger locks its fees), then locks its
session row (`session_lock_open`) to write the booking; closing locks the session row and
then reads the bookings. So a close never misses a payment that booked before it, and a
payment that reaches a session closed meanwhile is refused, rolling back its entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from apps.common.sql import insert, insert_then, prepared_cursor
from apps.fees.models import LedgerEntry
from apps.fees.services import to_money
from apps.students.models import School

from ..models import (
    Bank,
    BankAccount,
    CashDrawer,
    CashDrawerSession,
    EntryBooking,
    PaymentType,
    StudentAward,
)

ZERO = Decimal("0.00")

#: A payment's ledger method as the payment-type letter its booking carries.
METHOD_TYPES: dict[str, str] = {
    LedgerEntry.Method.CASH: PaymentType.CASH,
    LedgerEntry.Method.CHECK: PaymentType.CHECK,
    LedgerEntry.Method.CARD: PaymentType.CREDIT_CARD,
    LedgerEntry.Method.ONLINE: PaymentType.EFT,
}


def method_payment_type_sql(column: str) -> str:
    """`METHOD_TYPES` as an SQL expression over the method column `column` ('' for an entry
    without a payment method): how the daily close and the reports read an entry that has no
    booking, so that they and the bookings name a method's payments alike."""
    whens = " ".join(f"WHEN '{method}' THEN '{letter}'" for method, letter in METHOD_TYPES.items())
    return f"CASE {column} {whens} ELSE '' END"


class CashieringError(ValidationError):
    """A cashiering request refused, with the reason in a clerk's words. `prop` names the
    partner-API property it is about, when there is one."""

    def __init__(self, message: str, *, prop: str = "") -> None:
        super().__init__(message)
        self.prop = prop
        self.text = message


# --- reads -------------------------------------------------------------------------------------


def session_expected(*, session: CashDrawerSession) -> dict[str, Decimal]:
    """What the session's bookings add up to, per payment type (only the types it has)."""
    rows = (
        EntryBooking.objects.filter(cash_session=session)
        .values_list("payment_type")
        .annotate(total=Sum("entry__amount"))
        .order_by("payment_type")
    )
    return {ptype or PaymentType.OTHER: to_money(total) for ptype, total in rows}


def clerk_open_session(*, user: Any, school: School) -> CashDrawerSession | None:
    """The open session this staff user is the cashier of at a drawer of `school`."""
    if user is None or not getattr(user, "pk", None):
        return None
    return (
        CashDrawerSession.objects.select_related("drawer")
        .filter(
            cashier=user,
            status=CashDrawerSession.Status.OPEN,
            drawer__school=school,
            drawer__api_user__isnull=True,
        )
        .order_by("-opened_at")
        .first()
    )


def _totals_text(totals: Mapping[str, Any]) -> dict[str, str]:
    """Totals as stored (JSON text to the cent); a zero count is the same as none."""
    amounts = {k: to_money(v, label=f"Counted {k}", allow_zero=True) for k, v in totals.items()}
    return {k: f"{v:.2f}" for k, v in sorted(amounts.items()) if v != 0}


def _sum(totals: Mapping[str, Any]) -> Decimal:
    return sum((to_money(v, allow_zero=True) for v in totals.values()), ZERO)


# --- sessions ----------------------------------------------------------------------------------


def session_open(*, drawer: CashDrawer, cashier: Any, api_user: Any = None) -> CashDrawerSession:
    """Open a session at `drawer` for `cashier` (and, at a drawer set aside for a vendor,
    tied to its API user). A drawer has at most one open session."""
    if not drawer.active:
        raise CashieringError(f"Cash drawer {drawer.name} is not in use.", prop="CashDrawerId")
    if drawer.api_user_id is not None:
        api_user = api_user or drawer.api_user
        if api_user.pk != drawer.api_user_id:
            raise CashieringError(
                f"Cash drawer {drawer.name} is set aside for {drawer.api_user}; its sessions "
                "take that vendor's payments only."
            )
    elif api_user is not None:
        raise CashieringError(
            f"Cash drawer {drawer.name} is not set aside for a vendor; set it aside first."
        )
    try:
        with transaction.atomic():
            return CashDrawerSession.objects.create(
                drawer=drawer, cashier=cashier, api_user=api_user
            )
    except IntegrityError:
        raise CashieringError(
            f"Cash drawer {drawer.name} already has an open session: close it first."
        ) from None


def session_lock(session_id: int) -> CashDrawerSession:
    return CashDrawerSession.objects.select_for_update().select_related("drawer").get(pk=session_id)


def session_lock_open(session_id: int, *, prop: str = "CashDrawerSessionId") -> CashDrawerSession:
    """The session, locked until the caller's transaction ends, if it still takes payments."""
    session = session_lock(session_id)
    if session.status != CashDrawerSession.Status.OPEN:
        raise CashieringError(
            f"Cash drawer session {session.pk} is {session.get_status_display().lower()}: "
            "it takes no more payments.",
            prop=prop,
        )
    return session


def session_close(
    *, session: CashDrawerSession, counted: Mapping[str, Any], user: Any
) -> CashDrawerSession:
    """Close an open session with what was counted per payment type. What the bookings say
    is stored beside it as expected."""
    unknown = set(counted) - set(PaymentType.values)
    if unknown:
        raise CashieringError(f"Unknown payment types: {', '.join(sorted(unknown))}.")
    try:
        counted_text = _totals_text(counted)
    except ValidationError as exc:  # a negative or malformed count
        raise CashieringError("; ".join(exc.messages)) from None
    with transaction.atomic():
        locked = session_lock(session.pk)
        if locked.status != CashDrawerSession.Status.OPEN:
            raise CashieringError(
                f"Session {locked.pk} is already {locked.get_status_display().lower()}."
            )
        if not _may_close(user, locked):
            raise CashieringError(
                f"Only the session's cashier ({locked.cashier}) or a supervisor may close it."
            )
        locked.counted = counted_text
        locked.expected = _totals_text(session_expected(session=locked))
        locked.status = CashDrawerSession.Status.CLOSED
        locked.closed_at = timezone.now()
        locked.save(update_fields=["counted", "expected", "status", "closed_at"])
    return locked


def _may_close(user: Any, session: CashDrawerSession) -> bool:
    return bool(user.pk == session.cashier_id or may_reconcile(user))


def may_reconcile(user: Any) -> bool:
    """Supervisors reconcile: the district admin (who holds every permission)."""
    return bool(user.has_perm("accounting.reconcile_cashdrawersession"))


def session_reconcile(*, session: CashDrawerSession, user: Any, note: str) -> CashDrawerSession:
    """A supervisor reconciles a closed session: expected (recomputed from its bookings)
    against counted; the difference (counted minus expected) is recorded, with a note that
    is required whenever there is one."""
    if not may_reconcile(user):
        raise CashieringError("Only a supervisor (a district admin) may reconcile a session.")
    note = note.strip()
    with transaction.atomic():
        locked = session_lock(session.pk)
        if locked.status != CashDrawerSession.Status.CLOSED:
            raise CashieringError(
                f"Session {locked.pk} is {locked.get_status_display().lower()}: only a closed "
                "session can be reconciled."
            )
        expected = session_expected(session=locked)
        difference = _sum(locked.counted) - _sum(expected)
        if difference != 0 and not note:
            raise CashieringError(
                f"Counted differs from expected by ${difference:.2f}: say why in the note."
            )
        locked.expected = _totals_text(expected)
        locked.difference = difference
        locked.note = note
        locked.status = CashDrawerSession.Status.RECONCILED
        locked.reconciled_at = timezone.now()
        locked.reconciled_by = user
        locked.save(
            update_fields=[
                "expected",
                "difference",
                "note",
                "status",
                "reconciled_at",
                "reconciled_by",
            ]
        )
    return locked


# --- bookings ----------------------------------------------------------------------------------


def bank_account_sql(merchant_account: str, school: str) -> str:
    """The subquery for the bank account a merchant account deposits into at a school: the
    first active one (several banks at a school may each hold an account for it). The
    arguments are SQL expressions (a `%s` placeholder or a subquery), so that the partner
    API's hot path can fold the lookup into the statement that writes the booking."""
    accounts = BankAccount._meta.db_table
    banks = Bank._meta.db_table
    return (
        f"SELECT ba.id FROM {accounts} ba JOIN {banks} b ON b.id = ba.bank_id "  # noqa: S608 - our tables; values are the caller's placeholders
        f"WHERE ba.merchant_account_id = ({merchant_account}) AND b.school_id = ({school}) "
        "AND ba.active ORDER BY ba.id LIMIT 1"
    )


def bank_account_at_school(*, merchant_account_id: int | None, school_id: int) -> int | None:
    """The id of the bank account `merchant_account_id` deposits into at the school (None
    when the district keeps none there): where the day's deposits of its payments land."""
    if merchant_account_id is None:
        return None
    with prepared_cursor() as cursor:
        cursor.execute(bank_account_sql("%s", "%s"), [merchant_account_id, school_id])
        row = cursor.fetchone()
    return row[0] if row else None


def booking_write(
    *,
    entry: LedgerEntry,
    business_date: date,
    payment_type: str,
    bank_account: BankAccount | None = None,
    cash_session: CashDrawerSession | None = None,
    student_award: StudentAward | None = None,
    bank_account_id: int | None = None,
) -> EntryBooking:
    """What the daily close needs about an entry, written once with it (in its transaction).
    A session given must be locked open by the caller (`session_lock_open`). Written by
    plain SQL (`apps.common.sql.insert`): nothing listens to a booking's save, and it is on
    every partner payment's path."""
    if student_award is not None and student_award.student_id != entry.student_id:
        # The award names another student: a bug in the caller, never the vendor's input.
        raise CashieringError("The student award is another student's.", prop="FundSourceId")
    booking = EntryBooking(
        entry=entry,
        business_date=business_date,
        payment_type=payment_type,
        bank_account=bank_account,
        cash_session=cash_session,
        student_award=student_award,
    )
    if bank_account is None and bank_account_id is not None:
        booking.bank_account_id = bank_account_id
    insert(booking)
    return booking


def booking_with(
    first: Any,
    *,
    business_date: date,
    payment_type: str,
    integration_id: int,
    school_id: int,
    cash_session: CashDrawerSession | None,
) -> None:
    """Write `first` (a row keyed by the ledger entry, e.g. the partner API's posting) and
    the entry's booking in one statement (`insert_then`): the bank account is the one the
    integration's first merchant account deposits into at the school, looked up inside the
    statement. The partner API's payment path (hundreds a second) saves two round trips."""
    from apps.vendors.models import MerchantAccountMapping

    mappings = MerchantAccountMapping._meta.db_table
    first_merchant = (
        f"SELECT merchant_account_id FROM {mappings} WHERE integration_id = %s "  # noqa: S608 - our table, value bound
        "ORDER BY id LIMIT 1"
    )
    columns = [
        str(EntryBooking._meta.get_field(name).column)  # type: ignore[union-attr]
        for name in ("entry", "business_date", "payment_type", "bank_account", "cash_session")
    ]
    insert_then(
        first,
        f"INSERT INTO {EntryBooking._meta.db_table} ({', '.join(columns)}) "  # noqa: S608 - our table and columns, values bound
        f"VALUES ({{key}}, %s, %s, ({bank_account_sql(first_merchant, '%s')}), %s)",
        [
            business_date,
            payment_type,
            integration_id,
            school_id,
            cash_session.pk if cash_session is not None else None,
        ],
    )


def office_payment_session(*, user: Any, school: School) -> CashDrawerSession | None:
    """The session an office payment at `school` goes through: none when the school does
    not take payments at cash drawers; the clerk's open session when it does (refused with
    what to do when the clerk has none)."""
    if not school.cashiering:
        return None
    session = clerk_open_session(user=user, school=school)
    if session is None:
        raise CashieringError(
            f"{school.name} takes payments at cash drawers and you have no open cash drawer "
            "session there: open one (Business office › Cash drawer sessions › Open a "
            "session) and take the payment again."
        )
    return session


def office_payment_book(
    *, entry: LedgerEntry, session: CashDrawerSession | None, business_date: date | None = None
) -> EntryBooking | None:
    """Book an office payment (already posted in this transaction), into its session when
    there is one. A session closed since the page was opened refuses it (rolling it back)."""
    if EntryBooking.objects.filter(entry=entry).exists():  # a repeat of the same form
        return None
    locked = session_lock_open(session.pk, prop="") if session is not None else None
    # The deposit lands where the fee's merchant account deposits at the student's school.
    bank_account_id = (
        bank_account_at_school(
            merchant_account_id=entry.fee.merchant_account_id, school_id=entry.student.school_id
        )
        if entry.fee is not None
        else None
    )
    return booking_write(
        entry=entry,
        business_date=business_date or timezone.localdate(),
        payment_type=METHOD_TYPES.get(entry.method, PaymentType.OTHER),
        bank_account_id=bank_account_id,
        cash_session=locked,
    )


# --- the partner API's cashiering properties ---------------------------------------------------


@dataclass
class ApiCash:
    """What a partner's payment named of cashiering, checked against the real drawers and
    sessions: the drawer, the session it books into (None: no session), the cashier, and
    one {property, detail} per thing wrong."""

    drawer: CashDrawer | None = None
    session: CashDrawerSession | None = None
    cashier: Any = None
    errors: list[dict[str, str]] = field(default_factory=list)

    def refuse(self, prop: str, detail: str) -> None:
        self.errors.append({"property": prop, "detail": detail})


def api_cash_check(
    *,
    api_user: Any,
    school: School | None,
    drawer_id: int | None,
    session_id: int | None,
    cashier_id: int | None,
    session_required: bool,
) -> ApiCash:
    """Check a partner payment's CashDrawerId, CashDrawerSessionId and CashierUserId.

    When `school` takes payments at cash drawers the drawer is required, and the session
    (with `session_required`, as PostAccountTransactionPayment: all three properties are
    required) or else an open session at the drawer tied to the API user or whose cashier
    is CashierUserId. A session must be open (a closed or reconciled one takes nothing),
    at the named drawer, and tied to this API user or have CashierUserId as its cashier.
    Whatever is given is checked even when the school does not require it."""
    from django.contrib.auth import get_user_model

    out = ApiCash()
    cashiering = bool(school is not None and school.cashiering)
    where = school.name if school is not None else "The school"
    if cashier_id is not None:
        out.cashier = (
            get_user_model().objects.filter(pk=cashier_id, is_staff=True, is_active=True).first()
        )
        if out.cashier is None:
            out.refuse("CashierUserId", f"No active staff user has the id {cashier_id}.")
    if drawer_id is not None:
        out.drawer = CashDrawer.objects.select_related("school").filter(pk=drawer_id).first()
        if out.drawer is None:
            out.refuse("CashDrawerId", f"No cash drawer has the id {drawer_id}.")
        elif not out.drawer.active:
            out.refuse("CashDrawerId", f"Cash drawer {drawer_id} is not in use.")
        elif school is not None and out.drawer.school_id != school.pk:
            out.refuse(
                "CashDrawerId",
                f"Cash drawer {drawer_id} is at {out.drawer.school.name}, not at {school.name}.",
            )
    elif cashiering:
        out.refuse(
            "CashDrawerId", f"{where} takes payments at cash drawers: CashDrawerId is required."
        )
    if session_id is not None:
        out.session = (
            CashDrawerSession.objects.select_related("drawer__school").filter(pk=session_id).first()
        )
        if out.session is None:
            out.refuse("CashDrawerSessionId", f"No cash drawer session has the id {session_id}.")
        elif out.session.status != CashDrawerSession.Status.OPEN:
            out.refuse(
                "CashDrawerSessionId",
                f"Cash drawer session {session_id} is "
                f"{out.session.get_status_display().lower()}: it takes no more payments.",
            )
        elif drawer_id is not None and out.session.drawer_id != drawer_id:
            out.refuse(
                "CashDrawerSessionId",
                f"Cash drawer session {session_id} is not at cash drawer {drawer_id}.",
            )
        elif school is not None and out.session.drawer.school_id != school.pk:
            out.refuse(
                "CashDrawerSessionId",
                f"Cash drawer session {session_id} is at {out.session.drawer.school.name}, "
                f"not at {school.name}.",
            )
    elif cashiering and session_required:
        out.refuse(
            "CashDrawerSessionId",
            f"{where} takes payments at cash drawers: CashDrawerSessionId is required.",
        )
    if cashiering and session_required and cashier_id is None:
        out.refuse(
            "CashierUserId", f"{where} takes payments at cash drawers: CashierUserId is required."
        )
    if out.session is None and session_id is None and out.drawer is not None and not out.errors:
        # Part 1's rule: the drawer's open session tied to this API user, else CashierUserId's.
        open_ = CashDrawerSession.objects.filter(
            drawer=out.drawer, status=CashDrawerSession.Status.OPEN
        )
        out.session = open_.filter(api_user=api_user).first()
        if out.session is None and out.cashier is not None:
            out.session = open_.filter(cashier=out.cashier).first()
        if out.session is None and cashiering:
            out.refuse(
                "CashierUserId",
                f"Cash drawer {drawer_id} has no open session tied to this API user"
                + (
                    f" or with cashier {cashier_id}: open one first."
                    if cashier_id is not None
                    else ": CashierUserId (the cashier of an open session there) is required."
                ),
            )
    elif out.session is not None and not out.errors:
        tied = out.session.api_user_id == api_user.pk
        own = out.cashier is not None and out.session.cashier_id == out.cashier.pk
        if not (tied or own):
            out.refuse(
                "CashDrawerSessionId",
                f"Cash drawer session {out.session.pk} is not tied to this API user"
                + (
                    f" and its cashier is not user {cashier_id}."
                    if cashier_id is not None
                    else "; name its cashier with CashierUserId."
                ),
            )
    elif cashiering and drawer_id is None and cashier_id is None and not session_required:
        out.refuse(
            "CashierUserId",
            "This API user has no open cash drawer session: CashierUserId is required.",
        )
    return out
