"""Defects the simulator found, each pinned by a test named after the seed that found it."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connection, connections, transaction

from apps.fees.models import Fee, LedgerEntry
from apps.fees.selectors import ledger_report
from apps.fees.services import (
    Movement,
    MovementKind,
    MovementSource,
    Origin,
    OutcomeStatus,
    fee_change,
    movements_record,
    payment_take,
)
from apps.vendors import engine
from apps.vendors.kinds.base import PushResult
from apps.vendors.models import Integration, OutboxItem, SyncedFee
from tests.factories import CategoryFactory, make_fee

D = Decimal
VENDOR = MovementSource(
    external_source="integration:7", name="PaySchools", ledger_source=LedgerEntry.Source.VENDOR
)


@pytest.mark.django_db
def test_seed_3_a_fee_waived_in_full_at_the_vendor_after_staff_raised_it_is_settled():
    """simulate --seed 3: paid $13.70 at the office, waived in full at the vendor ($33.85
    then due), raised to $61.48 by staff before the waiver was pulled. The vendor holds the
    fee settled; FeeSync went on owing $13.93 that no parent could pay there."""
    fee = make_fee(amount="47.55")
    payment_take(fee=fee, amount="13.70", method="cash", origin=Origin())
    fee_change(fee=fee, amount="61.48", origin=Origin())
    [outcome] = movements_record(
        source=VENDOR,
        movements=[
            Movement(
                external_id="PS-W1",
                kind=MovementKind.WAIVER,
                fee_ref=fee.reference,
                amount=D("33.85"),
                closed=True,
            )
        ],
    )
    assert outcome.status == OutcomeStatus.RECORDED, outcome.reason
    fee.refresh_from_db()
    assert fee.balance == D("0.00") and fee.status != Fee.Status.OPEN
    waiver = LedgerEntry.objects.get(external_id="PS-W1")
    assert waiver.amount == D("33.85")  # what the vendor waived, as it said
    assert LedgerEntry.objects.get(fee=fee, kind="settlement").amount == D("13.93")
    assert ledger_report().ok


@pytest.mark.django_db
def test_seed_3_a_partial_waiver_at_the_vendor_leaves_the_rest_owed():
    fee = make_fee(amount="50.00")
    movements_record(
        source=VENDOR,
        movements=[
            Movement(
                external_id="PS-W2",
                kind=MovementKind.WAIVER,
                fee_ref=fee.reference,
                amount=D("20.00"),
            )
        ],
    )
    fee.refresh_from_db()
    assert (fee.balance, fee.status) == (D("30.00"), Fee.Status.OPEN)


def _waiting_for_a_lock(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
        row = cursor.fetchone()
    return bool(row) and row[0] == "Lock"


@pytest.mark.django_db(transaction=True)
def test_seed_4_a_delivery_acknowledged_while_staff_take_a_payment_does_not_deadlock():
    """simulate --seed 4: a clerk's payment locked the fee and wrote its outbox row while
    the worker recorded the vendor's acknowledgement of the same fee (outbox row deleted,
    the fee's foreign keys checked at COMMIT). Each waited for the other: PostgreSQL killed
    the clerk's payment with "deadlock detected"."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks and deferred foreign keys: PostgreSQL")
    category = CategoryFactory()
    fee = make_fee(amount="40.00", category=category)
    integration = Integration.objects.create(
        vendor_kind="communitypass",
        slug="cp-seed-4",
        name="CP",
        enabled=True,
        service_url="http://127.0.0.1:9/v1",
        import_after="2026-01-01",
    )
    integration.categories.set([category])
    with transaction.atomic():
        engine.outbox_enqueue(integration=integration, fee_ids=[fee.pk], trigger=False)
    [item] = engine._claim(integration, 10)
    records = engine.fee_records(integration, [fee.pk])
    delivery_pid: list[int] = []
    errors: list[BaseException] = []

    def acknowledge() -> None:
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_backend_pid()")
                    delivery_pid.append(cursor.fetchone()[0])
                engine._delivery_acknowledged(
                    integration, [item], records, PushResult(acknowledged={fee.reference: 1})
                )
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    with transaction.atomic():
        locked = Fee.objects.select_for_update().get(pk=fee.pk)  # the clerk's payment begins
        worker = threading.Thread(target=acknowledge)
        worker.start()
        for _ in range(200):
            if delivery_pid and _waiting_for_a_lock(delivery_pid[0]):
                break
            worker.join(0.05)
        # The payment goes on: its outbox row, then COMMIT.
        payment_take(fee=locked, amount="10.00", method="cash", origin=Origin())
    worker.join(30)
    assert not errors, errors
    fee.refresh_from_db()
    # The change made during the delivery is still waiting to be sent, at its version.
    assert OutboxItem.objects.get(fee=fee).version == fee.version == 2
    assert SyncedFee.objects.get(fee=fee).acknowledged_version == 1


