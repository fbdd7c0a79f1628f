"""The partner API's writes. Each operation is one transaction: the ledger postings go
through the one door (`apps.fees.services.outside.movements_record`), the plan through
`apps.fees.services.plans`, and what the partner sent beside the money is kept here
(`ApiPosting`). Refusals are `Problem`s naming the property."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction

from apps.common.sql import prepared_cursor
from apps.fees.models import LedgerEntry, PaymentPlan, ScheduledPayment
from apps.fees.movements import MovementKind
from apps.fees.services.ledger import date_in_window, to_money, unallocated
from apps.fees.services.outside import Movement, MovementSource, OutcomeStatus, movement_record
from apps.fees.services.plans import (
    Installment,
    installment_pay,
    next_scheduled,
    plan_create,
    plan_lock,
    plan_update,
)
from apps.students.models import School, Student

from .models import ApiPosting, ApiUser
from .problems import Problem
from .serializers import PAYMENT_TYPE_LETTERS, PAYMENT_TYPES

PAYMENT_OP = "StudentAccounting.LedgerPaymentTransactions.Create"


def refused(prop: str, detail: str, status: int = 422) -> Problem:
    return Problem(
        status,
        "Not found" if status == 404 else "Unprocessable content",
        detail,
        errors=[{"property": prop, "detail": detail}],
    )


def source_for(api_user: ApiUser) -> MovementSource:
    return MovementSource(
        external_source=api_user.external_source,
        name=api_user.integration.name,
        ledger_source=LedgerEntry.Source.PARTNER_API,
    )


def student_for(student_id: str) -> Student:
    student = _student_with_school(student_id)
    if student is None:
        raise refused("StudentId", f"No student has the id “{student_id}”.")
    return student


def _student_with_school(number: str) -> Student | None:
    """`Student.objects.select_related("school").filter(student_number=...).first()` in
    plain SQL: every posting starts with it, and building the ORM's query cost more CPU
    than running it. Whole instances, as the ORM would load them."""
    students = [f.column for f in Student._meta.concrete_fields]
    schools = [f.column for f in School._meta.concrete_fields]
    select = ", ".join([f"s.{c}" for c in students] + [f"c.{c}" for c in schools])
    with prepared_cursor() as cursor:
        cursor.execute(
            f"SELECT {select} FROM {Student._meta.db_table} s "  # noqa: S608 - our tables and columns; value bound
            f"JOIN {School._meta.db_table} c ON c.id = s.school_id "
            "WHERE s.student_number = %s ORDER BY s.id LIMIT 1",
            [number],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    names = [f.attname for f in Student._meta.concrete_fields]
    student = Student.from_db(connection.alias, names, row[: len(students)])
    school_names = [f.attname for f in School._meta.concrete_fields]
    student.school = School.from_db(connection.alias, school_names, row[len(students) :])
    return student


def _in_window(value: Any, prop: str) -> None:
    from apps.fees.services.ledger import LedgerError

    try:
        date_in_window(value, label=prop)
    except LedgerError as exc:
        raise refused(prop, "; ".join(exc.messages)) from None


# --- payments ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentResult:
    body: dict[str, Any]
    replay: bool


def installment_body(s: ScheduledPayment) -> dict[str, Any]:
    return {
        "ScheduledDisbursementId": s.pk,
        "Amount": f"{s.amount:.2f}",
        "ExpectedDate": f"{s.expected_date.isoformat()}T00:00:00",
        "Status": s.status,
        "StudentAccountTransactionId": s.payment_id,
    }


def payment_body(
    entry: LedgerEntry,
    posting: ApiPosting | None,
    *,
    replay: bool,
    paid: list[ScheduledPayment] | None = None,
    spare: Decimal | None = None,
) -> dict[str, Any]:
    """`paid`: the installments it paid, when the caller knows them (none, for a new
    payment not for an installment), else they are read; `spare`, what of it is not
    applied, likewise."""
    if paid is None:
        paid = list(entry.installments_paid.order_by("expected_date", "id"))
    if spare is None:
        spare = unallocated(entry)
    return {
        "StudentAccountTransactionId": entry.pk,
        "StudentId": entry.student.student_number,
        "TransactionAmount": f"{entry.amount:.2f}",
        "AppliedAmount": f"{entry.amount - spare:.2f}",
        "UnappliedAmount": f"{spare:.2f}",
        "TransactionDate": (
            f"{posting.transaction_date.isoformat()}T00:00:00"
            if posting
            else f"{entry.created_at.date().isoformat()}T00:00:00"
        ),
        "PaymentType": posting.payment_type if posting else entry.method,
        "Description": posting.description if posting else entry.reason,
        "VendorTransactionId": entry.external_id,
        "PaymentPlanId": paid[0].plan_id if paid else None,
        "ScheduledPayments": [installment_body(s) for s in paid],
        "IsReplay": replay,
    }


def _replay(api_user: ApiUser, external_id: str) -> PaymentResult | None:
    entry = (
        LedgerEntry.objects.select_related("student")
        .filter(external_source=api_user.external_source, external_id=external_id)
        .first()
    )
    if entry is None:
        return None
    posting = ApiPosting.objects.filter(entry=entry).first()
    return PaymentResult(payment_body(entry, posting, replay=True), replay=True)


def _cashiering(api_user: ApiUser, student: Student, data: dict[str, Any]) -> Any:
    """CashDrawerId, CashDrawerSessionId and CashierUserId checked against the real drawers
    and sessions (`api_cash_check`): when the school has cashiering on, the drawer is
    required, and an open session there tied to the API user or whose cashier is
    CashierUserId. Returns what was found (`ApiCash`: drawer, session, cashier)."""
    from apps.accounting.services.cashiering import api_cash_check

    cash = api_cash_check(
        api_user=api_user,
        school=student.school,
        drawer_id=data.get("CashDrawerId"),
        session_id=data.get("CashDrawerSessionId"),
        cashier_id=data.get("CashierUserId"),
        session_required=False,
    )
    if cash.errors:
        raise Problem(
            422,
            "Unprocessable content",
            "; ".join(e["detail"] for e in cash.errors),
            errors=cash.errors,
        )
    return cash


def _post_and_book(api_user: ApiUser, posting: ApiPosting, data: dict[str, Any], cash: Any) -> None:
    """What the partner sent beside the money (`posting`), and the payment's booking for the
    daily close, in its transaction and in one statement (`booking_with`): its business date
    and payment type, the bank account its merchant account deposits into at the student's
    school (when the district keeps one), and the cash drawer session it went into (locked:
    one closed meanwhile refuses the payment)."""
    from apps.accounting.services.cashiering import booking_with, session_lock_open

    session = session_lock_open(cash.session.pk) if cash.session is not None else None
    booking_with(
        posting,
        business_date=data["TransactionDate"],
        payment_type=PAYMENT_TYPE_LETTERS[data["PaymentType"]],
        integration_id=api_user.integration_id,
        school_id=posting.entry.student.school_id,
        cash_session=session,
    )


def _installment_for(
    student: Student, data: dict[str, Any]
) -> tuple[PaymentPlan, ScheduledPayment] | None:
    """The installment the payment is for (plan locked), or None."""
    if sid := data.get("ScheduledDisbursementId"):
        found = ScheduledPayment.objects.filter(pk=sid).values_list("plan_id", flat=True).first()
        if found is None:
            raise refused("ScheduledDisbursementId", f"No scheduled payment has the id {sid}.")
        plan = plan_lock(found)
        if plan.student_id != student.pk:
            raise refused(
                "ScheduledDisbursementId",
                f"Scheduled payment {sid} is on another student's payment plan.",
            )
        installment = ScheduledPayment.objects.get(pk=sid)
        if installment.status != ScheduledPayment.Status.SCHEDULED:
            raise refused(
                "ScheduledDisbursementId",
                f"Scheduled payment {sid} is {installment.get_status_display().lower()}, "
                "not scheduled.",
            )
        return plan, installment
    if data.get("UseNextScheduledPayment"):
        plans = PaymentPlan.objects.filter(student=student)
        if plan_id := data.get("PaymentPlanId"):
            plans = plans.filter(pk=plan_id)
            if not plans.exists():
                raise refused("PaymentPlanId", f"The student has no payment plan {plan_id}.")
        # Lock every candidate plan (id order), then pick the earliest scheduled installment.
        locked = [plan_lock(pk) for pk in sorted(plans.values_list("pk", flat=True))]
        candidates = [(s, p) for p in locked if (s := next_scheduled(p)) is not None]
        if not candidates:
            raise refused(
                "UseNextScheduledPayment", "The student has no scheduled payment left to pay."
            )
        installment, plan = min(candidates, key=lambda c: (c[0].expected_date, c[0].pk))
        return plan, installment
    return None


def payment_post(*, api_user: ApiUser, data: dict[str, Any]) -> PaymentResult:
    """Post a payment to the student's ledger card, for an installment when asked."""
    student = student_for(data["StudentId"])
    _in_window(data["TransactionDate"], "TransactionDate")
    cash = _cashiering(api_user, student, data)
    external_id = data["VendorTransactionId"].strip()
    # No savepoint of its own: the view's transaction (or this one, when outermost) is
    # what a refusal rolls back, and each savepoint costs two round trips.
    with transaction.atomic(savepoint=False):
        # A repeat of the vendor's id answers with the first posting, even if its
        # installment has been paid since (checked under the plan's lock), and even when
        # that payment took the plan's last scheduled installment, so that none is left to
        # name (simulate --seed 1: a vendor's retry was told 422 for a recorded payment).
        # Without an installment the door's ALREADY_RECORDED below says the same for one
        # query less.
        try:
            target = _installment_for(student, data)
        except Problem:
            if (done := _replay(api_user, external_id)) is not None:
                return done
            raise
        if target is not None and (done := _replay(api_user, external_id)) is not None:
            return done
        amount: Decimal = data["TransactionAmount"]
        outcome = movement_record(
            source=source_for(api_user),
            movement=Movement(
                external_id=external_id,
                kind=MovementKind.PAYMENT,
                fee_ref="",
                amount=amount,
                student_id=student.pk,
                method=PAYMENT_TYPES[data["PaymentType"]],
                note=data["Description"].strip(),
            ),
        )
        if outcome.status == OutcomeStatus.ALREADY_RECORDED:
            # A concurrent post of the same id committed first: answer with it.
            if (done := _replay(api_user, external_id)) is None:
                raise refused("VendorTransactionId", outcome.reason or "Recorded elsewhere.")
            return done
        if outcome.status != OutcomeStatus.RECORDED:
            raise refused("TransactionAmount", outcome.reason)
        # The entry as posted, not read back: the answer needs only what was sent.
        entry = LedgerEntry(
            pk=outcome.entry_id,
            student=student,
            kind=LedgerEntry.Kind.PAYMENT,
            amount=amount,
            external_id=external_id,
        )
        entry._state.adding = False
        posting = ApiPosting(
            entry=entry,
            api_user=api_user,
            operation=PAYMENT_OP,
            transaction_date=data["TransactionDate"],
            payment_type=data["PaymentType"],
            description=data["Description"].strip(),
            term_id=(data.get("TermId") or "").strip(),
            cash_drawer_id=data.get("CashDrawerId"),
            cashier_user=cash.cashier,
        )
        try:
            _post_and_book(api_user, posting, data, cash)  # plain SQL: nothing listens
        except ValidationError as exc:  # the session was closed while this was posted
            raise refused("CashDrawerSessionId", "; ".join(exc.messages)) from None
        if target is not None:
            plan, installment = target
            installment_pay(plan=plan, installment=installment, payment=entry, amount=amount)
        # A new payment is all unapplied, unless the district's auto-apply has just
        # applied some of it (in this transaction).
        spare = None if settings.FEESYNC_AUTO_APPLY_CREDIT else to_money(amount)
        body = payment_body(entry, posting, replay=False, paid=None if target else [], spare=spare)
        return PaymentResult(body, replay=False)


