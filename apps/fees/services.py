"""Every write to the ledger goes through this module.

Each service is one atomic action: it locks the fee it changes (`SELECT ... FOR UPDATE`),
checks the request against what the ledger says now, posts append-only entries with their
allocations, brings the fee's `amount`, `balance`, `status` and `version` in step, and
announces the change with the `fee_changed` signal inside the same transaction (the sync
engine writes its outbox row from it, so a vendor can never miss a committed change).

Bad input raises `LedgerError` (a `ValidationError`) whose message a fees clerk can read;
nothing is written when it does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import F, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.dispatch import Signal
from django.utils import timezone

from apps.accounts.models import MerchantAccount
from apps.categories.models import FeeCategory
from apps.students.models import Student

from .models import (
    ZERO,
    Allocation,
    BulkJob,
    Fee,
    FeeAssignment,
    LedgerEntry,
    new_fee_reference,
)

#: Sent inside the transaction of every change a vendor must see.
#: kwargs: `fee_ids` (list[int]), `reason` (str: created, changed, paid, waived, refunded,
#: voided, reversed, closed), `external_source` (who outside FeeSync caused it, e.g.
#: "integration:3", or ""; that integration already knows and need not be told back).
fee_changed = Signal()

Kind = LedgerEntry.Kind
MAX_AMOUNT = Decimal("9999999999.99")
CENT = Decimal("0.01")
BATCH = 2000


class LedgerError(ValidationError):
    """A request the ledger refuses, with the reason in a clerk's words."""


@dataclass(frozen=True)
class Origin:
    """Who is moving money. Staff pass `Origin(user=request.user)`; a vendor, the partner API
    or a file drop pass their source and their own transaction id, which makes the posting
    idempotent: the same (external_source, external_id) is recorded once."""

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


def to_money(value: Any, *, label: str = "Amount", allow_zero: bool = False) -> Decimal:
    """Parse a money amount: a Decimal with at most two places, not negative, not float."""
    if isinstance(value, float):
        raise LedgerError(f"{label} must be given as a decimal, not a floating-point number.")
    try:
        amount = Decimal(str(value).strip().replace(",", "").lstrip("$"))
    except (InvalidOperation, ValueError):
        raise LedgerError(f"{label} “{value}” is not a number.") from None
    if not amount.is_finite():
        raise LedgerError(f"{label} “{value}” is not a number.")
    if abs(amount) < MAX_AMOUNT and amount != amount.quantize(CENT):
        raise LedgerError(
            f"{label} {value} has more than two decimal places; money is kept to the cent."
        )
    if amount < 0:
        raise LedgerError(f"{label} cannot be negative.")
    if amount == 0 and not allow_zero:
        raise LedgerError(f"{label} must be more than $0.00.")
    if amount > MAX_AMOUNT:
        raise LedgerError(f"{label} is larger than FeeSync can hold.")
    return amount.quantize(CENT)


def _require(text: str, label: str) -> str:
    text = (text or "").strip()
    if not text:
        raise LedgerError(f"{label} is required.")
    return text


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
        if origin.external_id and _existing_external(origin) is not None:
            raise _AlreadyRecorded from exc
        raise


class _AlreadyRecorded(Exception):
    pass


def _outstanding_debits(fee: Fee) -> list[tuple[LedgerEntry, Decimal]]:
    """The fee's debit entries with what is still unsettled on each, oldest first."""
    debits = (
        LedgerEntry.objects.filter(fee=fee, kind__in=LedgerEntry.DEBIT_KINDS)
        .annotate(applied=Coalesce(Sum("allocations_in__amount"), ZERO))
        .order_by("id")
    )
    return [(d, d.amount - d.applied) for d in debits if d.amount - d.applied > 0]


def _apply(credit: LedgerEntry, fee: Fee, amount: Decimal) -> None:
    """Allocate `amount` of `credit` to the fee's unsettled debits, oldest first."""
    left = amount
    rows = []
    for debit, open_ in _outstanding_debits(fee):
        take = min(open_, left)
        rows.append(Allocation(credit=credit, debit=debit, amount=take))
        left -= take
        if left == 0:
            break
    if left != 0:  # The caller checked the balance under lock; this is a broken invariant.
        raise LedgerError("The fee's entries do not add up; run ledger_check.")
    Allocation.objects.bulk_create(rows)


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
    amount: Any,
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
    if due_date and due_date < fee_date:
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
    return fee


