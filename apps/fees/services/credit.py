"""The student's credit: what staff (or the district's auto-apply setting) do with money a
vendor, a file or the partner API took that no fee owed.

The credit itself arises in `ledger._payment_take` (and the one door's fast path): the
payment is posted whole and allocated to its fee for what was owed; the rest stays
unallocated on the payment entry. Here it is

* applied to another open fee of the same student (`credit_apply`): an allocation from the
  payment entries holding credit to that fee's charges, oldest credit first, with the fee's
  balance, status and version brought in step and `fee_changed` sent like any posting;
* paid back to the family (`credit_refund`): a refund entry on no fee, settled out of the
  credit by an allocation, so nothing is owed anywhere because of it;
* taken whole as credit (`_payment_to_credit`, behind the one door's `movement_credit`):
  money a vendor took for a fee it does not manage, that staff chose to keep for the
  student rather than post on that fee: a payment entry on no fee, all of it credit;
* applied automatically (`credit_auto_apply`) to the student's oldest open fee (oldest due
  date, then fee date) when the district turns FEESYNC_AUTO_APPLY_CREDIT on; credit that
  found no open fee then pays the student's next fee (`fee_create`).

Each is one atomic action; a refusal is a `LedgerError` in a clerk's words and writes nothing.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from apps.students.models import Student

from ..models import ZERO, Allocation, CreditApplication, Fee, LedgerEntry, StudentCredit
from ..money import money_text
from .ledger import (
    Kind,
    LedgerError,
    Origin,
    _AlreadyRecorded,
    _apply_to_fee,
    _credit_account,
    _credit_change,
    _drawn,
    _existing_external,
    _lock,
    _require,
    auto_available,
    credit_entries,
    to_money,
    unallocated,
)


def _dollars(amount: Decimal) -> str:
    return "$" + money_text(amount)


def student_credit(*, student: Student) -> Decimal:
    """Credit on the student's account now (nothing if they never had any)."""
    amount = StudentCredit.objects.filter(student=student).values_list("amount", flat=True).first()
    return amount if amount is not None else ZERO


class CreditAlreadyApplied(Exception):
    """`credit_apply` was called again with the same sender's key (a staff form's one-time
    token): `application` is what the first call applied; nothing was applied twice."""

    def __init__(self, application: CreditApplication) -> None:
        super().__init__(application.pk)
        self.application = application


def _first_application(origin: Origin) -> CreditApplication | None:
    if not origin.external_id:
        return None
    return (
        CreditApplication.objects.select_related("created_by", "fee")
        .filter(external_source=origin.external_source, external_id=origin.external_id)
        .first()
    )


@transaction.atomic
def credit_apply(
    *,
    student: Student,
    fee: Fee,
    origin: Origin,
    amount: Any | None = None,
    credit_entry: LedgerEntry | None = None,
) -> Decimal:
    """Apply the student's credit (all of it that the fee can take, by default; or `amount`;
    from `credit_entry` only, if given) to another open fee of the same student. Returns
    the amount applied.

    Recorded once per `origin.external_id` (a staff form's one-time token): checked with the
    fee and the credit row locked, so of two identical submissions the second waits for the
    first to commit and then raises `CreditAlreadyApplied` with the first application."""
    if fee.student_id != student.pk:
        raise LedgerError(f"Fee {fee.reference} is not {student.full_name}'s fee.")
    fee = _lock(fee)
    account = _credit_account(student.pk)
    if (first := _first_application(origin)) is not None:
        raise CreditAlreadyApplied(first)
    if fee.status != Fee.Status.OPEN or fee.balance <= 0:
        raise LedgerError(
            f"Nothing is owed on fee {fee.reference} (it is {fee.get_status_display().lower()})."
        )
    if account.amount <= 0:
        raise LedgerError(f"{student.full_name} has no credit on account.")
    available = account.amount
    if credit_entry is not None:
        available = min(available, unallocated(credit_entry))
    wanted = min(available, fee.balance) if amount in (None, "") else to_money(amount)
    if wanted > fee.balance:
        raise LedgerError(
            f"{_dollars(wanted)} is more than is owed on this fee ({_dollars(fee.balance)})."
        )
    if wanted > available:
        raise LedgerError(
            f"{_dollars(wanted)} is more than {student.full_name}'s credit ({_dollars(available)})."
        )
    _apply_to_fee(
        account=account,
        fee=fee,
        amount=wanted,
        origin=origin,
        manual=True,
        credit_entry=credit_entry,
    )
    fields = origin.entry_fields()
    try:
        with transaction.atomic():
            CreditApplication.objects.create(
                student_id=student.pk,
                fee=fee,
                amount=wanted,
                external_source=fields["external_source"],
                external_id=fields["external_id"],
                created_by=fields["created_by"],
            )
    except IntegrityError:
        # Only a concurrent call with the same key that took no lock gets here; the
        # allocations above roll back with this transaction.
        if (first := _first_application(origin)) is None:
            raise
        raise CreditAlreadyApplied(first) from None
    return wanted