# --- payment plans ---------------------------------------------------------------------------


def plan_body(plan: PaymentPlan) -> dict[str, Any]:
    schedule = list(plan.installments.order_by("expected_date", "id"))
    paid = sum((s.amount for s in schedule if s.status == "P"), Decimal("0.00"))
    scheduled = sum((s.amount for s in schedule if s.status == "S"), Decimal("0.00"))
    return {
        "PaymentPlanId": plan.pk,
        "StudentId": plan.student.student_number,
        "Description": plan.description,
        "TotalAmount": f"{plan.total:.2f}",
        "PaidAmount": f"{paid:.2f}",
        "ScheduledAmount": f"{scheduled:.2f}",
        "Terms": plan.terms,
        "ScheduledPayments": [installment_body(s) for s in schedule],
    }


def _installments(rows: list[dict[str, Any]]) -> list[Installment]:
    for i, row in enumerate(rows):
        _in_window(row["ExpectedDate"], f"ScheduledPayments[{i}].ExpectedDate")
    return [Installment(row["Amount"], row["ExpectedDate"]) for row in rows]


def plan_post(*, api_user: ApiUser, data: dict[str, Any], terms: dict[str, Any]) -> dict[str, Any]:
    student = student_for(data["StudentId"])
    plan = plan_create(
        student=student,
        installments=_installments(data["ScheduledPayments"]),
        user=api_user.user,
        external_source=api_user.external_source,
        description=data.get("Description", ""),
        terms=terms,
    )
    return plan_body(plan)