@transaction.atomic
def fee_change(
    *,
    fee: Fee,
    origin: Origin,
    amount: Any | None = None,
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
    amount: Any,
    method: str,
    origin: Origin,
    check_number: str = "",
    note: str = "",
    closed: bool = False,
) -> LedgerEntry:
    """Record a payment on a fee (at the district office, from a vendor, the partner API or
    a file drop). Idempotent by `origin.external_id`. `closed=True` (vendors only) settles
    what is left on the fee, for free or reduced price handled at the vendor."""
    amount = to_money(amount)
    if method not in LedgerEntry.Method.values:
        raise LedgerError(f"“{method}” is not a payment method FeeSync knows.")
    check_number = (check_number or "").strip()
    if method == LedgerEntry.Method.CHECK and not check_number:
        raise LedgerError("A check payment needs the check number.")
    fee = _lock(fee)
    if (existing := _existing_external(origin)) is not None:
        return existing
    if fee.status == Fee.Status.VOIDED:
        raise LedgerError("This fee was voided; it cannot take a payment.")
    if amount > fee.balance:
        raise LedgerError(
            f"${amount} is more than is owed on this fee (${fee.balance})."
            if fee.balance
            else "Nothing is owed on this fee."
        )
    by_vendor = origin.source == LedgerEntry.Source.VENDOR
    try:
        entry = _credit(
            fee=fee,
            kind=Kind.PAYMENT,
            amount=amount,
            origin=origin,
            reason_label="paid",
            lock_amount=by_vendor,
            method=method,
            check_number=check_number,
            reason=note,
        )
    except _AlreadyRecorded:
        return _existing_external(origin)  # type: ignore[return-value]
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
def fee_waive(*, fee: Fee, reason: str, origin: Origin, amount: Any | None = None) -> LedgerEntry:
    """Waive all (default) or part of what is still owed on a fee."""
    reason = _require(reason, "A reason for the waiver")
    fee = _lock(fee)
    if (existing := _existing_external(origin)) is not None:
        return existing
    if fee.balance == 0:
        raise LedgerError(
            f"Nothing is owed on this fee (it is {fee.get_status_display().lower()}), "
            "so there is nothing to waive."
        )
    amount = fee.balance if amount in (None, "") else to_money(amount)
    if amount > fee.balance:
        raise LedgerError(f"${amount} is more than is owed on this fee (${fee.balance}).")
    try:
        return _credit(
            fee=fee,
            kind=Kind.WAIVER,
            amount=amount,
            origin=origin,
            reason_label="waived",
            reason=reason,
        )
    except _AlreadyRecorded:
        return _existing_external(origin)  # type: ignore[return-value]


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
    amount: Any | None,
    reason: str,
    origin: Origin,
    fee: Fee | None,
) -> LedgerEntry:
    fee = _lock(fee or credit.fee)  # type: ignore[arg-type]
    if (existing := _existing_external(origin)) is not None:
        return existing
    applied, back = _given_back_on(credit, fee)
    left = applied - back
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
    try:
        entry = _post(
            fee=fee, kind=kind, amount=amount, origin=origin, reason=reason, reverses=credit
        )
    except _AlreadyRecorded:
        return _existing_external(origin)  # type: ignore[return-value]
    _settle(
        fee,
        origin=origin,
        reason="refunded" if kind == Kind.REFUND else "reversed",
        balance_delta=amount,
    )
    return entry


@transaction.atomic
def payment_refund(
    *,
    payment: LedgerEntry,
    reason: str,
    origin: Origin,
    amount: Any | None = None,
    fee: Fee | None = None,
) -> LedgerEntry:
    """Give back all (default) or part of a payment; what it paid is owed again."""
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
    amount: Any | None = None,
    fee: Fee | None = None,
) -> LedgerEntry:
    """Undo a payment entered in error, or restore a waived amount, by a reversing entry."""
    reason = _require(reason, "A reason for the reversal")
    if credit.kind not in (Kind.PAYMENT, Kind.WAIVER):
        raise LedgerError("Only a payment or a waiver can be reversed.")
    return _give_back(
        credit=credit, kind=Kind.REVERSAL, amount=amount, reason=reason, origin=origin, fee=fee
    )


# --- fees for lists of students -----------------------------------------------------------------


