"""Idempotency-Key: replay, a different body is 422, and concurrent posts on PostgreSQL."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, connections
from rest_framework.test import APIClient

from apps.fees.models import LedgerEntry, ScheduledPayment
from apps.fees.selectors import ledger_report
from apps.partner_api.models import IdempotencyRecord

from .conftest import PAYMENTS, PLANS, payment


@pytest.mark.django_db
def test_same_key_same_body_replays_the_first_response(api, student):
    first = api.post(
        PAYMENTS, payment(student, "10.00", "K1"), format="json", HTTP_IDEMPOTENCY_KEY="abc"
    )
    again = api.post(
        PAYMENTS, payment(student, "10.00", "K1"), format="json", HTTP_IDEMPOTENCY_KEY="abc"
    )
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert LedgerEntry.objects.filter(kind="payment").count() == 1


@pytest.mark.django_db
def test_same_key_other_body_is_422(api, student):
    api.post(PAYMENTS, payment(student, "10.00", "K1"), format="json", HTTP_IDEMPOTENCY_KEY="abc")
    other = api.post(
        PAYMENTS, payment(student, "11.00", "K2"), format="json", HTTP_IDEMPOTENCY_KEY="abc"
    )
    assert other.status_code == 422
    assert other.json()["errors"][0]["property"] == "Idempotency-Key"
    assert LedgerEntry.objects.filter(kind="payment").count() == 1


@pytest.mark.django_db
def test_a_refusal_is_replayed_too_and_posts_nothing(api, student):
    bad = payment(student, "10.001", "K3")
    first = api.post(PAYMENTS, bad, format="json", HTTP_IDEMPOTENCY_KEY="bad-1")
    again = api.post(PAYMENTS, bad, format="json", HTTP_IDEMPOTENCY_KEY="bad-1")
    assert first.status_code == again.status_code == 400
    assert again["Content-Type"].startswith("application/problem+json")
    assert not LedgerEntry.objects.exists()


@pytest.mark.django_db
def test_keys_are_kept_beyond_24_hours(api, student, settings):
    assert settings.FEESYNC_IDEMPOTENCY_HOURS >= 24
    api.post(PAYMENTS, payment(student, "10.00", "K4"), format="json", HTTP_IDEMPOTENCY_KEY="old")
    IdempotencyRecord.objects.update(created_at="2020-01-01T00:00:00Z")
    again = api.post(
        PAYMENTS, payment(student, "10.00", "K4"), format="json", HTTP_IDEMPOTENCY_KEY="old"
    )
    assert again["Idempotent-Replayed"] == "true"


def _in_parallel(n: int, work: Any) -> list[Any]:
    results: list[Any] = [None] * n
    gate = threading.Barrier(n)

    def run(i: int) -> None:
        try:
            gate.wait()
            results[i] = work(i)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    return results


@pytest.mark.django_db(transaction=True)
def test_twenty_simultaneous_posts_with_one_key_record_one_payment(api_key, student):
    assert connection.vendor == "postgresql"

    def post(i: int) -> Any:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key}")
        return client.post(
            PAYMENTS, payment(student, "25.00", "C1"), format="json", HTTP_IDEMPOTENCY_KEY="same"
        )

    responses = _in_parallel(20, post)
    assert all(r is not None and r.status_code == 201 for r in responses), [
        getattr(r, "status_code", None) for r in responses
    ]
    assert len({r.json()["StudentAccountTransactionId"] for r in responses}) == 1
    assert LedgerEntry.objects.filter(kind="payment").count() == 1
    assert ledger_report().ok


@pytest.mark.django_db(transaction=True)
def test_twenty_payments_on_one_plan_at_once_leave_a_consistent_schedule(api, api_key, student):
    assert connection.vendor == "postgresql"
    plan = api.post(
        PLANS,
        {
            "StudentId": student.student_number,
            "ScheduledPayments": [
                {"Amount": "100.00", "ExpectedDate": f"2026-{m:02d}-01"} for m in range(1, 13)
            ],
        },
        format="json",
    ).json()

    def post(i: int) -> Any:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key}")
        return client.post(
            PAYMENTS,
            payment(student, "37.50", f"PP{i}", UseNextScheduledPayment=True),
            format="json",
        )

    responses = _in_parallel(20, post)
    assert [r.status_code for r in responses] == [201] * 20
    rows = list(ScheduledPayment.objects.filter(plan_id=plan["PaymentPlanId"]))
    paid = sum((r.amount for r in rows if r.status == "P"), Decimal("0"))
    scheduled = sum((r.amount for r in rows if r.status == "S"), Decimal("0"))
    assert paid == Decimal("750.00")
    assert paid + scheduled == Decimal("1200.00")
    assert ledger_report().ok
