"""Staff enter miscellaneous cash receipts in the admin (billing-code usage M or A only; a
released receipt is shown, never changed) and keep each billing code's usage and GL
account on the billing codes' page."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.accounting.models import MiscCashReceipt
from apps.accounting.services.close import gl_release
from apps.categories.models import FeeCategory
from tests.factories import CategoryFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def office(office_clerk: Any) -> Client:
    client = Client()
    client.force_login(office_clerk)
    return client


def form(code: FeeCategory, amount: str = "80.00") -> dict[str, Any]:
    return {
        "billing_code": code.pk,
        "amount": amount,
        "receipt_date": timezone.localdate().isoformat(),
        "payment_type": "C",
        "description": "Bake sale",
        "payer": "PTA",
        "bank_account": "",
        "cash_session": "",
    }


def test_staff_enter_a_receipt_and_a_charges_code_is_refused(
    office: Client, office_clerk: Any
) -> None:
    charges = CategoryFactory(code="LUNCH", usage="C")
    misc = CategoryFactory(code="BAKE", usage="A", gl_account="4920")
    add = reverse("admin:accounting_misccashreceipt_add")
    refused = office.post(add, form(charges))
    assert refused.status_code == 200
    assert "usage is M or A" in refused.content.decode()
    assert not MiscCashReceipt.objects.exists()

    done = office.post(add, form(misc), follow=True)
    assert done.status_code == 200
    receipt = MiscCashReceipt.objects.get()
    assert receipt.created_by == office_clerk and str(receipt.amount) == "80.00"

    change = reverse("admin:accounting_misccashreceipt_change", args=[receipt.pk])
    office.post(change, form(misc, "85.00"), follow=True)
    receipt.refresh_from_db()
    assert str(receipt.amount) == "85.00"

    gl_release(business_date=timezone.localdate(), user=office_clerk)
    # Released: the page shows it read-only, and a posted change is not saved.
    page = office.get(change)
    assert page.status_code == 200
    assert 'name="amount"' not in page.content.decode()
    office.post(change, form(misc, "99.00"))
    receipt.refresh_from_db()
    assert str(receipt.amount) == "85.00"
    # Nor can a receipt be added on the released date.
    late = office.post(add, form(misc, "5.00"))
    assert "has been released to the general ledger" in late.content.decode()


def test_billing_codes_usage_and_gl_account_are_kept_in_the_admin(office: Client) -> None:
    code = CategoryFactory(code="FIELD", description="Field trips")
    listing = office.get(reverse("admin:categories_feecategory_changelist"))
    assert "GL account" in listing.content.decode()
    change = reverse("admin:categories_feecategory_change", args=[code.pk])
    page = office.get(change).content.decode()
    assert 'name="usage"' in page and 'name="gl_account"' in page
    office.post(
        change,
        {
            "code": "FIELD",
            "description": "Field trips",
            "active": "on",
            "usage": "A",
            "gl_account": "4300-FT",
        },
    )
    code.refresh_from_db()
    assert (code.usage, code.gl_account) == ("A", "4300-FT")