def _payment_to_credit(
    *,
    student_id: int,
    amount: Decimal,
    origin: Origin,
    note: str,
    method: str = LedgerEntry.Method.ONLINE,
) -> LedgerEntry:
    """Money already taken outside that staff keep whole as the student's credit: a payment
    entry on no fee (so no fee changes and no vendor is told), none of it allocated, and the
    credit row raised by as much. Inside the caller's transaction; a repeat of the same
    (external_source, external_id) raises `_AlreadyRecorded` with the first entry."""
    amount = to_money(amount)
    account = _credit_account(student_id)  # locked: a concurrent repeat has committed by now
    if (existing := _existing_external(origin)) is not None:
        raise _AlreadyRecorded(existing)
    try:
        with transaction.atomic():
            entry = LedgerEntry.objects.create(
                student_id=student_id,
                fee=None,
                kind=Kind.PAYMENT,
                amount=amount,
                method=method,
                reason=note,
                **origin.entry_fields(),
            )
    except IntegrityError:
        if (existing := _existing_external(origin)) is None:
            raise
        raise _AlreadyRecorded(existing) from None
    _credit_change(account, amount)
    return entry


@transaction.atomic
def credit_refund(
    *,
    student: Student,
    amount: Any,
    reason: str,
    origin: Origin,
    method: str = "",
    check_number: str = "",
) -> list[LedgerEntry]:
    """Pay (part of) the student's credit back to the family: one refund entry per payment
    it is drawn from (oldest first), on no fee, each settled out of that payment's credit.
    No fee changes, so no vendor is told. Idempotent by `origin.external_id` (checked under
    the credit row's lock): a repeat returns the first refund entry."""
    try:
        return _credit_refund(
            student_id=student.pk,
            amount=amount,
            reason=reason,
            origin=origin,
            method=method,
            check_number=check_number,
            name=student.full_name,
        )
    except _AlreadyRecorded as done:
        return [done.entry]


def _credit_refund(
    *,
    student_id: int,
    amount: Any,
    reason: str,
    origin: Origin,
    method: str = "",
    check_number: str = "",
    name: str = "The student",
) -> list[LedgerEntry]:
    """`credit_refund` inside the caller's transaction (the one door's refunds from the
    student's credit); a repeat of the sender's id raises `_AlreadyRecorded`."""
    reason = _require(reason, "A reason for the refund")
    amount = to_money(amount)
    if method and method not in LedgerEntry.Method.values:
        raise LedgerError(f"“{method}” is not a payment method FeeSync knows.")
    check_number = (check_number or "").strip()
    if method == LedgerEntry.Method.CHECK and not check_number:
        raise LedgerError("A refund by check needs the check number.")
    account = _credit_account(student_id)
    # A sender's repeat (the same external id) is answered with what it recorded first.
    if origin.external_id and (first := _existing_external(origin)) is not None:
        raise _AlreadyRecorded(first)
    if amount > account.amount:
        raise LedgerError(
            f"{_dollars(amount)} is more than {name}'s credit ({_dollars(account.amount)})."
            if account.amount
            else f"{name} has no credit on account to refund."
        )
    refunds: list[LedgerEntry] = []
    for i, (entry, take) in enumerate(_drawn(student_id, amount, None)):
        # A sender's own id can name one entry only; the rest of a split refund carry none.
        part_origin = origin if i == 0 else Origin(user=origin.user, source=origin.source)
        refund = LedgerEntry.objects.create(
            student_id=student_id,
            fee=None,
            kind=Kind.REFUND,
            amount=take,
            method=method,
            check_number=check_number,
            reason=reason,
            reverses=entry,
            **part_origin.entry_fields(),
        )
        Allocation.objects.create(credit=entry, debit=refund, amount=take, manual=True)
        refunds.append(refund)
    _credit_change(account, -amount)
    return refunds


