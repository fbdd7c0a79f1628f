"""The ledger's core: every posting of money on a fee goes through these services.

Each service is one atomic action: it locks the fee it changes (`SELECT ... FOR UPDATE`),
checks the request against what the ledger says now, posts append-only entries with their
allocations, brings the fee's `amount`, `balance`, `status` and `version` in step, and
announces the change with the `fee_changed` signal inside the same transaction (the sync
engine writes its outbox row from it, so a vendor can never miss a committed change).

Bad input raises `LedgerError` (a `ValidationError`) whose message a fees clerk can read;
nothing is written when it does.

Money from outside FeeSync does not call these directly: it enters through the one door,
`outside.movements_record`, which uses the private `_payment_take`, `_fee_waive`,
`_payment_refund` and `_credit_reverse` below to tell a new posting from a repeat.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import F, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.dispatch import Signal
from django.utils import timezone

from apps.accounts.models import MerchantAccount
from apps.categories.models import FeeCategory
from apps.common.sql import insert, prepared_cursor
from apps.students.models import Student

from ..models import (
    ZERO,
    Allocation,
    Fee,
    FeeAssignment,
    LedgerEntry,
    StudentCredit,
)
from ..money import CENT, MAX_MONEY, MoneyError, parse_money

#: Sent inside the transaction of every change a vendor must see.
#: kwargs: `fee_ids` (list[int]), `reason` (str: created, changed, paid, waived, refunded,
#: voided, reversed, closed), `external_source` (who outside FeeSync caused it, e.g.
#: "integration:3", or ""; that integration already knows and need not be told back).
fee_changed = Signal()

Kind = LedgerEntry.Kind
MAX_AMOUNT = MAX_MONEY
#: Rows per INSERT in the set-wise services (bulk.py, outside.py).
BATCH = 2000


class LedgerError(ValidationError):
    """A request the ledger refuses, with the reason in a clerk's words."""


#: An amount as a caller hands it over, before `to_money` checks it: a Decimal from a form,
#: the text of a file or a vendor's answer, or a whole number of dollars.
MoneyInput = Decimal | str | int


@dataclass(frozen=True)
class Origin:
    """Who is moving money. Staff pages pass `Origin(user=staff_user(request))` (from
    apps.common.admin); a vendor, the partner API or a file drop pass their source and their
    own transaction id, which makes the posting idempotent: the same (external_source,
    external_id) is recorded once."""

    user: AbstractBaseUser | None = None
    source: str = LedgerEntry.Source.STAFF
    external_source: str = ""
    external_id: str = ""

    def entry_fields(self) -> dict[str, Any]:
        return {
            "created_by": self.user if self.user is not None and self.user.pk else None,
            "source": self.source,
            "external_source": self.external_source,
            "external_id": self.external_id,
        }


# --- validation helpers -------------------------------------------------------------------


def to_money(value: object, *, label: str = "Amount", allow_zero: bool = False) -> Decimal:
    """An amount for the ledger, read by the one strict parser (`apps.fees.money`): to the
    cent, never negative, never a float. Refused as a `LedgerError` naming the value."""
    try:
        return parse_money(value, label=label, allow_zero=allow_zero)
    except MoneyError as exc:
        raise LedgerError(exc.message) from None


def date_in_window(value: date, *, label: str) -> date:
    """A date staff or a setup typed, within FEESYNC_DATE_WINDOW_YEARS of today either way:
    a fee dated 2206 or 1926 is a typo, and once sent to a vendor it is hard to take back."""
    years = settings.FEESYNC_DATE_WINDOW_YEARS
    today = timezone.localdate()
    earliest, latest = _years_from(today, -years), _years_from(today, years)
    if not earliest <= value <= latest:
        when = "ago" if value < earliest else "ahead"
        raise LedgerError(
            f"{label} {value:%m/%d/%Y} is more than {years} years {when}; FeeSync takes "
            f"dates from {earliest:%m/%d/%Y} to {latest:%m/%d/%Y}."
        )
    return value


