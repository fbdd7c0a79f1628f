"""Adding an integration kind is its package plus one registry line (issue 9).

The Ledger Book kind (tests/vendors/throwaway/) is registered at run time, as the line in
`apps.vendors.registry.KIND_PACKAGES` would, and taken the way a district admin takes a
real vendor: added from the "Add an integration" page, set up step by step from the
settings it declares, tested, enabled; a fee is delivered to it, and a payment made there
comes back when a clerk opens the student's fees. Nothing else in FeeSync names it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.urls import reverse

from apps.fees.models import Fee, LedgerEntry
from apps.vendors import registry
from apps.vendors.jobs import tasks_for
from apps.vendors.models import Discrepancy, Integration, SyncedFee, TaskRun
from apps.vendors.registry import kind_choices
from tests.admin_helpers import csrf_client
from tests.factories import CategoryFactory, MerchantAccountFactory, StudentFactory, make_fee
from tests.vendors.setup_pages import (
    dashboard_url,
    section_text,
    setup_url,
    submit_form,
    texts,
)
from tests.vendors.throwaway import LedgerBookAdapter

pytestmark = pytest.mark.django_db


@pytest.fixture
def ledger_book() -> Iterator[type[LedgerBookAdapter]]:
    LedgerBookAdapter.BOOK.clear()
    LedgerBookAdapter.PAYMENTS.clear()
    LedgerBookAdapter.BRANCHES_SEEN.clear()
    LedgerBookAdapter.REFUSED.clear()
    registry.register(LedgerBookAdapter)
    yield LedgerBookAdapter
    registry.unregister(LedgerBookAdapter.kind)


def test_a_kind_unknown_to_the_registry_is_refused() -> None:
    assert "ledgerbook" not in dict(kind_choices())
    integration = Integration(
        vendor_kind="ledgerbook", slug="lb", name="LB", service_url="https://x.example"
    )
    with pytest.raises(Exception, match="is not an integration kind FeeSync knows"):
        integration.full_clean(exclude=["credentials_encrypted"])


def test_a_registered_kind_goes_through_setup_delivery_and_a_pull(
    ledger_book, district_admin, clerk, django_capture_on_commit_callbacks
):
    trips = CategoryFactory(code="TRIP")
    account = MerchantAccountFactory()
    student = StudentFactory()
    client = csrf_client(district_admin)

    # Added from the "Add an integration" page, which lists it with its description.
    add = reverse("admin:vendors_integration_add")
    page = texts(client.get(add))
    assert "Ledger Book" in page and "A vendor kept in a book" in page
    client.post(
        add,
        {"vendor_kind": "ledgerbook", "service_url": "https://book.example/api"},
        HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value,
    )
    integration = Integration.objects.get(vendor_kind="ledgerbook")
    assert integration.vendor_name == "Ledger Book"

    # Its declared settings are the connection step: the secret stored encrypted and never
    # shown back, the option stored in `options`.
    page = client.get(setup_url(integration))
    assert "Access token" in section_text(page, "connection")
    assert "Which branch of the book" in section_text(page, "connection")
    submit_form(
        client,
        setup_url(integration),
        "connection-form",
        {"token": "book-token", "branch": "north"},
    )
    integration.refresh_from_db()
    assert integration.credentials == {"token": "book-token"}
    assert "book-token" not in integration.credentials_encrypted
    assert integration.options["branch"] == "north"
    assert "book-token" not in client.get(setup_url(integration)).content.decode()

    submit_form(client, setup_url(integration), "accounts-form", {f"use_{account.pk}": "on"})
    submit_form(client, setup_url(integration), "categories-form", {"categories": [str(trips.pk)]})
    for check in ("pull", "push"):
        client.post(
            reverse("admin:vendors_integration_section", args=[integration.pk, "tests"]),
            {"check": check},
            HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value,
        )
    submit_form(
        client, setup_url(integration) + "?import_after=2026-07-01", "import-after-form", {}
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = submit_form(client, setup_url(integration), "enable-form", {})
    assert "Ledger Book is enabled" in section_text(response, "enable")
    integration.refresh_from_db()
    assert integration.enabled and integration.test_pull_ok and integration.test_push_ok

    # Its tasks follow its capabilities: send and pull, no validation, no demographics;
    # the dashboard offers those and no others.
    assert [t.name for t in tasks_for(integration)] == ["send-fees", "get-payments"]
    assert {run.task for run in TaskRun.objects.filter(integration=integration)} == {"send-fees"}
    dashboard = texts(client.get(dashboard_url(integration)))
    assert "Get payments" in dashboard and "Validate fees" not in dashboard
    assert "Demographics export" not in dashboard

    # Delivery: a fee in scope reaches the book, with the declared option handed over.
    with django_capture_on_commit_callbacks(execute=True):
        fee = make_fee(
            student=student,
            category=trips,
            merchant_account=account,
            amount="40.00",
            fee_date=dt.date(2026, 9, 1),
        )
    assert ledger_book.BOOK[fee.reference].amount == Decimal("40.00")
    assert ledger_book.BRANCHES_SEEN == {"north"}
    assert SyncedFee.objects.get(integration=integration, fee=fee).acknowledged_version == 1

    # A pull: a parent pays at the book; the clerk opens the student's fees.
    payment = ledger_book.pay(fee.reference, "15.00")
    clerk_client = csrf_client(clerk)
    page = clerk_client.get(reverse("admin:students_student_change", args=[student.pk]))
    assert "1 payment brought in from Ledger Book" in texts(page)
    fee.refresh_from_db()
    assert fee.balance == Decimal("25.00")
    assert (
        LedgerEntry.objects.filter(
            external_source=integration.external_source, external_id=payment.payment_id
        ).count()
        == 1
    )
    # Opened again: recorded once.
    clerk_client.get(reverse("admin:students_student_change", args=[student.pk]))
    assert Fee.objects.get(pk=fee.pk).balance == Decimal("25.00")

    # A payment the book reports for a fee FeeSync does not have is not recorded: staff get
    # a finding, and the book is told which one and why.
    stray = ledger_book.pay("F-NOT-OURS", "5.00", student_id=student.student_number)
    clerk_client.get(reverse("admin:students_student_change", args=[student.pk]))
    assert [(r.payment.payment_id, r.held) for r in ledger_book.REFUSED] == [
        (stray.payment_id, False)
    ]
    assert "which FeeSync does not have" in ledger_book.REFUSED[0].reason
    finding = Discrepancy.objects.get(integration=integration, vendor_ref=stray.payment_id)
    assert finding.kind == Discrepancy.Kind.UNMATCHED_PAYMENT
