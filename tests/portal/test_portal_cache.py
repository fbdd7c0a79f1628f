"""The Fees and Fines body is served from the cache only while nothing about the parent's
money has changed: every change shows on the very next load."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.utils import timezone

from apps.fees.services import Origin, payment_take
from apps.vendors.models import Integration, LunchBalance
from tests.factories import GuardianFactory, StudentFactory, make_fee

pytestmark = pytest.mark.django_db
FEES = "/portal/"


@pytest.fixture(autouse=True)
def page_cache(settings):
    if connection.vendor != "postgresql":
        pytest.skip("the page cache's fingerprint is a PostgreSQL query")
    settings.PORTAL_PAGE_CACHE_SECONDS = 60
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def family():
    guardian = GuardianFactory()
    child = StudentFactory(first_name="Nora")
    guardian.students.add(child)
    client = Client()
    client.force_login(guardian.user)
    return guardian, child, client


def test_the_second_load_comes_from_the_cache(family):
    guardian, child, client = family
    make_fee(student=child, amount="12.00", description="Lab fee")
    first = client.get(FEES)
    assert "page" in first.context  # built
    second = client.get(FEES)
    assert second.context.get("page") is None  # served from the cache
    assert "Lab fee" in second.content.decode() and "$12.00" in second.content.decode()


def test_a_payment_shows_on_the_next_load(family):
    guardian, child, client = family
    fee = make_fee(student=child, amount="12.00", description="Lab fee")
    client.get(FEES)
    payment_take(fee=fee, amount="12.00", method="cash", origin=Origin())
    page = client.get(FEES).content.decode()
    assert "Nothing is owed for Nora" in page


def test_a_new_fee_a_new_child_and_a_lunch_balance_show_at_once(family):
    guardian, child, client = family
    client.get(FEES)
    make_fee(student=child, amount="3.00", description="Overdue library book")
    assert "Overdue library book" in client.get(FEES).content.decode()

    sibling = StudentFactory(first_name="Theo")
    guardian.students.add(sibling)
    assert "Theo" in client.get(FEES).content.decode()

    integration = Integration(
        vendor_kind="payschools",
        slug="ps",
        name="PS",
        enabled=True,
        service_url="http://127.0.0.1:9/soap",
        import_after=dt.date(2026, 7, 1),
        show_lunch_balance=True,
        sync_lunch_balance=True,
    )
    integration.save()
    page = client.get(FEES).content.decode()
    LunchBalance.objects.create(
        integration=integration, student=child, balance=Decimal("1.25"), fetched_at=timezone.now()
    )
    after = client.get(FEES).content.decode()
    assert "$1.25" in after and after != page


def test_parents_never_share_a_cached_page(family):
    guardian, child, client = family
    make_fee(student=child, amount="12.00", description="Lab fee")
    client.get(FEES)
    other = GuardianFactory()
    other.students.add(StudentFactory(first_name="Zed"))
    other_client = Client()
    other_client.force_login(other.user)
    page = other_client.get(FEES).content.decode()
    assert "Lab fee" not in page and "Nora" not in page and "Zed" in page
