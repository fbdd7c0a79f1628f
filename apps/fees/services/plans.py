"""Payment plans on the student's account: create one, replace its schedule, and mark
installments paid as payments for them arrive, with the schedule auto-adjusted.

The rules are Anthology Student's for scheduled payments (the partner API follows them):

* a payment for an installment (named, or the next scheduled one) that is exactly its
  amount pays it;
* more than its amount pays it and carries the rest to the following scheduled
  installments in date order: each it covers is paid, the one it covers in part is split
  into a paid part and a scheduled remainder on the same date (100/100/100, 125 on the
  first: 100 paid, 25 paid + 75 scheduled, 100 scheduled); what is left beyond the last
  installment stays on the account as the student's credit;
* less than its amount pays that much of it and schedules the rest as a new installment on
  its date (100/100/100, 75 on the first: 75 paid, 25 scheduled on the first's date, then
  100 and 100 unchanged);
* a paid installment is never changed or removed; replacing the schedule removes only the
  scheduled (S) and cancelled (C) ones.

So after any sequence of payments and replacements the plan's paid plus scheduled
installments add up to its `total`, which `ledger_check` verifies. Each service is one
atomic action that locks the plan first (payments on one plan are serialized by it) and
writes a `PaymentPlanChange` with the whole schedule after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Sum
from django.db.models.functions import Coalesce

from apps.students.models import Student

from ..models import ZERO, LedgerEntry, PaymentPlan, PaymentPlanChange, ScheduledPayment
from ..money import money_text
from .ledger import LedgerError, date_in_window, to_money

Status = ScheduledPayment.Status


@dataclass(frozen=True)
class Installment:
    """An installment as a plan's author sends it."""

    amount: Decimal
    expected_date: date


def _checked(installments: Sequence[Installment]) -> list[Installment]:
    out = []
    for i, inst in enumerate(installments, start=1):
        amount = to_money(inst.amount, label=f"Scheduled payment {i}'s amount")
        date_in_window(inst.expected_date, label=f"Scheduled payment {i}'s expected date")
        out.append(Installment(amount, inst.expected_date))
    return out


def _schedule(plan: PaymentPlan) -> list[dict[str, Any]]:
    return [
        {
            "id": s.pk,
            "amount": money_text(s.amount),
            "expected_date": s.expected_date.isoformat(),
            "status": s.status,
            "payment": s.payment_id,
        }
        for s in plan.installments.order_by("expected_date", "id")
    ]


def _recount(plan: PaymentPlan, what: str) -> None:
    """Bring the plan's total in step with its installments and record the change."""
    total: Decimal = plan.installments.filter(status__in=[Status.SCHEDULED, Status.PAID]).aggregate(
        s=Coalesce(Sum("amount"), ZERO)
    )["s"]
    plan.total = total
    plan.version += 1
    plan.save(update_fields=["total", "version", "description", "terms", "updated_at"])
    PaymentPlanChange.objects.create(plan=plan, what=what, schedule=_schedule(plan))


def plan_lock(plan_id: int) -> PaymentPlan:
    """The plan, locked for the rest of the caller's transaction."""
    return PaymentPlan.objects.select_for_update().get(pk=plan_id)


@transaction.atomic
def plan_create(
    *,
    student: Student,
    installments: Sequence[Installment],
    user: AbstractBaseUser | None = None,
    external_source: str = "",
    description: str = "",
    terms: dict[str, Any] | None = None,
) -> PaymentPlan:
    """A new payment plan with its scheduled payments."""
    checked = _checked(installments)
    if not checked:
        raise LedgerError("A payment plan needs at least one scheduled payment.")
    plan = PaymentPlan.objects.create(
        student=student,
        external_source=external_source,
        description=description.strip(),
        total=ZERO,
        terms=terms or {},
        created_by_id=user.pk if user is not None else None,
        version=0,
    )
    ScheduledPayment.objects.bulk_create(
        [
            ScheduledPayment(plan=plan, amount=i.amount, expected_date=i.expected_date)
            for i in checked
        ]
    )
    _recount(plan, f"Plan created with {len(checked)} scheduled payments")
    return plan


