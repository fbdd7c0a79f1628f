"""What Community Pass adds beyond the engine's shared scenarios: waivers and refunds made
at the vendor, account balances that include fees only the vendor has, 429 storms, and a
refused API key — on the real sandbox over HTTP."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from apps.fees.models import Fee, LedgerEntry
from apps.fees.services import LedgerError, Origin, fee_change
from apps.vendors import engine
from apps.vendors.jobs import task_run
from apps.vendors.models import StudentVendorBalance
from apps.vendors.services import integration_test_connection
from tests.factories import StudentFactory, make_fee

from .conftest import Sandbox

pytestmark = pytest.mark.django_db
IN_SCOPE = dt.date(2026, 9, 1)


@pytest.fixture
def sandbox():
    box = Sandbox("communitypass")
    yield box
    box.stop()


def test_a_waiver_at_community_pass_appears_in_the_ledger_once(sandbox, make_integration):
    integration = make_integration()
    fee = make_fee(amount="40.00", fee_date=IN_SCOPE)
    engine.deliver(integration_id=integration.pk)
    sandbox.control("waive", fee_ref=fee.reference)
    for _ in range(3):
        task_run(integration=integration, task="get-payments")
        engine.payments_pull(integration=integration, student_ids=[fee.student.student_number])
    fee.refresh_from_db()
    assert fee.status == Fee.Status.WAIVED and fee.balance == 0
    assert fee.entries.filter(kind="waiver").count() == 1


def test_a_refund_at_community_pass_is_a_reversing_entry(sandbox, make_integration):
    integration = make_integration()
    fee = make_fee(amount="40.00", fee_date=IN_SCOPE)
    engine.deliver(integration_id=integration.pk)
    paid = sandbox.control("pay", fee_ref=fee.reference, amount="40.00")
    task_run(integration=integration, task="get-payments")
    sandbox.control("refund", payment_id=paid["payment"]["payment_id"], amount="15.00")
    task_run(integration=integration, task="get-payments")
    fee.refresh_from_db()
    assert fee.balance == Decimal("15.00")
    refund = fee.entries.get(kind="refund")
    assert refund.reverses.external_id == paid["payment"]["payment_id"]
    # The payment itself was never edited.
    assert fee.entries.get(kind="payment").amount == Decimal("40.00")


def test_the_amount_is_read_only_once_community_pass_took_a_payment(sandbox, make_integration):
    integration = make_integration()
    fee = make_fee(amount="40.00", fee_date=IN_SCOPE)
    engine.deliver(integration_id=integration.pk)
    sandbox.control("pay", fee_ref=fee.reference, amount="10.00")
    task_run(integration=integration, task="get-payments")
    with pytest.raises(LedgerError, match="payment vendor has already taken a payment"):
        fee_change(fee=fee, amount="45.00", origin=Origin())
    fee.refresh_from_db()
    assert fee.amount == Decimal("40.00")


def test_a_foreign_fee_shows_in_the_balance_and_never_becomes_a_fee(sandbox, make_integration):
    integration = make_integration(show_vendor_balance=True)
    student = StudentFactory()
    fee = make_fee(student=student, amount="25.00", fee_date=IN_SCOPE)
    engine.deliver(integration_id=integration.pk)
    sandbox.control("foreign_fee", student_id=student.student_number, amount="60.00")
    run = task_run(integration=integration, task="get-balances")
    assert run.outcome == "ok", run.error
    stored = StudentVendorBalance.objects.get(student=student)
    assert stored.balance == Decimal("85.00") and stored.fetched_at
    task_run(integration=integration, task="get-payments")
    task_run(integration=integration, task="validate")
    assert list(Fee.objects.values_list("pk", flat=True)) == [fee.pk]


def test_a_429_storm_is_ridden_out_without_losing_or_doubling(sandbox, make_integration):
    integration = make_integration()
    fees = [make_fee(amount="10.00", fee_date=IN_SCOPE) for _ in range(5)]
    sandbox.control("faults", throttle_count=3)
    report = engine.deliver(integration_id=integration.pk)
    assert report.acknowledged == 5
    assert set(sandbox.fees()) == {f.reference for f in fees}
    for fee in fees:
        sandbox.control("pay", fee_ref=fee.reference, amount="4.00")
    sandbox.control("faults", throttle_count=3)
    run = task_run(integration=integration, task="get-payments")
    assert run.outcome == "ok" and run.counts["recorded"] == 5
    assert LedgerEntry.objects.filter(external_source=integration.external_source).count() == 5


def test_a_wrong_api_key_fails_test_pull_with_a_clear_message(sandbox, make_integration):
    integration = make_integration()
    integration.credentials = {"api_key": "not-the-key"}
    integration.save()
    pull, push = integration_test_connection(integration=integration)
    assert not pull.ok and pull.answer.startswith("The API key was refused")
    assert not push.ok
    integration.refresh_from_db()
    assert "The API key was refused" in integration.test_pull_detail
