"""Standard OData clients read the feeds unchanged, over real HTTP to a live server: the
maintained third-party client pyodata (which speaks OData version 2, so it reads the
version 2 dialect at /api/odata/v2/) builds its model from `$metadata` and reads refunds
and billing codes, signed in with HTTP Basic through a requests Session."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pyodata
import pytest
import requests

from apps.accounting.models import EnrollmentPeriod, FundSource, Refund, StudentAward
from apps.partner_api.services import api_user_create
from apps.vendors.models import Integration
from tests.factories import CategoryFactory, StaffFactory, StudentFactory

GROUPS = ("API - Student Accounts",)


@pytest.fixture
def live_session(db: Any) -> Iterator[requests.Session]:
    integration = Integration.objects.create(
        vendor_kind="partnerapi",
        slug="partner-live",
        name="Acme Pay",
        enabled=True,
        service_url="https://vendor.example.org/",
    )
    api_user_create(
        user=StaffFactory(username="odata-live"), integration=integration, groups=GROUPS
    )
    session = requests.Session()
    session.auth = ("odata-live", "pw-for-tests-1")
    yield session
    session.close()  # the live server's threads (and their database connections) end


def _refunds() -> tuple[FundSource, list[Refund]]:
    pell = FundSource.objects.create(code="PELL", name="Pell grant")
    student = StudentFactory(student_number="77")
    period = EnrollmentPeriod.objects.create(
        student=student, school=student.school, start_date=date(2025, 9, 1)
    )
    award = StudentAward.objects.create(
        student=student, enrollment_period=period, fund_source=pell, award_year="2025-26"
    )
    made = [
        Refund.objects.create(
            student=student,
            student_award=award,
            fund_source=pell,
            amount=Decimal(amount),
            due_date=due,
            status=status,
        )
        for amount, due, status in [
            ("125.50", date(2025, 10, 1), "N"),
            ("80.00", date(2025, 9, 20), "N"),
            ("15.25", date(2025, 9, 25), "S"),
        ]
    ]
    return pell, made


@pytest.mark.django_db(transaction=True)
def test_pyodata_reads_refunds_and_billing_codes_through_metadata(
    live_server: Any, live_session: requests.Session
) -> None:
    pell, made = _refunds()
    CategoryFactory(code="ATH", description="Athletics", usage="C", gl_account="4100")
    CategoryFactory(code="RENT", description="Facility rental", usage="M", gl_account="4700")

    service = pyodata.Client(f"{live_server.url}/api/odata/v2/", live_session)

    # The model came from $metadata: the entity sets and their types.
    refund_type = service.schema.entity_type("Refund")
    assert refund_type.proprty("Amount").typ.name == "Edm.Decimal"
    assert refund_type.proprty("DueDate").typ.name == "Edm.DateTime"
    assert {s.name for s in service.schema.entity_sets} >= {"Refunds", "BillingTransactionCodes"}

    due = (
        service.entity_sets.Refunds.get_entities()
        .filter(f"Status eq 'N' and FundSourceId eq {pell.pk}")
        .order_by("DueDate")
        .execute()
    )
    assert [(r.RefundId, r.Amount, r.DueDate.date()) for r in due] == [
        (made[1].pk, "80.00", date(2025, 9, 20)),
        (made[0].pk, "125.50", date(2025, 10, 1)),
    ]
    assert Decimal(due[1].Amount) == Decimal("125.50")
    assert due[0].StudentId == "77" and due[0].Status == "N"

    # Its own filter builder's literals (a datetime'…' for a date) work too.
    early = (
        service.entity_sets.Refunds.get_entities()
        .filter(DueDate__lt=datetime(2025, 9, 30, tzinfo=UTC))
        .execute()
    )
    assert sorted(r.Amount for r in early) == ["15.25", "80.00"]

    assert service.entity_sets.Refunds.get_entities().count().execute() == 3
    one = service.entity_sets.Refunds.get_entity(made[2].pk).execute()
    assert (one.Amount, one.Status) == ("15.25", "S")

    codes = (
        service.entity_sets.BillingTransactionCodes.get_entities()
        .order_by("BillingTransactionCodeId")
        .execute()
    )
    assert [(c.BillingTransactionCodeId, c.Usage, c.GLAccount) for c in codes] == [
        ("ATH", "C", "4100"),
        ("RENT", "M", "4700"),
    ]
    misc = (
        service.entity_sets.BillingTransactionCodes.get_entities()
        .filter("Usage eq 'M' or Usage eq 'A'")
        .select("BillingTransactionCodeId,Description")
        .execute()
    )
    assert [(c.BillingTransactionCodeId, c.Description) for c in misc] == [
        ("RENT", "Facility rental")
    ]


@pytest.mark.django_db(transaction=True)
def test_the_v4_feed_over_http_with_basic_auth(
    live_server: Any, live_session: requests.Session
) -> None:
    """What Excel's Power Query does: $metadata, then the feed, following next links."""
    pell, made = _refunds()
    root = f"{live_server.url}/api/odata/"
    metadata = live_session.get(root + "$metadata")
    assert metadata.status_code == 200 and b'Version="4.0"' in metadata.content
    url: str | None = root + "Refunds?$filter=Status eq 'N'&$orderby=DueDate"
    rows = []
    while url:
        body = live_session.get(url, headers={"Prefer": "odata.maxpagesize=1"}).json()
        rows += body["value"]
        url = body.get("@odata.nextLink")
    assert [r["RefundId"] for r in rows] == [made[1].pk, made[0].pk]
    assert live_session.get(root + "Refunds", auth=("odata-live", "wrong")).status_code == 401