def plan_patch(*, api_user: ApiUser, data: dict[str, Any], terms: dict[str, Any]) -> dict[str, Any]:
    plan = (
        PaymentPlan.objects.select_related("student")
        .filter(pk=data["PaymentPlanId"], external_source=api_user.external_source)
        .first()
    )
    if plan is None:
        raise refused(
            "PaymentPlanId", f"This API user has no payment plan {data['PaymentPlanId']}.", 404
        )
    plan = plan_update(
        plan=plan,
        installments=_installments(data.get("ScheduledPayments") or []),
        remove_scheduled=data.get("IsScheduledPaymentsRemoved", False),
        description=data.get("Description"),
        terms=terms or None,
    )
    return plan_body(PaymentPlan.objects.select_related("student").get(pk=plan.pk))


# --- API users and keys ----------------------------------------------------------------------


def api_user_create(*, user: Any, integration: Any, groups: tuple[str, ...] = ()) -> ApiUser:
    """Flag a staff user as an API user of a partner-API integration (and grant groups)."""
    from django.contrib.auth.models import Group

    from .permissions import KIND

    if integration.vendor_kind != KIND:
        raise ValueError(f"{integration.slug} is not a Partner API integration.")
    if not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    api_user, _ = ApiUser.objects.update_or_create(user=user, defaults={"integration": integration})
    for name in groups:
        user.groups.add(Group.objects.get(name=name))
    return api_user


