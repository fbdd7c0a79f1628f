"""Money the vendors took beyond what a fee owed (a settled fee and the student's credit,
recorded once however often it is pulled), and run counts that tell the truth when two
pulls race for the same payment. Against the real sandboxes over HTTP."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.contrib import messages as message_levels
from django.db import connections

from apps.fees.models import LedgerEntry
from apps.fees.selectors import ledger_report
from apps.fees.services import outside as door
from apps.fees.services import student_credit
from apps.vendors import engine
from apps.vendors.jobs import pull_for_student_page, task_run
from apps.vendors.models import Discrepancy, TaskRun
from tests.factories import make_fee

IN_SCOPE = dt.date(2026, 9, 1)
D = Decimal


@pytest.mark.django_db
def test_an_overpayment_at_the_vendor_settles_the_fee_and_the_rest_is_credit_once(
    sandbox, make_integration
):
    integration = make_integration()
    fee = make_fee(amount="30.00", fee_date=IN_SCOPE)
    engine.deliver(integration_id=integration.pk)
    sandbox.control("pay", fee_ref=fee.reference, amount="45.00", allow_over=True)

    first = task_run(integration=integration, task="get-payments")
    assert first is not None and first.counts["recorded"] == 1
    # Pulled again, nightly (from its cursor) and from the student's page (from the start).
    task_run(integration=integration, task="get-payments")
    again = engine.payments_pull(integration=integration, student_ids=[fee.student.student_number])
    assert (again.recorded, again.already_recorded) == (0, 1)

    fee.refresh_from_db()
    assert (fee.balance, fee.status) == (D("0.00"), "paid")
    assert student_credit(student=fee.student) == D("15.00")
    [payment] = LedgerEntry.objects.filter(external_source=integration.external_source)
    assert payment.amount == D("45.00")
    assert not Discrepancy.objects.exists()  # nothing for staff to chase: it is credit
    assert ledger_report().ok


# --- two pulls at once ------------------------------------------------------------------------


def _both_past_the_first_lookup(monkeypatch) -> None:
    """Make two pulls race for real: each looks up what is recorded already, and neither
    goes on until both have looked (so both find nothing, and both try to post)."""
    barrier = threading.Barrier(2, timeout=120)
    seen = threading.local()
    real = door._recorded

    def recorded(source: Any, external_ids: Any) -> Any:
        found = real(source, external_ids)
        if external_ids and not getattr(seen, "waited", False):
            seen.waited = True
            barrier.wait()
        return found

    monkeypatch.setattr(door, "_recorded", recorded)


def _in_two_threads(work: Callable[[], Any]) -> list[Any]:
    results: list[Any] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run() -> None:
        try:
            result = work()
            with lock:
                results.append(result)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    return results


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("amount", ["12.00", "45.00"], ids=["part", "overpaid"])
def test_two_nightly_pulls_at_once_count_the_payment_once_as_recorded(
    sandbox, make_integration, monkeypatch, amount
):
    integration = make_integration()
    fee = make_fee(amount="30.00", fee_date=IN_SCOPE)
    engine.deliver(integration_id=integration.pk)
    sandbox.control("pay", fee_ref=fee.reference, amount=amount, allow_over=True)
    _both_past_the_first_lookup(monkeypatch)

    _in_two_threads(lambda: task_run(integration=integration, task="get-payments"))

    runs = list(TaskRun.objects.filter(integration=integration, task="get-payments"))
    assert len(runs) == 2 and all(r.outcome == "ok" for r in runs)
    assert sorted((r.counts["recorded"], r.counts["already_recorded"]) for r in runs) == [
        (0, 1),
        (1, 0),
    ]
    assert LedgerEntry.objects.filter(external_source=integration.external_source).count() == 1
    assert ledger_report().ok


@pytest.mark.django_db(transaction=True)
def test_two_fee_pages_opened_at_once_say_brought_in_once(sandbox, make_integration, monkeypatch):
    integration = make_integration()
    fee = make_fee(amount="30.00", fee_date=IN_SCOPE)
    engine.deliver(integration_id=integration.pk)
    sandbox.control("pay", fee_ref=fee.reference, amount="12.00")
    _both_past_the_first_lookup(monkeypatch)

    pages = _in_two_threads(lambda: pull_for_student_page(student=fee.student))

    brought_in = [
        text
        for page in pages
        for level, text in page
        if level == message_levels.INFO and "brought in from" in text
    ]
    assert brought_in == [f"1 payment brought in from {integration.vendor_name}."]
    fee.refresh_from_db()
    assert fee.balance == D("18.00")
    assert ledger_report().ok