def _years_from(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # February 29th in a year that has none
        return day.replace(year=day.year + years, day=28)


def _require(text: str, label: str) -> str:
    text = (text or "").strip()
    if not text:
        raise LedgerError(f"{label} is required.")
    return text


def _check_dates(fee_date: date, due_date: date | None) -> None:
    date_in_window(fee_date, label="The fee date")
    if due_date is not None:
        date_in_window(due_date, label="The due date")
        if due_date < fee_date:
            raise LedgerError("The due date cannot be before the fee date.")


def _check_category_and_account(category: FeeCategory, merchant_account: MerchantAccount) -> None:
    if not category.active:
        raise LedgerError(f"The fee category {category.code} is inactive; pick an active one.")
    if not merchant_account.active:
        raise LedgerError(f"The merchant account {merchant_account.name} is inactive.")


# --- internals ------------------------------------------------------------------------------


def _lock(fee: Fee) -> Fee:
    return Fee.objects.select_for_update().get(pk=fee.pk)


def _existing_external(origin: Origin) -> LedgerEntry | None:
    if not origin.external_id:
        return None
    return LedgerEntry.objects.filter(
        external_source=origin.external_source, external_id=origin.external_id
    ).first()


class _AlreadyRecorded(Exception):
    """This (external_source, external_id) is on the ledger already; `entry` is the posting
    recorded first (by an earlier call, or by a concurrent one that won the race). The
    public services return it; the one door reports it as already recorded."""

    def __init__(self, entry: LedgerEntry) -> None:
        super().__init__(entry.pk)
        self.entry = entry


def _refuse_repeat(origin: Origin) -> None:
    """Call with the fee locked: a concurrent posting of the same id has committed by then."""
    if (existing := _existing_external(origin)) is not None:
        raise _AlreadyRecorded(existing)


def _post(*, fee: Fee, kind: str, amount: Decimal, origin: Origin, **extra: Any) -> LedgerEntry:
    try:
        with transaction.atomic():
            return LedgerEntry.objects.create(
                student_id=fee.student_id,
                fee=fee,
                kind=kind,
                amount=amount,
                **origin.entry_fields(),
                **extra,
            )
    except IntegrityError as exc:
        # Two pulls racing on the same vendor transaction: the other one recorded it first.
        if origin.external_id and (existing := _existing_external(origin)) is not None:
            raise _AlreadyRecorded(existing) from exc
        raise


def _outstanding_debits(fee: Fee) -> list[tuple[LedgerEntry, Decimal]]:
    """The fee's debit entries with what is still unsettled on each, oldest first."""
    debits = (
        LedgerEntry.objects.filter(fee=fee, kind__in=LedgerEntry.DEBIT_KINDS)
        .annotate(applied=Coalesce(Sum("allocations_in__amount"), ZERO))
        .order_by("id")
    )
    return [(d, d.amount - d.applied) for d in debits if d.amount - d.applied > 0]


def _apply(credit: LedgerEntry, fee: Fee, amount: Decimal, *, manual: bool = False) -> None:
    """Allocate `amount` of `credit` to the fee's unsettled debits, oldest first."""
    left = amount
    rows = []
    for debit, open_ in _outstanding_debits(fee):
        take = min(open_, left)
        rows.append(Allocation(credit=credit, debit=debit, amount=take, manual=manual))
        left -= take
        if left == 0:
            break
    if left != 0:  # The caller checked the balance under lock; this is a broken invariant.
        raise LedgerError("The fee's entries do not add up; run ledger_check.")
    Allocation.objects.bulk_create(rows)


# --- the student's credit ---------------------------------------------------------------------
# Lock order, everywhere: the fees first (in id order when there are several), then the
# student's credit row. Every path that touches both follows it, so none waits on another
# in a circle.

#: Where money comes from that was taken before FeeSync heard of it: never refused for being
#: more than a fee owes (the rest is the student's credit). Staff at the office are refused.
TAKEN_OUTSIDE = frozenset(
    {LedgerEntry.Source.VENDOR, LedgerEntry.Source.PARTNER_API, LedgerEntry.Source.FILE_DROP}
)


def _credit_account(student_id: int) -> StudentCredit:
    """The student's credit row, locked (created at nothing the first time)."""
    account, _ = StudentCredit.objects.select_for_update().get_or_create(student_id=student_id)
    return account


def _credit_change(account: StudentCredit, delta: Decimal) -> None:
    """Move the student's credit by `delta`; the entries and allocations are posted already."""
    before = account.amount
    account.amount = (before + delta).quantize(CENT)
    if account.amount < 0:  # every caller checked under the same lock
        raise LedgerError("The student's credit does not add up; run ledger_check.")
    if before == 0 and account.amount > 0:
        account.since = timezone.now()
    elif account.amount == 0:
        account.since = None
    account.save(update_fields=["amount", "since", "updated_at"])


def unallocated(entry: LedgerEntry) -> Decimal:
    """What of this credit entry no charge has taken: for a payment, the student's credit."""
    taken: Decimal = entry.allocations_out.aggregate(s=Coalesce(Sum("amount"), ZERO))["s"]
    return (entry.amount - taken).quantize(CENT)


def credit_entries(*, student: Student | int | None) -> QuerySet[LedgerEntry]:
    """The student's payment entries with credit left on them, oldest first, each annotated
    with `spare`: what of it no charge or refund has taken. (`student=None`: everyone's.)"""
    entries = LedgerEntry.objects.filter(kind=Kind.PAYMENT)
    if student is not None:
        entries = entries.filter(student_id=student if isinstance(student, int) else student.pk)
    return (
        entries.annotate(spare=F("amount") - Coalesce(Sum("allocations_out__amount"), ZERO))
        .filter(spare__gt=0)
        .order_by("created_at", "id")
    )


def auto_credit_entries(*, student_id: int) -> QuerySet[LedgerEntry]:
    """`credit_entries` that automatic application may draw on: not those applied by hand
    (a partner's or a clerk's explicit application sets the manual-apply flag)."""
    return credit_entries(student=student_id).filter(manual_apply__isnull=True)


def auto_available(student_id: int) -> Decimal:
    """The part of the student's credit automatic application may use."""
    return sum((e.spare for e in auto_credit_entries(student_id=student_id)), ZERO)  # type: ignore[attr-defined]


def _drawn(
    student_id: int,
    amount: Decimal,
    credit_entry: LedgerEntry | None,
    *,
    automatic: bool = False,
) -> list[tuple[LedgerEntry, Decimal]]:
    """Which credit entries give `amount`, and how much each: the given one, or the oldest
    (only those not applied by hand, when `automatic`)."""
    entries: Iterable[LedgerEntry] = (
        auto_credit_entries(student_id=student_id)
        if automatic
        else credit_entries(student=student_id)
    )
    if credit_entry is not None:
        entries = [e for e in entries if e.pk == credit_entry.pk]
        if not entries:
            raise LedgerError("That payment has no credit left on it.")
    left = amount
    out: list[tuple[LedgerEntry, Decimal]] = []
    for entry in entries:
        take = min(entry.spare, left)  # type: ignore[attr-defined]
        out.append((entry, take))
        left -= take
        if left == 0:
            return out
    raise LedgerError(  # the caller compared with the credit row under lock
        f"${amount} is more than the credit those payments hold; run ledger_check."
    )


def _apply_to_fee(
    *,
    account: StudentCredit,
    fee: Fee,
    amount: Decimal,
    origin: Origin,
    manual: bool,
    credit_entry: LedgerEntry | None = None,
) -> None:
    """Allocate `amount` of the student's credit to `fee` (both locked by the caller)."""
    debits = _outstanding_debits(fee)
    rows: list[Allocation] = []
    for entry, take in _drawn(
        fee.student_id, amount, credit_entry, automatic=not manual and credit_entry is None
    ):
        while take > 0:
            if not debits:  # the caller compared with the fee's balance under lock
                raise LedgerError("The fee's entries do not add up; run ledger_check.")
            debit, open_ = debits[0]
            part = min(open_, take)
            rows.append(Allocation(credit=entry, debit=debit, amount=part, manual=manual))
            take -= part
            if part == open_:
                debits.pop(0)
            else:
                debits[0] = (debit, open_ - part)
    Allocation.objects.bulk_create(rows)
    _credit_change(account, -amount)
    _settle(fee, origin=origin, reason="paid", balance_delta=-amount)


def credit_kind_totals(fee: Fee) -> dict[str, Decimal]:
    """Net credit per kind on this fee (payments net of refunds and reversals, and so on)."""
    applied = dict(
        Allocation.objects.filter(debit__fee=fee)
        .values_list("credit__kind")
        .annotate(s=Sum("amount"))
        .values_list("credit__kind", "s")
    )
    given_back = dict(
        LedgerEntry.objects.filter(fee=fee, kind__in=[Kind.REFUND, Kind.REVERSAL])
        .values_list("reverses__kind")
        .annotate(s=Sum("amount"))
        .values_list("reverses__kind", "s")
    )
    return {
        kind: (applied.get(kind, ZERO) - given_back.get(kind, ZERO)).quantize(CENT)
        for kind in LedgerEntry.CREDIT_KINDS
    }


def _status_for(fee: Fee, totals: dict[str, Decimal]) -> str:
    if fee.balance > 0:
        return Fee.Status.OPEN
    if totals[Kind.VOID] > 0:
        return Fee.Status.VOIDED
    if totals[Kind.SETTLEMENT] > 0:
        return Fee.Status.CLOSED
    if totals[Kind.PAYMENT] > 0:
        return Fee.Status.PAID
    if totals[Kind.WAIVER] > 0:
        return Fee.Status.WAIVED
    return Fee.Status.PAID


def _settle(
    fee: Fee,
    *,
    reason: str,
    balance_delta: Decimal,
    origin: Origin,
    amount_delta: Decimal = ZERO,
    lock_amount: bool = False,
) -> Fee:
    """Save the fee's new totals and status, raise its version, tell the sync engine."""
    fee.balance += balance_delta
    fee.amount += amount_delta
    fee.status = _status_for(fee, credit_kind_totals(fee))
    fee.version += 1
    if lock_amount:
        fee.amount_locked = True
    fee.save(
        update_fields=["balance", "amount", "status", "version", "amount_locked", "updated_at"]
    )
    fee_changed.send(
        sender=Fee, fee_ids=[fee.pk], reason=reason, external_source=origin.external_source
    )
    return fee


def _credit(
    *,
    fee: Fee,
    kind: str,
    amount: Decimal,
    origin: Origin,
    reason_label: str,
    lock_amount: bool = False,
    **extra: Any,
) -> LedgerEntry:
    entry = _post(fee=fee, kind=kind, amount=amount, origin=origin, **extra)
    _apply(entry, fee, amount)
    _settle(fee, origin=origin, reason=reason_label, balance_delta=-amount, lock_amount=lock_amount)
    return entry


# --- fees -------------------------------------------------------------------------------------


@transaction.atomic
def fee_create(
    *,
    student: Student,
    category: FeeCategory,
    merchant_account: MerchantAccount,
    description: str,
    amount: MoneyInput,
    fee_date: date,
    due_date: date | None = None,
    origin: Origin | None = None,
    assignment: FeeAssignment | None = None,
) -> Fee:
    """Charge one student a fee: the fee and its charge entry, announced to vendors."""
    origin = origin or Origin()
    amount = to_money(amount)
    description = _require(description, "Description")
    _check_category_and_account(category, merchant_account)
    if assignment is None:
        # An assignment's dates were checked when it was made; a student joining its
        # activity years later is still charged as it says.
        _check_dates(fee_date, due_date)
    elif due_date and due_date < fee_date:
        raise LedgerError("The due date cannot be before the fee date.")
    fee = Fee.objects.create(
        student=student,
        category=category,
        merchant_account=merchant_account,
        assignment=assignment,
        description=description,
        amount=amount,
        balance=amount,
        fee_date=fee_date,
        due_date=due_date,
        created_by=origin.entry_fields()["created_by"],
    )
    LedgerEntry.objects.create(
        student=student,
        fee=fee,
        kind=Kind.CHARGE,
        amount=amount,
        reason=description,
        **origin.entry_fields(),
    )
    fee_changed.send(
        sender=Fee, fee_ids=[fee.pk], reason="created", external_source=origin.external_source
    )
    if settings.FEESYNC_AUTO_APPLY_CREDIT:
        # Credit waiting on the account (no fee was open when it came) pays the new fee.
        # The new row is this transaction's own, so the lock order (fee, then credit) holds.
        account = StudentCredit.objects.filter(student_id=student.pk, amount__gt=0).first()
        if account is not None:
            account = _credit_account(student.pk)
            available = min(account.amount, auto_available(student.pk))
            if (take := min(available, fee.balance)) > 0:
                _apply_to_fee(account=account, fee=fee, amount=take, origin=origin, manual=False)
    return fee


@transaction.atomic
def fee_change(
    *,
    fee: Fee,
    origin: Origin,
    amount: MoneyInput | None = None,
    description: str | None = None,
    due_date: date | None = None,
    reason: str = "",
) -> Fee:
    """Change a fee's amount (by an adjustment entry), description or due date."""
    fee = _lock(fee)
    changed = False
    if description is not None and description.strip() != fee.description:
        fee.description = _require(description, "Description")
        changed = True
    if due_date is not None and due_date != fee.due_date:
        date_in_window(due_date, label="The due date")
        if due_date < fee.fee_date:
            raise LedgerError("The due date cannot be before the fee date.")
        fee.due_date = due_date
        changed = True
    if changed:
        fee.save(update_fields=["description", "due_date", "updated_at"])
    if amount is not None:
        new_amount = to_money(amount)
        if new_amount != fee.amount:
            _change_amount(fee, new_amount, origin, reason)
            return fee
    if changed:
        fee.version += 1
        fee.save(update_fields=["version"])
        fee_changed.send(
            sender=Fee, fee_ids=[fee.pk], reason="changed", external_source=origin.external_source
        )
    return fee


def _change_amount(fee: Fee, new_amount: Decimal, origin: Origin, reason: str) -> None:
    if fee.amount_locked:
        raise LedgerError(
            "The amount of this fee cannot change: a payment vendor has already taken a "
            "payment on it. Waive or refund instead."
        )
    if fee.status in (Fee.Status.VOIDED, Fee.Status.WAIVED, Fee.Status.CLOSED):
        raise LedgerError(f"This fee is {fee.get_status_display().lower()}; its amount is final.")
    delta = new_amount - fee.amount
    why = reason or f"Amount changed from ${fee.amount} to ${new_amount}"
    if delta > 0:
        _post(fee=fee, kind=Kind.DEBIT_ADJUSTMENT, amount=delta, origin=origin, reason=why)
        _settle(fee, origin=origin, reason="changed", balance_delta=delta, amount_delta=delta)
        return
    cut = -delta
    if cut > fee.balance:
        raise LedgerError(
            f"The amount cannot go below what has already been paid or waived "
            f"(${fee.amount - fee.balance}). Refund first, then lower the amount."
        )
    if new_amount == 0:
        raise LedgerError("A fee cannot be lowered to $0.00; void it instead.")
    entry = _post(fee=fee, kind=Kind.CREDIT_ADJUSTMENT, amount=cut, origin=origin, reason=why)
    _apply(entry, fee, cut)
    _settle(fee, origin=origin, reason="changed", balance_delta=-cut, amount_delta=-cut)


# --- money in -------------------------------------------------------------------------------


@transaction.atomic
def payment_take(
    *,
    fee: Fee,
    amount: MoneyInput,
    method: str,
    origin: Origin,
    check_number: str = "",
    note: str = "",
    closed: bool = False,
) -> LedgerEntry:
    """Record a payment on a fee (at the district office, from a vendor, the partner API or
    a file drop). Idempotent by `origin.external_id`: a repeat returns the first entry.
    `closed=True` (vendors only) settles what is left on the fee, for free or reduced price
    handled at the vendor."""
    try:
        return _payment_take(
            fee=fee,
            amount=amount,
            method=method,
            origin=origin,
            check_number=check_number,
            note=note,
            closed=closed,
        )
    except _AlreadyRecorded as done:
        return done.entry


def _payment_take(
    *,
    fee: Fee,
    amount: MoneyInput,
    method: str,
    origin: Origin,
    check_number: str = "",
    note: str = "",
    closed: bool = False,
) -> LedgerEntry:
    """`payment_take` inside the caller's transaction; a repeat raises `_AlreadyRecorded`."""
    amount = to_money(amount)
    if method not in LedgerEntry.Method.values:
        raise LedgerError(f"“{method}” is not a payment method FeeSync knows.")
    check_number = (check_number or "").strip()
    if method == LedgerEntry.Method.CHECK and not check_number:
        raise LedgerError("A check payment needs the check number.")
    fee = _lock(fee)
    _refuse_repeat(origin)
    if fee.status == Fee.Status.VOIDED:
        raise LedgerError("This fee was voided; it cannot take a payment.")
    taken_outside = origin.source in TAKEN_OUTSIDE
    if amount > fee.balance and not taken_outside:
        raise LedgerError(
            f"${amount} is more than is owed on this fee (${fee.balance})."
            if fee.balance
            else "Nothing is owed on this fee."
        )
    by_vendor = origin.source == LedgerEntry.Source.VENDOR
    # Money already taken is posted whole: what the fee owed is allocated to it, the rest
    # stays unallocated on the entry and is the student's credit.
    owed = min(amount, fee.balance)
    entry = _post(
        fee=fee,
        kind=Kind.PAYMENT,
        amount=amount,
        origin=origin,
        method=method,
        check_number=check_number,
        reason=note,
    )
    if owed > 0:
        _apply(entry, fee, owed)
    _settle(fee, origin=origin, reason="paid", balance_delta=-owed, lock_amount=by_vendor)
    if amount > owed:
        _credit_change(_credit_account(fee.student_id), amount - owed)
    if closed and fee.balance > 0:
        settle_origin = Origin(user=origin.user, source=origin.source)
        _credit(
            fee=fee,
            kind=Kind.SETTLEMENT,
            amount=fee.balance,
            origin=settle_origin,
            reason_label="closed",
            reason="Closed at the vendor: settled for the amount paid.",
        )
    return entry


@transaction.atomic
def fee_waive(
    *, fee: Fee, reason: str, origin: Origin, amount: MoneyInput | None = None
) -> LedgerEntry:
    """Waive all (default) or part of what is still owed on a fee. Idempotent by
    `origin.external_id`: a repeat returns the first entry."""
    try:
        return _fee_waive(fee=fee, reason=reason, origin=origin, amount=amount)
    except _AlreadyRecorded as done:
        return done.entry


def _fee_waive(
    *,
    fee: Fee,
    reason: str,
    origin: Origin,
    amount: MoneyInput | None = None,
    closed: bool = False,
) -> LedgerEntry:
    """`fee_waive` inside the caller's transaction; a repeat raises `_AlreadyRecorded`.
    `closed=True` (vendors only): the vendor waived the fee as a whole, so what is left
    (a raise staff made before the waiver was pulled) is settled, as for a closed payment;
    otherwise the vendor holds the fee settled while FeeSync owes the rest for ever
    (simulate --seed 3)."""
    reason = _require(reason, "A reason for the waiver")
    fee = _lock(fee)
    _refuse_repeat(origin)
    if fee.balance == 0:
        raise LedgerError(
            f"Nothing is owed on this fee (it is {fee.get_status_display().lower()}), "
            "so there is nothing to waive."
        )
    amount = fee.balance if amount in (None, "") else to_money(amount)
    if amount > fee.balance:
        raise LedgerError(f"${amount} is more than is owed on this fee (${fee.balance}).")
    entry = _credit(
        fee=fee,
        kind=Kind.WAIVER,
        amount=amount,
        origin=origin,
        reason_label="waived",
        reason=reason,
    )
    if closed and fee.balance > 0:
        _credit(
            fee=fee,
            kind=Kind.SETTLEMENT,
            amount=fee.balance,
            origin=Origin(user=origin.user, source=origin.source),
            reason_label="closed",
            reason="Waived in full at the vendor: what is left is settled.",
        )
    return entry


@transaction.atomic
def fee_void(*, fee: Fee, reason: str, origin: Origin) -> LedgerEntry:
    """Cancel a fee that was charged in error, by a void entry for what is still owed."""
    reason = _require(reason, "A reason for voiding")
    fee = _lock(fee)
    if fee.status == Fee.Status.VOIDED:
        raise LedgerError("This fee is already voided.")
    paid = credit_kind_totals(fee)[Kind.PAYMENT]
    if paid > 0:
        raise LedgerError(
            f"This fee has ${paid} in payments. Refund them first, or waive what is left."
        )
    if fee.balance == 0:
        raise LedgerError("Nothing is owed on this fee, so there is nothing to void.")
    return _credit(
        fee=fee,
        kind=Kind.VOID,
        amount=fee.balance,
        origin=origin,
        reason_label="voided",
        reason=reason,
    )


# --- money back ------------------------------------------------------------------------------


def _given_back_on(credit: LedgerEntry, fee: Fee) -> tuple[Decimal, Decimal]:
    """(what `credit` settled on `fee`, what has been refunded or reversed of it there)."""
    applied = Allocation.objects.filter(credit=credit, debit__fee=fee).aggregate(
        s=Coalesce(Sum("amount"), ZERO)
    )["s"]
    back = LedgerEntry.objects.filter(reverses=credit, fee=fee).aggregate(
        s=Coalesce(Sum("amount"), ZERO)
    )["s"]
    # SQLite's SUM loses the scale ("30" not "30.00"); messages show cents.
    return applied.quantize(CENT), back.quantize(CENT)


def _give_back(
    *,
    credit: LedgerEntry,
    kind: str,
    amount: MoneyInput | None,
    reason: str,
    origin: Origin,
    fee: Fee | None,
) -> LedgerEntry:
    fee = _lock(fee or credit.fee)  # type: ignore[arg-type]
    _refuse_repeat(origin)
    applied, back = _given_back_on(credit, fee)
    # A payment that brought in more than its fee owed gives back its credit first: what the
    # fee was paid stays paid until the credit is used up.
    account = None
    spare = ZERO
    if credit.kind == Kind.PAYMENT and credit.fee_id == fee.pk:
        account = _credit_account(credit.student_id)
        spare = min(unallocated(credit), account.amount)
    left = applied - back + spare
    amount = left if amount in (None, "") else to_money(amount)
    if left <= 0:
        raise LedgerError(
            f"This {credit.get_kind_display().lower()} was already given back in full."
        )
    if amount > left:
        raise LedgerError(
            f"${amount} is more than is left of this {credit.get_kind_display().lower()} "
            f"on this fee (${left})."
        )
    entry = _post(fee=fee, kind=kind, amount=amount, origin=origin, reason=reason, reverses=credit)
    from_credit = min(spare, amount)
    if account is not None and from_credit > 0:
        # The credit pays this part of the refund out: it is never owed on the fee again.
        Allocation.objects.create(credit=credit, debit=entry, amount=from_credit)
        _credit_change(account, -from_credit)
    _settle(
        fee,
        origin=origin,
        reason="refunded" if kind == Kind.REFUND else "reversed",
        balance_delta=amount - from_credit,
    )
    return entry


@transaction.atomic
def payment_refund(
    *,
    payment: LedgerEntry,
    reason: str,
    origin: Origin,
    amount: MoneyInput | None = None,
    fee: Fee | None = None,
) -> LedgerEntry:
    """Give back all (default) or part of a payment; what it paid is owed again. Idempotent
    by `origin.external_id`: a repeat returns the first entry."""
    try:
        return _payment_refund(
            payment=payment, reason=reason, origin=origin, amount=amount, fee=fee
        )
    except _AlreadyRecorded as done:
        return done.entry


def _payment_refund(
    *,
    payment: LedgerEntry,
    reason: str,
    origin: Origin,
    amount: MoneyInput | None = None,
    fee: Fee | None = None,
) -> LedgerEntry:
    """`payment_refund` inside the caller's transaction; a repeat raises `_AlreadyRecorded`."""
    reason = _require(reason, "A reason for the refund")
    if payment.kind != Kind.PAYMENT:
        raise LedgerError("Only a payment can be refunded.")
    return _give_back(
        credit=payment, kind=Kind.REFUND, amount=amount, reason=reason, origin=origin, fee=fee
    )


@transaction.atomic
def credit_reverse(
    *,
    credit: LedgerEntry,
    reason: str,
    origin: Origin,
    amount: MoneyInput | None = None,
    fee: Fee | None = None,
) -> LedgerEntry:
    """Undo a payment entered in error, or restore a waived amount, by a reversing entry.
    Idempotent by `origin.external_id`: a repeat returns the first entry."""
    try:
        return _credit_reverse(credit=credit, reason=reason, origin=origin, amount=amount, fee=fee)
    except _AlreadyRecorded as done:
        return done.entry


def _credit_reverse(
    *,
    credit: LedgerEntry,
    reason: str,
    origin: Origin,
    amount: MoneyInput | None = None,
    fee: Fee | None = None,
) -> LedgerEntry:
    """`credit_reverse` inside the caller's transaction; a repeat raises `_AlreadyRecorded`."""
    reason = _require(reason, "A reason for the reversal")
    if credit.kind not in (Kind.PAYMENT, Kind.WAIVER):
        raise LedgerError("Only a payment or a waiver can be reversed.")
    return _give_back(
        credit=credit, kind=Kind.REVERSAL, amount=amount, reason=reason, origin=origin, fee=fee
    )


def _account_payment_take(
    *, student_id: int, amount: MoneyInput, method: str, origin: Origin, note: str = ""
) -> LedgerEntry:
    """A payment posted to the student's account (ledger card), not to one fee (the partner
    API's payments): posted whole and unallocated, so it is the student's credit until it is
    applied (by the district's auto-apply rule, or explicitly). Inside the caller's
    transaction; a repeat raises `_AlreadyRecorded`.

    It refuses (LedgerError) before it writes anything and writes with statements that
    cannot fail halfway, so the caller needs no savepoint around it: this is the partner
    API's hot path (hundreds of payments a second), kept to three statements: the entry,
    the credit row, its audit row."""
    amount = to_money(amount)
    if method not in LedgerEntry.Method.values:
        raise LedgerError(f"“{method}” is not a payment method FeeSync knows.")
    if settings.FEESYNC_AUTO_APPLY_CREDIT:
        # The lock order (fees, then the credit row): the auto-apply that follows in the
        # same transaction locks the student's open fees, so they are taken first here.
        # Without auto-apply nothing after this locks a fee, so no lock is taken.
        list(
            Fee.objects.select_for_update()
            .filter(student_id=student_id, status=Fee.Status.OPEN)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
    entry = LedgerEntry(
        student_id=student_id,
        fee=None,
        kind=Kind.PAYMENT,
        amount=amount,
        method=method,
        reason=note,
        **origin.entry_fields(),
    )
    if not _insert_once(entry):
        # A concurrent post of the same id committed first (ON CONFLICT waited for it).
        if (existing := _existing_external(origin)) is not None:
            raise _AlreadyRecorded(existing)
        raise LedgerError("The payment could not be recorded; try again.")
    _credit_add(student_id, amount)
    return entry


def _insert_once(entry: LedgerEntry) -> bool:
    """INSERT the new entry unless its (external_source, external_id) is on the ledger
    already (`INSERT ... ON CONFLICT DO NOTHING`, which waits for a concurrent insert of the
    same id to end, so no savepoint is needed to survive the race); True when inserted (its
    pk and created_at set), False for a repeat. No receiver listens to entries' saves."""
    # The partial unique index `external_transaction_once`, named by its columns and its
    # condition.
    conflict = (
        ' ON CONFLICT ("external_source", "external_id") WHERE NOT ("external_id" = \'\')'
        " DO NOTHING"
        if entry.external_id
        else ""
    )
    return insert(entry, conflict=conflict)


def _credit_add(student_id: int, delta: Decimal) -> None:
    """Raise the student's credit by `delta` (> 0) in one statement that creates, locks and
    updates the row (`INSERT ... ON CONFLICT DO UPDATE`), and audit it as saving the row
    would: a new row is its creation with the amount, an existing one an update of `amount`
    (and of `since` when it had no credit)."""

    now = timezone.now()
    table = StudentCredit._meta.db_table
    if connection.vendor != "postgresql":
        # SQLite (`make run`) has no xmax: read the row, then write it (one writer at a
        # time there anyway).
        _credit_add_portable(student_id, delta, now)
        return
    with prepared_cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} AS c (student_id, amount, since, updated_at) "  # noqa: S608 - our table, values bound
            "VALUES (%s, %s, %s, %s) ON CONFLICT (student_id) DO UPDATE SET "
            "amount = c.amount + EXCLUDED.amount, "
            "since = CASE WHEN c.amount = 0 THEN EXCLUDED.since ELSE c.since END, "
            "updated_at = EXCLUDED.updated_at "
            # xmax is 0 on a row this statement inserted, set on one it updated.
            "RETURNING amount, since, (xmax = 0)",
            [student_id, delta, now, now],
        )
        amount, since, created = cursor.fetchone()
    after = StudentCredit(student_id=student_id, amount=amount, since=since, updated_at=now)
    after._state.adding = False
    before = None
    if not created:
        old = (amount - delta).quantize(CENT)
        # An account without credit has no `since` (_credit_change clears it at zero).
        before = StudentCredit(
            student_id=student_id, amount=old, since=since if old > 0 else None, updated_at=now
        )
    _audit(after, before)


