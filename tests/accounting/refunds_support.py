"""What the refund, receipt and close tests share: credit on a student's account posted
through the API as a vendor would, and a refund scheduled by a clerk (the partner API's
fixtures come from tests/accounting/conftest.py)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone

from apps.accounting.models import Refund
from apps.accounting.services.refunds import refund_schedule
from tests.partner_api.conftest import PAYMENTS, payment

STATUS = "/api/student-accounting/scheduled-refunds-status"
SCHEDULED = "/api/student-accounting/ledger-scheduled-refund-transactions"
UNSCHEDULED = "/api/student-accounting/ledger-refund-transactions"
RECEIPTS = "/api/student-accounting/misc-cash-receipts"


def give_credit(api: Any, student: Any, *amounts: str, prefix: str = "CR") -> None:
    """Payments to a student who owes nothing: all of it is the student's credit."""
    for i, amount in enumerate(amounts):
        response = api.post(PAYMENTS, payment(student, amount, f"{prefix}-{i}"), format="json")
        assert response.status_code == 201, response.json()


def schedule(student: Any, amount: str, clerk: Any, *, days: int = 0) -> Refund:
    return refund_schedule(
        student=student,
        amount=Decimal(amount),
        due_date=timezone.localdate() + timedelta(days=days),
        user=clerk,
        reason="Overpayment",
    )
