"""Credit on the student's account: money a vendor (through the one door), a file or the
partner API already took beyond what a fee owed settles the fee and is held as the student's
credit, which staff apply to another fee or refund (or the district's setting applies)."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from django.db import connection

from apps.fees.models import Allocation, Fee, LedgerEntry, StudentCredit
from apps.fees.selectors import ledger_report
from apps.fees.services import (
    LedgerError,
    Movement,
    MovementKind,
    MovementSource,
    Origin,
    OutcomeStatus,
    credit_apply,
    credit_refund,
    fee_changed,
    movements_record,
    payment_refund,
    payment_take,
    student_credit,
)
from tests.factories import StudentFactory, make_fee

pytestmark = pytest.mark.django_db

D = Decimal
PAYSCHOOLS = MovementSource(
    external_source="integration:7", name="PaySchools", ledger_source=LedgerEntry.Source.VENDOR
)


def vendor_pays(fee: Fee, amount: str, external_id: str = "P-1", **extra: object):
    return movements_record(
        source=PAYSCHOOLS,
        movements=[
            Movement(
                external_id=external_id,
                kind=MovementKind.PAYMENT,
                fee_ref=fee.reference,
                amount=D(amount),
                **extra,  # type: ignore[arg-type]
            )
        ],
    )[0]


def credit_of(student) -> D:
    return student_credit(student=student)


@pytest.mark.parametrize("path", ["fast", "one-by-one"])
def test_an_overpayment_through_the_door_settles_the_fee_and_the_rest_is_credit_once(path):
    fee = make_fee(amount="50.00")
    # `closed=True` sends the payment down the one-by-one path; a plain one goes set-wise.
    extra = {"closed": True} if path == "one-by-one" else {}
    first = vendor_pays(fee, "60.00", **extra)
    again = vendor_pays(fee, "60.00", **extra)  # pulled twice: recorded once
    assert (first.status, again.status) == (OutcomeStatus.RECORDED, OutcomeStatus.ALREADY_RECORDED)
    fee.refresh_from_db()
    assert (fee.balance, fee.status, fee.amount_locked) == (D("0.00"), "paid", True)
    payment = LedgerEntry.objects.get(kind="payment")
    assert payment.amount == D("60.00") and payment.pk == first.entry_id
    assert sum(a.amount for a in payment.allocations_out.all()) == D("50.00")
    assert credit_of(fee.student) == D("10.00")
    assert StudentCredit.objects.get(student=fee.student).since is not None
    assert ledger_report().ok


def test_a_second_payment_on_a_paid_fee_is_all_credit():
    fee = make_fee(amount="20.00")
    vendor_pays(fee, "20.00", "P-1")
    outcome = vendor_pays(fee, "20.00", "P-2")  # the parent paid twice
    assert outcome.status == OutcomeStatus.RECORDED
    assert credit_of(fee.student) == D("20.00")
    assert ledger_report().ok


def test_office_payments_above_the_balance_are_still_refused_with_todays_message(clerk):
    fee = make_fee(amount="50.00")
    with pytest.raises(LedgerError, match=r"\$60.00 is more than is owed on this fee \(\$50.00\)"):
        payment_take(fee=fee, amount="60.00", method="cash", origin=Origin(user=clerk))
    assert not LedgerEntry.objects.filter(kind="payment").exists()
    assert credit_of(fee.student) == D("0.00")


def test_credit_is_applied_to_another_open_fee_of_the_student(clerk):
    student = StudentFactory()
    paid = make_fee(student=student, amount="50.00")
    other = make_fee(student=student, amount="25.00")
    vendor_pays(paid, "60.00")
    seen: list[tuple[list[int], str]] = []

    def listener(sender, fee_ids, reason, **kwargs):
        seen.append((fee_ids, reason))

    fee_changed.connect(listener)
    try:
        applied = credit_apply(student=student, fee=other, origin=Origin(user=clerk))
    finally:
        fee_changed.disconnect(listener)
    assert applied == D("10.00")
    other.refresh_from_db()
    assert (other.balance, other.status, other.version) == (D("15.00"), "open", 2)
    assert seen == [([other.pk], "paid")]
    assert credit_of(student) == D("0.00")
    assert StudentCredit.objects.get(student=student).since is None
    allocation = Allocation.objects.get(debit__fee=other)
    assert allocation.manual and allocation.credit.fee_id == paid.pk
    assert ledger_report().ok


def test_applying_credit_is_refused_in_words_when_it_cannot_be(clerk):
    student = StudentFactory()
    paid = make_fee(student=student, amount="50.00")
    other = make_fee(student=student, amount="5.00")
    stranger = make_fee(amount="5.00")
    with pytest.raises(LedgerError, match="has no credit on account"):
        credit_apply(student=student, fee=other, origin=Origin(user=clerk))
    vendor_pays(paid, "60.00")
    with pytest.raises(LedgerError, match=r"\$8.00 is more than is owed on this fee \(\$5.00\)"):
        credit_apply(student=student, fee=other, amount="8.00", origin=Origin(user=clerk))
    with pytest.raises(LedgerError, match="is not .*'s fee"):
        credit_apply(student=student, fee=stranger, origin=Origin(user=clerk))
    with pytest.raises(LedgerError, match="Nothing is owed on fee"):
        credit_apply(student=student, fee=paid, origin=Origin(user=clerk))
    assert credit_apply(student=student, fee=other, amount="2.50", origin=Origin()) == D("2.50")
    assert credit_of(student) == D("7.50")
    assert ledger_report().ok


def test_credit_is_refunded_with_a_refund_entry_on_no_fee(clerk):
    fee = make_fee(amount="50.00")
    vendor_pays(fee, "60.00")
    with pytest.raises(LedgerError, match=r"\$12.00 is more than .*'s credit \(\$10.00\)"):
        credit_refund(student=fee.student, amount="12", reason="Overpaid", origin=Origin())
    [refund] = credit_refund(
        student=fee.student,
        amount="10.00",
        reason="Overpaid at PaySchools",
        method="check",
        check_number="2001",
        origin=Origin(user=clerk),
    )
    assert (refund.kind, refund.fee_id, refund.amount) == ("refund", None, D("10.00"))
    assert refund.reverses.kind == "payment" and refund.created_by == clerk
    assert credit_of(fee.student) == D("0.00")
    fee.refresh_from_db()
    assert (fee.balance, fee.status) == (D("0.00"), "paid")  # nothing owed again
    assert ledger_report().ok


def test_a_refund_of_an_overpaid_payment_gives_back_the_credit_first():
    fee = make_fee(amount="50.00")
    outcome = vendor_pays(fee, "60.00")
    payment = LedgerEntry.objects.get(pk=outcome.entry_id)
    payment_refund(payment=payment, amount="10.00", reason="Overpaid", origin=Origin())
    fee.refresh_from_db()
    assert (fee.balance, credit_of(fee.student)) == (D("0.00"), D("0.00"))
    payment_refund(payment=payment, amount="50.00", reason="Trip off", origin=Origin())
    fee.refresh_from_db()
    assert (fee.balance, fee.status) == (D("50.00"), "open")
    assert ledger_report().ok


def test_with_auto_apply_on_new_credit_goes_to_the_oldest_open_fee(settings):
    settings.FEESYNC_AUTO_APPLY_CREDIT = True
    student = StudentFactory()
    paid = make_fee(student=student, amount="50.00", fee_date=dt.date(2026, 9, 1))
    later = make_fee(
        student=student, amount="8.00", fee_date=dt.date(2026, 9, 1), due_date=dt.date(2026, 12, 1)
    )
    oldest = make_fee(
        student=student, amount="4.00", fee_date=dt.date(2026, 9, 2), due_date=dt.date(2026, 10, 1)
    )
    undated = make_fee(student=student, amount="30.00", fee_date=dt.date(2026, 8, 1))
    vendor_pays(paid, "60.00")  # $10.00 of credit
    for fee in (oldest, later, undated):
        fee.refresh_from_db()
    assert (oldest.balance, oldest.status) == (D("0.00"), "paid")
    assert later.balance == D("2.00")  # the next due date takes the other $6.00
    assert undated.balance == D("30.00")  # no due date: last
    assert credit_of(student) == D("0.00")
    assert not Allocation.objects.filter(debit__fee=oldest).get().manual
    assert ledger_report().ok


def test_auto_apply_is_off_by_default():
    student = StudentFactory()
    paid, other = make_fee(student=student, amount="5.00"), make_fee(student=student)
    vendor_pays(paid, "7.00")
    other.refresh_from_db()
    assert other.balance == other.amount and credit_of(student) == D("2.00")


@pytest.mark.ledger_breach
def test_ledger_check_finds_a_credit_that_is_not_accounted_for():
    fee = make_fee(amount="50.00")
    vendor_pays(fee, "60.00")
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE fees_studentcredit SET amount = 4 WHERE student_id = %s", [fee.student_id]
        )
    breaches = [b for b in ledger_report().breaches if b.check == "student_credit"]
    assert [b.detail for b in breaches] == [
        f"student {fee.student_id}: credit on account shows 4.00 but the unallocated "
        "payments say 10.00"
    ]


@pytest.mark.ledger_breach
def test_ledger_check_finds_a_waiver_left_partly_unallocated_and_a_loose_debit():
    fee = make_fee(amount="50.00")
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO fees_ledgerentry (student_id, fee_id, kind, amount, method, "
            "check_number, reason, source, external_source, external_id, created_at) VALUES "
            "(%s, NULL, 'waiver', 5, '', '', '', 'staff', '', '', CURRENT_TIMESTAMP), "
            "(%s, NULL, 'debit_adjustment', 3, '', '', '', 'staff', '', '', CURRENT_TIMESTAMP)",
            [fee.student_id, fee.student_id],
        )
    checks = {b.check for b in ledger_report().breaches}
    assert {"credit_only_from_payments", "refund_of_credit", "student_credit"} <= checks


def test_the_refund_page_offers_what_is_left_to_refund_of_an_overpaid_payment(clerk):
    from apps.fees.forms import RefundForm, refundable_payments

    student = StudentFactory()
    fee = make_fee(student=student, amount="50.00")
    other = make_fee(student=student, amount="4.00")
    vendor_pays(fee, "60.00")
    [payment] = refundable_payments(fee)
    assert payment.amount - payment.given_back == D("60.00")  # $50.00 paid, $10.00 credit
    credit_apply(student=student, fee=other, origin=Origin(user=clerk))  # $4.00 used
    credit_refund(student=student, amount="1.00", reason="Part back", origin=Origin())
    [payment] = refundable_payments(fee)
    assert payment.amount - payment.given_back == D("55.00")
    form = RefundForm(
        {
            "token": str(uuid.uuid4()),
            "payment": payment.pk,
            "amount": "55.00",
            "reason": "Trip off",
        },
        fee=fee,
    )
    assert "($55.00 refundable)" in str(form["payment"])
    assert form.is_valid(), form.errors
    payment_refund(payment=payment, amount="55.00", reason="Trip off", fee=fee, origin=Origin())
    fee.refresh_from_db()
    assert fee.balance == D("50.00") and student_credit(student=student) == D("0.00")
    assert ledger_report().ok


def test_with_auto_apply_on_credit_waiting_on_the_account_pays_the_next_fee(settings):
    student = StudentFactory()
    paid = make_fee(student=student, amount="5.00")
    vendor_pays(paid, "12.00")  # $7.00 of credit and no other open fee
    settings.FEESYNC_AUTO_APPLY_CREDIT = True
    vendor_pays(paid, "1.00", "P-2")  # nothing open to apply it to: it waits
    assert credit_of(student) == D("8.00")
    new = make_fee(student=student, amount="20.00")
    new.refresh_from_db()
    assert (new.balance, credit_of(student)) == (D("12.00"), D("0.00"))
    assert ledger_report().ok


def test_a_credit_refund_sent_twice_by_its_sender_is_recorded_once():
    fee = make_fee(amount="50.00")
    vendor_pays(fee, "60.00")
    origin = Origin(source="partner_api", external_source="partner:1", external_id="R-1")
    first = credit_refund(student=fee.student, amount="3.00", reason="Back", origin=origin)
    again = credit_refund(student=fee.student, amount="3.00", reason="Back", origin=origin)
    assert [e.pk for e in again] == [first[0].pk]
    assert credit_of(fee.student) == D("7.00")
    assert ledger_report().ok
