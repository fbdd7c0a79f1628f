"""What a result line says besides its amount (issue 12, item 4): the method the money was
taken by at the financials office and the reason reach the ledger entry, on the fast
set-wise path and the one-by-one path alike; a method FeeSync has no word for never
refuses money already taken."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from apps.fees.models import LedgerEntry
from apps.vendors.jobs import task_run
from apps.vendors.kinds.fileexchange.layouts import result_file_text
from apps.vendors.models import TaskRun
from tests.factories import make_fee

from .conftest import Exchange, make_exchange

pytestmark = pytest.mark.django_db


def test_method_and_reason_of_each_line_are_kept_on_the_ledger(tmp_path: Path, libfine: Any):
    root = tmp_path / "financials"
    root.mkdir()
    exchange = Exchange(make_exchange(root, server=None, category=libfine), root, "local")
    cash, card, waived, odd = (make_fee(amount="10.00", category=libfine) for _ in range(4))
    # The financials side can settle only fees it was given: export them first.
    sent = task_run(integration=exchange.integration, task="export-fees")
    assert sent is not None and sent.outcome == TaskRun.Outcome.OK
    lines = [
        {"operation": "pay", "amount": "10.00", "method": "Cash", "reason": "Bursar window"},
        # More than owed: the rest is the student's credit, with the line's method.
        {"operation": "pay", "amount": "15.00", "method": "credit card", "reason": ""},
        {"operation": "waive", "amount": "10.00", "method": "", "reason": "Hardship (form 12)"},
        {"operation": "pay", "amount": "4.00", "method": "bitcoin", "reason": "Kiosk"},
    ]
    rows = [
        {**line, "reference": fee.reference, "transaction_id": f"T-{n}"}
        for n, (fee, line) in enumerate(zip([cash, card, waived, odd], lines, strict=True))
    ]
    exchange.drop("results_1.csv", result_file_text(rows))
    done = task_run(integration=exchange.integration, task="import-payments")
    assert done is not None and done.outcome == TaskRun.Outcome.OK, done and done.error

    def entry(fee: Any, kind: str) -> LedgerEntry:
        return LedgerEntry.objects.get(fee=fee, kind=kind)

    paid = entry(cash, LedgerEntry.Kind.PAYMENT)
    assert (paid.method, paid.reason, paid.amount) == ("cash", "Bursar window", Decimal("10.00"))
    over = entry(card, LedgerEntry.Kind.PAYMENT)
    assert (over.method, over.amount) == ("card", Decimal("15.00"))
    assert over.reason == "Paid at File exchange"  # no reason given: the usual words
    waiver = entry(waived, LedgerEntry.Kind.WAIVER)
    assert waiver.reason == "Hardship (form 12)"
    kiosk = entry(odd, LedgerEntry.Kind.PAYMENT)
    assert kiosk.amount == Decimal("4.00") and kiosk.method == "online"
    assert kiosk.reason == "Kiosk (method at the financials office: bitcoin)"