def _credit_add_portable(student_id: int, delta: Decimal, now: Any) -> None:
    """`_credit_add` without PostgreSQL's upsert, audited the same way."""
    credit = StudentCredit.objects.filter(student_id=student_id).first()
    if credit is None:
        after = StudentCredit(student_id=student_id, amount=delta, since=now, updated_at=now)
        insert(after)
        _audit(after, None)
        return
    before = StudentCredit(
        student_id=student_id, amount=credit.amount, since=credit.since, updated_at=now
    )
    credit.amount = (credit.amount + delta).quantize(CENT)
    credit.since = credit.since if before.amount > 0 else now
    credit.updated_at = now
    StudentCredit.objects.filter(pk=credit.pk).update(
        amount=credit.amount, since=credit.since, updated_at=now
    )
    _audit(credit, before)


def _audit(instance: Any, before: Any | None) -> None:
    """The audit row django-auditlog writes when `instance` is saved (created when `before`
    is None, else changed from `before`), for rows written in SQL: built as its
    `LogEntry.objects.log_create` builds it, `pre_save` sent as `save()` sends it (auditlog's
    request context fills in the actor and the address there), inserted in plain SQL (the
    ORM's INSERT of it was a tenth of an API payment's CPU)."""
    from auditlog import get_logentry_model
    from auditlog.cid import get_cid
    from auditlog.context import auditlog_disabled
    from auditlog.diff import model_instance_diff
    from auditlog.registry import auditlog
    from django.contrib.contenttypes.models import ContentType
    from django.db.models.signals import pre_save
    from django.utils.encoding import smart_str

    if auditlog_disabled.get(False) or not auditlog.contains(type(instance)):
        return
    changes = model_instance_diff(
        before,
        instance,
        use_json_for_changes=getattr(settings, "AUDITLOG_STORE_JSON_CHANGES", False),
    )
    if not changes:
        return
    log_entry = get_logentry_model()
    manager = log_entry.objects
    pk = manager._get_pk_value(instance)
    row = log_entry(
        content_type=ContentType.objects.get_for_model(instance),
        object_pk=pk,
        object_id=pk if isinstance(pk, int) else None,
        object_repr=smart_str(instance),
        serialized_data=manager._get_serialized_data_or_none(instance),
        action=log_entry.Action.CREATE if before is None else log_entry.Action.UPDATE,
        changes=changes,
        cid=get_cid(),
    )
    if callable(extra := getattr(instance, "get_additional_data", None)):
        row.additional_data = extra()
    pre_save.send(
        sender=log_entry, instance=row, raw=False, using=row._state.db, update_fields=None
    )
    insert(row)


