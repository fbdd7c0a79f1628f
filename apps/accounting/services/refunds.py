"""Refunds owed to students, and the scheduled-refund cycle a payment vendor runs.

* Staff schedule a refund (status N, not processed) out of the student's credit, with its
  amount, due date and fund source (`refund_schedule`).
* A vendor selects the refunds it will pay (N → S) or lets them go again (S → N): nothing
  else (`refunds_status_set`). A selected refund is no longer offered to anyone: no other
  vendor may select it, and staff cannot pay it from their side.
* The vendor posts the selected refunds it paid (`refunds_post_scheduled`): for each, in its
  own unit of work, the refund entries on the card (through the one door, paid out of the
  student's credit) and S → P; a bad one fails alone.
* Staff pay an unselected refund themselves (`refund_pay`, N → P) and void a paid one
  (`refund_void`, P → V: reversing entries give the money back to the student's credit).
* A vendor's refund that was never scheduled (`refund_post_unscheduled`): the same entries,
  no Refund row.

Every change is in the refund's history (`RefundChange`), who and when. A refund paid out
of the credit may be drawn from several payments: it is then several refund entries, each
booked (`EntryBooking.refund`) to it; `Refund.entry` is the first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.fees.models import LedgerEntry
from apps.fees.movements import MovementKind
from apps.fees.services import (
    LedgerError,
    Origin,
    credit_refund,
    credit_refund_void,
    date_in_window,
    student_credit,
    to_money,
)
from apps.fees.services.outside import (
    Movement,
    MovementSource,
    OutcomeStatus,
    movement_record,
    movements_record,
)
from apps.students.models import Student

from ..models import (
    BankAccount,
    EntryBooking,
    FundSource,
    PaymentType,
    Refund,
    RefundChange,
    StudentAward,
)
from .close import open_business_date

Status = Refund.Status
ZERO = Decimal("0.00")


def _user(user: AbstractBaseUser | None) -> Any:
    return user if user is not None and user.pk else None


def _history(
    refund: Refund,
    from_status: str,
    to_status: str,
    *,
    user: AbstractBaseUser | None = None,
    api_user: Any = None,
    note: str = "",
) -> None:
    RefundChange.objects.create(
        refund=refund,
        from_status=from_status,
        to_status=to_status,
        user=_user(user),
        api_user=api_user,
        note=note[:300],
    )


def _dollars(amount: Decimal) -> str:
    return f"${amount:,.2f}"


def refunds_pending(*, student: Student) -> Decimal:
    """What of the student's credit is already promised to refunds not yet paid (N, S)."""
    total: Decimal = Refund.objects.filter(
        student=student, status__in=[Status.NOT_PROCESSED, Status.SELECTED]
    ).aggregate(s=Coalesce(Sum("amount"), ZERO))["s"]
    return total


@transaction.atomic
def refund_schedule(
    *,
    student: Student,
    amount: Any,
    due_date: date,
    user: AbstractBaseUser | None,
    fund_source: FundSource | None = None,
    student_award: StudentAward | None = None,
    reason: str = "",
) -> Refund:
    """Schedule a refund owed to the student (status N), out of their credit: never more
    than the credit not yet promised to other refunds."""
    amount = to_money(amount)
    date_in_window(due_date, label="The due date")
    if student_award is not None:
        if student_award.student_id != student.pk:
            raise LedgerError("That student award is another student's.")
        if fund_source is not None and fund_source.pk != student_award.fund_source_id:
            raise LedgerError("The fund source is not the student award's fund source.")
        fund_source = student_award.fund_source
    # The student's row serializes two clerks scheduling against the same credit.
    Student.objects.select_for_update().filter(pk=student.pk).first()
    credit = student_credit(student=student)
    pending = refunds_pending(student=student)
    if amount > credit - pending:
        free = max(credit - pending, ZERO)
        raise LedgerError(
            f"{_dollars(amount)} is more than {student.full_name}'s credit not yet scheduled "
            f"for refund ({_dollars(free)} of {_dollars(credit)})."
        )
    refund = Refund.objects.create(
        student=student,
        amount=amount,
        due_date=due_date,
        fund_source=fund_source,
        student_award=student_award,
        reason=(reason or "").strip()[:300],
        created_by=_user(user),
    )
    _history(refund, "", Status.NOT_PROCESSED, user=user, note="Scheduled")
    return refund