@transaction.atomic
def assignment_create(
    *,
    student_list: Any,
    category: FeeCategory,
    merchant_account: MerchantAccount,
    description: str,
    amount: Any,
    fee_date: date,
    due_date: date | None = None,
    origin: Origin,
) -> FeeAssignment:
    """A fee to be assigned to the students of a saved list."""
    amount = to_money(amount)
    description = _require(description, "Description")
    _check_category_and_account(category, merchant_account)
    if due_date and due_date < fee_date:
        raise LedgerError("The due date cannot be before the fee date.")
    return FeeAssignment.objects.create(
        student_list=student_list,
        category=category,
        merchant_account=merchant_account,
        description=description,
        amount=amount,
        fee_date=fee_date,
        due_date=due_date,
        created_by=origin.entry_fields()["created_by"],
    )


#: The fees of a bulk assignment and their charge entries in one statement (PostgreSQL): the
#: same rows `fees_create_bulk` writes through the ORM elsewhere, about 4x faster for a list of
#: 50,000 students (bench: assign_fee_50k_s), because no model instance is built per row.
_BULK_CHARGES_SQL = """
WITH new AS (
    INSERT INTO fees_fee (reference, student_id, category_id, merchant_account_id,
        assignment_id, description, amount, balance, fee_date, due_date, status,
        amount_locked, version, created_by_id, created_at, updated_at)
    SELECT t.reference, t.student_id, %(category)s, %(account)s, %(assignment)s,
        %(description)s, %(amount)s, %(amount)s, %(fee_date)s, %(due_date)s, 'open', false, 1,
        %(user)s, %(now)s, %(now)s
    FROM unnest(%(references)s::varchar[], %(students)s::bigint[]) AS t(reference, student_id)
    RETURNING id, student_id
), charges AS (
    INSERT INTO fees_ledgerentry (student_id, fee_id, kind, amount, method, check_number,
        reason, source, external_source, external_id, created_by_id, created_at)
    SELECT new.student_id, new.id, 'charge', %(amount)s, '', '', %(description)s, %(source)s,
        %(external_source)s, %(external_id)s, %(user)s, %(now)s
    FROM new
)
SELECT id FROM new ORDER BY id
"""


def _insert_charges_pg(
    *, assignment: FeeAssignment, student_ids: Sequence[int], origin: Origin
) -> list[int]:
    fields = origin.entry_fields()
    user = fields["created_by"]
    with connection.cursor() as cursor:
        cursor.execute(
            _BULK_CHARGES_SQL,
            {
                "category": assignment.category_id,
                "account": assignment.merchant_account_id,
                "assignment": assignment.pk,
                "description": assignment.description,
                "amount": assignment.amount,
                "fee_date": assignment.fee_date,
                "due_date": assignment.due_date,
                "user": user.pk if user is not None else None,
                "now": timezone.now(),
                "references": [new_fee_reference() for _ in student_ids],
                "students": list(student_ids),
                "source": fields["source"],
                "external_source": fields["external_source"],
                "external_id": fields["external_id"],
            },
        )
        return [row[0] for row in cursor.fetchall()]


def fees_create_bulk(
    *, assignment: FeeAssignment, student_ids: Sequence[int], origin: Origin
) -> int:
    """Charge `assignment` to each of `student_ids` who does not already have it.

    Returns how many fees were created. One transaction; safe to run twice (the students
    who already have a live fee of this assignment are skipped, and a unique constraint
    backs that up)."""
    with transaction.atomic():
        FeeAssignment.objects.select_for_update().get(pk=assignment.pk)
        have = set(
            Fee.objects.filter(assignment=assignment, student_id__in=student_ids)
            .exclude(status=Fee.Status.VOIDED)
            .values_list("student_id", flat=True)
        )
        todo = [sid for sid in dict.fromkeys(student_ids) if sid not in have]
        if not todo:
            return 0
        if connection.vendor == "postgresql":
            fee_ids = _insert_charges_pg(assignment=assignment, student_ids=todo, origin=origin)
        else:
            user = origin.entry_fields()["created_by"]
            fees = Fee.objects.bulk_create(
                [
                    Fee(
                        student_id=sid,
                        category_id=assignment.category_id,
                        merchant_account_id=assignment.merchant_account_id,
                        assignment=assignment,
                        description=assignment.description,
                        amount=assignment.amount,
                        balance=assignment.amount,
                        fee_date=assignment.fee_date,
                        due_date=assignment.due_date,
                        created_by=user,
                    )
                    for sid in todo
                ],
                batch_size=BATCH,
            )
            LedgerEntry.objects.bulk_create(
                [
                    LedgerEntry(
                        student_id=f.student_id,
                        fee_id=f.pk,
                        kind=Kind.CHARGE,
                        amount=f.amount,
                        reason=f.description,
                        **origin.entry_fields(),
                    )
                    for f in fees
                ],
                batch_size=BATCH,
            )
            fee_ids = [f.pk for f in fees]
        fee_changed.send(
            sender=Fee,
            fee_ids=fee_ids,
            reason="created",
            external_source=origin.external_source,
        )
        return len(fee_ids)


