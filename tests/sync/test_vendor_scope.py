"""A vendor settles only the fees it manages (issue 10, item 3), and a refund made at the
vendor is a finding for staff (item 4). On the real sandboxes over HTTP."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse

from apps.fees.models import Fee, LedgerEntry
from apps.fees.selectors import ledger_report
from apps.vendors import engine
from apps.vendors.jobs import task_run
from apps.vendors.models import Discrepancy, HeldMovement, Integration
from apps.vendors.selectors import sync_status
from tests.factories import CategoryFactory, make_fee

from .conftest import Sandbox, integration_for

pytestmark = pytest.mark.django_db
IN_SCOPE = dt.date(2026, 9, 1)
D = Decimal


def _held_elsewhere(box: Sandbox, fee: Fee) -> None:
    """The fee reaches a vendor that FeeSync never sent it to (an old manual upload at the
    vendor, a district that once used it for everything): the vendor holds it anyway."""
    box.control(
        "seed_fees",
        fees=[
            {
                "fee_ref": fee.reference,
                "version": fee.version,
                "student_id": fee.student.student_number,
                "amount": str(fee.amount),
                "amount_due": str(fee.balance),
                "fee_date": fee.fee_date.isoformat(),
                "active": True,
            }
        ],
    )


def _pay(box: Sandbox, fee: Fee, amount: str) -> str:
    paid: dict[str, Any] = box.control("pay", fee_ref=fee.reference, amount=amount)
    return str(paid["payment"]["payment_id"])


@pytest.fixture
def two_vendors(both_sandboxes: dict[str, Sandbox]) -> dict[str, Any]:
    """PaySchools manages lunch, Community Pass trips: no fee goes to both."""
    lunch, trips = CategoryFactory(code="LUNCH"), CategoryFactory(code="TRIPS")
    ps = both_sandboxes["payschools"]
    cp = both_sandboxes["communitypass"]
    return {
        "ps_box": ps,
        "cp_box": cp,
        "ps": integration_for(ps, categories=[lunch]),
        "cp": integration_for(cp, categories=[trips]),
        "lunch": lunch,
        "trips": trips,
    }


def test_a_payment_at_payschools_for_a_fee_only_community_pass_manages_is_held_and_not_applied(
    two_vendors, clerk, client
):
    ps: Integration = two_vendors["ps"]
    fee = make_fee(category=two_vendors["trips"], amount="40.00", fee_date=IN_SCOPE)
    engine.deliver(integration_id=two_vendors["cp"].pk)
    assert fee.reference in two_vendors["cp_box"].fees()
    _held_elsewhere(two_vendors["ps_box"], fee)
    payment_id = _pay(two_vendors["ps_box"], fee, "40.00")

    run = task_run(integration=ps, task="get-payments")
    assert run.counts["held"] == 1 and run.counts["recorded"] == 0

    # Nothing applied: the fee is still owed in full and its amount may still change.
    fee.refresh_from_db()
    assert fee.balance == D("40.00") and fee.status == Fee.Status.OPEN
    assert not fee.amount_locked
    assert not LedgerEntry.objects.filter(external_source=ps.external_source).exists()
    held = HeldMovement.objects.get()
    assert (held.integration, held.fee, held.vendor_ref) == (ps, fee, payment_id)
    assert held.reason == HeldMovement.Reason.OUT_OF_SCOPE and held.amount == D("40.00")
    assert held.status == HeldMovement.Status.OPEN
    assert held.detail.startswith(f"PaySchools reported a payment of $40.00 ({payment_id})")
    assert "outside what PaySchools manages" in held.detail

    assert sync_status(integration=ps)["movements_held"] == 1
    # Pulled again (the next page view, the nightly run): still one, still not applied.
    task_run(integration=ps, task="get-payments")
    assert HeldMovement.objects.count() == 1
    assert Fee.objects.get(pk=fee.pk).balance == D("40.00")

    # The fees clerk sees it in the held list, with the vendor, the fee and the reason.
    client.force_login(clerk)
    listing = client.get(reverse("admin:vendors_heldmovement_changelist") + "?status=open")
    assert listing.status_code == 200
    text = listing.content.decode()
    assert fee.reference in text and payment_id in text
    page = client.get(reverse("admin:vendors_heldmovement_change", args=[held.pk]))
    assert "Apply it to this fee anyway" in page.content.decode()
    assert "Dismiss with a note" in page.content.decode()
    assert ledger_report().ok


def test_apply_it_to_this_fee_anyway_posts_the_held_payment_once(two_vendors, clerk, client):
    ps: Integration = two_vendors["ps"]
    fee = make_fee(category=two_vendors["trips"], amount="40.00", fee_date=IN_SCOPE)
    _held_elsewhere(two_vendors["ps_box"], fee)
    payment_id = _pay(two_vendors["ps_box"], fee, "25.00")
    task_run(integration=ps, task="get-payments")
    held = HeldMovement.objects.get()

    client.force_login(clerk)
    url = reverse("admin:vendors_heldmovement_act", args=[held.pk, "apply"])
    first = client.post(url, follow=True)
    assert "is applied to fee" in first.content.decode()
    again = client.post(url, follow=True)  # a double click
    assert "no longer waiting" in again.content.decode()

    fee.refresh_from_db()
    assert fee.balance == D("15.00")
    entries = LedgerEntry.objects.filter(external_source=ps.external_source)
    assert [(e.external_id, e.amount, e.kind) for e in entries] == [
        (payment_id, D("25.00"), "payment")
    ]
    held.refresh_from_db()
    assert held.status == HeldMovement.Status.APPLIED and held.resolved_by == clerk
    assert held.entry_id == entries.get().pk

    # The vendor reports it again: it is already recorded, neither held again nor doubled.
    run = task_run(integration=ps, task="get-payments")
    assert run.counts["already_recorded"] == 1 and run.counts["held"] == 0
    assert entries.count() == 1 and HeldMovement.objects.count() == 1
    assert ledger_report().ok


def test_a_payment_for_a_fee_never_sent_to_the_vendor_is_held_and_dismissed_with_a_note(
    two_vendors, district_admin, client
):
    ps: Integration = two_vendors["ps"]
    # In PaySchools' scope, but never sent to it (not delivered yet).
    fee = make_fee(category=two_vendors["lunch"], amount="12.00", fee_date=IN_SCOPE)
    _held_elsewhere(two_vendors["ps_box"], fee)
    _pay(two_vendors["ps_box"], fee, "12.00")
    task_run(integration=ps, task="get-payments")
    held = HeldMovement.objects.get()
    assert held.reason == HeldMovement.Reason.NEVER_SENT
    assert "which FeeSync never sent to PaySchools" in held.detail

    client.force_login(district_admin)
    url = reverse("admin:vendors_heldmovement_act", args=[held.pk, "dismiss"])
    refused = client.post(url, {"note": "  "}, follow=True)
    assert "Say why it is dismissed" in refused.content.decode()
    assert HeldMovement.objects.get().status == HeldMovement.Status.OPEN
    client.post(url, {"note": "Refunded by PaySchools to the parent; ticket 4411."})

    held.refresh_from_db()
    assert held.status == HeldMovement.Status.DISMISSED
    assert held.resolution_note == "Refunded by PaySchools to the parent; ticket 4411."
    assert held.resolved_by == district_admin and held.resolved_at is not None
    # Reported again it stays dismissed, and nothing is posted.
    task_run(integration=ps, task="get-payments")
    assert HeldMovement.objects.get().status == HeldMovement.Status.DISMISSED
    assert Fee.objects.get(pk=fee.pk).balance == D("12.00")
    assert not LedgerEntry.objects.filter(external_source=ps.external_source).exists()


def test_support_staff_see_held_money_but_may_not_act_on_it(two_vendors, support_user, client):
    fee = make_fee(category=two_vendors["trips"], amount="40.00", fee_date=IN_SCOPE)
    _held_elsewhere(two_vendors["ps_box"], fee)
    _pay(two_vendors["ps_box"], fee, "40.00")
    task_run(integration=two_vendors["ps"], task="get-payments")
    held = HeldMovement.objects.get()

    client.force_login(support_user)
    page = client.get(reverse("admin:vendors_heldmovement_change", args=[held.pk]))
    assert page.status_code == 200 and "Apply it to this fee anyway" not in page.content.decode()
    dashboard = client.get(
        reverse("admin:vendors_integration_dashboard", args=[two_vendors["ps"].pk])
    )
    assert held.vendor_ref in dashboard.content.decode()
    for action in ("apply", "dismiss"):
        url = reverse("admin:vendors_heldmovement_act", args=[held.pk, action])
        assert client.post(url, {"note": "x"}).status_code == 403
    assert HeldMovement.objects.get().status == HeldMovement.Status.OPEN
    assert client.get("/admin/vendors/heldmovement/abc/change/").status_code == 404


# --- a refund made at the vendor -----------------------------------------------------------


def _refunded(sandbox: Sandbox, integration: Integration) -> tuple[Fee, Discrepancy]:
    fee = make_fee(amount="40.00", fee_date=IN_SCOPE)
    engine.deliver(integration_id=integration.pk)
    payment_id = _pay(sandbox, fee, "40.00")
    task_run(integration=integration, task="get-payments")
    sandbox.control("refund", payment_id=payment_id, amount="15.00")
    task_run(integration=integration, task="get-payments")
    fee.refresh_from_db()
    assert fee.balance == D("15.00") and fee.status == Fee.Status.OPEN  # owed again
    finding = Discrepancy.objects.get(kind=Discrepancy.Kind.REFUNDED_AT_VENDOR)
    vendor = integration.vendor_name
    assert finding.fee_id == fee.pk and finding.resolved_at is None
    assert finding.detail.startswith(f"Refunded at {vendor}: $15.00 of payment {payment_id}")
    assert finding.detail.endswith("Keep it owed, or waive the rest.")
    return fee, finding


def test_a_refund_at_the_vendor_is_a_finding_and_keep_it_owed_resolves_it(
    sandbox, make_integration, district_admin, client
):
    integration = make_integration()
    fee, finding = _refunded(sandbox, integration)
    client.force_login(district_admin)
    dashboard = client.get(reverse("admin:vendors_integration_dashboard", args=[integration.pk]))
    text = dashboard.content.decode()
    assert "Keep it owed" in text and "Waive the rest" in text

    url = reverse(
        "admin:vendors_integration_discrepancy", args=[integration.pk, finding.pk, "keep-owed"]
    )
    page = client.post(url, follow=True)
    assert "stays owed after the refund" in page.content.decode()
    finding.refresh_from_db()
    assert finding.resolved_by == district_admin
    assert finding.resolution_note == f"Kept owed after the refund at {integration.vendor_name}."
    assert Fee.objects.get(pk=fee.pk).balance == D("15.00")
    # Pulled again: the refund is already recorded, no second finding.
    task_run(integration=integration, task="get-payments")
    assert Discrepancy.objects.filter(kind=Discrepancy.Kind.REFUNDED_AT_VENDOR).count() == 1


def test_waive_the_rest_after_a_refund_at_the_vendor_waives_it_and_resolves_the_finding(
    sandbox, make_integration, district_admin, client
):
    integration = make_integration()
    fee, finding = _refunded(sandbox, integration)
    client.force_login(district_admin)
    url = reverse(
        "admin:vendors_integration_discrepancy", args=[integration.pk, finding.pk, "waive-rest"]
    )
    page = client.post(url, follow=True)
    assert "($15.00) is waived" in page.content.decode()
    client.post(url)  # a second click changes nothing
    fee.refresh_from_db()
    assert fee.balance == 0 and fee.status != Fee.Status.OPEN
    waiver = fee.entries.get(kind="waiver")
    assert waiver.amount == D("15.00") and waiver.created_by == district_admin
    vendor = integration.vendor_name
    assert waiver.reason.startswith(f"Waived the rest after the refund at {vendor}")
    finding.refresh_from_db()
    assert finding.resolved_at is not None and finding.resolved_by == district_admin
    assert ledger_report().ok
