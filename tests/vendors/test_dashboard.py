"""An integration's dashboard: numbers that link to their rows, the vendor's trouble in
plain words, retrying parked changes, acting on findings, resending fees with progress, and
a fee's life at the vendor on its own page."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import lxml.html
import pytest
from django.urls import reverse
from django.utils import timezone

from apps.fees.models import LedgerEntry
from apps.fees.services import Movement, MovementKind, MovementSource, movements_record
from apps.vendors.display import when
from apps.vendors.kinds.payschools.sandbox import DEFAULT_PASSWORD, DEFAULT_USERNAME
from apps.vendors.models import Discrepancy, Integration, OutboxItem, SyncedFee, TaskRun
from apps.vendors.sandboxes.client import SandboxControl
from apps.vendors.sandboxes.server import SandboxServer
from tests.admin_helpers import csrf_client
from tests.factories import CategoryFactory, make_fee
from tests.vendors.setup_pages import (
    IMPORT_AFTER,
    dashboard_url,
    make_integration,
    section_text,
    texts,
)

pytestmark = pytest.mark.django_db

IN_SCOPE = dt.date(2026, 9, 15)


def post(client, url, data=None, **kwargs):
    client.get(reverse("admin:index"))
    return client.post(
        url, data or {}, HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value, **kwargs
    )


def action_url(integration, action):
    return reverse("admin:vendors_integration_dashboard_action", args=[integration.pk, action])


def finding_url(integration, finding, action):
    return reverse(
        "admin:vendors_integration_discrepancy", args=[integration.pk, finding.pk, action]
    )


@pytest.fixture
def busy() -> tuple[Integration, dict]:
    """An enabled integration with a bit of everything: fees acknowledged, waiting, parked,
    findings, an unmatched vendor payment, a payment recorded, task runs."""
    integration = make_integration(import_after=IMPORT_AFTER)
    now = timezone.now()
    fees = [make_fee(fee_date=IN_SCOPE, amount="10.00") for _ in range(5)]
    make_fee(fee_date=dt.date(2026, 1, 10))  # before the import-after date: out of scope
    # Enabled only now, so that the outbox holds exactly the rows made below.
    Integration.objects.filter(pk=integration.pk).update(enabled=True)
    integration.refresh_from_db()
    for fee in fees[:2]:
        SyncedFee.objects.create(
            integration=integration, fee=fee, acknowledged_version=fee.version, acknowledged_at=now
        )
    OutboxItem.objects.create(integration=integration, fee=fees[2], version=1, next_attempt_at=now)
    parked = [
        OutboxItem.objects.create(
            integration=integration,
            fee=fee,
            version=1,
            state=OutboxItem.State.PARKED,
            attempts=12,
            next_attempt_at=now,
            last_error="PaySchools' server failed (HTTP 500).",
        )
        for fee in fees[3:]
    ]
    missing = Discrepancy.objects.create(
        integration=integration,
        kind=Discrepancy.Kind.DIFFERENT_AT_VENDOR,
        fee=fees[0],
        fee_ref=fees[0].reference,
        detail="PaySchools held the fee as $12.00.",
    )
    unmatched = Discrepancy.objects.create(
        integration=integration,
        kind=Discrepancy.Kind.UNMATCHED_PAYMENT,
        fee_ref="NOPE-1",
        vendor_ref="PAY-9",
        detail="PaySchools sent payment PAY-9 for fee NOPE-1, which FeeSync does not have.",
    )
    movements_record(
        source=MovementSource(
            external_source=integration.external_source,
            name="PaySchools",
            ledger_source=LedgerEntry.Source.VENDOR,
        ),
        movements=[
            Movement(
                external_id="PAY-1",
                kind=MovementKind.PAYMENT,
                fee_ref=fees[1].reference,
                amount=Decimal("4.00"),
            )
        ],
    )
    TaskRun.objects.create(
        integration=integration,
        task="get-payments",
        trigger="schedule",
        started=now,
        finished=now + dt.timedelta(seconds=2),
        outcome=TaskRun.Outcome.OK,
        counts={"seen": 3, "recorded": 1, "seconds": 2.0},
    )
    TaskRun.objects.create(
        integration=integration,
        task="validate",
        trigger="schedule",
        started=now,
        finished=now,
        outcome=TaskRun.Outcome.FAILED,
        error="PaySchools' server did not answer within 3 seconds.",
    )
    return integration, {"fees": fees, "parked": parked, "missing": missing, "unmatched": unmatched}


def test_the_dashboard_numbers_link_to_the_rows_behind_them(district_admin, busy):
    integration, _ = busy
    client = csrf_client(district_admin)
    page = client.get(dashboard_url(integration))

    progress = section_text(page, "progress")
    assert "2 of 5 (40%)" in progress
    assert "1 change waiting to be sent" in progress
    # Each number's link shows exactly its rows.
    rows = [
        ("Fees in scope", 5),
        ("Acknowledged by PaySchools", 2),
        ("Changes waiting", 1),
        ("Parked: need a retry", 2),
        ("Payments recorded", 1),
        ("Open findings", 2),
        ("Vendor payments not recorded", 1),
    ]
    doc = lxml.html.fromstring(page.content.decode())
    for label, count in rows:
        dd = doc.xpath(f"//dl[@class='feesync-numbers']//dt[.='{label}']/following-sibling::dd")[0]
        link = dd.xpath(".//a")[0]
        assert link.text_content().strip() == str(count), label
        listing = client.get(link.get("href"))
        assert listing.status_code == 200, label
        assert listing.context["cl"].result_count == count, (label, link.get("href"))


def test_the_dashboard_shows_task_runs_with_duration_outcome_counts_and_errors(
    district_admin, busy
):
    integration, _ = busy
    page = csrf_client(district_admin).get(dashboard_url(integration))
    tasks = section_text(page, "tasks")
    assert "Get payments" in tasks
    assert "2.0 s" in tasks and "seen 3 · recorded 1" in tasks
    assert "Failed" in tasks
    assert "PaySchools' server did not answer within 3 seconds." in tasks
    assert "Next run" in tasks
    # Demographics export and lunch sync have no server / no "Sync lunch balance": they are
    # off and say why, with no Run now.
    assert tasks.count("Run now") == 3
    assert "Off until a demographics server is set up" in tasks
    assert "Off while “Sync lunch balance” is not checked" in tasks


def test_the_page_refreshes_itself_while_changes_wait_unless_told_not_to(district_admin, busy):
    integration, _ = busy
    client = csrf_client(district_admin)
    assert b'http-equiv="refresh" content="5"' in client.get(dashboard_url(integration)).content
    calm = client.get(dashboard_url(integration), {"refresh": "off"})
    assert b'http-equiv="refresh"' not in calm.content
    assert "Automatic reloading is off" in texts(calm)
    OutboxItem.objects.filter(state=OutboxItem.State.PENDING).delete()
    assert b'http-equiv="refresh"' not in client.get(dashboard_url(integration)).content


def test_an_outage_is_said_in_plain_words_at_the_top(district_admin, busy):
    integration, _ = busy
    Integration.objects.filter(pk=integration.pk).update(
        consecutive_failures=3, last_error="PaySchools' server did not answer within 3 seconds."
    )
    page = csrf_client(district_admin).get(dashboard_url(integration))
    banner = lxml.html.fromstring(page.content.decode()).xpath(
        "//div[contains(@class,'feesync-banner')]"
    )[0]
    assert banner.get("role") == "alert"
    assert " ".join(banner.text_content().split()) == (
        "PaySchools: the vendor is not answering. PaySchools' server did not answer within 3 "
        "seconds. 1 change is waiting and will be sent when PaySchools answers again. "
        "2 changes are parked after repeated failures: they are not sent again until someone "
        "retries them on the dashboard."
    )
    # While the vendor is down the page reloads less often.
    assert b'http-equiv="refresh" content="30"' in page.content


def test_parked_changes_are_retried_selected_or_all(district_admin, busy):
    integration, data = busy
    first, second = data["parked"]
    client = csrf_client(district_admin)

    response = post(
        client,
        action_url(integration, "retry"),
        {"which": "selected", "item": [first.pk]},
        follow=True,
    )
    assert "1 parked change will be sent again now." in texts(response)
    first.refresh_from_db(), second.refresh_from_db()
    assert (first.state, first.attempts, first.last_error) == ("pending", 0, "")
    assert second.state == "parked"

    response = post(client, action_url(integration, "retry"), {"which": "selected"}, follow=True)
    assert "Tick the parked changes to retry, or retry all." in texts(response)

    response = post(client, action_url(integration, "retry"), {"which": "all"}, follow=True)
    assert "1 parked change will be sent again now." in texts(response)
    assert not OutboxItem.objects.filter(state="parked").exists()


def test_a_finding_is_resent_through_the_outbox_or_resolved_with_a_note(district_admin, busy):
    integration, data = busy
    finding = data["missing"]
    client = csrf_client(district_admin)

    response = post(client, finding_url(integration, finding, "resend"), follow=True)
    assert f"Fee {finding.fee_ref} will be sent to PaySchools again." in texts(response)
    assert OutboxItem.objects.get(fee=finding.fee).state == "pending"

    response = post(
        client, finding_url(integration, finding, "resolve"), {"note": " "}, follow=True
    )
    assert "Say how it was resolved" in texts(response)
    finding.refresh_from_db()
    assert finding.resolved_at is None

    response = post(
        client,
        finding_url(integration, finding, "resolve"),
        {"note": "PaySchools corrected it by hand."},
        follow=True,
    )
    assert "marked resolved" in texts(response)
    finding.refresh_from_db()
    assert finding.resolved_by == district_admin
    assert finding.resolution_note == "PaySchools corrected it by hand."
    assert finding.fee_ref not in section_text(response, "discrepancies")


def test_unmatched_vendor_payments_are_listed_apart_and_can_be_resolved(district_admin, busy):
    integration, data = busy
    client = csrf_client(district_admin)
    page = client.get(dashboard_url(integration))
    unmatched = section_text(page, "unmatched")
    assert "PAY-9" in unmatched and "which FeeSync does not have" in unmatched
    assert "Re-send the fee" not in unmatched  # nothing of FeeSync's to send
    assert "PAY-9" not in section_text(page, "discrepancies")

    post(
        client,
        finding_url(integration, data["unmatched"], "resolve"),
        {"note": "Posted by hand to the right fee."},
    )
    assert "None: every payment PaySchools reported is recorded." in section_text(
        client.get(dashboard_url(integration)), "unmatched"
    )


def test_resending_a_fee_out_of_scope_says_why_nothing_was_sent(district_admin, busy):
    integration, _ = busy
    old = make_fee(fee_date=dt.date(2026, 2, 1))
    finding = Discrepancy.objects.create(
        integration=integration,
        kind=Discrepancy.Kind.MISSING_AT_VENDOR,
        fee=old,
        fee_ref=old.reference,
        detail="x",
    )
    response = post(
        csrf_client(district_admin), finding_url(integration, finding, "resend"), follow=True
    )
    assert "is outside this integration's scope" in texts(response)
    assert not OutboxItem.objects.filter(fee=old).exists()


def test_resend_fees_runs_in_the_background_and_the_progress_bar_follows_it(
    district_admin, payschools: SandboxServer, payschools_control: SandboxControl
):
    integration = make_integration(
        credentials={"username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD},
        service_url=payschools.url + "/soap",
        import_after=IMPORT_AFTER,
        categories=[CategoryFactory(code="TRIP")],
    )
    trip = integration.categories.get()
    fees = [make_fee(category=trip, fee_date=IN_SCOPE) for _ in range(3)]
    make_fee(fee_date=IN_SCOPE)  # another category: not sent
    Integration.objects.filter(pk=integration.pk).update(enabled=True)
    client = csrf_client(district_admin)
    assert "0 of 3 (0%)" in section_text(client.get(dashboard_url(integration)), "progress")

    response = post(client, action_url(integration, "resend"), follow=True)

    assert "is being sent" in texts(response)
    assert "3 of 3 (100%)" in section_text(response, "progress")
    held = {f["fee_ref"] for f in payschools_control.state()["fees"]}
    assert held == {f.reference for f in fees}
    run = TaskRun.objects.get(integration=integration, task="send-fees")
    assert (run.trigger, run.outcome, run.counts["acknowledged"]) == ("manual", "ok", 3)


def test_resend_and_run_now_refuse_while_the_integration_is_disabled(district_admin):
    integration = make_integration(import_after=IMPORT_AFTER)
    client = csrf_client(district_admin)
    page = client.get(dashboard_url(integration))
    assert re.search(rb'value="Resend fees"[^>]*disabled', page.content)
    response = post(client, action_url(integration, "resend"), follow=True)
    assert "Enable the integration before sending fees." in texts(response)
    assert not TaskRun.objects.exists()


# --- a fee's life at the vendor ----------------------------------------------------------------


def test_a_fee_page_shows_its_sync_timeline_per_integration(district_admin, busy):
    integration, data = busy
    acked, paid, waiting, parked = (
        data["fees"][0],
        data["fees"][1],
        data["fees"][2],
        data["fees"][3],
    )
    client = csrf_client(district_admin)

    def timeline(fee) -> str:
        page = client.get(reverse("admin:fees_fee_change", args=[fee.pk]))
        doc = lxml.html.fromstring(page.content.decode())
        return " ".join(doc.xpath("//div[@id='sync-timeline']")[0].text_content().split())

    text = timeline(acked)
    assert f"Up to date: PaySchools holds version {acked.version}." in text
    assert "First sent to PaySchools" in text
    assert "Fee differs at the vendor" in text  # the open finding on it

    paid.refresh_from_db()
    text = timeline(paid)
    assert "Payment of $4.00 recorded from PaySchools" in text
    assert "id at PaySchools: PAY-1" in text
    # FeeSync's version went up with the payment, and PaySchools holds it: it took the
    # payment (issue 9: a fee paid at a vendor is not sent back to that vendor).
    assert f"Up to date: PaySchools holds version {paid.version}." in text
    assert f"PaySchools already has version {paid.version}: the change came from PaySchools" in text

    assert "Version 1 is waiting to be sent to PaySchools." in timeline(waiting)
    text = timeline(parked)
    item = data["parked"][0]
    assert (
        "Parked: not sent after repeated failures, and not sent again until retried. "
        f"Last error ({when(item.updated_at)}): PaySchools' server failed (HTTP 500)."
    ) in text
    assert "12 attempts" in text
