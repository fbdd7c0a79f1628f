"""The sync engine's scenarios, on real parts: PostgreSQL, a Celery worker on Redis and the
vendor sandbox over HTTP. Parametrized over every vendor (the `sandbox` fixture)."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import pytest
import requests
from django.db import connections

from apps.fees.models import Fee, LedgerEntry
from apps.fees.services import Origin, fee_change, fee_waive, payment_take
from apps.vendors import engine
from apps.vendors.jobs import pull_for_students, task_run
from apps.vendors.models import Discrepancy, Integration, OutboxItem, SyncedFee
from apps.vendors.selectors import fee_sync_timeline
from tests.factories import CategoryFactory, MerchantAccountFactory, StudentFactory, make_fee

from .conftest import wait_for

D = Decimal
IN_SCOPE = dt.date(2026, 9, 1)

pytestmark = [pytest.mark.slow, pytest.mark.all_brokers]


def at_vendor(sandbox, fee: Fee, **expect):
    """Wait until the sandbox holds `fee` with the expected fields; return what it holds."""

    def check():
        held = sandbox.fees().get(fee.reference)
        if held and all(str(held.get(k)) == str(v) for k, v in expect.items()):
            return held
        return None

    return wait_for(check, what=f"{fee.reference} at the vendor with {expect}")


def vendor_payments(integration: Integration, fee: Fee):
    return LedgerEntry.objects.filter(fee=fee, external_source=integration.external_source)


def test_a_fee_created_by_a_clerk_is_at_the_vendor_and_changes_update_it(
    live_worker, sandbox, make_integration, clerk
):
    make_integration()
    fee = make_fee(amount="40.00", fee_date=IN_SCOPE, user=clerk)
    held = at_vendor(sandbox, fee, amount="40.00", amount_due="40.00")
    assert held["student_id"] == fee.student.student_number

    fee_change(fee=fee, amount="55.00", origin=Origin(user=clerk))
    at_vendor(sandbox, fee, amount="55.00", version=2)
    assert len(sandbox.fees()) == 1
    wait_for(lambda: not OutboxItem.objects.exists(), what="the outbox to empty")


def test_fees_out_of_scope_never_reach_the_vendor(live_worker, sandbox, make_integration):
    trips = CategoryFactory(code="TRIP")
    books = CategoryFactory(code="BOOK")
    make_integration(categories=[trips])
    early = make_fee(category=trips, fee_date=dt.date(2026, 6, 30))
    other = make_fee(category=books, fee_date=IN_SCOPE)
    sent = make_fee(category=trips, fee_date=IN_SCOPE)
    at_vendor(sandbox, sent)
    # Whatever else happens to the out-of-scope fees, they are never sent.
    fee_waive(fee=other, reason="x", origin=Origin())
    payment_take(fee=early, amount="5", method="cash", origin=Origin())
    task_run(integration=Integration.objects.get(), task="send-fees")
    assert set(sandbox.fees()) == {sent.reference}
    assert early.reference not in sandbox.fees() and other.reference not in sandbox.fees()


def test_an_outage_loses_nothing_and_the_backlog_drains_by_itself(
    live_worker, sandbox, make_integration
):
    integration = make_integration()
    student = StudentFactory()
    category, account = CategoryFactory(), MerchantAccountFactory()
    existing = [
        make_fee(
            student=student,
            category=category,
            merchant_account=account,
            fee_date=IN_SCOPE,
            amount="10.00",
        )
        for _ in range(10)
    ]
    wait_for(lambda: len(sandbox.fees()) == 10, what="the first fees at the vendor")

    sandbox.faults("down")
    new = [
        make_fee(
            student=student,
            category=category,
            merchant_account=account,
            fee_date=IN_SCOPE,
            amount="25.00",
        )
        for _ in range(50)
    ]
    for fee in existing:
        fee_change(fee=fee, amount="12.00", origin=Origin())
    wait_for(
        lambda: Integration.objects.get().consecutive_failures > 0,
        what="the failure to be recorded",
    )
    integration.refresh_from_db()
    assert integration.vendor_name in integration.last_error
    assert OutboxItem.objects.filter(state="pending").count() == 60
    assert any(i.last_error for i in OutboxItem.objects.all())

    sandbox.faults("ok")
    wait_for(lambda: not OutboxItem.objects.exists(), timeout=120, what="the backlog to drain")
    held = sandbox.fees()
    assert len(held) == 60
    assert all(held[f.reference]["amount"] == "25.00" for f in new)
    assert all(held[f.reference]["amount"] == "12.00" for f in existing)


@pytest.mark.parametrize("cut_at", ["body", "headers"])
def test_an_answer_cut_off_mid_call_is_retried_and_nothing_is_lost_or_doubled(
    live_worker, sandbox, make_integration, cut_at
):
    """The vendor applies the push (or reads the page of payments) and the connection
    breaks while it answers: FeeSync has heard nothing it can count on, so the change stays
    queued and goes again, the cursor stays, and the retries land once at the vendor."""
    integration = make_integration()
    fee = make_fee(amount="40.00", fee_date=IN_SCOPE)
    at_vendor(sandbox, fee, version=1)
    wait_for(lambda: not OutboxItem.objects.exists(), what="the first delivery")

    sandbox.faults("drop_mid_answer", cut_at=cut_at)
    fee_change(fee=fee, amount="45.00", origin=Origin())
    at_vendor(sandbox, fee, amount="45.00", version=2)  # the vendor has it...
    wait_for(
        lambda: Integration.objects.get().consecutive_failures > 0,
        what="the cut-off answer to be recorded as a failure",
    )
    # ... and FeeSync does not take it for delivered.
    assert OutboxItem.objects.filter(fee=fee).exists()
    assert SyncedFee.objects.get(fee=fee).acknowledged_version == 1
    assert "dropped while" in Integration.objects.get().last_error

    sandbox.control("pay", fee_ref=fee.reference, amount="20.00")
    failed = task_run(integration=integration, task="get-payments")
    assert failed is not None and failed.outcome == "failed" and "dropped while" in failed.error
    assert not vendor_payments(integration, fee).exists()

    sandbox.faults("ok")
    wait_for(lambda: not OutboxItem.objects.exists(), timeout=60, what="the change to go again")
    assert SyncedFee.objects.get(fee=fee).acknowledged_version == 2
    assert len(sandbox.fees()) == 1 and sandbox.fees()[fee.reference]["amount"] == "45.00"
    assert task_run(integration=integration, task="get-payments").outcome == "ok"
    assert task_run(integration=integration, task="get-payments").outcome == "ok"
    assert list(vendor_payments(integration, fee).values_list("amount", flat=True)) == [D("20.00")]
    fee.refresh_from_db()
    assert fee.balance == D("25.00")


def test_a_partial_payment_is_recorded_once_by_each_trigger(
    live_worker, sandbox, make_integration, clerk
):
    integration = make_integration()
    fee = make_fee(amount="50.00", fee_date=IN_SCOPE)
    at_vendor(sandbox, fee)
    sandbox.control("pay", fee_ref=fee.reference, amount="20.00")
    number = fee.student.student_number

    # 1. A clerk opens the student's fees page (the pull for that student).
    pull_for_students(integration=integration, student_numbers=[number], trigger="fee page")
    # 2. The nightly task, from the stored cursor.
    task_run(integration=integration, task="get-payments")
    # 3. Two pulls at the same moment.
    barrier = threading.Barrier(2)

    def pull():
        barrier.wait()
        try:
            engine.payments_pull(integration=integration, student_ids=[number])
        finally:
            connections.close_all()

    threads = [threading.Thread(target=pull) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    fee.refresh_from_db()
    assert vendor_payments(integration, fee).count() == 1
    assert fee.balance == D("30.00") and fee.amount_locked

    # 4. A parent signing in pulls in the background.
    sandbox.control("pay", fee_ref=fee.reference, amount="5.00")
    guardian_user = _parent_of(fee.student)
    from django.test import Client

    response = Client().post(
        "/portal/login/", {"username": guardian_user.username, "password": "pw-for-tests-1"}
    )
    assert response.status_code == 302, response.content
    wait_for(
        lambda: vendor_payments(integration, fee).count() == 2,
        what="the login pull to record the second payment",
    )
    fee.refresh_from_db()
    assert fee.balance == D("25.00")


def test_a_fee_paid_at_the_vendor_is_not_sent_back_to_it(live_worker, sandbox, make_integration):
    integration = make_integration()
    vendor = integration.vendor_name
    fee = make_fee(amount="25.00", fee_date=IN_SCOPE)
    at_vendor(sandbox, fee, version=1)
    wait_for(
        lambda: (
            SyncedFee.objects.filter(fee=fee, acknowledged_version=1).exists()
            and not OutboxItem.objects.exists()
        ),
        what="the vendor's acknowledgement",
    )
    sandbox.control("pay", fee_ref=fee.reference, amount="25.00")
    pulled = task_run(integration=integration, task="get-payments")
    assert pulled.counts["recorded"] == 1
    fee.refresh_from_db()
    assert (fee.status, fee.version) == (Fee.Status.PAID, 2)
    assert not OutboxItem.objects.exists()

    sandbox.control("requests")  # POST: start counting the vendor's requests from zero
    run = task_run(integration=integration, task="send-fees")
    assert run.outcome == "ok", run.error
    assert (run.counts["queued"], run.counts["sent"]) == (0, 0)
    counted = requests.get(f"{sandbox.url}/_sandbox/requests", timeout=10).json()
    assert counted["total"] == 0, counted

    [at_vendor_now] = fee_sync_timeline(fee=fee)
    assert at_vendor_now.status == f"Up to date: {vendor} holds version 2."
    texts = [e.text for e in at_vendor_now.events]
    assert f"{vendor} already has version 2: the change came from {vendor}" in texts
    assert f"Payment of $25.00 recorded from {vendor}" in texts


def _parent_of(student):
    from tests.factories import GuardianFactory

    guardian = GuardianFactory()
    guardian.students.add(student)
    return guardian.user


def test_closed_payment_refund_and_district_changes_round_trip(
    live_worker, sandbox, make_integration, clerk
):
    integration = make_integration()
    closed_fee = make_fee(amount="40.00", fee_date=IN_SCOPE)
    refunded_fee = make_fee(amount="30.00", fee_date=IN_SCOPE)
    check_fee = make_fee(amount="20.00", fee_date=IN_SCOPE)
    waived_fee = make_fee(amount="15.00", fee_date=IN_SCOPE)
    for fee in (closed_fee, refunded_fee, check_fee, waived_fee):
        at_vendor(sandbox, fee)

    sandbox.control("pay", fee_ref=closed_fee.reference, amount="10.00", closed=True)
    paid = sandbox.control("pay", fee_ref=refunded_fee.reference, amount="30.00")
    task_run(integration=integration, task="get-payments")
    closed_fee.refresh_from_db()
    refunded_fee.refresh_from_db()
    assert closed_fee.status == Fee.Status.CLOSED and closed_fee.balance == 0
    assert refunded_fee.status == Fee.Status.PAID

    payment_id = paid["payment"]["payment_id"]
    sandbox.control("refund", payment_id=payment_id, amount="12.00")
    task_run(integration=integration, task="get-payments")
    refunded_fee.refresh_from_db()
    assert refunded_fee.balance == D("12.00") and refunded_fee.status == Fee.Status.OPEN

    payment_take(
        fee=check_fee, amount="20.00", method="check", check_number="311", origin=Origin(user=clerk)
    )
    fee_waive(fee=waived_fee, reason="Hardship", origin=Origin(user=clerk))
    at_vendor(sandbox, check_fee, amount_due="0.00")
    held = at_vendor(sandbox, waived_fee, amount_due="0.00")
    assert held["status"] != "open"
    assert sandbox.fees()[check_fee.reference]["status"] != "open"


def test_a_worker_killed_mid_delivery_leaves_the_fee_once_at_the_vendor(
    live_worker, sandbox, make_integration
):
    make_integration()
    sandbox.faults("slow", delay_ms=2500)
    fee = make_fee(amount="33.00", fee_date=IN_SCOPE)
    wait_for(
        lambda: b"deliver_outbox" in live_worker.log_path.read_bytes(), what="the delivery to start"
    )
    live_worker.kill()
    sandbox.faults("ok")
    live_worker.start()
    wait_for(
        lambda: not OutboxItem.objects.exists(),
        timeout=120,
        what="the lease to expire and the sweeper to redeliver",
    )
    held = sandbox.fees()
    assert list(held) == [fee.reference]


def test_validation_repairs_records_and_reports(live_worker, sandbox, make_integration):
    integration = make_integration()
    lost = make_fee(amount="18.00", fee_date=IN_SCOPE)
    missed = make_fee(amount="22.00", fee_date=IN_SCOPE)
    for fee in (lost, missed):
        at_vendor(sandbox, fee)
    sandbox.control("delete_fee", fee_ref=lost.reference)
    # A payment the nightly pull misses: hidden from GetPayments while the pull runs.
    paid = sandbox.control("pay", fee_ref=missed.reference, amount="22.00", hidden=True)
    pulled = task_run(integration=integration, task="get-payments")
    assert pulled.counts["recorded"] == 0
    sandbox.control("hide_payments", payment_ids=[paid["payment"]["payment_id"]], hidden=False)
    sandbox.control("foreign_fee", student_id=missed.student.student_number, amount="99.00")

    run = task_run(integration=integration, task="validate")
    assert run.outcome == "ok", run.error
    assert run.counts["missing"] == 1 and run.counts["foreign"] == 1
    assert run.counts["payments_missed"] == 1
    at_vendor(sandbox, lost, amount="18.00")
    missed.refresh_from_db()
    assert missed.status == Fee.Status.PAID
    foreign = Discrepancy.objects.get(kind="foreign_fee")
    assert "never sent" in foreign.detail and foreign.resolved_at is None
    # The foreign fee is left exactly as it was at the vendor and never becomes a fee here.
    foreign_at_vendor = [f for f in sandbox.state()["fees"] if f.get("foreign")]
    assert len(foreign_at_vendor) == 1 and foreign_at_vendor[0]["amount"] == "99.00"
    assert Fee.objects.count() == 2
