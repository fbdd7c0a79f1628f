"""The partner API's hot paths behave exactly as the slow ones did: a retry answered before
its body is parsed, the account payment written in plain SQL, the call log."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import pytest
from auditlog.models import LogEntry
from django.contrib.auth.models import Group
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from apps.fees.models import LedgerEntry, StudentCredit
from apps.fees.selectors import ledger_report
from apps.fees.services.credit import credit_refund
from apps.fees.services.ledger import Origin
from apps.partner_api.models import ApiCall
from apps.partner_api.services import api_key_issue, api_user_create
from tests.db_helpers import wait_until_a_session_waits_for_a_lock
from tests.factories import StaffFactory

from .conftest import BOTH, PAYMENTS, payment

pytestmark = pytest.mark.django_db


def _post(client: APIClient, body: Any, key: str) -> Any:
    return client.post(PAYMENTS, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_a_retry_is_answered_with_the_first_status_body_and_headers(api, student):
    first = _post(api, payment(student, "10.00", "F-1"), "fast-1")
    again = _post(api, payment(student, "10.00", "F-1"), "fast-1")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again["Content-Type"] == first["Content-Type"] == "application/json"
    assert again["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert LedgerEntry.objects.filter(kind="payment").count() == 1


def test_a_retry_of_a_refusal_is_the_same_problem_document(api, student):
    bad = payment(student, "1e3", "F-2")
    first = _post(api, bad, "fast-2")
    again = _post(api, bad, "fast-2")
    assert first.status_code == again.status_code == 400
    assert again.json() == first.json()
    assert again["Content-Type"] == first["Content-Type"] == "application/problem+json"


def test_a_retry_is_answered_without_parsing_its_body(api, student):
    """Its body is the first request's, byte for byte, so the stored answer is all it needs:
    the key's row and the call log, and nothing of the ledger."""
    _post(api, payment(student, "10.00", "F-3"), "fast-3")
    with CaptureQueriesContext(connection) as ctx:
        again = _post(api, payment(student, "10.00", "F-3"), "fast-3")
    assert again["Idempotent-Replayed"] == "true"
    sql = " ".join(q["sql"] for q in ctx.captured_queries)
    assert "fees_" not in sql and "students_" not in sql


def test_the_same_key_with_another_body_is_still_422_and_posts_nothing(api, student):
    _post(api, payment(student, "10.00", "F-4"), "fast-4")
    other = _post(api, payment(student, "10.01", "F-4"), "fast-4")
    assert other.status_code == 422
    assert other["Content-Type"] == "application/problem+json"
    assert other.json()["errors"] == [
        {"property": "Idempotency-Key", "detail": "Already used with another body."}
    ]
    assert LedgerEntry.objects.filter(kind="payment").count() == 1


def test_a_retry_without_credentials_is_refused_not_replayed(api, student):
    _post(api, payment(student, "10.00", "F-5"), "fast-5")
    anonymous = _post(APIClient(), payment(student, "10.00", "F-5"), "fast-5")
    assert anonymous.status_code == 401
    assert "Idempotent-Replayed" not in anonymous
    assert "StudentAccountTransactionId" not in anonymous.json()
    wrong = APIClient()
    wrong.credentials(HTTP_AUTHORIZATION="Api-Key nope.nope")
    refused = _post(wrong, payment(student, "10.00", "F-5"), "fast-5")
    assert refused.status_code == 401 and "Idempotent-Replayed" not in refused


def test_another_api_users_key_is_never_replayed_to_them(api, integration, student):
    first = _post(api, payment(student, "10.00", "F-6"), "shared-key")
    other_user = api_user_create(
        user=StaffFactory(username="partner-other"), integration=integration, groups=BOTH
    )
    other = APIClient()
    other.credentials(
        HTTP_AUTHORIZATION=f"Api-Key {api_key_issue(api_user=other_user, name='o')[1]}"
    )
    theirs = _post(other, payment(student, "10.00", "F-6"), "shared-key")
    # Keys and vendor ids are each API user's own: theirs is a new posting of their own.
    assert theirs.status_code == 201 and "Idempotent-Replayed" not in theirs
    assert (
        theirs.json()["StudentAccountTransactionId"] != first.json()["StudentAccountTransactionId"]
    )
    assert LedgerEntry.objects.filter(kind="payment").count() == 2


def test_a_retry_after_the_permission_is_removed_is_403(api, api_user, student):
    _post(api, payment(student, "10.00", "F-7"), "fast-7")
    api_user.user.groups.remove(Group.objects.get(name="API - Student Accounting"))
    again = _post(api, payment(student, "10.00", "F-7"), "fast-7")
    assert again.status_code == 403
    assert again.json()["permission"] == "StudentAccounting.LedgerPaymentTransactions.Create"
    assert "Idempotent-Replayed" not in again


def test_every_call_is_logged_replays_included(api, student):
    _post(api, payment(student, "10.00", "F-8"), "fast-8")
    _post(api, payment(student, "10.00", "F-8"), "fast-8")
    _post(api, payment(student, "10.01", "F-8"), "fast-8")
    calls = list(ApiCall.objects.order_by("id"))
    assert [c.status_code for c in calls] == [201, 201, 422]
    assert "Idempotency-Key" in calls[2].reason


