"""A session closed while payments are being posted into it: every payment either booked
before the close (and in its expected totals) or refused whole; none slips in after.
PostgreSQL, real threads, each its own connection and transaction."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from rest_framework.test import APIClient

from apps.accounting.models import CashDrawer, CashDrawerSession, EntryBooking
from apps.accounting.services.cashiering import session_close, session_open
from apps.fees.models import LedgerEntry
from apps.fees.selectors import ledger_report
from tests.factories import StaffFactory
from tests.partner_api.test_idempotency import _in_parallel

from .conftest import COMMAND, command


@pytest.mark.django_db(transaction=True)
def test_payments_racing_a_close_are_booked_before_it_or_refused(
    api_key, api_user, school, period, academic_year, fund, bank_account
):
    assert connection.vendor == "postgresql"
    api_user.user.groups.add(Group.objects.get(name="API - Student Accounts"))
    school.cashiering = True
    school.save()
    cashier = StaffFactory(username="cashier-race")
    drawer = CashDrawer.objects.create(school=school, name="Vendor", api_user=api_user)
    session = session_open(drawer=drawer, cashier=cashier)
    body = command(
        period,
        academic_year,
        fund,
        bank_account,
        CashDrawerId=drawer.pk,
        CashDrawerSessionId=session.pk,
        CashierUserId=cashier.pk,
        TransactionAmount="10.00",
    )

    def work(i: int) -> Any:
        if i == 0:
            return session_close(session=session, counted={"C": "0.00"}, user=cashier)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key}")
        return client.post(COMMAND, {**body, "VendorTransactionId": f"R-{i}"}, format="json")

    results = _in_parallel(9, work)
    statuses = [r.status_code for r in results[1:]]
    assert set(statuses) <= {201, 422}, statuses
    closed = CashDrawerSession.objects.get(pk=session.pk)
    booked = EntryBooking.objects.filter(cash_session=closed).count()
    assert booked == statuses.count(201)
    # Refused payments left nothing behind; the booked ones are all in the expected totals.
    assert LedgerEntry.objects.filter(kind="payment").count() == booked
    expected = Decimal(closed.expected.get("C", "0.00"))
    assert expected == Decimal("10.00") * booked
    assert ledger_report().ok