def unpaid_fees(assignment: FeeAssignment, *, inactive_only: bool = False) -> QuerySet[Fee]:
    """Fees of this assignment on which nothing has been paid or waived yet."""
    qs = Fee.objects.filter(
        assignment=assignment, status=Fee.Status.OPEN, balance=F("amount")
    ).exclude(entries__kind__in=[Kind.PAYMENT])
    if inactive_only:
        qs = qs.filter(student__active=False)
    return qs


def fees_void_bulk(*, fee_ids: Sequence[int], reason: str, origin: Origin) -> int:
    """Void many unpaid fees at once (the "remove this fee from students" actions).

    Only fees still open with nothing paid are touched; each gets a void entry for its
    balance, allocated to its unsettled debits. One transaction."""
    reason = _require(reason, "A reason for removing the fee")
    with transaction.atomic():
        fees = list(
            Fee.objects.select_for_update()
            .filter(pk__in=fee_ids, status=Fee.Status.OPEN)
            .exclude(entries__kind=Kind.PAYMENT)
            .order_by("pk")
        )
        if not fees:
            return 0
        by_fee: dict[int, list[tuple[int, Decimal]]] = {}
        debits = (
            LedgerEntry.objects.filter(fee__in=fees, kind__in=LedgerEntry.DEBIT_KINDS)
            .annotate(applied=Coalesce(Sum("allocations_in__amount"), ZERO))
            .values_list("fee_id", "id", "amount", "applied")
            .order_by("id")
        )
        for fee_id, debit_id, amount, applied in debits:
            if amount - applied > 0:
                by_fee.setdefault(fee_id, []).append((debit_id, amount - applied))
        voids = LedgerEntry.objects.bulk_create(
            [
                LedgerEntry(
                    student_id=f.student_id,
                    fee_id=f.pk,
                    kind=Kind.VOID,
                    amount=f.balance,
                    reason=reason,
                    **origin.entry_fields(),
                )
                for f in fees
            ],
            batch_size=BATCH,
        )
        allocations = []
        for fee, void in zip(fees, voids, strict=True):
            left = fee.balance
            for debit_id, open_ in by_fee.get(fee.pk, []):
                take = min(open_, left)
                allocations.append(Allocation(credit_id=void.pk, debit_id=debit_id, amount=take))
                left -= take
                if left == 0:
                    break
            fee.balance = ZERO
            fee.status = Fee.Status.VOIDED
            fee.version += 1
        Allocation.objects.bulk_create(allocations, batch_size=BATCH)
        Fee.objects.bulk_update(fees, ["balance", "status", "version"], batch_size=BATCH)
        fee_changed.send(
            sender=Fee,
            fee_ids=[f.pk for f in fees],
            reason="voided",
            external_source=origin.external_source,
        )
        return len(fees)


def bulk_job_start(*, assignment: FeeAssignment, action: str, origin: Origin) -> BulkJob:
    """Queue a bulk action on an assignment; a Celery task runs it after commit."""
    from apps.students.selectors import student_list_students

    if action not in BulkJob.Action.values:
        raise LedgerError(f"Unknown bulk action “{action}”.")
    if (
        action == BulkJob.Action.ASSIGN
        and not student_list_students(student_list=assignment.student_list).exists()
    ):
        raise LedgerError(
            f"The list “{assignment.student_list}” has no students today, so there is "
            "nobody to assign this fee to."
        )
    job = BulkJob.objects.create(
        assignment=assignment, action=action, started_by=origin.entry_fields()["created_by"]
    )

    def enqueue() -> None:
        from .tasks import run_bulk_job

        run_bulk_job.delay(job.pk)

    transaction.on_commit(enqueue)
    return job