def test_the_credit_an_api_payment_brings_is_audited_before_and_after(api, student):
    _post(api, payment(student, "10.00", "F-9"), "fast-9")
    _post(api, payment(student, "2.50", "F-10"), "fast-10")
    credit = StudentCredit.objects.get(student=student)
    assert credit.amount == Decimal("12.50") and credit.since is not None
    logged = list(LogEntry.objects.get_for_object(credit).order_by("timestamp", "id"))
    assert [e.action for e in logged] == [LogEntry.Action.CREATE, LogEntry.Action.UPDATE]
    assert logged[0].changes_dict["amount"][1] == "10.00"
    assert logged[1].changes_dict["amount"] == ["10.00", "12.50"]
    assert ledger_report().ok


def test_a_payment_on_an_account_with_credit_used_up_sets_since_again(api, student):
    _post(api, payment(student, "10.00", "F-11"), "fast-11")
    # The office refunds it all: the account is back to no credit.
    credit_refund(student=student, amount="10.00", reason="Refunded", origin=Origin())
    assert StudentCredit.objects.get(student=student).since is None
    _post(api, payment(student, "4.00", "F-12"), "fast-12")
    credit = StudentCredit.objects.get(student=student)
    assert credit.amount == Decimal("4.00") and credit.since is not None
    changed = LogEntry.objects.get_for_object(credit).order_by("-id").first()
    assert changed is not None and changed.changes_dict["amount"] == ["0.00", "4.00"]
    assert changed.changes_dict["since"][0] == "None"


@pytest.mark.django_db(transaction=True)
def test_twenty_simultaneous_posts_of_one_vendor_id_without_a_key_record_one(api_key, student):
    """No savepoint guards the account payment's INSERT: the race on the vendor's id is
    settled by ON CONFLICT, and the losers answer with the winner's posting."""
    assert connection.vendor == "postgresql"
    results: list[Any] = [None] * 20
    gate = threading.Barrier(20)

    def run(i: int) -> None:
        try:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key}")
            gate.wait()
            results[i] = client.post(PAYMENTS, payment(student, "7.00", "RACE-1"), format="json")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200] * 19 + [201], statuses
    assert len({r.json()["StudentAccountTransactionId"] for r in results}) == 1
    assert LedgerEntry.objects.filter(kind="payment").count() == 1
    assert StudentCredit.objects.get(student=student).amount == Decimal("7.00")
    assert ledger_report().ok


@pytest.mark.django_db(transaction=True)
def test_a_payment_refused_after_it_wrote_leaves_nothing_and_its_retry_replays_the_refusal(
    api_key, api_user, student
):
    """The payment's transaction has no savepoint: a refusal that comes after the door wrote
    the entry and the credit (here its cash drawer session closes while it waits for the
    session's lock) rolls back the whole transaction, and the key then keeps the refusal."""
    from django.db import transaction

    from apps.accounting.models import CashDrawer
    from apps.accounting.services.cashiering import session_close, session_lock, session_open
    from apps.fees.models import StudentCredit
    from apps.partner_api.models import ApiPosting

    assert connection.vendor == "postgresql"
    school = student.school
    school.cashiering = True
    school.save()
    cashier = StaffFactory(username="cashier-after")
    session = session_open(
        drawer=CashDrawer.objects.create(school=school, name="Vendor", api_user=api_user),
        cashier=cashier,
    )
    body = payment(student, "10.00", "AFTER-1", CashDrawerId=session.drawer_id)
    answers: list[Any] = []

    def post() -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key}")
        try:
            answers.append(_post(client, body, "after-1"))
        finally:
            connections.close_all()

    with transaction.atomic():
        session_lock(session.pk)  # the payment will wait here, after writing its entry
        poster = threading.Thread(target=post)
        poster.start()
        # Until the payment waits on the session's row lock.
        waiting = wait_until_a_session_waits_for_a_lock()
        assert waiting, answers[0].json() if answers else "the payment never waited for the lock"
        session_close(session=session, counted={"R": "0.00"}, user=cashier)
    poster.join(timeout=300)
    [first] = answers
    assert first.status_code == 422, first.json()
    assert first.json()["errors"][0]["property"] == "CashDrawerSessionId"
    assert "closed" in first.json()["errors"][0]["detail"]
    # Nothing it wrote before the refusal is left: no entry, no credit, no posting.
    assert not LedgerEntry.objects.filter(external_id="AFTER-1").exists()
    assert not StudentCredit.objects.filter(student=student, amount__gt=0).exists()
    assert not ApiPosting.objects.exists()
    again = _post(APIClient(HTTP_AUTHORIZATION=f"Api-Key {api_key}"), body, "after-1")
    assert again.status_code == 422 and again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert [c.status_code for c in ApiCall.objects.order_by("id")] == [422, 422]
    assert ledger_report().ok


def test_what_an_api_user_changes_is_audited_with_them_as_the_actor(api, api_user, student):
    _post(api, payment(student, "10.00", "ACT-1"), "act-1")
    credit = StudentCredit.objects.get(student=student)
    [logged] = LogEntry.objects.get_for_object(credit)
    assert logged.actor == api_user.user


def test_signed_in_with_basic_auth_too(basic_client, api_user, student):
    client = basic_client(api_user.user.username)
    assert _post(client, payment(student, "10.00", "ACT-2"), "act-2").status_code == 201
    credit = StudentCredit.objects.get(student=student)
    [logged] = LogEntry.objects.get_for_object(credit)
    assert logged.actor == api_user.user
