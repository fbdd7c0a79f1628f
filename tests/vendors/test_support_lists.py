"""Issue 11 item 9: the lists support works from (parked and waiting changes, findings,
held movements, synced fees, the fee list) show whose fee it is and what it charges, link
to both, find rows by student name or number, cost the same number of queries however many
rows they show, and the fee list filters by sync state."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import lxml.html
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apps.vendors.models import Discrepancy, HeldMovement, Integration, OutboxItem, SyncedFee
from tests.admin_helpers import csrf_client
from tests.factories import StudentFactory, make_fee
from tests.vendors.setup_pages import IMPORT_AFTER, make_integration

pytestmark = pytest.mark.django_db

IN_SCOPE = dt.date(2026, 9, 15)
LISTS = [
    "admin:vendors_outboxitem_changelist",
    "admin:vendors_discrepancy_changelist",
    "admin:vendors_heldmovement_changelist",
    "admin:vendors_syncedfee_changelist",
    "admin:fees_fee_changelist",
]


def add_rows(integration: Integration, n: int, start: int) -> list:
    """n fees, each with a row in every list: waiting (or parked), acknowledged, a finding
    and a held payment."""
    now = timezone.now()
    fees = []
    for i in range(start, start + n):
        student = StudentFactory(
            first_name="Ada", last_name=f"Lovelace{i}", student_number=f"77{i:04d}"
        )
        fee = make_fee(
            student=student, description=f"Lab kit {i}", amount="12.50", fee_date=IN_SCOPE
        )
        OutboxItem.objects.create(
            integration=integration,
            fee=fee,
            version=fee.version,
            next_attempt_at=now,
            state=OutboxItem.State.PARKED if i % 2 else OutboxItem.State.PENDING,
        )
        SyncedFee.objects.create(
            integration=integration, fee=fee, acknowledged_version=0, acknowledged_at=now
        )
        Discrepancy.objects.create(
            integration=integration,
            kind=Discrepancy.Kind.DIFFERENT_AT_VENDOR,
            fee=fee,
            fee_ref=fee.reference,
            detail="held as $12.00",
        )
        HeldMovement.objects.create(
            integration=integration,
            fee=fee,
            fee_ref=fee.reference,
            vendor_ref=f"PAY-{i}",
            kind="payment",
            amount=Decimal("12.50"),
            student_number=student.student_number,
            reason=HeldMovement.Reason.NEVER_SENT,
            detail="never sent",
        )
        fees.append(fee)
    return fees


def rows(response) -> list[str]:
    doc = lxml.html.fromstring(response.content.decode())
    return [
        " | ".join(" ".join(cell.text_content().split()) for cell in tr.xpath("./th|./td"))
        for tr in doc.xpath("//table[@id='result_list']/tbody/tr")
    ]


def links(response) -> set[str]:
    doc = lxml.html.fromstring(response.content.decode())
    return set(doc.xpath("//table[@id='result_list']/tbody//a/@href"))


@pytest.fixture
def integration() -> Integration:
    # Not enabled yet, so making fees queues nothing: each test makes exactly its rows.
    return make_integration(import_after=IMPORT_AFTER)


@pytest.mark.parametrize("name", LISTS)
def test_each_list_names_the_student_and_the_charge_and_links_to_both(
    support_user, integration, name
):
    (fee,) = add_rows(integration, 1, 1)
    client = csrf_client(support_user)
    response = client.get(reverse(name))
    assert response.status_code == 200
    (row,) = [r for r in rows(response) if "Lovelace1" in r]
    assert "Lovelace1, Ada" in row and "770001" in row
    assert "Lab kit 1" in row and "12.50" in row
    found = links(response)
    assert reverse("admin:students_student_change", args=[fee.student.pk]) in found
    assert reverse("admin:fees_fee_change", args=[fee.pk]) in found


@pytest.mark.parametrize("name", LISTS)
@pytest.mark.parametrize("query", ["Lovelace2", "770002", "ada lovelace2"])
def test_each_list_finds_a_row_by_student_name_or_number(support_user, integration, name, query):
    add_rows(integration, 3, 1)
    client = csrf_client(support_user)
    found = rows(client.get(reverse(name), {"q": query}))
    assert found and all("Lovelace2" in r for r in found), found


@pytest.mark.parametrize("name", LISTS)
def test_each_list_costs_the_same_queries_for_many_rows(support_user, integration, name):
    add_rows(integration, 2, 1)
    client = csrf_client(support_user)
    client.get(reverse(name))  # session, permissions and the like warmed up
    with CaptureQueriesContext(connection) as few:
        assert len(rows(client.get(reverse(name)))) >= 2
    add_rows(integration, 12, 10)
    with CaptureQueriesContext(connection) as many:
        assert len(rows(client.get(reverse(name)))) >= 14
    assert len(many) == len(few), [q["sql"] for q in many.captured_queries]


def test_the_fee_list_filters_by_sync_state(support_user, integration):
    now = timezone.now()
    waiting, parked, at_vendor, stale = (
        make_fee(description=d, fee_date=IN_SCOPE) for d in ("Waiting", "Parked", "Held", "Old")
    )
    out_of_scope = make_fee(description="Before import", fee_date=dt.date(2026, 1, 10))
    OutboxItem.objects.create(integration=integration, fee=waiting, version=1, next_attempt_at=now)
    OutboxItem.objects.create(
        integration=integration,
        fee=parked,
        version=1,
        next_attempt_at=now,
        state=OutboxItem.State.PARKED,
    )
    SyncedFee.objects.create(
        integration=integration,
        fee=at_vendor,
        acknowledged_version=at_vendor.version,
        acknowledged_at=now,
    )
    # Acknowledged at an older version and changed since: not "at the vendor" as it stands.
    SyncedFee.objects.create(
        integration=integration, fee=stale, acknowledged_version=0, acknowledged_at=now
    )
    client = csrf_client(support_user)
    url = reverse("admin:fees_fee_changelist")

    def shown(state: str) -> list[str]:
        return sorted(r.split(" | ")[0] for r in rows(client.get(url, {"sync": state})))

    # Disabled, the integration takes nothing: every fee is out of scope.
    assert len(shown("none")) == 5
    Integration.objects.filter(pk=integration.pk).update(enabled=True)
    assert shown("waiting") == [waiting.reference]
    assert shown("parked") == [parked.reference]
    assert shown("vendor") == [at_vendor.reference]
    assert shown("none") == [out_of_scope.reference]
    page = client.get(url).content.decode()
    assert "By sync state" in page and "Not in any integration" in page
