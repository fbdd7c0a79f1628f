"""Anthology's command `PostAccountTransactionPayment`: an unscheduled payment to a fund
source, tied to the student award for (enrollment period, fund source, award year), which
is created by the first such payment and reused by the next.

One transaction: the award (get-or-create), the payment through the one door
(`movement_record`, auto-applied like every partner payment), what the partner sent
(`ApiPosting`) and the entry's booking (business date, payment type, bank account, cash
drawer session, award) for the daily close. Every property that names a record that does
not fit is reported at once (`references_check`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from apps.accounting.models import (
    BankAccount,
    EnrollmentPeriod,
    EntryBooking,
    FundSource,
    StudentAcademicYear,
    StudentAward,
)
from apps.accounting.services.awards import award_get_or_create
from apps.accounting.services.cashiering import (
    ApiCash,
    api_cash_check,
    booking_write,
    session_lock_open,
)
from apps.fees.models import LedgerEntry
from apps.fees.movements import MovementKind
from apps.fees.services.ledger import LedgerError, date_in_window, unallocated
from apps.fees.services.outside import Movement, OutcomeStatus, movement_record
from apps.students.models import Student

from .models import ApiPosting, ApiUser
from .problems import Problem
from .services import PaymentResult, refused, source_for

COMMAND_OP = "StudentAccounts.StudentAccountTransaction.New"

#: The payment-type letter as the ledger entry's method.
LETTER_METHODS = {
    "C": LedgerEntry.Method.CASH,
    "H": LedgerEntry.Method.CHECK,
    "R": LedgerEntry.Method.CARD,
    "E": LedgerEntry.Method.ONLINE,
    "I": LedgerEntry.Method.ONLINE,
    "O": LedgerEntry.Method.ONLINE,
}


@dataclass
class References:
    """The records the request names, those found."""

    student: Student | None = None
    period: EnrollmentPeriod | None = None
    academic_year: StudentAcademicYear | None = None
    fund_source: FundSource | None = None
    bank_account: BankAccount | None = None
    cash: ApiCash | None = None
    errors: list[dict[str, str]] = field(default_factory=list)

    def refuse(self, prop: str, detail: str) -> None:
        self.errors.append({"property": prop, "detail": detail})


def references_check(*, api_user: ApiUser, values: dict[str, Any]) -> References:
    """Check every record the request names against the others, for the properties that
    are present and well formed in `values` (so that one answer names every bad property,
    with those the serializer found). Nothing is written."""
    out = References()
    if (number := values.get("StudentId")) is not None:
        out.student = Student.objects.select_related("school").filter(student_number=number).first()
        if out.student is None:
            out.refuse("StudentId", f"No student has the id “{number}”.")
    if (pid := values.get("StudentEnrollmentPeriodId")) is not None:
        out.period = EnrollmentPeriod.objects.select_related("school").filter(pk=pid).first()
        if out.period is None:
            out.refuse("StudentEnrollmentPeriodId", f"No enrollment period has the id {pid}.")
        elif out.student is not None and out.period.student_id != out.student.pk:
            out.refuse(
                "StudentEnrollmentPeriodId",
                f"Enrollment period {pid} is another student's, not "
                f"{out.student.student_number}'s.",
            )
    if (yid := values.get("StudentAcademicYearId")) is not None:
        out.academic_year = StudentAcademicYear.objects.filter(pk=yid).first()
        if out.academic_year is None:
            out.refuse("StudentAcademicYearId", f"No student academic year has the id {yid}.")
        elif out.period is not None and out.academic_year.enrollment_period_id != out.period.pk:
            out.refuse(
                "StudentAcademicYearId",
                f"Student academic year {yid} is not in enrollment period {out.period.pk}.",
            )
        elif out.student is not None and out.academic_year.student_id != out.student.pk:
            out.refuse(
                "StudentAcademicYearId", f"Student academic year {yid} is another student's."
            )
        elif (seq := values.get("AcademicYearSequence")) is not None and (
            seq != out.academic_year.sequence
        ):
            out.refuse(
                "AcademicYearSequence",
                f"AcademicYearSequence {seq} is not the sequence of student academic year "
                f"{yid} ({out.academic_year.sequence}).",
            )
    if (fid := values.get("FundSourceId")) is not None:
        out.fund_source = FundSource.objects.filter(pk=fid).first()
        if out.fund_source is None:
            out.refuse("FundSourceId", f"No fund source has the id {fid}.")
        elif not out.fund_source.active:
            out.refuse("FundSourceId", f"Fund source {out.fund_source.code} is not in use.")
    if (bid := values.get("BankAccountId")) is not None:
        out.bank_account = BankAccount.objects.select_related("bank__school").filter(pk=bid).first()
        if out.bank_account is None:
            out.refuse("BankAccountId", f"No bank account has the id {bid}.")
        elif not out.bank_account.active:
            out.refuse("BankAccountId", f"Bank account {bid} is not in use.")
        elif out.period is not None and out.bank_account.bank.school_id != out.period.school_id:
            out.refuse(
                "BankAccountId",
                f"Bank account {bid} is at a bank of {out.bank_account.bank.school.name}; the "
                f"enrollment period is at {out.period.school.name}: use one of its banks.",
            )
    if (day := values.get("TransactionDate")) is not None:
        try:
            date_in_window(day, label="TransactionDate")
        except LedgerError as exc:
            out.refuse("TransactionDate", "; ".join(exc.messages))
    if values.get("IsNewPaymentSuccessful") is False:
        out.refuse(
            "IsNewPaymentSuccessful",
            "IsNewPaymentSuccessful is false: the payment did not succeed at your end, so "
            "nothing is posted. Send 1 (true) for a payment you have taken.",
        )
    if (
        settings.FEESYNC_REQUIRE_TERM_CODES
        and not values.get("IgnoreTermRequired")
        and not (values.get("TermId") or "").strip()
    ):
        out.refuse(
            "TermId",
            "The district requires a term code: TermId is required (or IgnoreTermRequired).",
        )
    # Cashiering follows the enrollment period's school (Anthology's campus of the period).
    school = out.period.school if out.period is not None else None
    out.cash = api_cash_check(
        api_user=api_user,
        school=school,
        drawer_id=values.get("CashDrawerId"),
        session_id=values.get("CashDrawerSessionId"),
        cashier_id=values.get("CashierUserId"),
        session_required=True,
    )
    out.errors.extend(out.cash.errors)
    return out


def _date(value: date) -> str:
    return f"{value.isoformat()}T00:00:00"


def payment_command_body(
    entry: LedgerEntry, posting: ApiPosting, booking: EntryBooking, *, created: bool, replay: bool
) -> dict[str, Any]:
    award: StudentAward | None = booking.student_award
    session = booking.cash_session
    spare = unallocated(entry)
    return {
        "payload": {
            "data": {
                "StudentAccountTransactionId": entry.pk,
                "StudentId": entry.student.student_number,
                "TransactionAmount": f"{entry.amount:.2f}",
                "AppliedAmount": f"{entry.amount - spare:.2f}",
                "UnappliedAmount": f"{spare:.2f}",
                "TransactionDate": _date(posting.transaction_date),
                "PaymentMode": 2,
                "PaymentType": booking.payment_type,
                "Description": posting.description,
                "StudentAwardId": award.pk if award else None,
                "IsNewStudentAward": created,
                "FundSourceId": award.fund_source_id if award else None,
                "AwardYear": award.award_year if award else "",
                "StudentEnrollmentPeriodId": award.enrollment_period_id if award else None,
                "StudentAcademicYearId": award.student_academic_year_id if award else None,
                "BankAccountId": booking.bank_account_id,
                "CashDrawerId": session.drawer_id if session else None,
                "CashDrawerSessionId": session.pk if session else None,
                "CashierUserId": posting.cashier_user_id,
                "VendorTransactionId": entry.external_id,
                "IsReplay": replay,
            }
        }
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
    booking = (
        EntryBooking.objects.select_related("student_award", "cash_session")
        .filter(entry=entry)
        .first()
    )
    if posting is None or booking is None or posting.operation != COMMAND_OP:
        raise refused(
            "VendorTransactionId",
            f"VendorTransactionId {external_id} was posted before as another kind of "
            "transaction; use a new id.",
        )
    return PaymentResult(
        payment_command_body(entry, posting, booking, created=False, replay=True), replay=True
    )


def payment_command_post(*, api_user: ApiUser, data: dict[str, Any]) -> PaymentResult:
    """Post an unscheduled payment to a fund source (data: the serializer's, valid)."""
    refs = references_check(api_user=api_user, values=data)
    if refs.errors:
        raise Problem(
            422,
            "Unprocessable content",
            "; ".join(e["detail"] for e in refs.errors),
            errors=refs.errors,
        )
    if refs.student is None or refs.period is None or refs.fund_source is None or not refs.cash:
        # Unreachable: each is required and was found, else refs.errors names it.
        raise refused("StudentId", "The request names records FeeSync could not find.")
    external_id = (data.get("VendorTransactionId") or "").strip()
    with transaction.atomic(savepoint=False):
        if external_id and (done := _replay(api_user, external_id)) is not None:
            return done
        external_id = external_id or f"cmd-{uuid.uuid4().hex}"
        award, created = award_get_or_create(
            enrollment_period=refs.period,
            fund_source=refs.fund_source,
            award_year=data["AwardYear"],
            student_academic_year=refs.academic_year,
        )
        outcome = movement_record(
            source=source_for(api_user),
            movement=Movement(
                external_id=external_id,
                kind=MovementKind.PAYMENT,
                fee_ref="",
                amount=data["TransactionAmount"],
                student_id=refs.student.pk,
                method=LETTER_METHODS[data["PaymentType"]],
                note=data["Description"],
            ),
        )
        if outcome.status == OutcomeStatus.ALREADY_RECORDED:
            # A concurrent post of the same id committed first: answer with it.
            if (done := _replay(api_user, external_id)) is None:
                raise refused("VendorTransactionId", outcome.reason or "Recorded elsewhere.")
            return done
        if outcome.status != OutcomeStatus.RECORDED:
            raise refused("TransactionAmount", outcome.reason)
        entry = LedgerEntry.objects.select_related("student").get(pk=outcome.entry_id or 0)
        cash = refs.cash
        posting = ApiPosting.objects.create(
            entry=entry,
            api_user=api_user,
            operation=COMMAND_OP,
            transaction_date=data["TransactionDate"],
            payment_type=data["PaymentType"],
            description=data["Description"],
            term_id=(data.get("TermId") or "").strip(),
            cash_drawer_id=cash.drawer.pk if cash.drawer else None,
            cashier_user=cash.cashier,
        )
        try:
            # Locked after the ledger's rows, as every payment does (see cashiering).
            session = session_lock_open(cash.session.pk) if cash.session is not None else None
        except ValidationError as exc:  # closed while this was being posted
            raise refused("CashDrawerSessionId", "; ".join(exc.messages)) from None
        booking = booking_write(
            entry=entry,
            business_date=data["TransactionDate"],
            payment_type=data["PaymentType"],
            bank_account=refs.bank_account,
            cash_session=session,
            student_award=award,
        )
        body = payment_command_body(entry, posting, booking, created=created, replay=False)
        return PaymentResult(body, replay=False)
