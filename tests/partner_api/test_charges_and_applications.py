"""Charges, adjustments and applications of payments over the real stack."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from apps.fees.models import Fee, LedgerEntry, ManualApplication
from apps.fees.selectors import ledger_report
from apps.vendors.models import MerchantAccountMapping
from tests.factories import CategoryFactory, MerchantAccountFactory

from .conftest import PAYMENTS, payment

pytestmark = pytest.mark.django_db

CHARGES = "/api/student-accounting/ledger-chargeoradjustment-transactions"
APPLY = "/api/student-accounting/ledger-transactions-applypayments"


@pytest.fixture
def billing(integration: Any) -> Any:
    category = CategoryFactory(code="TUIT")
    account = MerchantAccountFactory()
    MerchantAccountMapping.objects.create(
        integration=integration, merchant_account=account, vendor_merchant_id="M-1"
    )
    integration.categories.add(category)
    return category


def charge(
    student: Any, kind: str = "Charge", amount: str = "80.00", vid: str = "CH1", **more: Any
) -> dict[str, Any]:
    return {
        "StudentId": student.student_number,
        "BillingTransactionCodeId": "TUIT",
        "Type": kind,
        "TransactionAmount": amount,
        "TransactionDate": "2026-09-01",
        "Description": "Tuition",
        "VendorTransactionId": vid,
        **more,
    }


def test_charge_becomes_a_fee_on_the_integrations_account(api, student, billing):
    response = api.post(CHARGES, charge(student), format="json")
    assert response.status_code == 201, response.json()
    fee = Fee.objects.get(reference=response.json()["FeeReference"])
    assert (fee.amount, fee.balance, fee.category) == (Decimal("80.00"), Decimal("80.00"), billing)
    assert (
        fee.merchant_account.merchant_id
        == MerchantAccountMapping.objects.get().merchant_account.merchant_id
    )
    assert fee.entries.get(kind="charge").source == "partner_api"
    again = api.post(CHARGES, charge(student), format="json")
    assert again.status_code == 200 and again.json()["IsReplay"] is True
    assert Fee.objects.count() == 1
    assert ledger_report().ok


def test_billing_code_outside_the_integration_is_403(api, student, billing):
    CategoryFactory(code="BUS")
    response = api.post(CHARGES, charge(student, BillingTransactionCodeId="BUS"), format="json")
    assert response.status_code == 403
    assert response.json()["errors"][0]["property"] == "BillingTransactionCodeId"


def test_term_required_when_the_district_says_so(api, student, billing, settings):
    settings.FEESYNC_REQUIRE_TERM_CODES = True
    response = api.post(CHARGES, charge(student), format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["property"] == "TermId"
    assert api.post(CHARGES, charge(student, TermId="2026FA"), format="json").status_code == 201


def test_debit_and_credit_adjustments_change_the_charge(api, student, billing):
    first = api.post(CHARGES, charge(student), format="json").json()
    up = api.post(CHARGES, charge(student, "DebitAdjustment", "20.00", "A1"), format="json")
    assert up.status_code == 201, up.json()
    assert up.json()["ChargeAmount"] == "100.00"
    down = api.post(
        CHARGES,
        charge(
            student,
            "CreditAdjustment",
            "30.00",
            "A2",
            AdjustedTransactionId=first["ChargeTransactionId"],
        ),
        format="json",
    )
    assert down.status_code == 201, down.json()
    assert (down.json()["ChargeAmount"], down.json()["ChargeBalance"]) == ("70.00", "70.00")
    assert LedgerEntry.objects.filter(kind="credit_adjustment").get().external_id == "A2"
    assert ledger_report().ok


def test_credit_adjustment_beyond_the_charge_is_refused(api, student, billing):
    api.post(CHARGES, charge(student), format="json")
    response = api.post(CHARGES, charge(student, "CreditAdjustment", "500.00", "A3"), format="json")
    assert response.status_code == 422
    assert response.json()["errors"]


def test_apply_payment_to_charges_and_never_over_apply(api, student, billing):
    a = api.post(CHARGES, charge(student, vid="C-A"), format="json").json()
    b = api.post(CHARGES, charge(student, amount="30.00", vid="C-B"), format="json").json()
    paid = api.post(PAYMENTS, payment(student, "100.00", "P-1"), format="json").json()
    body = {
        "StudentId": student.student_number,
        "StudentAccountTransactionId": paid["StudentAccountTransactionId"],
        "Applications": [
            {"StudentAccountTransactionId": b["ChargeTransactionId"], "Amount": "30.00"},
            {"StudentAccountTransactionId": a["ChargeTransactionId"], "Amount": "60.00"},
        ],
    }
    response = api.post(APPLY, body, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["UnappliedAmount"] == "10.00"
    assert Fee.objects.get(reference=b["FeeReference"]).status == "paid"
    assert Fee.objects.get(reference=a["FeeReference"]).balance == Decimal("20.00")
    over = {
        **body,
        "Applications": [
            {"StudentAccountTransactionId": a["ChargeTransactionId"], "Amount": "15.00"}
        ],
    }
    refused = api.post(APPLY, over, format="json")
    assert refused.status_code == 422
    assert str(paid["StudentAccountTransactionId"]) in refused.json()["detail"]
    assert refused.json()["errors"][0]["property"] == "Applications[0].Amount"
    assert Fee.objects.get(reference=a["FeeReference"]).balance == Decimal("20.00")
    assert ledger_report().ok


def test_over_applying_to_a_charge_is_refused_and_nothing_is_applied(api, student, billing):
    a = api.post(CHARGES, charge(student, amount="10.00", vid="C-A"), format="json").json()
    paid = api.post(PAYMENTS, payment(student, "50.00", "P-1"), format="json").json()
    body = {
        "StudentId": student.student_number,
        "StudentAccountTransactionId": paid["StudentAccountTransactionId"],
        "Applications": [
            {"StudentAccountTransactionId": a["ChargeTransactionId"], "Amount": "20.00"}
        ],
    }
    response = api.post(APPLY, body, format="json")
    assert response.status_code == 422
    assert str(a["ChargeTransactionId"]) in response.json()["detail"]
    assert Fee.objects.get(reference=a["FeeReference"]).balance == Decimal("10.00")


def test_manual_application_is_left_alone_by_auto_apply(api, student, billing, settings):
    a = api.post(
        CHARGES, charge(student, amount="50.00", vid="C-A", DueDate="2026-09-05"), format="json"
    ).json()
    b = api.post(
        CHARGES, charge(student, amount="25.00", vid="C-B", DueDate="2026-09-02"), format="json"
    ).json()
    held = api.post(PAYMENTS, payment(student, "30.00", "P-1"), format="json").json()
    assert held["UnappliedAmount"] == "30.00"  # auto-apply is off: it is credit
    settings.FEESYNC_AUTO_APPLY_CREDIT = True
    body = {
        "StudentId": student.student_number,
        "StudentAccountTransactionId": held["StudentAccountTransactionId"],
        "Applications": [
            {"StudentAccountTransactionId": b["ChargeTransactionId"], "Amount": "10.00"}
        ],
    }
    assert api.post(APPLY, body, format="json").status_code == 200
    assert set(ManualApplication.objects.values_list("entry_id", flat=True)) == {
        held["StudentAccountTransactionId"],
        b["ChargeTransactionId"],
    }
    later = api.post(PAYMENTS, payment(student, "100.00", "P-2"), format="json").json()
    # Auto-apply paid the other charge, not the manually applied one; nor did it use what
    # is left of the manually applied payment.
    assert Fee.objects.get(reference=a["FeeReference"]).balance == Decimal("0.00")
    assert Fee.objects.get(reference=b["FeeReference"]).balance == Decimal("15.00")
    assert later["UnappliedAmount"] == "50.00"
    first = LedgerEntry.objects.get(pk=held["StudentAccountTransactionId"])
    assert first.allocations_out.count() == 1
    assert ledger_report().ok
