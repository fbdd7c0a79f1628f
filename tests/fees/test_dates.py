"""Dates that enter the ledger are bounded: a fee, due or import-after date more than
FEESYNC_DATE_WINDOW_YEARS (5) from today is a typo, refused in the services (so every way in
gets it: the admin forms, list assignments, the integration setup)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.fees.models import Fee, FeeAssignment
from apps.fees.services import LedgerError, Origin, assignment_create, fee_change
from apps.vendors.errors import IntegrationError
from apps.vendors.models import Integration
from apps.vendors.services import integration_set_import_after
from tests.admin_helpers import csrf_client, submit
from tests.factories import (
    CategoryFactory,
    MerchantAccountFactory,
    StudentFactory,
    StudentListFactory,
    make_fee,
)

pytestmark = pytest.mark.django_db


def years_from_today(years: int, days: int = 0) -> dt.date:
    today = timezone.localdate()
    return today.replace(year=today.year + years) + dt.timedelta(days=days)


@pytest.mark.parametrize(
    ("when", "words"),
    [(years_from_today(-5, -1), "more than 5 years ago"), (years_from_today(5, 1), "ahead")],
)
def test_a_fee_date_outside_the_window_is_refused_and_nothing_is_charged(when, words):
    with pytest.raises(LedgerError, match=words) as excinfo:
        make_fee(fee_date=when)
    assert f"The fee date {when:%m/%d/%Y}" in excinfo.value.message
    assert Fee.objects.count() == 0


def test_the_edges_of_the_window_are_accepted():
    make_fee(fee_date=years_from_today(-5), due_date=years_from_today(5))
    assert Fee.objects.count() == 1


def test_a_due_date_outside_the_window_is_refused_on_create_and_on_change():
    with pytest.raises(LedgerError, match="The due date .* is more than 5 years ahead"):
        make_fee(fee_date=timezone.localdate(), due_date=dt.date(2206, 1, 1))
    fee = make_fee(fee_date=timezone.localdate())
    with pytest.raises(LedgerError, match="The due date 01/01/2206 is more than 5 years ahead"):
        fee_change(fee=fee, due_date=dt.date(2206, 1, 1), origin=Origin())
    fee.refresh_from_db()
    assert fee.due_date is None and fee.version == 1


def test_the_window_is_a_setting(settings):
    settings.FEESYNC_DATE_WINDOW_YEARS = 1
    with pytest.raises(LedgerError, match="more than 1 years ago"):
        make_fee(fee_date=years_from_today(-2))


def test_a_list_assignment_with_a_far_date_is_refused():
    with pytest.raises(LedgerError, match="The fee date 09/01/2016 is more than 5 years ago"):
        assignment_create(
            student_list=StudentListFactory(),
            category=CategoryFactory(),
            merchant_account=MerchantAccountFactory(),
            description="Band",
            amount="10.00",
            fee_date=dt.date(2016, 9, 1),
            origin=Origin(),
        )
    assert FeeAssignment.objects.count() == 0


def test_an_import_after_date_outside_the_window_is_refused():
    integration = Integration.objects.create(
        vendor_kind="payschools", slug="ps", name="PaySchools", service_url="http://x"
    )
    with pytest.raises(IntegrationError, match="The import-after date 07/01/1926"):
        integration_set_import_after(integration=integration, import_after=dt.date(1926, 7, 1))
    integration.refresh_from_db()
    assert integration.import_after is None


def test_the_fee_page_shows_the_refusal_of_a_far_date(clerk):
    student = StudentFactory()
    category, account = CategoryFactory(), MerchantAccountFactory()
    response = submit(
        csrf_client(clerk),
        reverse("admin:fees_fee_add"),
        {
            "student": student.pk,
            "category": category.pk,
            "merchant_account": account.pk,
            "description": "Trip",
            "amount": "10.00",
            "fee_date": "09/01/2062",
        },
    )
    assert response.status_code == 200
    assert "The fee date 09/01/2062 is more than 5 years ahead" in response.content.decode()
    assert Fee.objects.count() == 0