def api_key_issue(*, api_user: ApiUser, name: str, key: str = "") -> tuple[Any, str]:
    """A new application key: (its row, the key itself, shown to the district once).
    `key` ("<prefix>.<secret>") is for the demo's known key only; otherwise it is random."""
    from rest_framework_api_key.crypto import KeyGenerator

    from .models import PartnerApiKey

    if not key:
        return PartnerApiKey.objects.create_key(name=name, api_user=api_user)
    prefix = key.partition(".")[0]
    row = PartnerApiKey.objects.create(
        name=name, api_user=api_user, prefix=prefix, hashed_key=KeyGenerator().hash(key)
    )
    return row, key


# --- charges and adjustments -----------------------------------------------------------------

CHARGE_OP = "StudentAccounting.LedgerChargeOrAdjustmentTransactions.Create"
APPLY_OP = "StudentAccounting.LedgerTransactionsApplyPayments.Create"


def _category_for(api_user: ApiUser, code: str) -> Any:
    from apps.categories.models import FeeCategory

    category = FeeCategory.objects.filter(code=code).first()
    if category is None:
        raise refused("BillingTransactionCodeId", f"No billing code is “{code}”.")
    allowed = api_user.integration.categories.all()
    if allowed.exists() and not allowed.filter(pk=category.pk).exists():
        raise Problem(
            403,
            "Forbidden",
            f"{api_user.integration.name} may not post to billing code {code}.",
            errors=[{"property": "BillingTransactionCodeId", "detail": "Not allowed for you."}],
        )
    return category


def _merchant_account_for(api_user: ApiUser) -> Any:
    mapping = api_user.integration.account_mappings.order_by("pk").first()
    if mapping is None:
        raise Problem(
            422,
            "Unprocessable content",
            f"{api_user.integration.name} has no merchant account: the district must map one "
            "on the integration before it can post charges.",
        )
    return mapping.merchant_account


def _adjusted_fee(student: Student, category: Any, data: dict[str, Any], debit: bool) -> Any:
    from apps.fees.models import Fee

    fees = Fee.objects.filter(student=student, category=category)
    if adjusted := data.get("AdjustedTransactionId"):
        entry = LedgerEntry.objects.filter(
            pk=adjusted, student=student, kind="charge", fee__category=category
        ).first()
        if entry is None:
            raise refused(
                "AdjustedTransactionId",
                f"Transaction {adjusted} is not a charge of this student in this billing code.",
            )
        return entry.fee
    amount = data["TransactionAmount"]
    if debit:
        fee = (
            fees.exclude(status__in=["voided", "waived", "closed"])
            .filter(amount_locked=False)
            .order_by("-fee_date", "-id")
            .first()
        )
    else:
        fee = (
            fees.filter(status="open", balance__gte=amount)
            .order_by("due_date", "fee_date", "id")
            .first()
        )
    if fee is None:
        raise refused(
            "AdjustedTransactionId",
            f"The student has no charge in billing code {category.code} that this adjustment "
            "can go on; name it with AdjustedTransactionId.",
        )
    return fee