def _charge_post(*, charge: Any, amount: MoneyInput, origin: Origin) -> LedgerEntry:
    """A charge from outside (the partner API): a new fee, made by `fee_create` so that it
    is announced to the vendors in whose scope it is; its charge entry carries the sender's
    id, so it is recorded once. Returns the charge entry; a repeat raises `_AlreadyRecorded`."""
    if (existing := _existing_external(origin)) is not None:
        raise _AlreadyRecorded(existing)
    try:
        with transaction.atomic():
            fee = fee_create(
                student=Student.objects.get(pk=charge.student_id),
                category=FeeCategory.objects.get(pk=charge.category_id),
                merchant_account=MerchantAccount.objects.get(pk=charge.merchant_account_id),
                description=charge.description,
                amount=amount,
                fee_date=charge.fee_date,
                due_date=charge.due_date,
                origin=origin,
            )
    except IntegrityError as exc:
        if (existing := _existing_external(origin)) is not None:
            raise _AlreadyRecorded(existing) from exc
        raise
    return LedgerEntry.objects.get(fee=fee, kind=Kind.CHARGE)


def _fee_adjust(
    *, fee: Fee, amount: MoneyInput, raise_it: bool, origin: Origin, reason: str
) -> LedgerEntry:
    """A debit (`raise_it`) or credit adjustment of a fee from outside, by the rules of
    `fee_change`. Returns the adjustment entry; a repeat raises `_AlreadyRecorded`."""
    amount = to_money(amount)
    fee = _lock(fee)
    _refuse_repeat(origin)
    new_amount = fee.amount + amount if raise_it else fee.amount - amount
    if new_amount < 0:
        raise LedgerError(f"${amount} is more than fee {fee.reference} charges (${fee.amount}).")
    _change_amount(fee, new_amount, origin, reason)
    entry = _existing_external(origin)
    if entry is None:  # no sender id: the adjustment just posted is the fee's newest
        kind = Kind.DEBIT_ADJUSTMENT if raise_it else Kind.CREDIT_ADJUSTMENT
        entry = LedgerEntry.objects.filter(fee=fee, kind=kind).order_by("-id")[0]
    return entry
