"""The Fees and Fines page: every child of the parent, their open fees and history, totals,
the district's message, when payments were last brought in; a page per child; privacy."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apps.fees.models import LedgerEntry
from apps.fees.services import Origin, fee_void, fee_waive, payment_refund, payment_take
from apps.vendors.models import LunchBalance, StudentVendorBalance
from tests.factories import CategoryFactory, make_fee

from .conftest import IN_SCOPE

FEES = reverse("portal:fees")
pytestmark = pytest.mark.django_db


def text_of(response) -> str:
    return response.content.decode()


def test_a_parent_with_two_children_sees_both_with_their_fees(make_family, parent_client):
    family = make_family(2)
    ana, ben = family.children
    make_fee(student=ana, description="Band trip", amount="40.00")
    make_fee(student=ben, description="Chromebook fee", amount="25.50")

    page = text_of(parent_client(family).get(FEES))

    assert ana.full_name in page and ben.full_name in page
    assert "Band trip" in page and "Chromebook fee" in page
    assert "Due for " + ana.first_name + ": $40.00" in page
    assert "Due for " + ben.first_name + ": $25.50" in page
    assert "$65.50" in page  # the total over both children
    assert "Total due for all your children" in page


def test_open_fee_shows_category_dates_amount_paid_balance_and_status(make_family, parent_client):
    family = make_family(1)
    category = CategoryFactory(description="Athletics")
    fee = make_fee(
        student=family.children[0],
        category=category,
        description="Soccer",
        amount="80.00",
        fee_date=dt.date(2026, 9, 1),
        due_date=dt.date(2026, 10, 1),
    )
    payment_take(fee=fee, amount="30.00", method=LedgerEntry.Method.CASH, origin=Origin())

    page = text_of(parent_client(family).get(FEES))

    for expected in (
        "Soccer",
        "Athletics",
        "Sep 1, 2026",
        "Oct 1, 2026",
        "$80.00",
        "$30.00",  # paid
        "$50.00",  # balance
        "Open",
    ):
        assert expected in page, expected


def test_paid_column_counts_payments_net_of_refunds_and_shows_other_credits_apart(
    make_family, parent_client
):
    family = make_family(1)
    fee = make_fee(student=family.children[0], description="Yearbook", amount="100.00")
    payment = payment_take(fee=fee, amount="60.00", method="cash", origin=Origin())
    payment_refund(payment=payment, amount="10.00", reason="overpaid", origin=Origin())
    fee_waive(fee=fee, amount="20.00", reason="hardship", origin=Origin())

    response = parent_client(family).get(FEES)
    rows = response.context["page"].children[0].open_fees

    assert rows[0].paid == Decimal("50.00")
    assert rows[0].credited == Decimal("20.00")
    assert rows[0].fee.balance == Decimal("30.00")
    assert "+ $20.00 credited" in text_of(response)


def test_settled_fees_are_in_the_history_not_in_what_is_owed(make_family, parent_client):
    family = make_family(1)
    child = family.children[0]
    make_fee(student=child, description="Still owed", amount="10.00")
    paid = make_fee(student=child, description="Paid in full", amount="12.00")
    payment_take(fee=paid, amount="12.00", method="cash", origin=Origin())
    waived = make_fee(student=child, description="Waived one", amount="7.00")
    fee_waive(fee=waived, reason="hardship", origin=Origin())
    voided = make_fee(student=child, description="Voided one", amount="9.00")
    fee_void(fee=voided, reason="entered twice", origin=Origin())

    response = parent_client(family).get(FEES)
    child_view = response.context["page"].children[0]
    page = text_of(response)

    assert [r.fee.description for r in child_view.open_fees] == ["Still owed"]
    assert {r.fee.description for r in child_view.history} == {
        "Paid in full",
        "Waived one",
        "Voided one",
    }
    assert child_view.due == Decimal("10.00")
    # The history is a <details> (works without JavaScript), after the open fees.
    assert "<details" in page and "Paid and closed fees (3)" in page
    assert page.index("Still owed") < page.index("<details") < page.index("Paid in full")
    for status in ("Paid", "Waived", "Voided"):
        assert f"<span>{status}" in page


def test_inactive_students_unpaid_fees_still_show(make_family, parent_client):
    family = make_family(1, active=False)
    make_fee(student=family.children[0], description="Library fine", amount="4.25")

    page = text_of(parent_client(family).get(FEES))

    assert "Library fine" in page and "$4.25" in page
    assert "No longer enrolled" in page


def test_overdue_open_fee_is_flagged_in_words(make_family, parent_client):
    family = make_family(1)
    past = timezone.localdate() - dt.timedelta(days=3)
    make_fee(student=family.children[0], description="Late", fee_date=past, due_date=past)

    page = text_of(parent_client(family).get(FEES))

    assert "Overdue" in page


def test_district_message_from_enabled_integrations_is_at_the_top(
    make_family, parent_client, make_integration
):
    make_integration(parent_message="Pay by card at PaySchools.\nFees are due by June 1.")
    make_integration(enabled=False, parent_message="Old vendor: do not use.")
    family = make_family(1)
    make_fee(student=family.children[0], fee_date=IN_SCOPE)  # PaySchools collects it

    page = text_of(parent_client(family).get(FEES))

    # Next to that vendor's own button, so it cannot speak for another vendor's fees.
    assert "Message from the district about paying at PaySchools" in page
    assert "Pay by card at PaySchools.<br>Fees are due by June 1." in page
    assert "Old vendor" not in page
    assert page.index("Message from the district") < page.index(family.children[0].full_name)


def test_page_says_when_payments_were_last_brought_in(make_family, parent_client, make_integration):
    make_integration(payments_pulled_at=timezone.now() - dt.timedelta(minutes=2))
    family = make_family(1)

    page = text_of(parent_client(family).get(FEES))

    assert "updated 2\xa0minutes ago" in page


def test_page_says_payments_not_brought_in_yet(make_family, parent_client, make_integration):
    make_integration(payments_pulled_at=None)
    family = make_family(1)

    assert "not brought in yet" in text_of(parent_client(family).get(FEES))


def test_a_parent_without_children_is_told_whom_to_ask(make_family, parent_client):
    family = make_family(0)

    page = text_of(parent_client(family).get(FEES))

    assert "No students are linked to your account" in page


# --- a page per child, and privacy -------------------------------------------------------------


def test_child_page_shows_that_child_only_with_history_open(make_family, parent_client):
    family = make_family(2)
    ana, ben = family.children
    make_fee(student=ana, description="Trip of Ana")
    make_fee(student=ben, description="Trip of Ben")

    response = parent_client(family).get(reverse("portal:student", args=[ana.pk]))
    page = text_of(response)

    assert response.status_code == 200
    assert "Trip of Ana" in page and "Trip of Ben" not in page


def id_bearing_urls(family) -> list[str]:
    urls = []
    for child in family.children:
        urls.append(reverse("portal:student", args=[child.pk]))
        for slug in ("documents", "activities"):
            urls.append(reverse("portal:section", args=[child.pk, slug]))
    return urls


def test_another_parent_sees_neither_child_and_gets_404_on_each_of_their_urls(make_family, client):
    first = make_family(2)
    for child in first.children:
        make_fee(student=child, description=f"Fee of {child.first_name}")
    other = make_family(1)
    client.force_login(other.user)

    page = text_of(client.get(FEES))
    for child in first.children:
        assert child.full_name not in page
        assert f"Fee of {child.first_name}" not in page

    urls = id_bearing_urls(first)
    assert len(urls) == 6
    for url in urls:
        assert client.get(url).status_code == 404, url
    # ... while the first parent gets every one of them.
    client.force_login(first.user)
    for url in urls:
        assert client.get(url).status_code == 200, url


def test_unknown_section_is_404(make_family, parent_client):
    family = make_family(1)
    url = reverse("portal:section", args=[family.children[0].pk, "report-cards"])

    assert parent_client(family).get(url).status_code == 404


# --- a constant number of queries -------------------------------------------------------------


def _queries_for(client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries)


def _family_with(make_family, make_integration, n_children: int, fees_each: int):
    family = make_family(n_children)
    for child in family.children:
        for i in range(fees_each):
            fee = make_fee(student=child, description=f"Fee {i}", fee_date=IN_SCOPE)
            if i % 3 == 1:
                payment_take(fee=fee, amount="10.00", method="cash", origin=Origin())
            if i % 5 == 4:
                fee_waive(fee=fee, reason="hardship", origin=Origin())
        LunchBalance.objects.create(
            integration=make_integration.lunch,
            student=child,
            balance="3.00",
            fetched_at=timezone.now(),
        )
        StudentVendorBalance.objects.create(
            integration=make_integration.lunch,
            student=child,
            balance="0.00",
            fetched_at=timezone.now(),
        )
    return family


@pytest.fixture
def busy_integrations(make_integration):
    """Two enabled integrations, one with categories, one showing every balance."""
    lunch = make_integration(
        show_lunch_balance=True, show_vendor_balance=True, lock_portal_on_balance=True
    )
    make_integration(categories=[CategoryFactory(), CategoryFactory()])

    class Wiring:
        pass

    wiring = Wiring()
    wiring.lunch = lunch  # type: ignore[attr-defined]
    return wiring


@pytest.mark.parametrize(
    ("small", "large"),
    [((1, 1), (3, 1)), ((1, 1), (1, 20)), ((1, 2), (3, 20))],
    ids=["1-vs-3-children", "1-vs-20-fees", "small-vs-large"],
)
def test_fees_page_queries_do_not_grow_with_children_or_fees(
    make_family, busy_integrations, client, django_assert_max_num_queries, small, large
):
    few = _family_with(make_family, busy_integrations, *small)
    many = _family_with(make_family, busy_integrations, *large)

    # The first page after signing in also clears the sign-in's one-time note from the
    # session (a write): measured from the second page on, as every later page is.
    client.force_login(few.user)
    client.get(FEES)
    baseline = _queries_for(client, FEES)
    client.force_login(many.user)
    client.get(FEES)
    with django_assert_max_num_queries(baseline):
        response = client.get(FEES)
    assert len(response.context["page"].children) == large[0]
    assert _queries_for(client, FEES) == baseline
    # session, user, guardian, children, fees, net payments, integrations, their categories,
    # lunch and vendor balances, the payment plans' upcoming installments (one query for all
    # children): no query per integration either (no deferred field read).
    assert baseline <= 11


def test_child_page_queries_do_not_grow_with_fees(make_family, busy_integrations, client):
    few = _family_with(make_family, busy_integrations, 1, 1)
    many = _family_with(make_family, busy_integrations, 1, 20)

    client.force_login(few.user)
    client.get(FEES)
    baseline = _queries_for(client, reverse("portal:student", args=[few.children[0].pk]))
    client.force_login(many.user)
    client.get(FEES)
    assert _queries_for(client, reverse("portal:student", args=[many.children[0].pk])) == baseline