def charge_body(entry: LedgerEntry, replay: bool) -> dict[str, Any]:
    fee = entry.fee
    if fee is None:  # every charge or adjustment is on a fee; a broken invariant
        raise refused("VendorTransactionId", "That transaction is not a charge or adjustment.")
    charge = LedgerEntry.objects.get(fee=fee, kind="charge")
    return {
        "StudentAccountTransactionId": entry.pk,
        "StudentId": entry.student.student_number,
        "Type": {v: k for k, v in _CHARGE_TYPES().items()}[entry.kind],
        "TransactionAmount": f"{entry.amount:.2f}",
        "ChargeTransactionId": charge.pk,
        "FeeReference": fee.reference,
        "ChargeAmount": f"{fee.amount:.2f}",
        "ChargeBalance": f"{fee.balance:.2f}",
        "VendorTransactionId": entry.external_id,
        "IsReplay": replay,
    }


def _CHARGE_TYPES() -> dict[str, str]:
    from .serializers import CHARGE_TYPES

    return CHARGE_TYPES


def charge_post(*, api_user: ApiUser, data: dict[str, Any]) -> PaymentResult:
    """Post a charge (a new fee), or a debit or credit adjustment of one."""

    from apps.fees.services.outside import NewCharge

    student = student_for(data["StudentId"])
    if settings.FEESYNC_REQUIRE_TERM_CODES and not (data.get("TermId") or "").strip():
        raise Problem(
            400,
            "Invalid request",
            "The district requires a term code: TermId is required.",
            errors=[
                {"property": "TermId", "detail": "Required (the district requires term codes)."}
            ],
        )
    _in_window(data["TransactionDate"], "TransactionDate")
    category = _category_for(api_user, data["BillingTransactionCodeId"])
    kind = _CHARGE_TYPES()[data["Type"]]
    external_id = data["VendorTransactionId"].strip()
    with transaction.atomic():
        done = LedgerEntry.objects.filter(
            external_source=api_user.external_source, external_id=external_id
        ).first()
        if done is not None:
            return PaymentResult(charge_body(done, True), replay=True)
        if kind == "charge":
            due = data.get("DueDate")
            if due is not None and due < data["TransactionDate"]:
                raise refused("DueDate", "DueDate cannot be before TransactionDate.")
            movement = Movement(
                external_id=external_id,
                kind=MovementKind.CHARGE,
                fee_ref="",
                amount=data["TransactionAmount"],
                charge=NewCharge(
                    student_id=student.pk,
                    category_id=category.pk,
                    merchant_account_id=_merchant_account_for(api_user).pk,
                    description=data["Description"].strip(),
                    fee_date=data["TransactionDate"],
                    due_date=due,
                ),
            )
        else:
            fee = _adjusted_fee(student, category, data, debit=kind == "debit_adjustment")
            movement = Movement(
                external_id=external_id,
                kind=MovementKind(kind),
                fee_ref=fee.reference,
                amount=data["TransactionAmount"],
                note=data["Description"].strip(),
            )
        outcome = movement_record(source=source_for(api_user), movement=movement)
        if outcome.status == OutcomeStatus.ALREADY_RECORDED:
            entry = LedgerEntry.objects.get(pk=outcome.entry_id or 0)
            return PaymentResult(charge_body(entry, True), replay=True)
        if outcome.status != OutcomeStatus.RECORDED:
            raise refused("TransactionAmount", outcome.reason)
        entry = LedgerEntry.objects.select_related("student", "fee").get(pk=outcome.entry_id or 0)
        ApiPosting.objects.create(
            entry=entry,
            api_user=api_user,
            operation=CHARGE_OP,
            transaction_date=data["TransactionDate"],
            payment_type=data["Type"],
            description=data["Description"].strip(),
            term_id=(data.get("TermId") or "").strip(),
        )
        return PaymentResult(charge_body(entry, False), replay=False)


# --- applying payments -----------------------------------------------------------------------