def bulk_job_run(*, job: BulkJob) -> BulkJob:
    """Run a queued bulk job batch by batch, recording progress as it goes.

    Safe to run twice (a redelivered task): every batch skips what is already done."""
    from apps.students.selectors import student_list_students

    claimed = BulkJob.objects.filter(
        pk=job.pk, state__in=[BulkJob.State.QUEUED, BulkJob.State.RUNNING, BulkJob.State.FAILED]
    ).update(state=BulkJob.State.RUNNING, error="")
    job.refresh_from_db()
    if not claimed:
        return job
    assignment = job.assignment
    origin = Origin(user=job.started_by)
    try:
        if job.action == BulkJob.Action.ASSIGN:
            ids = list(
                student_list_students(student_list=assignment.student_list)
                .order_by("pk")
                .values_list("pk", flat=True)
            )
            step = lambda chunk: fees_create_bulk(  # noqa: E731
                assignment=assignment, student_ids=chunk, origin=origin
            )
        else:
            inactive = job.action == BulkJob.Action.REMOVE_INACTIVE_UNPAID
            ids = list(
                unpaid_fees(assignment, inactive_only=inactive)
                .order_by("pk")
                .values_list("pk", flat=True)
            )
            step = lambda chunk: fees_void_bulk(  # noqa: E731
                fee_ids=chunk,
                origin=origin,
                reason=f"Removed from students who had not paid ({job.get_action_display()}).",
            )
        BulkJob.objects.filter(pk=job.pk).update(total=len(ids), done=0, changed=0)
        done = changed = 0
        for start in range(0, len(ids), 5000):
            chunk = ids[start : start + 5000]
            changed += step(chunk)
            done += len(chunk)
            BulkJob.objects.filter(pk=job.pk).update(done=done, changed=changed)
        BulkJob.objects.filter(pk=job.pk).update(
            state=BulkJob.State.DONE, finished_at=timezone.now()
        )
    except Exception as exc:
        BulkJob.objects.filter(pk=job.pk).update(
            state=BulkJob.State.FAILED, error=str(exc), finished_at=timezone.now()
        )
        raise
    job.refresh_from_db()
    return job


@transaction.atomic
def student_list_from_assignment(*, assignment: FeeAssignment, name: str) -> Any:
    """ "Create a student list of all students assigned this fee" (a fixed list)."""
    from apps.students.models import StudentList

    name = _require(name, "A name for the new list")
    if StudentList.objects.filter(name=name).exists():
        raise LedgerError(f"A student list named “{name}” already exists.")
    student_list = StudentList.objects.create(
        name=name, kind=StudentList.Kind.FIXED, status=StudentList.Status.ANY
    )
    student_ids = (
        Fee.objects.filter(assignment=assignment)
        .exclude(status=Fee.Status.VOIDED)
        .values_list("student_id", flat=True)
        .distinct()
    )
    through = StudentList.students.through
    through.objects.bulk_create(
        [through(studentlist_id=student_list.pk, student_id=sid) for sid in student_ids],
        batch_size=BATCH,
    )
    return student_list


def fees_follow_activity(*, student: Student, activity_id: int, origin: Origin) -> int:
    """A student joined an activity: charge them the fees assigned to that activity's lists."""
    from apps.students.selectors import student_list_students

    created = 0
    for assignment in FeeAssignment.objects.filter(student_list__activity_id=activity_id):
        # The list may also filter on school, grade or status: charge only if they match.
        if (
            student_list_students(student_list=assignment.student_list)
            .filter(pk=student.pk)
            .exists()
        ):
            created += fees_create_bulk(
                assignment=assignment, student_ids=[student.pk], origin=origin
            )
    return created


# --- many vendor payments at once ----------------------------------------------------------


@dataclass(frozen=True)
class ExternalPayment:
    """One plain payment from outside (a vendor pull, a file drop), for `payments_post_bulk`."""

    fee_id: int
    amount: Decimal
    external_id: str


#: The fees `payments_post_bulk` changed, in one statement (PostgreSQL): the same four columns
#: `bulk_update` writes, without the CASE WHEN expression per row and column that Django builds
#: for it (measured: 1.3 s of Python per 1,000 fees; bench: <vendor>.pull_100k_s).
_PAID_FEES_UPDATE_SQL = """
UPDATE fees_fee AS f
SET balance = v.balance, status = v.status, version = v.version, amount_locked = v.locked
FROM unnest(%(ids)s::bigint[], %(balances)s::numeric[], %(statuses)s::varchar[],
            %(versions)s::integer[], %(locked)s::boolean[])
    AS v(id, balance, status, version, locked)
WHERE f.id = v.id
"""


def _update_paid_fees_pg(fees: Sequence[Fee]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            _PAID_FEES_UPDATE_SQL,
            {
                "ids": [f.pk for f in fees],
                "balances": [f.balance for f in fees],
                "statuses": [f.status for f in fees],
                "versions": [f.version for f in fees],
                "locked": [f.amount_locked for f in fees],
            },
        )


