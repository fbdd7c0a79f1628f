"""Miscellaneous cash receipts over the real stack: billing-code usage M or A only, recorded
once per vendor id, changed by PATCH until their date is released to the general ledger."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from apps.accounting.models import MiscCashReceipt
from apps.accounting.services.close import gl_release
from tests.factories import CategoryFactory

from .refunds_support import RECEIPTS

pytestmark = pytest.mark.django_db


@pytest.fixture
def codes(db: Any) -> dict[str, Any]:
    return {
        usage: CategoryFactory(code=f"MISC{usage}", usage=usage, gl_account=f"4100-{usage}")
        for usage in ("C", "M", "A")
    }


def receipt(code: str = "MISCM", vid: str = "R-1", **more: Any) -> dict[str, Any]:
    return {
        "BillingTransactionCodeId": code,
        "TransactionAmount": "250.00",
        "TransactionDate": timezone.localdate().isoformat(),
        "PaymentType": "H",
        "Description": "Gym rental, Saturday",
        "PayerName": "Riverside Youth League",
        "VendorTransactionId": vid,
        **more,
    }


def test_a_receipt_with_a_charges_only_billing_code_is_refused(api: Any, codes: Any) -> None:
    answer = api.post(RECEIPTS, receipt("MISCC"), format="json")
    assert answer.status_code == 422
    assert answer["Content-Type"] == "application/problem+json"
    error = answer.json()["errors"][0]
    assert error["property"] == "BillingTransactionCodeId"
    assert "usage is M or A" in error["detail"]
    assert not MiscCashReceipt.objects.exists()


def test_receipts_with_usage_m_or_a_are_recorded_once(api: Any, codes: Any) -> None:
    first = api.post(RECEIPTS, receipt("MISCM"), format="json")
    assert first.status_code == 201, first.json()
    assert first.json()["TransactionAmount"] == "250.00"
    assert first.json()["IsReleased"] is False
    assert api.post(RECEIPTS, receipt("MISCA", "R-2"), format="json").status_code == 201
    again = api.post(RECEIPTS, receipt("MISCM"), format="json")
    assert again.status_code == 200 and again.json()["IsReplay"] is True
    assert MiscCashReceipt.objects.count() == 2


def test_bad_properties_are_named(api: Any, codes: Any) -> None:
    answer = api.post(
        RECEIPTS,
        receipt(PaymentType="X", TransactionAmount="12,5", Extra=1),
        format="json",
    )
    assert answer.status_code == 400
    names = {e["property"] for e in answer.json()["errors"]}
    assert names == {"Extra"} or {"PaymentType", "TransactionAmount"} <= names
    unknown = api.post(RECEIPTS, receipt("NOPE"), format="json")
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["property"] == "BillingTransactionCodeId"


def test_a_patch_changes_a_receipt_until_its_date_is_released(
    api: Any, codes: Any, office_clerk: Any
) -> None:
    pk = api.post(RECEIPTS, receipt(), format="json").json()["MiscCashReceiptId"]
    changed = api.patch(
        RECEIPTS, {"MiscCashReceiptId": pk, "TransactionAmount": "275.00"}, format="json"
    )
    assert changed.status_code == 200, changed.json()
    assert changed.json()["TransactionAmount"] == "275.00"
    # Audited: before and after.
    from auditlog.models import LogEntry

    change = LogEntry.objects.get_for_object(MiscCashReceipt.objects.get(pk=pk)).first()
    assert change is not None and change.changes_dict["amount"] == ["250.00", "275.00"]
    # A PATCH to a charges-only code is refused like a POST.
    assert (
        api.patch(
            RECEIPTS, {"MiscCashReceiptId": pk, "BillingTransactionCodeId": "MISCC"}, format="json"
        ).status_code
        == 422
    )

    gl_release(business_date=timezone.localdate(), user=office_clerk)

    refused = api.patch(
        RECEIPTS, {"MiscCashReceiptId": pk, "TransactionAmount": "300.00"}, format="json"
    )
    assert refused.status_code == 422
    assert "released to the general ledger" in refused.json()["detail"]
    assert MiscCashReceipt.objects.get(pk=pk).amount == 275
    # Nor can a new receipt be booked on the released date.
    late = api.post(RECEIPTS, receipt(vid="R-late"), format="json")
    assert late.status_code == 422
    assert late.json()["errors"][0]["property"] == "TransactionDate"


def test_someone_elses_receipt_is_not_found(api: Any, codes: Any) -> None:
    answer = api.patch(RECEIPTS, {"MiscCashReceiptId": 4242, "Description": "x"}, format="json")
    assert answer.status_code == 404