# --- the vendor's side ----------------------------------------------------------------------


@dataclass
class StatusProblem:
    index: int
    refund_id: int
    detail: str


class RefundStatusRefused(LedgerError):
    """`refunds_status_set` changed nothing: `problems` says which refund and why."""

    def __init__(self, problems: list[StatusProblem]) -> None:
        super().__init__([p.detail for p in problems])
        self.problems = problems


def _locked(refund_ids: list[int]) -> dict[int, Refund]:
    return {
        r.pk: r
        for r in Refund.objects.select_for_update()
        .select_related("student")
        .filter(pk__in=refund_ids)
        .order_by("pk")
    }


@transaction.atomic
def refunds_status_set(*, refund_ids: list[int], status: str, api_user: Any) -> list[Refund]:
    """Select refunds for processing (N → S) or let them go again (S → N, only those this
    API user selected): all of them or none, each refusal naming its refund."""
    if status not in (Status.NOT_PROCESSED, Status.SELECTED):
        raise LedgerError(
            f"“{status}” is not a status a vendor may set: S (selected for processing) or N "
            "(not processed) only."
        )
    refunds = _locked(refund_ids)
    problems: list[StatusProblem] = []
    seen: set[int] = set()
    for i, pk in enumerate(refund_ids):
        refund = refunds.get(pk)
        if pk in seen:
            problems.append(StatusProblem(i, pk, f"Refund {pk} is listed twice."))
            continue
        seen.add(pk)
        if refund is None:
            problems.append(StatusProblem(i, pk, f"No refund has the id {pk}."))
            continue
        now = refund.get_status_display().lower()
        if status == Status.SELECTED and refund.status != Status.NOT_PROCESSED:
            problems.append(
                StatusProblem(
                    i,
                    pk,
                    f"Refund {pk} is {refund.status} ({now}): only a refund not processed (N) "
                    "can be selected.",
                )
            )
        elif status == Status.NOT_PROCESSED and refund.status != Status.SELECTED:
            problems.append(
                StatusProblem(
                    i,
                    pk,
                    f"Refund {pk} is {refund.status} ({now}): only a selected refund (S) can "
                    "go back to N.",
                )
            )
        elif status == Status.NOT_PROCESSED and refund.selected_by_id != api_user.pk:
            problems.append(
                StatusProblem(i, pk, f"Refund {pk} was selected by another vendor, not you.")
            )
    if problems:
        raise RefundStatusRefused(problems)
    out = []
    for pk in refund_ids:
        refund = refunds[pk]
        before = refund.status
        refund.status = status
        refund.selected_by = api_user if status == Status.SELECTED else None
        refund.save(update_fields=["status", "selected_by", "updated_at"])
        _history(
            refund,
            before,
            status,
            api_user=api_user,
            note="Selected for processing" if status == Status.SELECTED else "Released",
        )
        out.append(refund)
    return out


def _source(api_user: Any) -> MovementSource:
    return MovementSource(
        external_source=api_user.external_source,
        name=api_user.integration.name,
        ledger_source=LedgerEntry.Source.PARTNER_API,
    )


def _book(
    entries: list[LedgerEntry],
    *,
    business_date: date,
    payment_type: str,
    bank_account: BankAccount | None,
    refund: Refund | None,
) -> None:
    EntryBooking.objects.bulk_create(
        [
            EntryBooking(
                entry=e,
                business_date=business_date,
                payment_type=payment_type,
                bank_account=bank_account,
                student_award=refund.student_award if refund is not None else None,
                refund=refund,
            )
            for e in entries
        ]
    )