@pytest.mark.django_db
def test_seed_4_a_payment_held_before_the_fee_was_acknowledged_is_not_left_for_staff_once_posted():
    """simulate --seed 4: the worker was killed after Community Pass took a fee and before
    FeeSync recorded the acknowledgement; a payment pulled then was held ("never sent").
    Once the redelivery was acknowledged, the next pull posted it, and the held movement
    still waited for staff: a clerk could apply or credit money already on the fee."""
    from django.utils import timezone

    from apps.vendors.engine import PullReport, payments_record
    from apps.vendors.kinds.base import VendorPayment
    from apps.vendors.models import HeldMovement

    category = CategoryFactory()
    fee = make_fee(amount="30.00", category=category)
    integration = Integration.objects.create(
        vendor_kind="communitypass",
        slug="cp-seed-4b",
        name="CP",
        enabled=True,
        service_url="http://127.0.0.1:9/v1",
        import_after="2026-01-01",
    )
    integration.categories.set([category])
    OutboxItem.objects.all().delete()  # its delivery is not what this test is about
    paid = VendorPayment(
        payment_id="CP-10",
        fee_ref=fee.reference,
        student_id=fee.student.student_number,
        amount=D("12.00"),
        kind=MovementKind.PAYMENT,
    )
    first = PullReport()
    payments_record(integration=integration, payments=[paid], report=first)
    assert first.held == 1
    held = HeldMovement.objects.get(vendor_ref="CP-10")
    assert held.status == HeldMovement.Status.OPEN

    SyncedFee.objects.create(
        integration=integration, fee=fee, acknowledged_version=1, acknowledged_at=timezone.now()
    )
    again = PullReport()
    payments_record(integration=integration, payments=[paid], report=again)
    assert again.recorded == 1
    held.refresh_from_db()
    entry = LedgerEntry.objects.get(external_id="CP-10")
    assert (held.status, held.entry_id) == (HeldMovement.Status.APPLIED, entry.pk)
    assert held.resolved_at is not None and "later pull" in held.resolution_note
    fee.refresh_from_db()
    assert fee.balance == D("18.00")


@pytest.mark.django_db
def test_seed_1_a_refund_refused_before_its_payment_was_recorded_closes_its_finding_later():
    """simulate --seed 1: a movement refused once (here a refund pulled before the payment
    it gives back) and recorded by a later pull kept its "cannot record" finding open, so
    staff saw an unmatched payment that was on the ledger."""
    from django.utils import timezone

    from apps.vendors.engine import PullReport, payments_record
    from apps.vendors.kinds.base import VendorPayment
    from apps.vendors.models import Discrepancy

    category = CategoryFactory()
    fee = make_fee(amount="30.00", category=category)
    integration = Integration.objects.create(
        vendor_kind="payschools",
        slug="ps-seed-1",
        name="PS",
        enabled=True,
        service_url="http://127.0.0.1:9/soap",
        import_after="2026-01-01",
    )
    integration.categories.set([category])
    OutboxItem.objects.all().delete()
    SyncedFee.objects.create(
        integration=integration, fee=fee, acknowledged_version=1, acknowledged_at=timezone.now()
    )
    number = fee.student.student_number
    paid = VendorPayment("PS-1", fee.reference, number, D("30.00"), MovementKind.PAYMENT)
    refund = VendorPayment(
        "PS-2", fee.reference, number, D("10.00"), MovementKind.REFUND, refers_to="PS-1"
    )
    first = PullReport()
    payments_record(integration=integration, payments=[refund], report=first)
    assert first.unmatched == 1
    finding = Discrepancy.objects.get(kind=Discrepancy.Kind.UNMATCHED_PAYMENT, vendor_ref="PS-2")
    assert finding.resolved_at is None

    again = PullReport()
    payments_record(integration=integration, payments=[paid, refund], report=again)
    assert again.recorded == 2
    finding.refresh_from_db()
    assert finding.resolved_at is not None and finding.repaired
    fee.refresh_from_db()
    assert fee.balance == D("10.00")
    assert ledger_report().ok


