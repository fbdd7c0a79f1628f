"""A vendor settles only the fees it manages (issue 10, item 3), and a refund made at the
vendor is a finding for staff (item 4). On the real sandboxes over HTTP."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from decimal import Decimal
from typing import Any

import pytest
from auditlog.models import LogEntry
from django.db import connection, connections
from django.test import Client
from django.urls import reverse

from apps.fees.models import Fee, LedgerEntry
from apps.fees.selectors import ledger_report
from apps.fees.services import student_credit
from apps.vendors import engine
from apps.vendors.jobs import task_run
from apps.vendors.models import Discrepancy, HeldMovement, Integration
from apps.vendors.selectors import sync_status
from tests.admin_helpers import page_form_values, submit
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
    assert "out of date" in client.post(url, follow=True).content.decode()  # no token
    assert HeldMovement.objects.get().status == HeldMovement.Status.OPEN
    token = str(uuid.uuid4())
    first = client.post(url, {"token": token}, follow=True)
    assert "is applied to fee" in first.content.decode()
    again = client.post(url, {"token": token}, follow=True)  # a double click
    assert "nothing was recorded twice" in again.content.decode()
    other_tab = client.post(url, {"token": str(uuid.uuid4())}, follow=True)
    assert "no longer waiting" in other_tab.content.decode()

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
    refused = client.post(url, {"note": "  ", "token": str(uuid.uuid4())}, follow=True)
    assert "Say why it is dismissed" in refused.content.decode()
    assert HeldMovement.objects.get().status == HeldMovement.Status.OPEN
    client.post(
        url,
        {"note": "Refunded by PaySchools to the parent; ticket 4411.", "token": uuid.uuid4()},
    )

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
    assert "Hold it as the student's credit" not in page.content.decode()
    for action in ("apply", "credit", "dismiss"):
        url = reverse("admin:vendors_heldmovement_act", args=[held.pk, action])
        assert client.post(url, {"note": "x", "token": uuid.uuid4()}).status_code == 403
    assert HeldMovement.objects.get().status == HeldMovement.Status.OPEN
    assert client.get("/admin/vendors/heldmovement/abc/change/").status_code == 404


# --- hold it as the student's credit ----------------------------------------------------------


def _held_payment_for_a_community_pass_fee(two_vendors: dict[str, Any]) -> tuple[Fee, str]:
    """A $40.00 trip fee only Community Pass manages (sent there), paid at PaySchools: held."""
    fee = make_fee(category=two_vendors["trips"], amount="40.00", fee_date=IN_SCOPE)
    engine.deliver(integration_id=two_vendors["cp"].pk)
    _held_elsewhere(two_vendors["ps_box"], fee)
    payment_id = _pay(two_vendors["ps_box"], fee, "40.00")
    run = task_run(integration=two_vendors["ps"], task="get-payments")
    assert run.counts["held"] == 1 and run.counts["recorded"] == 0
    return fee, payment_id


def _messages(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_a_held_payment_is_kept_as_the_students_credit_once_and_then_applied_to_another_fee(
    two_vendors, clerk, client
):
    ps: Integration = two_vendors["ps"]
    fee, payment_id = _held_payment_for_a_community_pass_fee(two_vendors)
    student = fee.student
    # Another open fee of the same student, that the credit can pay later.
    other = make_fee(student=student, category=two_vendors["trips"], amount="25.00")
    held = HeldMovement.objects.get()

    client.force_login(clerk)
    page = client.get(reverse("admin:vendors_heldmovement_change", args=[held.pk]))
    form = page_form_values(page.content, action_contains="/credit/")
    assert "Hold it as the student's credit" in page.content.decode() and form["token"]
    url = reverse("admin:vendors_heldmovement_act", args=[held.pk, "credit"])
    first = client.post(url, form, follow=True)
    assert _messages(first) == [
        f"Payment {payment_id} of $40.00 is held as {student.full_name}'s credit ($40.00 on "
        f"account now); fee {fee.reference} is unchanged. Apply it to another fee or refund it "
        "from the student's page."
    ]
    again = client.post(url, form, follow=True)  # the same form sent again
    [said] = _messages(again)
    assert said.startswith("This was already done at ") and "by clerk-t" in said
    assert said.endswith("(held as the student's credit); nothing was recorded twice.")
    # Neither "apply it anyway" nor another tab can post it a second time.
    apply_url = reverse("admin:vendors_heldmovement_act", args=[held.pk, "apply"])
    late = client.post(apply_url, {"token": uuid.uuid4()}, follow=True)
    assert _messages(late) == [
        "This payment is no longer waiting: held as the student's credit already."
    ]

    # Kept whole on the student's account: one payment entry, on no fee; the fee untouched.
    entries = LedgerEntry.objects.filter(external_source=ps.external_source)
    [entry] = entries
    assert (entry.kind, entry.fee_id, entry.amount, entry.external_id) == (
        "payment",
        None,
        D("40.00"),
        payment_id,
    )
    assert entry.student_id == student.pk
    fee.refresh_from_db()
    assert (fee.balance, fee.status, fee.amount_locked) == (D("40.00"), "open", False)
    held.refresh_from_db()
    assert held.status == HeldMovement.Status.CREDITED and held.entry_id == entry.pk
    assert held.resolved_by == clerk
    assert "Held as the student's credit" in held.resolution_note
    assert student_credit(student=student) == D("40.00")
    # Audited: who changed the held movement, and to what.
    log = LogEntry.objects.get_for_object(held).filter(action=LogEntry.Action.UPDATE).get()
    assert log.actor == clerk and log.changes_dict["status"] == ["open", "credited"]

    # The vendor reports it again: already recorded, never held again nor doubled.
    run = task_run(integration=ps, task="get-payments")
    assert run.counts["already_recorded"] == 1 and run.counts["held"] == 0
    assert entries.count() == 1 and HeldMovement.objects.count() == 1

    # Shown on the student's page (with its actions) and in the credits list.
    student_page = client.get(reverse("admin:students_student_change", args=[student.pk]))
    text = student_page.content.decode()
    assert "$40.00" in text and "Apply to a fee" in text
    credits = client.get(reverse("admin:fees_studentcredit_changelist")).content.decode()
    assert student.last_name in credits and "$40.00" in credits

    # Then applied to the other open fee, from the student's page.
    apply_page = reverse("admin:students_student_credit_apply", args=[student.pk])
    applied = submit(client, apply_page, {"fee": other.pk}, follow=True)
    assert any(
        f"$25.00 of credit applied to fee {other.reference}; $0.00 is still owed" in m
        for m in _messages(applied)
    )
    other.refresh_from_db()
    assert (other.balance, other.status) == (D("0.00"), "paid")
    assert student_credit(student=student) == D("15.00")
    assert ledger_report().ok


@pytest.mark.ledger_breach
def test_ledger_check_finds_a_credited_held_movement_without_its_entry(two_vendors, clerk):
    from apps.vendors.findings import held_movement_credit

    _held_payment_for_a_community_pass_fee(two_vendors)
    held = held_movement_credit(held=HeldMovement.objects.get(), user=clerk)
    assert ledger_report().ok
    # A held movement marked credited by hand, without the entry the door posts.
    HeldMovement.objects.filter(pk=held.pk).update(entry=None)
    breaches = [b for b in ledger_report().breaches if b.check == "held_credited"]
    assert len(breaches) == 1 and held.vendor_ref in breaches[0].detail


def test_only_a_payment_can_be_held_as_credit(two_vendors, clerk):
    from apps.vendors.errors import IntegrationError
    from apps.vendors.findings import held_movement_credit

    fee, _ = _held_payment_for_a_community_pass_fee(two_vendors)
    held = HeldMovement.objects.get()
    HeldMovement.objects.filter(pk=held.pk).update(kind="waiver")
    with pytest.raises(IntegrationError, match="Only a payment can be held as the student's"):
        held_movement_credit(held=HeldMovement.objects.get(), user=clerk)
    assert HeldMovement.objects.get().status == HeldMovement.Status.OPEN
    assert student_credit(student=fee.student) == D("0.00")


@pytest.mark.django_db(transaction=True)
def test_two_clicks_at_the_same_moment_keep_the_held_payment_as_credit_once(two_vendors, clerk):
    if connection.vendor != "postgresql":
        pytest.skip("row locks under real concurrency are a PostgreSQL matter")
    fee, payment_id = _held_payment_for_a_community_pass_fee(two_vendors)
    held = HeldMovement.objects.get()
    url = reverse("admin:vendors_heldmovement_act", args=[held.pk, "credit"])
    clients = [Client(), Client()]
    for c in clients:
        c.force_login(clerk)
    # Two tabs, each with its own form (different tokens), clicked at the same moment.
    tokens = [str(uuid.uuid4()), str(uuid.uuid4())]
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def post(c: Client, token: str) -> None:
        try:
            barrier.wait()
            statuses.append(c.post(url, {"token": token}).status_code)
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=post, args=(c, t)) for c, t in zip(clients, tokens, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [302, 302]
    said = sorted(m for c in clients for m in _messages(c.get(url, follow=True)))
    assert len(said) == 2
    assert said[0].startswith(f"Payment {payment_id} of $40.00 is held as")
    assert said[1] == "This payment is no longer waiting: held as the student's credit already."
    assert LedgerEntry.objects.filter(external_id=payment_id).count() == 1
    assert student_credit(student=fee.student) == D("40.00")
    assert ledger_report().ok


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


# DESIGN.md ("Who may do what"): fees clerks handle fees, payments and waivers, so they answer
# a refund made at the vendor too, from the fee's page (they do not see the integration's).


def test_a_fees_clerk_waives_the_rest_after_a_refund_from_the_fees_page(
    sandbox, make_integration, clerk, client
):
    integration = make_integration()
    fee, finding = _refunded(sandbox, integration)
    client.force_login(clerk)
    fee_url = reverse("admin:fees_fee_change", args=[fee.pk])
    page = client.get(fee_url)
    text = page.content.decode()
    assert f"Refunded at {integration.vendor_name}: keep it owed, or waive the rest" in text
    form = page_form_values(page.content, action_contains="/waive-rest/")
    assert form["back"] == "fee"
    url = reverse(
        "admin:vendors_integration_discrepancy", args=[integration.pk, finding.pk, "waive-rest"]
    )
    answered = client.post(url, form, follow=True)
    assert answered.redirect_chain[-1][0] == fee_url + "#refund-findings"
    assert _messages(answered) == [
        f"The rest of fee {fee.reference} ($15.00) is waived after the refund at "
        f"{integration.vendor_name}."
    ]
    client.post(url, form)  # a second click changes nothing
    fee.refresh_from_db()
    assert fee.balance == 0
    waiver = fee.entries.get(kind="waiver")
    assert (waiver.amount, waiver.created_by) == (D("15.00"), clerk)
    finding.refresh_from_db()
    assert finding.resolved_by == clerk
    # Answered: the fee's page no longer asks.
    assert "keep it owed, or waive the rest" not in client.get(fee_url).content.decode()
    assert ledger_report().ok


def test_a_fees_clerk_keeps_a_refunded_fee_owed_from_the_fees_page(
    sandbox, make_integration, clerk, client
):
    integration = make_integration()
    fee, finding = _refunded(sandbox, integration)
    client.force_login(clerk)
    page = client.get(reverse("admin:fees_fee_change", args=[fee.pk]))
    form = page_form_values(page.content, action_contains="/keep-owed/")
    url = reverse(
        "admin:vendors_integration_discrepancy", args=[integration.pk, finding.pk, "keep-owed"]
    )
    answered = client.post(url, form, follow=True)
    assert _messages(answered) == [f"Fee {fee.reference} stays owed after the refund."]
    finding.refresh_from_db()
    assert finding.resolved_by == clerk and finding.resolved_at is not None
    assert Fee.objects.get(pk=fee.pk).balance == D("15.00")
    # The clerk still has no way into the integration's own pages.
    dashboard = reverse("admin:vendors_integration_dashboard", args=[integration.pk])
    assert client.get(dashboard).status_code == 403


def test_support_staff_may_not_answer_a_refund_finding(
    sandbox, make_integration, support_user, client
):
    integration = make_integration()
    fee, finding = _refunded(sandbox, integration)
    client.force_login(support_user)
    page = client.get(reverse("admin:fees_fee_change", args=[fee.pk])).content.decode()
    assert "/waive-rest/" not in page and "/keep-owed/" not in page
    dashboard = client.get(reverse("admin:vendors_integration_dashboard", args=[integration.pk]))
    assert "/keep-owed/" not in dashboard.content.decode()
    for action in ("keep-owed", "waive-rest"):
        url = reverse(
            "admin:vendors_integration_discrepancy", args=[integration.pk, finding.pk, action]
        )
        assert client.post(url).status_code == 403
    finding.refresh_from_db()
    assert finding.resolved_at is None and Fee.objects.get(pk=fee.pk).balance == D("15.00")


def test_a_refund_finding_url_with_a_bad_id_is_404(sandbox, make_integration, clerk, client):
    integration = make_integration()
    client.force_login(clerk)
    for args in ([integration.pk, 999999, "keep-owed"], ["999999", 1, "waive-rest"]):
        url = reverse("admin:vendors_integration_discrepancy", args=args)
        assert client.post(url).status_code == 404
