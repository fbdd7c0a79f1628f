"""Lunch and vendor balances, and the sections a vendor balance locks."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.vendors.models import LunchBalance, StudentVendorBalance
from tests.factories import make_fee

from .conftest import IN_SCOPE

FEES = reverse("portal:fees")
pytestmark = pytest.mark.django_db
LOCK_TEXT = "Documents and Other services are locked"


def lunch(integration, student, balance: str) -> LunchBalance:
    return LunchBalance.objects.create(
        integration=integration, student=student, balance=balance, fetched_at=timezone.now()
    )


def vendor_balance(integration, student, balance: str) -> StudentVendorBalance:
    return StudentVendorBalance.objects.create(
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


def test_vendor_balance_shows_with_the_districts_message(
    make_family, parent_client, make_integration
):
    integration = make_integration(
        show_vendor_balance=True, balance_message="Includes bus passes bought at PaySchools."
    )
    family = make_family(1)
    vendor_balance(integration, family.children[0], "42.00")

    page = parent_client(family).get(FEES).content.decode()

    assert "Balance at PaySchools" in page
    assert "$42.00" in page
    assert "Includes bus passes bought at PaySchools." in page


def test_vendor_balance_hidden_unless_the_integration_shows_it(
    make_family, parent_client, make_integration
):
    integration = make_integration(show_vendor_balance=False)
    family = make_family(1)
    vendor_balance(integration, family.children[0], "42.00")

    assert "Balance at PaySchools" not in parent_client(family).get(FEES).content.decode()


# --- locked sections -----------------------------------------------------------------------------


@pytest.fixture
def locking(make_integration):
    return make_integration(
        show_vendor_balance=True,
        lock_portal_on_balance=True,
        balance_message="Please settle your account.",
    )


def test_outstanding_vendor_balance_locks_sections_and_paying_unlocks_them(
    make_family, parent_client, locking
):
    family = make_family(1)
    child = family.children[0]
    make_fee(student=child, description="Field trip", fee_date=IN_SCOPE)
    row = vendor_balance(locking, child, "30.00")
    client = parent_client(family)
    documents = reverse("portal:section", args=[child.pk, "documents"])

    page = client.get(FEES).content.decode()
    assert LOCK_TEXT in page
    assert "balance at PaySchools of $30.00 is unpaid" in page
    assert "Fees and Fines stays open" in page
    assert "Field trip" in page  # Fees and Fines itself is never locked
    assert documents not in page  # the section links are replaced by the explanation
    assert 'href="https://pay.example.org/parents" target="_blank"' in page  # the way to pay
    section = client.get(documents).content.decode()
    assert "Documents is locked" in section and "has not shared any documents" not in section

    row.balance = Decimal("0.00")
    row.save()

    page = client.get(FEES).content.decode()
    assert LOCK_TEXT not in page
    assert documents in page
    section = client.get(documents).content.decode()
    assert "is locked" not in section and "has not shared any documents" in section


def test_only_the_child_with_the_balance_is_locked(make_family, parent_client, locking):
    family = make_family(2)
    owing, clear = family.children
    vendor_balance(locking, owing, "12.00")
    vendor_balance(locking, clear, "0.00")

    children = {c.student.pk: c for c in parent_client(family).get(FEES).context["page"].children}

    assert children[owing.pk].locked and not children[clear.pk].locked
    assert [s.slug for s in children[clear.pk].open_sections] == ["documents", "services"]


def test_a_disabled_integration_locks_nothing(make_family, parent_client, locking):
    locking.enabled = False
    locking.save()
    family = make_family(1)
    vendor_balance(locking, family.children[0], "30.00")

    assert LOCK_TEXT not in parent_client(family).get(FEES).content.decode()


def test_a_balance_without_lock_setting_locks_nothing(make_family, parent_client, make_integration):
    integration = make_integration(show_vendor_balance=True, lock_portal_on_balance=False)
    family = make_family(1)
    vendor_balance(integration, family.children[0], "30.00")

    page = parent_client(family).get(FEES).content.decode()

    assert LOCK_TEXT not in page and "Balance at PaySchools" in page
