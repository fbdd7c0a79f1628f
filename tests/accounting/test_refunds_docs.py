"""The `curl` examples of docs/partner-api.md's refunds and receipts section, run as written
against a live server (marked `refunds-expect`, so part 1's docs test, which sets up no
refund or billing code, leaves them to this one)."""

from __future__ import annotations

import os
import re
import subprocess
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from apps.accounting.models import MiscCashReceipt, Refund
from apps.accounting.services.receipts import ReceiptData, receipt_create
from apps.fees.selectors import ledger_report
from apps.fees.services import student_credit
from tests.factories import CategoryFactory, StudentFactory

from .refunds_support import give_credit, schedule

DOC = Path(settings.BASE_DIR) / "docs" / "partner-api.md"
EXAMPLE = re.compile(r"<!-- refunds-expect: (\d{3}) -->\s*```sh\n(.*?)```", re.S)


@pytest.mark.django_db(transaction=True)
def test_the_refund_docs_curl_examples_answer_as_documented(
    api: Any, api_key: str, api_user: Any, office_clerk: Any, live_server: Any
) -> None:
    examples = EXAMPLE.findall(DOC.read_text())
    assert len(examples) >= 6
    student = StudentFactory()
    give_credit(api, student, "50.00")
    refund = schedule(student, "15.00", office_clerk, days=-1)
    CategoryFactory(code="TUIT", usage="C")
    rent = CategoryFactory(code="RENT", usage="M", gl_account="4900")
    today = timezone.localdate()
    receipt = receipt_create(
        data=ReceiptData(
            billing_code=rent,
            amount=Decimal("100.00"),
            receipt_date=today - timedelta(days=1),
            payment_type="C",
        ),
        api_user=api_user,
        external_id="SEEDED-1",
    ).receipt
    env = {
        **os.environ,
        "BASE": live_server.url,
        "KEY": api_key,
        "STUDENT": student.student_number,
        "REFUND": str(refund.pk),
        "RECEIPT": str(receipt.pk),
        "TODAY": today.isoformat(),
    }
    for expected, command in examples:
        done = subprocess.run(  # noqa: S603
            ["/bin/bash", "-c", command], env=env, capture_output=True, text=True, timeout=60
        )
        status_line = done.stdout.splitlines()[0] if done.stdout else done.stderr
        assert status_line.split()[1] == expected, (command, done.stdout)
        assert "application/problem+json" in done.stdout or int(expected) < 400
    refund.refresh_from_db()
    assert refund.status == Refund.Status.PAID
    assert student_credit(student=student) == Decimal("30.00")  # 50 - 15 - 5
    assert MiscCashReceipt.objects.get(pk=receipt.pk).amount == Decimal("275.00")
    assert MiscCashReceipt.objects.filter(external_id="DOC-MISC-1").exists()
    assert ledger_report().ok