@pytest.mark.django_db
def test_seed_2_a_vendor_change_made_while_an_older_version_is_on_the_wire_is_still_sent():
    """simulate --seed 2: a pull posted a closed payment (FeeSync settled the rest: version
    6, queued) and then the vendor's void of it (version 7, the vendor's own change, so not
    queued). The delivery of version 6, read between the two, reached Community Pass after
    its void and was acknowledged after the pull: the acknowledgement cleared the outbox
    row (still at 6), so the vendor kept the fee settled while FeeSync owed $8.07 again,
    until the nightly validation."""
    category = CategoryFactory()
    fee = make_fee(amount="40.00", category=category)
    integration = Integration.objects.create(
        vendor_kind="communitypass",
        slug="cp-seed-2",
        name="CP",
        enabled=True,
        service_url="http://127.0.0.1:9/v1",
        import_after="2026-01-01",
    )
    integration.categories.set([category])
    with transaction.atomic():
        engine.outbox_enqueue(integration=integration, fee_ids=[fee.pk], trigger=False)
    [item] = engine._claim(integration, 10)
    engine._delivery_acknowledged(
        integration,
        [item],
        engine.fee_records(integration, [fee.pk]),
        PushResult(acknowledged={fee.reference: 1}),
    )
    assert not OutboxItem.objects.exists()

    payment_take(fee=fee, amount="10.00", method="cash", origin=Origin())  # version 2, queued
    [item] = engine._claim(integration, 10)
    on_the_wire = engine.fee_records(integration, [fee.pk])  # version 2, $30.00 due
    source = MovementSource(
        external_source=integration.external_source,
        name="Community Pass",
        ledger_source=LedgerEntry.Source.VENDOR,
    )
    [outcome] = movements_record(  # the vendor's own change: version 3, $25.00 due
        source=source,
        movements=[
            Movement(
                external_id="CP-S2",
                kind=MovementKind.PAYMENT,
                fee_ref=fee.reference,
                amount=D("5.00"),
            )
        ],
    )
    assert outcome.status == OutcomeStatus.RECORDED, outcome.reason
    engine._delivery_acknowledged(
        integration, [item], on_the_wire, PushResult(acknowledged={fee.reference: 2})
    )

    fee.refresh_from_db()
    assert fee.version == 3 and fee.balance == D("25.00")
    assert SyncedFee.objects.get(fee=fee).acknowledged_version == 2
    # The vendor holds version 2 (its $5.00 overwritten by the $30.00 due it was sent):
    # the fee is still queued, at the version that says $25.00.
    left = OutboxItem.objects.get(fee=fee)
    assert (left.version, left.state) == (3, OutboxItem.State.PENDING)
    records = engine.fee_records(integration, [fee.pk])
    assert records[fee.pk].amount_due == D("25.00")


