"""Simultaneous first payments to one fund source create its student award once (the unique
constraint settles the race; the loser reuses the winner's award). PostgreSQL, real
threads, each its own connection and transaction."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from rest_framework.test import APIClient

from apps.accounting.models import EntryBooking, StudentAward
from apps.fees.models import LedgerEntry
from apps.fees.selectors import ledger_report
from tests.partner_api.test_idempotency import _in_parallel

from .conftest import COMMAND, command


@pytest.mark.django_db(transaction=True)
def test_eight_simultaneous_first_payments_create_one_award(
    api_key, api_user, period, academic_year, fund, bank_account
):
    assert connection.vendor == "postgresql"
    api_user.user.groups.add(Group.objects.get(name="API - Student Accounts"))
    body = command(period, academic_year, fund, bank_account)

    def post(i: int) -> Any:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key}")
        return client.post(COMMAND, {**body, "VendorTransactionId": f"race-{i}"}, format="json")

    responses = _in_parallel(8, post)
    assert [getattr(r, "status_code", None) for r in responses] == [201] * 8
    award = StudentAward.objects.get()
    created = [r.json()["payload"]["data"]["IsNewStudentAward"] for r in responses]
    assert created.count(True) == 1
    assert {r.json()["payload"]["data"]["StudentAwardId"] for r in responses} == {award.pk}
    assert LedgerEntry.objects.filter(kind="payment").count() == 8
    assert EntryBooking.objects.filter(student_award=award).count() == 8
    assert ledger_report().ok