def apply_post(*, api_user: ApiUser, data: dict[str, Any]) -> dict[str, Any]:
    """Apply a payment's unapplied money to listed charges, all or nothing; never more than
    is left on either side. With auto-apply on, both sides are flagged manual."""

    from apps.fees.services.credit import credit_apply, manual_apply_flag
    from apps.fees.services.ledger import LedgerError, Origin

    student = student_for(data["StudentId"])
    pid = data["StudentAccountTransactionId"]
    credit = LedgerEntry.objects.filter(
        pk=pid, student=student, kind__in=["payment", "credit_adjustment"]
    ).first()
    if credit is None:
        raise refused(
            "StudentAccountTransactionId",
            f"Transaction {pid} is not a payment or credit adjustment of this student.",
        )
    origin = Origin(user=api_user.user, source=LedgerEntry.Source.PARTNER_API)
    applied = []
    with transaction.atomic():
        for i, row in enumerate(data["Applications"]):
            prop = f"Applications[{i}].StudentAccountTransactionId"
            tid = row["StudentAccountTransactionId"]
            debit = (
                LedgerEntry.objects.select_related("fee")
                .filter(pk=tid, student=student, kind__in=["charge", "debit_adjustment"])
                .first()
            )
            if debit is None or debit.fee is None:
                raise refused(
                    prop, f"Transaction {tid} is not a charge or debit adjustment of this student."
                )
            left = unallocated(credit)
            if row["Amount"] > left:
                raise refused(
                    f"Applications[{i}].Amount",
                    f"${row['Amount']:.2f} is more than is left to apply of transaction {pid} "
                    f"(${left:.2f}).",
                )
            if row["Amount"] > debit.fee.balance:
                raise refused(
                    f"Applications[{i}].Amount",
                    f"${row['Amount']:.2f} is more than is left to pay on transaction {tid} "
                    f"(${debit.fee.balance:.2f}).",
                )
            try:
                credit_apply(
                    student=student,
                    fee=debit.fee,
                    origin=origin,
                    amount=row["Amount"],
                    credit_entry=credit,
                )
            except LedgerError as exc:
                raise refused(prop, f"Transaction {tid}: " + "; ".join(exc.messages)) from None
            debit.fee.refresh_from_db()
            if settings.FEESYNC_AUTO_APPLY_CREDIT:
                manual_apply_flag(entries=[credit, debit])
            applied.append(
                {
                    "StudentAccountTransactionId": tid,
                    "Amount": f"{row['Amount']:.2f}",
                    "ChargeBalance": f"{debit.fee.balance:.2f}",
                }
            )
    return {
        "StudentAccountTransactionId": credit.pk,
        "UnappliedAmount": f"{unallocated(credit):.2f}",
        "Applications": applied,
    }


# --- idempotency keys ------------------------------------------------------------------------

#: The contract keeps keys at least this long, whatever FEESYNC_IDEMPOTENCY_HOURS says.
IDEMPOTENCY_MIN_HOURS = 24
PURGE_TASK = "idempotency_purge"


def idempotency_kept_hours() -> int:

    return max(IDEMPOTENCY_MIN_HOURS, int(settings.FEESYNC_IDEMPOTENCY_HOURS))


def idempotency_purge(*, now: Any = None) -> dict[str, int]:
    """Delete the stored responses of Idempotency-Keys older than the kept window, one
    recorded run (TaskRun "idempotency_purge") per partner-API integration, so its
    dashboard shows when keys were last purged and how many. A retry after that is still
    recorded once: the vendor transaction id is kept forever on the ledger.
    Returns {integration slug: keys deleted}."""
    from django.utils import timezone

    from apps.vendors.models import Integration, TaskRun

    from .models import IdempotencyRecord
    from .permissions import KIND

    now = now or timezone.now()
    hours = idempotency_kept_hours()
    cutoff = now - timedelta(hours=hours)
    deleted: dict[str, int] = {}
    for integration in Integration.objects.filter(vendor_kind=KIND).order_by("pk"):
        run = TaskRun.objects.create(
            integration=integration, task=PURGE_TASK, trigger="schedule", started=timezone.now()
        )
        try:
            count, _ = IdempotencyRecord.objects.filter(
                api_user__integration=integration, created_at__lt=cutoff
            ).delete()
        except Exception as exc:  # recorded for staff, then re-raised for the worker's log
            TaskRun.objects.filter(pk=run.pk).update(
                outcome=TaskRun.Outcome.FAILED,
                error=f"{type(exc).__name__}: {exc}",
                finished=timezone.now(),
            )
            raise
        TaskRun.objects.filter(pk=run.pk).update(
            outcome=TaskRun.Outcome.OK,
            counts={"deleted": count, "kept_hours": hours},
            finished=timezone.now(),
        )
        deleted[integration.slug] = count
    return deleted
