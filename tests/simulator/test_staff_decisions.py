"""Staff's answers to findings as simulator steps (`operations.staff_decide`): each goes
through the service the staff site calls, the answer drawn from the seed's number."""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.fees.models import Fee, LedgerEntry, StudentCredit
from apps.fees.selectors import ledger_report
from apps.simulator.operations import open_findings, staff_decide
from apps.simulator.world import World
from apps.vendors.models import Discrepancy, HeldMovement, Integration
from tests.factories import StaffFactory, make_fee

D = Decimal
pytestmark = pytest.mark.django_db


@pytest.fixture
def world() -> World:
    integration = Integration.objects.create(
        vendor_kind="payschools", slug="ps-sim", name="PS", service_url="http://127.0.0.1:9/soap"
    )
    world = World(seed=1, clock=None, worker=None, sandboxes={})  # type: ignore[arg-type]
    world.integrations = {"payschools": integration}
    world.staff = StaffFactory()
    return world


def held(world: World, fee: Fee, ref: str, kind: str = "payment", amount: str = "10.00"):
    return HeldMovement.objects.create(
        integration=world.integrations["payschools"],
        fee=fee,
        fee_ref=fee.reference,
        vendor_ref=ref,
        kind=kind,
        amount=D(amount),
        student_number=fee.student.student_number,
        reason=HeldMovement.Reason.NEVER_SENT,
        detail="never sent",
    )


def test_a_held_payment_is_applied_credited_or_dismissed_by_the_seeds_number(world):
    fee = make_fee(amount="40.00")
    source = world.integrations["payschools"].external_source
    for ref in ("P-1", "P-2", "P-3"):
        held(world, fee, ref)
    first, second, third = open_findings(world)
    assert "apply" in staff_decide(world, first, 0.1)
    assert "credit" in staff_decide(world, second, 0.5)
    assert "dismiss" in staff_decide(world, third, 0.9)
    fee.refresh_from_db()
    assert fee.balance == D("30.00")  # only the applied one is on the fee
    assert set(
        LedgerEntry.objects.filter(external_source=source).values_list("external_id", flat=True)
    ) == {"P-1", "P-2"}
    assert StudentCredit.objects.get(student=fee.student).amount == D("10.00")
    assert world.staff_decisions == {"apply": 1, "credit": 1, "dismiss": 1}
    assert world.dismissed_refs == {fee.reference}
    assert open_findings(world) == []
    assert ledger_report().ok


def test_a_held_waiver_is_never_credited_and_a_refused_answer_is_an_outcome(world):
    fee = make_fee(amount="5.00")
    waiver = held(world, fee, "W-1", kind="waiver", amount="5.00")
    assert "dismiss" in staff_decide(world, waiver, 0.5)  # no credit for a waiver
    too_much = held(world, fee, "W-2", kind="waiver", amount="50.00")
    outcome = staff_decide(world, too_much, 0.1)  # more than is owed: the ledger says no
    assert "refused" in outcome and world.staff_decisions["refused"] == 1
    assert open_findings(world) == [too_much]


def test_after_a_refund_at_the_vendor_staff_keep_it_owed_or_waive_the_rest(world):
    integration = world.integrations["payschools"]
    kept, waived = make_fee(amount="20.00"), make_fee(amount="30.00")
    for fee in (kept, waived):
        Discrepancy.objects.create(
            integration=integration,
            kind=Discrepancy.Kind.REFUNDED_AT_VENDOR,
            fee=fee,
            fee_ref=fee.reference,
            vendor_ref=f"R-{fee.pk}",
            detail="refunded",
        )
    first, second = open_findings(world)
    assert "keep_owed" in staff_decide(world, first, 0.2)
    assert "waive_rest" in staff_decide(world, second, 0.8)
    kept.refresh_from_db()
    waived.refresh_from_db()
    assert kept.balance == D("20.00") and world.kept_owed == {kept.reference}
    assert waived.balance == D("0.00") and waived.status == Fee.Status.WAIVED
    assert open_findings(world) == []


def test_a_payment_staff_dismissed_while_held_as_never_sent_stays_unposted_once_the_fee_is_sent():
    """Held as "never sent" (the vendor took the fee, its acknowledgement not yet recorded),
    dismissed by a clerk; the first pull after the acknowledgement used to post it all the
    same, against staff's answer (the finding said dismissed, the ledger had the money)."""
    from django.utils import timezone

    from apps.fees.services import MovementKind
    from apps.vendors.engine import PullReport, payments_record
    from apps.vendors.findings import held_movement_dismiss
    from apps.vendors.kinds.base import VendorPayment
    from apps.vendors.models import OutboxItem, SyncedFee
    from tests.factories import CategoryFactory

    category = CategoryFactory()
    fee = make_fee(amount="30.00", category=category)
    integration = Integration.objects.create(
        vendor_kind="communitypass",
        slug="cp-dismissed",
        name="CP",
        enabled=True,
        service_url="http://127.0.0.1:9/v1",
        import_after="2026-01-01",
    )
    integration.categories.set([category])
    OutboxItem.objects.all().delete()  # its delivery is not what this test is about
    paid = VendorPayment(
        payment_id="CP-20",
        fee_ref=fee.reference,
        student_id=fee.student.student_number,
        amount=D("12.00"),
        kind=MovementKind.PAYMENT,
    )
    payments_record(integration=integration, payments=[paid], report=PullReport())
    held_movement_dismiss(
        held=HeldMovement.objects.get(vendor_ref="CP-20"),
        user=StaffFactory(),
        note="refunded to the family by cheque",
    )
    SyncedFee.objects.create(
        integration=integration, fee=fee, acknowledged_version=1, acknowledged_at=timezone.now()
    )
    again = PullReport()
    payments_record(integration=integration, payments=[paid, paid], report=again)
    assert (again.recorded, again.already_recorded, again.unmatched) == (0, 2, 0)
    assert not LedgerEntry.objects.filter(external_id="CP-20").exists()
    assert HeldMovement.objects.get(vendor_ref="CP-20").status == HeldMovement.Status.DISMISSED
    fee.refresh_from_db()
    assert fee.balance == D("30.00")