@pytest.mark.django_db
def test_seed_2_a_vendor_change_to_a_fee_it_holds_up_to_date_is_not_sent_back():
    """The other side of seed 2's fix: the vendor held the version before its own change,
    so nothing is queued and its change counts as acknowledged."""
    from django.utils import timezone

    category = CategoryFactory()
    fee = make_fee(amount="40.00", category=category)
    integration = Integration.objects.create(
        vendor_kind="communitypass",
        slug="cp-seed-2b",
        name="CP",
        enabled=True,
        service_url="http://127.0.0.1:9/v1",
        import_after="2026-01-01",
    )
    integration.categories.set([category])
    OutboxItem.objects.all().delete()
    SyncedFee.objects.create(
        integration=integration, fee=fee, acknowledged_version=1, acknowledged_at=timezone.now()
    )
    source = MovementSource(
        external_source=integration.external_source,
        name="Community Pass",
        ledger_source=LedgerEntry.Source.VENDOR,
    )
    movements_record(
        source=source,
        movements=[
            Movement(
                external_id="CP-S2B",
                kind=MovementKind.PAYMENT,
                fee_ref=fee.reference,
                amount=D("5.00"),
            )
        ],
    )
    assert not OutboxItem.objects.exists()
    assert SyncedFee.objects.get(fee=fee).acknowledged_version == 2


@pytest.fixture
def financials(tmp_path):
    """The file-exchange sandbox (the financials side), its directory reached as a path."""
    from apps.vendors.kinds.fileexchange import sandbox

    server = sandbox.make_server(0, None, root=str(tmp_path / "financials"))
    sandbox.start(server)
    yield server
    server.shutdown()


@pytest.mark.django_db
def test_seed_1_a_fee_paid_at_the_financials_side_on_an_older_line_is_exported_back(financials):
    """simulate --seed 1: $23.61 paid at the office (exported: $0.00 due), $12.74 of it
    refunded (exported: $12.74 due), paid in full at the financials side on that line; the
    office refunded the other $7.42 and its line ($20.16 due) was exported before the
    payment was imported. That line does not count the financials side's payment: it kept
    $10.87 (the amount less what it was paid), FeeSync owed $7.42, and the import's new
    version was taken as held there, so nothing ever told it otherwise."""
    import datetime as dt

    import requests

    from apps.fees.services import payment_refund
    from apps.vendors.jobs import task_run
    from apps.vendors.models import TaskRun

    category = CategoryFactory(code="LIBFINE")
    integration = Integration(
        vendor_kind="fileexchange",
        slug="fx-seed-1",
        name="Financials",
        enabled=True,
        service_url=financials.url,
        timeout_seconds=5,
        import_after=dt.date(2026, 7, 1),
        options={
            "transport": "local",
            "local_path": str(financials.root),
            "item_types": "LIBFINE = 800000000001",
        },
    )
    integration.save()
    integration.categories.set([category])

    def run(task: str) -> dict:
        done = task_run(integration=integration, task=task)
        assert done is not None and done.outcome == TaskRun.Outcome.OK, done and done.error
        return done.counts

    def there() -> tuple[Decimal, Decimal]:
        [held] = requests.get(f"{financials.url}/_sandbox/state", timeout=10).json()["fees"]
        return D(held["amount"]), D(held["amount_due"])

    fee = make_fee(amount="23.61", category=category)
    run("export-fees")
    payment = payment_take(fee=fee, amount="23.61", method="cash", origin=Origin())
    run("export-fees")
    assert there() == (D("23.61"), D("0.00"))
    payment_refund(payment=payment, reason="part", amount="12.74", origin=Origin())
    run("export-fees")
    assert there() == (D("23.61"), D("12.74"))

    paid = requests.post(
        f"{financials.url}/_sandbox/pay",
        json={"fee_ref": fee.reference, "amount": "12.74"},
        timeout=10,
    )
    assert paid.status_code == 200, paid.text
    payment_refund(payment=payment, reason="the rest", amount="7.42", origin=Origin())
    assert run("export-fees")["rows"] == 1  # $20.16 due: the payment not imported yet
    assert there() == (D("23.61"), D("10.87"))

    assert run("import-payments")["recorded"] == 1
    fee.refresh_from_db()
    assert fee.balance == D("7.42")
    # The financials side's own change goes back to it, with the figure that counts it.
    assert OutboxItem.objects.get(integration=integration, fee=fee).version == fee.version
    assert run("export-fees")["rows"] == 1
    assert there() == (D("23.61"), D("7.42"))
    assert SyncedFee.objects.get(integration=integration, fee=fee).acknowledged_version == (
        fee.version
    )
    assert not OutboxItem.objects.filter(integration=integration).exists()
    assert ledger_report().ok


