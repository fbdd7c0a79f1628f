"""The add-fee form says which integration, by name, will receive the fee, or that none
will (issue 11, item 11)."""

from __future__ import annotations

import datetime as dt

import lxml.html
import pytest
from django.urls import reverse

from apps.vendors.models import Integration
from tests.admin_helpers import csrf_client, submit
from tests.factories import CategoryFactory, MerchantAccountFactory, StudentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def routed():
    trips = CategoryFactory(code="TRIP", description="Field trips")
    books = CategoryFactory(code="BOOK", description="Lost books")
    ps = Integration(
        vendor_kind="payschools",
        slug="ps",
        name="PaySchools (district)",
        service_url="http://127.0.0.1:9/soap",
        enabled=True,
        import_after=dt.date(2026, 8, 1),
    )
    ps.credentials = {"username": "u", "password": "p"}
    ps.save()
    ps.categories.set([trips])
    return trips, books


def test_the_form_says_where_each_category_goes(clerk, routed):
    page = csrf_client(clerk).get(reverse("admin:fees_fee_add"))
    text = " ".join(lxml.html.fromstring(page.content.decode()).text_content().split())
    assert "Which integration receives it" in text
    assert "Field trips → PaySchools (district) (fees dated on or after August 1, 2026)" in text
    assert "Every other category → no integration (parents pay the district)" in text


@pytest.mark.parametrize(
    ("code", "day", "said"),
    [
        ("TRIP", "09/01/2026", "It is sent to PaySchools (district)."),
        ("TRIP", "07/01/2026", "No integration receives it: parents pay it to the district."),
        ("BOOK", "09/01/2026", "No integration receives it: parents pay it to the district."),
    ],
)
def test_the_message_after_charging_names_the_integration_or_none(clerk, routed, code, day, said):
    category = next(c for c in routed if c.code == code)
    client = csrf_client(clerk)
    response = submit(
        client,
        reverse("admin:fees_fee_add"),
        {
            "student": StudentFactory().pk,
            "category": category.pk,
            "merchant_account": MerchantAccountFactory().pk,
            "description": "Zoo",
            "amount": "10.00",
            "fee_date": day,
        },
        follow=True,
    )
    messages = [str(m) for m in response.context["messages"]]
    assert any(said in m for m in messages), messages