@transaction.atomic
def plan_update(
    *,
    plan: PaymentPlan,
    installments: Sequence[Installment] = (),
    remove_scheduled: bool = False,
    description: str | None = None,
    terms: dict[str, Any] | None = None,
) -> PaymentPlan:
    """Change a plan: with `remove_scheduled`, every scheduled (S) or cancelled (C)
    installment is removed and `installments` replace them; without it, `installments` are
    added. Paid installments are never touched."""
    plan = plan_lock(plan.pk)
    checked = _checked(installments)
    removed = 0
    if remove_scheduled:
        removed, _ = plan.installments.filter(
            status__in=[Status.SCHEDULED, Status.CANCELLED]
        ).delete()
    ScheduledPayment.objects.bulk_create(
        [
            ScheduledPayment(plan=plan, amount=i.amount, expected_date=i.expected_date)
            for i in checked
        ]
    )
    if description is not None:
        plan.description = description.strip()
    if terms is not None:
        plan.terms = {**plan.terms, **terms}
    what = (
        f"Scheduled payments replaced: {removed} removed, {len(checked)} added"
        if remove_scheduled
        else f"{len(checked)} scheduled payments added"
    )
    _recount(plan, what)
    return plan


def next_scheduled(plan: PaymentPlan) -> ScheduledPayment | None:
    """The scheduled installment with the earliest expected date (`UseNextScheduledPayment`)."""
    return plan.installments.filter(status=Status.SCHEDULED).order_by("expected_date", "id").first()


def installment_pay(
    *, plan: PaymentPlan, installment: ScheduledPayment, payment: LedgerEntry, amount: Decimal
) -> list[ScheduledPayment]:
    """Mark `installment` paid by `payment` (`amount` of it) and auto-adjust the schedule,
    per the module's rules. Call with the plan locked (`plan_lock`), in the transaction that
    posted the payment. Returns the installments the payment paid, in order."""
    installment = ScheduledPayment.objects.select_for_update().get(pk=installment.pk)
    if installment.plan_id != plan.pk:
        raise LedgerError(f"Scheduled payment {installment.pk} is not on payment plan {plan.pk}.")
    if installment.status != Status.SCHEDULED:
        raise LedgerError(
            f"Scheduled payment {installment.pk} is {installment.get_status_display().lower()}, "
            "not scheduled; it cannot take a payment."
        )
    amount = to_money(amount)
    paid: list[ScheduledPayment] = []
    if amount < installment.amount:
        rest = installment.amount - amount
        _mark_paid(installment, payment, amount)
        paid.append(installment)
        ScheduledPayment.objects.create(
            plan=plan, amount=rest, expected_date=installment.expected_date, split_from=installment
        )
    else:
        left = amount - installment.amount
        _mark_paid(installment, payment, installment.amount)
        paid.append(installment)
        following = (
            plan.installments.select_for_update()
            .filter(status=Status.SCHEDULED)
            .exclude(pk=installment.pk)
            .order_by("expected_date", "id")
        )
        for later in following:
            if left <= 0:
                break
            if left >= later.amount:
                left -= later.amount
                _mark_paid(later, payment, later.amount)
            else:
                rest = later.amount - left
                _mark_paid(later, payment, left)
                ScheduledPayment.objects.create(
                    plan=plan, amount=rest, expected_date=later.expected_date, split_from=later
                )
                left = ZERO
            paid.append(later)
    _recount(
        plan,
        f"Payment of ${money_text(amount)} (entry {payment.pk}) on scheduled payment "
        f"{installment.pk}",
    )
    return paid


def _mark_paid(installment: ScheduledPayment, payment: LedgerEntry, amount: Decimal) -> None:
    installment.amount = amount
    installment.status = Status.PAID
    installment.payment = payment
    installment.save(update_fields=["amount", "status", "payment"])


__all__ = [
    "Installment",
    "installment_pay",
    "next_scheduled",
    "plan_create",
    "plan_lock",
    "plan_update",
]