@pytest.mark.django_db
def test_seed_1_a_file_fee_taken_as_held_before_the_fix_goes_out_in_the_next_export():
    """The data migration: a file exchange's fee whose figure counted as held at the
    financials side (its own change) is exported again; an API vendor's stays held."""
    import importlib

    from django.apps import apps
    from django.utils import timezone

    migration = importlib.import_module(
        "apps.vendors.migrations.0012_file_exports_send_back_own_changes"
    )
    held = {}
    for kind in ("fileexchange", "communitypass"):
        category = CategoryFactory()
        fee = make_fee(amount="10.00", category=category)
        integration = Integration.objects.create(
            vendor_kind=kind, slug=f"{kind}-0012", name=kind, service_url="http://127.0.0.1:9/"
        )
        held[kind] = SyncedFee.objects.create(
            integration=integration,
            fee=fee,
            acknowledged_version=fee.version,
            vendor_caused_version=fee.version,
            acknowledged_at=timezone.now(),
        )
    migration.send_back_what_the_financials_side_caused(apps, None)
    for row in held.values():
        row.refresh_from_db()
    assert held["fileexchange"].acknowledged_version == held["fileexchange"].fee.version - 1
    assert held["fileexchange"].vendor_caused_version is None
    assert held["communitypass"].acknowledged_version == held["communitypass"].fee.version


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("answer", ["waive_rest", "keep_owed", "held_apply"])
def test_seed_1_a_staff_answer_locks_the_fee_before_the_finding(answer):
    """simulate --seed 1 (step 250, after staff's answers became steps): "waive the rest"
    after a refund at the vendor locked the finding, then its fee; a pull of the same fee
    held the fee and wanted the finding: deadlock. Every answer now waits for the fee first,
    with the finding still free, as the ledger's services and the pulls take them."""
    import threading

    from django.db import connection, connections, transaction

    from apps.fees.models import Fee
    from apps.vendors import findings
    from apps.vendors.models import Discrepancy, HeldMovement, Integration
    from tests.db_helpers import wait_until_a_session_waits_for_a_lock
    from tests.factories import StaffFactory, make_fee

    assert connection.vendor == "postgresql"
    integration = Integration.objects.create(
        vendor_kind="payschools", slug="ps-lock", name="PS", service_url="http://127.0.0.1:9/"
    )
    fee = make_fee(amount="30.00")
    user = StaffFactory()
    if answer == "held_apply":
        row: object = HeldMovement.objects.create(
            integration=integration,
            fee=fee,
            fee_ref=fee.reference,
            vendor_ref="H-LOCK",
            kind="payment",
            amount="10.00",
            student_number=fee.student.student_number,
            reason=HeldMovement.Reason.NEVER_SENT,
            detail="never sent",
        )
        table, run = HeldMovement, lambda: findings.held_movement_apply(held=row, user=user)
    else:
        row = Discrepancy.objects.create(
            integration=integration,
            kind=Discrepancy.Kind.REFUNDED_AT_VENDOR,
            fee=fee,
            fee_ref=fee.reference,
            vendor_ref="R-LOCK",
            detail="refunded",
        )
        service = getattr(findings, f"refund_{answer}")
        table, run = Discrepancy, lambda: service(discrepancy=row, user=user)
    done: list[object] = []

    def staff() -> None:
        try:
            done.append(run())
        finally:
            connections.close_all()

    with transaction.atomic():  # the pull: holds the fee
        list(Fee.objects.select_for_update().filter(pk=fee.pk))
        answering = threading.Thread(target=staff)
        answering.start()
        waiting = wait_until_a_session_waits_for_a_lock()
        assert waiting, "the staff answer never waited for the fee"
        # ... and the finding is free meanwhile: the pull could take it without a deadlock.
        assert table.objects.select_for_update(nowait=True).filter(pk=row.pk).exists()
    answering.join(timeout=300)
    assert done, "the staff answer did not finish"
