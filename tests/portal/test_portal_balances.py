"""Lunch balances."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.vendors.models import LunchBalance

FEES = reverse("portal:fees")
pytestmark = pytest.mark.django_db


def lunch(integration, student, balance: str) -> LunchBalance:
    return LunchBalance.objects.create(
        integration=integration, student=student, balance=balance, fetched_at=timezone.now()
    )


# --- lunch ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("balance", "low"),
    [("4.99", True), ("5.00", False), ("5.01", False), ("0.00", True), ("-2.50", True)],
)
def test_lunch_balance_is_red_with_words_strictly_under_the_threshold(
    make_family, parent_client, make_integration, balance, low
):
    integration = make_integration(
        show_lunch_balance=True,
        lunch_balance_threshold=Decimal("5.00"),
        lunch_payment_url="https://lunch.example.org/add",
    )
    family = make_family(1)
    lunch(integration, family.children[0], balance)

    response = parent_client(family).get(FEES)
    page = response.content.decode()
    line = response.context["page"].children[0].lunch[0]

    assert line.low is low
    assert ("figure--low" in page) is low
    assert ("Low balance" in page) is low  # a text cue, not colour only
    assert "Lunch balance" in page
    assert 'href="https://lunch.example.org/add" target="_blank" rel="noopener"' in page


def test_lunch_balance_hidden_unless_the_integration_shows_it(
    make_family, parent_client, make_integration
):
    integration = make_integration(show_lunch_balance=False)
    family = make_family(1)
    lunch(integration, family.children[0], "1.00")

    assert "Lunch balance" not in parent_client(family).get(FEES).content.decode()


def test_lunch_balance_not_yet_fetched_says_so(make_family, parent_client, make_integration):
    make_integration(show_lunch_balance=True)
    family = make_family(1)

    page = parent_client(family).get(FEES).content.decode()

    assert "Lunch balance" in page and "Not available yet" in page


def test_each_child_has_their_own_lunch_balance(make_family, parent_client, make_integration):
    integration = make_integration(show_lunch_balance=True)
    family = make_family(2)
    lunch(integration, family.children[0], "12.00")
    lunch(integration, family.children[1], "1.00")

    children = parent_client(family).get(FEES).context["page"].children
    by_name = {c.student.pk: c.lunch[0] for c in children}

    assert by_name[family.children[0].pk].low is False
    assert by_name[family.children[1].pk].low is True


# --- vendor balance ------------------------------------------------------------------------------


# The family's vendor balance and the lockout: tests/portal/test_portal_lockout.py.