@dataclass
class RefundPayment:
    """What became of one scheduled refund a vendor posted as paid."""

    index: int
    refund_id: int
    ok: bool
    detail: str = ""
    entries: list[LedgerEntry] = field(default_factory=list)
    refund: Refund | None = None
    replay: bool = False


@dataclass(frozen=True)
class RefundPaid:
    """One element of a vendor's batch of paid scheduled refunds."""

    refund_id: int
    transaction_date: date | None = None
    payment_type: str = PaymentType.CHECK
    bank_account: BankAccount | None = None
    description: str = ""
    check_number: str = ""


def _refusal(refund: Refund, api_user: Any) -> str:
    """Why a refund cannot be posted as paid by this API user ("" when it can)."""
    if refund.status != Status.SELECTED:
        return (
            f"Refund {refund.pk} is {refund.status} ({refund.get_status_display().lower()}): "
            "select it (S) before posting it as paid."
        )
    if refund.selected_by_id != api_user.pk:
        return f"Refund {refund.pk} was selected by another vendor."
    return ""


#: S → P for a batch, in one statement (PostgreSQL); `bulk_update`'s CASE WHEN per row cost
#: seconds per thousand (bench partner_api.scheduled_refunds_1k_s).
_MARK_PAID_SQL = """
UPDATE accounting_refund AS r SET status = 'P', entry_id = v.entry_id, updated_at = %(now)s
FROM unnest(%(ids)s::bigint[], %(entries)s::bigint[]) AS v(id, entry_id)
WHERE r.id = v.id AND r.status = 'S'
"""


def _mark_paid(refunds: list[Refund]) -> None:
    now = timezone.now()
    if not refunds:
        return
    if connection.vendor != "postgresql":
        for refund in refunds:
            refund.updated_at = now
        Refund.objects.bulk_update(refunds, ["status", "entry", "updated_at"])
        return
    with connection.cursor() as cursor:
        cursor.execute(
            _MARK_PAID_SQL,
            {
                "now": now,
                "ids": [r.pk for r in refunds],
                "entries": [r.entry_id for r in refunds],
            },
        )
        if cursor.rowcount != len(refunds):  # every one was locked as S above
            raise LedgerError("A refund changed while it was being posted; nothing was posted.")