@transaction.atomic
def credit_refund_void(
    *, refunds: list[LedgerEntry], reason: str, origin: Origin
) -> list[LedgerEntry]:
    """Void refunds of the student's credit that were paid (a refund check never cashed,
    sent in error): for each refund entry a reversing entry, a payment on no fee that
    `reverses` it, for as much. Nothing of it is allocated, so the money is the student's
    credit again, exactly as before the refund. Refused for anything but a refund of credit
    (on no fee) and for a refund already voided."""
    reason = _require(reason, "A reason for the void")
    if not refunds:
        raise LedgerError("There is no refund entry to void.")
    student_ids = {e.student_id for e in refunds}
    if len(student_ids) != 1:
        raise LedgerError("Refund entries of several students cannot be voided together.")
    account = _credit_account(student_ids.pop())  # locked: a concurrent void waits here
    reversed_already = set(
        LedgerEntry.objects.filter(
            reverses__in=refunds, kind=Kind.PAYMENT, fee__isnull=True
        ).values_list("reverses_id", flat=True)
    )
    voids: list[LedgerEntry] = []
    for refund in refunds:
        if refund.kind != Kind.REFUND or refund.fee_id is not None:
            raise LedgerError(f"Entry {refund.pk} is not a refund of the student's credit.")
        if refund.pk in reversed_already:
            raise LedgerError(f"Refund entry {refund.pk} is already voided.")
        voids.append(
            LedgerEntry.objects.create(
                student_id=refund.student_id,
                fee=None,
                kind=Kind.PAYMENT,
                amount=refund.amount,
                # Not a payment the family made: no method, so no check lookup finds it.
                method="",
                reason=reason,
                reverses=refund,
                **Origin(user=origin.user, source=origin.source).entry_fields(),
            )
        )
    _credit_change(account, sum((v.amount for v in voids), ZERO))
    return voids


def credit_auto_apply(*, student_id: int, origin: Origin | None = None) -> Decimal:
    """With FEESYNC_AUTO_APPLY_CREDIT on: apply the student's credit to their open fees,
    oldest due date first (then fee date), until the credit or the open fees run out.
    Returns what was applied (nothing when the setting is off). Its own transaction: called
    after the payment that made the credit is committed, so that it can lock the fees before
    the credit row (see the lock order in `ledger`)."""
    if not settings.FEESYNC_AUTO_APPLY_CREDIT:
        return ZERO
    origin = origin or Origin(source=LedgerEntry.Source.SYSTEM)
    with transaction.atomic():
        fees = list(
            Fee.objects.select_for_update()
            .filter(student_id=student_id, status=Fee.Status.OPEN, balance__gt=0)
            .order_by("pk")
        )
        # A fee a charge of which was applied by hand is left to the hand that applied it.
        manual_fees = set(
            LedgerEntry.objects.filter(
                fee_id__in=[f.pk for f in fees], manual_apply__isnull=False
            ).values_list("fee_id", flat=True)
        )
        fees = [f for f in fees if f.pk not in manual_fees]
        account = _credit_account(student_id)
        available = min(account.amount, auto_available(student_id))
        applied = ZERO
        fees.sort(key=lambda f: (f.due_date is None, f.due_date, f.fee_date, f.pk))
        for fee in fees:
            if available <= 0:
                break
            take = min(available, fee.balance)
            available -= take
            _apply_to_fee(account=account, fee=fee, amount=take, origin=origin, manual=False)
            applied += take
        return applied


__all__ = [
    "CreditAlreadyApplied",
    "credit_apply",
    "credit_auto_apply",
    "credit_entries",
    "credit_refund",
    "credit_refund_void",
    "student_credit",
]


def manual_apply_flag(*, entries: list[LedgerEntry]) -> None:
    """Mark entries as applied by hand (a payment and the charge it was applied to): the
    district's automatic application never takes from or gives to them again."""
    from ..models import ManualApplication

    ManualApplication.objects.bulk_create(
        [ManualApplication(entry=e) for e in entries], ignore_conflicts=True
    )


def manual_apply_clear(*, entry: LedgerEntry) -> None:
    """Give an entry back to automatic application (the admin's manual-apply page)."""
    from ..models import ManualApplication

    ManualApplication.objects.filter(entry=entry).delete()
