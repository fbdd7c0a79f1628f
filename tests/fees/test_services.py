"""The ledger services, as a fees clerk (and later a vendor) uses them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from apps.fees.models import Allocation, Fee, LedgerEntry
from apps.fees.selectors import ledger_report
from apps.fees.services import (
    LedgerError,
    Origin,
    credit_reverse,
    fee_change,
    fee_create,
    fee_void,
    fee_waive,
    payment_refund,
    payment_take,
    to_money,
)
from tests.factories import CategoryFactory, MerchantAccountFactory, StudentFactory, make_fee

pytestmark = pytest.mark.django_db

D = Decimal


def ledger_rows() -> tuple[int, int]:
    return LedgerEntry.objects.count(), Allocation.objects.count()


@pytest.fixture
def staff(clerk):
    return Origin(user=clerk)


def test_fee_create_posts_one_charge_and_opens_the_fee(clerk):
    fee = make_fee(amount="45.50", user=clerk)
    assert (fee.amount, fee.balance, fee.status) == (D("45.50"), D("45.50"), Fee.Status.OPEN)
    [charge] = fee.entries.all()
    assert charge.kind == "charge" and charge.amount == D("45.50")
    assert charge.created_by == clerk
    assert fee.reference.startswith("FS") and len(fee.reference) == 14


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("-5.00", "cannot be negative"),
        ("10.005", "more than two decimal places"),
        ("0", "must be more than $0.00"),
        ("abc", "is not a number"),
        ("NaN", "is not a number"),
        (10.5, "not a floating-point number"),
    ],
)
def test_fee_create_refuses_bad_amounts_and_writes_nothing(amount, message):
    student = StudentFactory()
    with pytest.raises(LedgerError, match=message.replace("$", r"\$")):
        fee_create(
            student=student,
            category=CategoryFactory(),
            merchant_account=MerchantAccountFactory(),
            description="Trip",
            amount=amount,
            fee_date=dt.date(2026, 9, 1),
        )
    assert Fee.objects.count() == 0 and ledger_rows() == (0, 0)


def test_fee_create_refuses_due_date_before_fee_date_and_inactive_category():
    with pytest.raises(LedgerError, match="due date cannot be before"):
        make_fee(fee_date=dt.date(2026, 9, 10), due_date=dt.date(2026, 9, 1))
    with pytest.raises(LedgerError, match="inactive"):
        make_fee(category=CategoryFactory(code="OLD", active=False))
    assert Fee.objects.count() == 0


def test_to_money_accepts_what_clerks_type():
    assert to_money("$1,234.5") == D("1234.50")
    assert to_money(D("7")) == D("7.00")


def test_partial_cash_payment_reduces_the_balance(staff):
    fee = make_fee(amount="50.00")
    entry = payment_take(fee=fee, amount="20.00", method="cash", origin=staff)
    fee.refresh_from_db()
    assert (fee.balance, fee.status) == (D("30.00"), Fee.Status.OPEN)
    assert entry.allocations_out.get().amount == D("20.00")
    assert not fee.amount_locked  # a district payment does not lock the amount


def test_full_check_payment_marks_the_fee_paid(staff):
    fee = make_fee(amount="50.00")
    payment_take(fee=fee, amount="50", method="check", check_number="1042", origin=staff)
    fee.refresh_from_db()
    assert (fee.balance, fee.status) == (D("0.00"), Fee.Status.PAID)
    assert fee.entries.get(kind="payment").check_number == "1042"


def test_check_payment_without_a_number_is_refused(staff):
    fee = make_fee()
    with pytest.raises(LedgerError, match="check number"):
        payment_take(fee=fee, amount="5", method="check", origin=staff)
    assert fee.entries.count() == 1


def test_paying_more_than_is_owed_is_refused_and_changes_nothing(staff):
    fee = make_fee(amount="50.00")
    payment_take(fee=fee, amount="40", method="cash", origin=staff)
    before = ledger_rows()
    with pytest.raises(LedgerError, match=r"\$20.00 is more than is owed on this fee \(\$10.00\)"):
        payment_take(fee=fee, amount="20", method="card", origin=staff)
    fee.refresh_from_db()
    assert fee.balance == D("10.00") and ledger_rows() == before


def test_unknown_payment_method_is_refused(staff):
    with pytest.raises(LedgerError, match="not a payment method"):
        payment_take(fee=make_fee(), amount="5", method="bitcoin", origin=staff)


def test_waive_the_rest_of_a_partly_paid_fee(staff):
    fee = make_fee(amount="50.00")
    payment_take(fee=fee, amount="20", method="cash", origin=staff)
    waiver = fee_waive(fee=fee, reason="Hardship", origin=staff)
    fee.refresh_from_db()
    assert waiver.amount == D("30.00")
    assert (fee.balance, fee.status) == (D("0.00"), Fee.Status.PAID)


def test_waive_an_unpaid_fee_marks_it_waived(staff):
    fee = make_fee(amount="12.00")
    fee_waive(fee=fee, reason="Board policy", origin=staff)
    fee.refresh_from_db()
    assert fee.status == Fee.Status.WAIVED


def test_waiving_a_paid_fee_is_refused(staff):
    fee = make_fee(amount="10.00")
    payment_take(fee=fee, amount="10", method="cash", origin=staff)
    with pytest.raises(LedgerError, match="nothing to waive"):
        fee_waive(fee=fee, reason="Oops", origin=staff)


def test_waiver_needs_a_reason(staff):
    with pytest.raises(LedgerError, match="reason"):
        fee_waive(fee=make_fee(), reason="  ", origin=staff)


def test_refund_reopens_what_it_gives_back(staff):
    fee = make_fee(amount="50.00")
    payment = payment_take(fee=fee, amount="50", method="card", origin=staff)
    payment_refund(payment=payment, amount="15", reason="Trip cancelled", origin=staff)
    fee.refresh_from_db()
    assert (fee.balance, fee.status) == (D("15.00"), Fee.Status.OPEN)
    with pytest.raises(
        LedgerError, match=r"more than is left of this payment on this fee \(\$35.00\)"
    ):
        payment_refund(payment=payment, amount="40", reason="again", origin=staff)
    payment_refund(payment=payment, reason="rest", origin=staff)
    with pytest.raises(LedgerError, match="already given back in full"):
        payment_refund(payment=payment, reason="third time", origin=staff)
    fee.refresh_from_db()
    assert fee.balance == D("50.00")
    assert ledger_report().ok


def test_only_payments_can_be_refunded(staff):
    fee = make_fee()
    waiver = fee_waive(fee=fee, reason="x", origin=staff)
    with pytest.raises(LedgerError, match="Only a payment"):
        payment_refund(payment=waiver, reason="no", origin=staff)


def test_reversing_a_waiver_restores_the_balance(staff):
    fee = make_fee(amount="30.00")
    waiver = fee_waive(fee=fee, reason="x", origin=staff)
    credit_reverse(credit=waiver, reason="Waived by mistake", origin=staff)
    fee.refresh_from_db()
    assert (fee.balance, fee.status) == (D("30.00"), Fee.Status.OPEN)


def test_void_cancels_an_unpaid_fee(staff):
    fee = make_fee(amount="30.00")
    fee_void(fee=fee, reason="Charged in error", origin=staff)
    fee.refresh_from_db()
    assert (fee.balance, fee.status) == (D("0.00"), Fee.Status.VOIDED)
    with pytest.raises(LedgerError, match="already voided"):
        fee_void(fee=fee, reason="again", origin=staff)
    with pytest.raises(LedgerError, match="voided; it cannot take a payment"):
        payment_take(fee=fee, amount="1", method="cash", origin=staff)


def test_void_refused_while_payments_stand(staff):
    fee = make_fee(amount="30.00")
    payment_take(fee=fee, amount="10", method="cash", origin=staff)
    with pytest.raises(LedgerError, match=r"has \$10.00 in payments. Refund them first"):
        fee_void(fee=fee, reason="x", origin=staff)


def test_raising_and_lowering_the_amount_posts_adjustments(staff):
    fee = make_fee(amount="50.00")
    fee_change(fee=fee, amount="60.00", origin=staff)
    fee.refresh_from_db()
    assert (fee.amount, fee.balance, fee.version) == (D("60.00"), D("60.00"), 2)
    payment_take(fee=fee, amount="20", method="cash", origin=staff)
    fee_change(fee=fee, amount="45.00", origin=staff)
    fee.refresh_from_db()
    assert (fee.amount, fee.balance) == (D("45.00"), D("25.00"))
    kinds = list(fee.entries.values_list("kind", flat=True))
    assert kinds == ["charge", "debit_adjustment", "payment", "credit_adjustment"]
    assert ledger_report().ok


def test_amount_cannot_go_below_what_was_paid(staff):
    fee = make_fee(amount="50.00")
    payment_take(fee=fee, amount="40", method="cash", origin=staff)
    with pytest.raises(LedgerError, match="below what has already been paid"):
        fee_change(fee=fee, amount="30.00", origin=staff)


def test_amount_locked_once_a_vendor_took_a_payment(staff):
    fee = make_fee(amount="50.00")
    vendor = Origin(source="vendor", external_source="integration:1", external_id="P-1")
    payment_take(fee=fee, amount="10", method="online", origin=vendor)
    fee.refresh_from_db()
    assert fee.amount_locked
    with pytest.raises(LedgerError, match="payment vendor has already taken a payment"):
        fee_change(fee=fee, amount="55.00", origin=staff)
    # Description and due date are still the district's to change.
    fee_change(fee=fee, description="Field trip (zoo)", origin=staff)
    fee.refresh_from_db()
    assert fee.description == "Field trip (zoo)" and fee.amount == D("50.00")


def test_vendor_payment_recorded_once_however_often_it_arrives():
    fee = make_fee(amount="50.00")
    vendor = Origin(source="vendor", external_source="integration:1", external_id="P-7")
    first = payment_take(fee=fee, amount="20", method="online", origin=vendor)
    again = payment_take(fee=fee, amount="20", method="online", origin=vendor)
    assert first.pk == again.pk
    fee.refresh_from_db()
    assert fee.balance == D("30.00") and fee.entries.filter(kind="payment").count() == 1


def test_closed_vendor_payment_closes_the_fee_for_less():
    fee = make_fee(amount="50.00")
    vendor = Origin(source="vendor", external_source="integration:1", external_id="P-9")
    payment_take(fee=fee, amount="25", method="online", origin=vendor, closed=True)
    fee.refresh_from_db()
    assert (fee.balance, fee.status) == (D("0.00"), Fee.Status.CLOSED)
    assert fee.entries.get(kind="settlement").amount == D("25.00")
    assert ledger_report().ok


def test_every_change_a_vendor_must_see_raises_the_version_and_is_announced(staff):
    from apps.fees.services import fee_changed

    seen: list[tuple[list[int], str]] = []

    def listener(sender, fee_ids, reason, **kwargs):
        seen.append((fee_ids, reason))

    fee_changed.connect(listener)
    try:
        fee = make_fee(amount="50.00")
        payment_take(fee=fee, amount="10", method="cash", origin=staff)
        fee_waive(fee=fee, reason="x", origin=staff)
    finally:
        fee_changed.disconnect(listener)
    assert [r for _, r in seen] == ["created", "paid", "waived"]
    fee.refresh_from_db()
    assert fee.version == 3


def test_bulk_vendor_payments_follow_the_same_rules_as_one_by_one():
    # The one door's set-wise fast path (private to apps.fees.services.outside).
    from apps.fees.services.outside import _ExternalPayment, _payments_post_bulk

    a, b, voided = make_fee(amount="50.00"), make_fee(amount="10.00"), make_fee(amount="5.00")
    fee_void(fee=voided, reason="x", origin=Origin())
    vendor = Origin(source="vendor", external_source="integration:4")
    batch = [
        _ExternalPayment(a.pk, D("20.00"), "P1"),
        _ExternalPayment(a.pk, D("30.00"), "P2"),
        _ExternalPayment(b.pk, D("11.00"), "P3"),  # more than is owed: $1.00 of credit
        _ExternalPayment(voided.pk, D("1.00"), "P4"),
        _ExternalPayment(a.pk, D("20.00"), "P1"),  # the same payment twice in a page
    ]
    posted, refused = _payments_post_bulk(payments=batch, origin=vendor)
    assert list(posted) == ["P1", "P2", "P3"]
    assert list(refused) == ["P4"]
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.balance, a.status, a.amount_locked, a.version) == (D("0.00"), "paid", True, 2)
    assert (b.balance, b.status) == (D("0.00"), "paid")
    assert b.student.credit_account.amount == D("1.00")
    # Staff at the office are still refused above the balance, set-wise too.
    c = make_fee(amount="10.00")
    _, refused = _payments_post_bulk(
        payments=[_ExternalPayment(c.pk, D("11.00"), "S1")], origin=Origin()
    )
    assert refused == {"S1": "$11.00 is more than is owed on this fee ($10.00)."}
    # Delivered again: nothing new.
    assert _payments_post_bulk(payments=batch[:2], origin=vendor) == ({}, {})
    assert ledger_report().ok