def refunds_post_scheduled(*, api_user: Any, items: list[RefundPaid]) -> list[RefundPayment]:
    """Post selected refunds as paid: for each, its refund entries on the card (through the
    one door, out of the student's credit) and S → P, or nothing and the reason. One outcome
    per item, in order; one that fails leaves nothing behind and the others are posted.

    Set-wise (a vendor posts a thousand at once): the refunds are locked and checked
    together, the door posts their entries in one batch, and bookings, statuses and
    history are written in a few statements. Each element is decided before anything is
    written, so each is still one unit of work: all of it or none of it."""
    out: dict[int, RefundPayment] = {}
    with transaction.atomic():
        refunds = {
            r.pk: r
            for r in Refund.objects.select_for_update(of=("self",))
            .select_related("student_award")
            .filter(pk__in=[item.refund_id for item in items])
            .order_by("pk")
        }
        todo: list[tuple[int, RefundPaid, Refund]] = []
        seen: set[int] = set()
        open_dates: dict[Any, str] = {}
        for i, item in enumerate(items):
            refund = refunds.get(item.refund_id)
            if item.refund_id in seen:
                out[i] = RefundPayment(
                    i, item.refund_id, False, f"Refund {item.refund_id} is listed twice."
                )
                continue
            seen.add(item.refund_id)
            if refund is None:
                out[i] = RefundPayment(
                    i, item.refund_id, False, f"No refund has the id {item.refund_id}."
                )
                continue
            if refund.status == Status.PAID and refund.selected_by_id == api_user.pk:
                # A retry of a posting that succeeded: answer with it, post nothing.
                paid = [
                    b.entry
                    for b in refund.bookings.select_related("entry").order_by("entry_id")
                    if b.entry.kind == LedgerEntry.Kind.REFUND
                ]
                out[i] = RefundPayment(i, refund.pk, True, entries=paid, refund=refund, replay=True)
                continue
            if why := _refusal(refund, api_user):
                out[i] = RefundPayment(i, refund.pk, False, why)
                continue
            day = item.transaction_date or timezone.localdate()
            if day not in open_dates:
                try:
                    open_business_date(day, label="TransactionDate")
                    open_dates[day] = ""
                except LedgerError as exc:
                    open_dates[day] = "; ".join(exc.messages)
            if open_dates[day]:
                out[i] = RefundPayment(i, refund.pk, False, open_dates[day])
                continue
            todo.append((i, item, refund))
        outcomes = movements_record(
            source=_source(api_user),
            movements=[
                Movement(
                    external_id=f"refund:{refund.pk}",
                    kind=MovementKind.REFUND,
                    fee_ref="",
                    amount=refund.amount,
                    student_id=refund.student_id,
                    method=(
                        LedgerEntry.Method.CHECK if item.check_number else LedgerEntry.Method.ONLINE
                    ),
                    check_number=item.check_number,
                    note=item.description or f"Scheduled refund {refund.pk}",
                )
                for _, item, refund in todo
            ],
        )
        paid_now: list[tuple[int, RefundPaid, Refund, tuple[int, ...]]] = []
        for (i, item, refund), outcome in zip(todo, outcomes, strict=True):
            if outcome.status != OutcomeStatus.RECORDED or not outcome.entry_ids:
                out[i] = RefundPayment(
                    i, refund.pk, False, outcome.reason or f"Refund {refund.pk} was posted before."
                )
                continue
            paid_now.append((i, item, refund, outcome.entry_ids))
        entries = LedgerEntry.objects.in_bulk([pk for *_, ids in paid_now for pk in ids])
        EntryBooking.objects.bulk_create(
            [
                EntryBooking(
                    entry_id=pk,
                    business_date=item.transaction_date or timezone.localdate(),
                    payment_type=item.payment_type,
                    bank_account=item.bank_account,
                    student_award_id=refund.student_award_id,
                    refund=refund,
                )
                for _, item, refund, ids in paid_now
                for pk in ids
            ]
        )
        for i, _, refund, ids in paid_now:
            refund.status = Status.PAID
            refund.entry_id = ids[0]
            out[i] = RefundPayment(
                i, refund.pk, True, entries=[entries[pk] for pk in ids], refund=refund
            )
        _mark_paid([refund for _, _, refund, _ in paid_now])
        RefundChange.objects.bulk_create(
            [
                RefundChange(
                    refund=refund,
                    from_status=Status.SELECTED,
                    to_status=Status.PAID,
                    api_user=api_user,
                    note="Paid by the vendor",
                )
                for _, _, refund, _ in paid_now
            ]
        )
    return [out[i] for i in range(len(items))]


@dataclass
class UnscheduledRefund:
    entries: list[LedgerEntry]
    replay: bool


@transaction.atomic
def refund_post_unscheduled(
    *,
    api_user: Any,
    student: Student,
    amount: Decimal,
    external_id: str,
    description: str,
    transaction_date: date | None = None,
    payment_type: str = PaymentType.CHECK,
    bank_account: BankAccount | None = None,
    check_number: str = "",
) -> UnscheduledRefund:
    """A refund the vendor paid that was never scheduled: paid out of the student's credit,
    recorded once per the vendor's id (a repeat answers with the first posting)."""
    business_date = open_business_date(transaction_date, label="TransactionDate")
    outcome = movement_record(
        source=_source(api_user),
        movement=Movement(
            external_id=external_id,
            kind=MovementKind.REFUND,
            fee_ref="",
            amount=amount,
            student_id=student.pk,
            method=LedgerEntry.Method.CHECK if check_number else LedgerEntry.Method.ONLINE,
            check_number=check_number,
            note=description,
        ),
    )
    if outcome.status == OutcomeStatus.ALREADY_RECORDED and outcome.entry_id is not None:
        first = LedgerEntry.objects.get(pk=outcome.entry_id)
        if first.kind != LedgerEntry.Kind.REFUND or first.student_id != student.pk:
            raise LedgerError(
                f"Your transaction id {external_id} is already recorded for another posting."
            )
        booked = EntryBooking.objects.filter(entry=first).first()
        return UnscheduledRefund([first], replay=booked is not None)
    if outcome.status != OutcomeStatus.RECORDED or outcome.entry_id is None:
        raise LedgerError(outcome.reason)
    parts = list(LedgerEntry.objects.filter(pk__in=outcome.entry_ids).order_by("pk"))
    _book(
        parts,
        business_date=business_date,
        payment_type=payment_type,
        bank_account=bank_account,
        refund=None,
    )
    return UnscheduledRefund(parts, replay=False)


