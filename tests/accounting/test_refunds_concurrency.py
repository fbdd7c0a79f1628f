"""Scheduled refunds posted at once from several connections (PostgreSQL): each refund is
paid once and the student's credit pays it once, whatever the interleaving (a retry that
loses the race answers with the winner's posting)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from apps.accounting.models import Refund
from apps.fees.models import LedgerEntry
from apps.fees.selectors import ledger_report
from apps.fees.services import student_credit
from tests.partner_api.test_idempotency import _in_parallel

from .refunds_support import SCHEDULED, STATUS, give_credit, schedule


@pytest.mark.django_db(transaction=True)
def test_eight_simultaneous_batches_of_the_same_refunds_pay_each_once(
    api: Any, api_key: str, student: Any, office_clerk: Any
) -> None:
    assert connection.vendor == "postgresql"
    give_credit(api, student, "40.00", "35.00")
    refunds = [schedule(student, amount, office_clerk) for amount in ("30.00", "25.00", "15.00")]
    api.patch(STATUS, {"RefundIds": [r.pk for r in refunds], "Status": "S"}, format="json")
    body = [{"RefundId": r.pk} for r in refunds]

    def post(i: int) -> Any:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key}")
        return client.post(SCHEDULED, body[::-1] if i % 2 else body, format="json")

    responses = _in_parallel(8, post)
    assert [r.status_code for r in responses] == [200] * 8
    for r in responses:
        assert r.json()["SucceededCount"] == 3, r.json()
    # Seven of them answered with the first one's posting.
    assert sum(1 for r in responses for x in r.json()["Results"] if not x["IsReplay"]) == 3
    assert set(Refund.objects.values_list("status", flat=True)) == {"P"}
    assert sum(
        LedgerEntry.objects.filter(kind="refund").values_list("amount", flat=True), Decimal(0)
    ) == Decimal("70.00")
    assert student_credit(student=student) == Decimal("5.00")
    assert ledger_report().ok, ledger_report().breaches