def payments_post_bulk(
    *, payments: Sequence[ExternalPayment], origin: Origin, note: str = ""
) -> tuple[list[str], dict[str, str]]:
    """Post many plain online payments in one transaction: the nightly pull's fast path.

    The same rules as `payment_take` (fee locked, nothing over the balance, recorded once per
    external id, amount locked), applied set-wise: a handful of queries per batch instead of
    ten per payment. Returns (external ids posted, {external id: reason} for those refused,
    which the caller posts one by one or reports). Fees with a settlement or void entry are
    refused here, so their status logic stays in the one-by-one path."""
    refused: dict[str, str] = {}
    if not payments:
        return [], refused
    with transaction.atomic():
        fee_ids = sorted({p.fee_id for p in payments})
        fees = {
            f.pk: f for f in Fee.objects.select_for_update().filter(pk__in=fee_ids).order_by("pk")
        }
        known = set(
            LedgerEntry.objects.filter(
                external_source=origin.external_source,
                external_id__in=[p.external_id for p in payments],
            ).values_list("external_id", flat=True)
        )
        special = set(
            LedgerEntry.objects.filter(
                fee_id__in=fee_ids, kind__in=[Kind.SETTLEMENT, Kind.VOID]
            ).values_list("fee_id", flat=True)
        )
        open_debits: dict[int, list[list[Any]]] = {}
        for fee_id, debit_id, amount, applied in (
            LedgerEntry.objects.filter(fee_id__in=fee_ids, kind__in=LedgerEntry.DEBIT_KINDS)
            .annotate(applied=Coalesce(Sum("allocations_in__amount"), ZERO))
            .values_list("fee_id", "id", "amount", "applied")
            .order_by("id")
        ):
            if amount - applied > 0:
                open_debits.setdefault(fee_id, []).append([debit_id, amount - applied])
        accepted: list[ExternalPayment] = []
        for p in payments:
            fee = fees.get(p.fee_id)
            if p.external_id in known:
                continue
            known.add(p.external_id)
            if fee is None or p.fee_id in special or fee.status != Fee.Status.OPEN:
                refused[p.external_id] = "needs the one-by-one path"
                continue
            amount = to_money(p.amount)
            if amount > fee.balance:
                refused[p.external_id] = (
                    f"${amount} is more than is owed on this fee (${fee.balance})."
                )
                continue
            fee.balance -= amount
            accepted.append(ExternalPayment(p.fee_id, amount, p.external_id))
        if not accepted:
            return [], refused
        fields = origin.entry_fields()
        entries = LedgerEntry.objects.bulk_create(
            [
                LedgerEntry(
                    student_id=fees[p.fee_id].student_id,
                    fee_id=p.fee_id,
                    kind=Kind.PAYMENT,
                    amount=p.amount,
                    method=LedgerEntry.Method.ONLINE,
                    reason=note,
                    **{**fields, "external_id": p.external_id},
                )
                for p in accepted
            ],
            batch_size=BATCH,
        )
        allocations = []
        for p, entry in zip(accepted, entries, strict=True):
            left = p.amount
            for debit in open_debits.get(p.fee_id, []):
                take = min(debit[1], left)
                if take <= 0:
                    continue
                allocations.append(Allocation(credit_id=entry.pk, debit_id=debit[0], amount=take))
                debit[1] -= take
                left -= take
                if left == 0:
                    break
            if left != 0:
                raise LedgerError("The fee's entries do not add up; run ledger_check.")
        Allocation.objects.bulk_create(allocations, batch_size=BATCH)
        changed = [fees[i] for i in {p.fee_id for p in accepted}]
        for fee in changed:
            # An open fee without settlement or void entries is paid once nothing is owed.
            fee.status = Fee.Status.OPEN if fee.balance > 0 else Fee.Status.PAID
            fee.version += 1
            fee.amount_locked = fee.amount_locked or origin.source == LedgerEntry.Source.VENDOR
        if connection.vendor == "postgresql":
            _update_paid_fees_pg(changed)
        else:
            Fee.objects.bulk_update(
                changed, ["balance", "status", "version", "amount_locked"], batch_size=BATCH
            )
        fee_changed.send(
            sender=Fee,
            fee_ids=[f.pk for f in changed],
            reason="paid",
            external_source=origin.external_source,
        )
    return [p.external_id for p in accepted], refused