# --- the staff side -------------------------------------------------------------------------


def _lock_refund(refund: Refund) -> Refund:
    return Refund.objects.select_for_update().select_related("student").get(pk=refund.pk)


@transaction.atomic
def refund_pay(
    *,
    refund: Refund,
    user: AbstractBaseUser | None,
    method: str = LedgerEntry.Method.CHECK,
    check_number: str = "",
    payment_type: str = PaymentType.CHECK,
    bank_account: BankAccount | None = None,
) -> Refund:
    """Staff pay a scheduled refund themselves (a check from the office): N → P. A refund a
    vendor selected for processing is the vendor's to pay, not the office's."""
    refund = _lock_refund(refund)
    if refund.status == Status.SELECTED:
        raise LedgerError(
            f"Refund {refund.pk} is selected for processing by a vendor; it cannot be paid "
            "from the staff side (the vendor pays it, or lets it go back to N)."
        )
    if refund.status != Status.NOT_PROCESSED:
        raise LedgerError(
            f"Refund {refund.pk} is {refund.get_status_display().lower()}; only a refund not "
            "processed can be paid."
        )
    business_date = open_business_date()
    entries = credit_refund(
        student=refund.student,
        amount=refund.amount,
        reason=refund.reason or f"Scheduled refund {refund.pk}",
        origin=Origin(user=user),
        method=method,
        check_number=check_number,
    )
    _book(
        entries,
        business_date=business_date,
        payment_type=payment_type,
        bank_account=bank_account,
        refund=refund,
    )
    refund.status = Status.PAID
    refund.entry = entries[0]
    refund.save(update_fields=["status", "entry", "updated_at"])
    _history(refund, Status.NOT_PROCESSED, Status.PAID, user=user, note="Paid by the office")
    return refund


@transaction.atomic
def refund_void(*, refund: Refund, user: AbstractBaseUser | None, reason: str) -> Refund:
    """Void a paid refund (P → V): a reversing entry for each of its refund entries gives the
    money back to the student's credit."""
    refund = _lock_refund(refund)
    if refund.status != Status.PAID:
        raise LedgerError(
            f"Refund {refund.pk} is {refund.get_status_display().lower()}; only a paid refund "
            "can be voided."
        )
    business_date = open_business_date()
    bookings = list(
        refund.bookings.select_related("entry", "bank_account").filter(
            entry__kind=LedgerEntry.Kind.REFUND
        )
    )
    voids = credit_refund_void(
        refunds=[b.entry for b in bookings],
        reason=(reason or "").strip() or f"Void of refund {refund.pk}",
        origin=Origin(user=user),
    )
    first = bookings[0] if bookings else None
    _book(
        voids,
        business_date=business_date,
        payment_type=first.payment_type if first else "",
        bank_account=first.bank_account if first else None,
        refund=refund,
    )
    refund.status = Status.VOIDED
    refund.void_entry = voids[0]
    refund.save(update_fields=["status", "void_entry", "updated_at"])
    _history(refund, Status.PAID, Status.VOIDED, user=user, note=(reason or "").strip())
    return refund
